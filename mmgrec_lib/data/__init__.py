"""Datasets: one :class:`RecDataset` for every source, via :func:`load_dataset`."""
from __future__ import annotations

import os
from pathlib import Path

from .dataset import DataError, RecDataset, random_split

__all__ = ["DataError", "RecDataset", "random_split", "load_dataset", "DATASETS", "FOLDER_PREFIX",
           "is_folder_spec", "folder_of", "resolve_dataset_spec", "dataset_tag"]

DATASETS = ("ml100k", "tiktok", "amazon-baby", "mmgcn", "synthetic")
#: ``load_dataset("folder:/path/to/mydata")`` reads your own dataset folder (see :mod:`mmgrec_lib.data.folder`).
FOLDER_PREFIX = "folder:"


def is_folder_spec(name: str) -> bool:
    """``True`` for ``"folder:<path>"`` and for a path (it contains ``/``, or starts with ``.`` or ``~``)."""
    if not isinstance(name, str) or name in DATASETS:
        return False
    return name.startswith(FOLDER_PREFIX) or "/" in name or os.sep in name or name.startswith((".", "~"))


def folder_of(name: str) -> Path:
    """The folder of a folder spec (``~`` expanded; relative paths stay relative to the current directory)."""
    path = name[len(FOLDER_PREFIX):] if name.startswith(FOLDER_PREFIX) else name
    if not path.strip():
        raise ValueError(f"dataset {name!r}: '{FOLDER_PREFIX}' needs a folder path, e.g. {FOLDER_PREFIX}/data/mydata")
    return Path(path).expanduser()


def resolve_dataset_spec(name: str) -> str:
    """A dataset spec that means the same from any working directory.

    Built-in names are returned unchanged; a folder spec becomes ``"folder:<absolute path>"`` (a runner
    must do this before handing the spec to a notebook that runs in another directory).

    Raises:
        ValueError: an unknown name (the message lists the valid names and the ``folder:`` form).
    """
    if name in DATASETS:
        return name
    if is_folder_spec(name):
        return FOLDER_PREFIX + str(folder_of(name).resolve())
    raise ValueError(_unknown(name))


def dataset_tag(name: str) -> str:
    """A short name for file and table names: the built-in name itself, or for a folder spec the name the
    folder's dataset gets (``name:`` in its ``dataset.yaml``, else the folder name; only
    ``[A-Za-z0-9_.-]``). Reads at most ``dataset.yaml``.

    Raises:
        ValueError: an unknown name. DataError: a folder that is missing or has a bad ``dataset.yaml``.
    """
    if name in DATASETS:
        return name
    if is_folder_spec(name):
        from .folder import folder_dataset_name
        return folder_dataset_name(folder_of(name))
    raise ValueError(_unknown(name))


def _unknown(name) -> str:
    return (f"unknown dataset {name!r}; expected one of {list(DATASETS)}, or your own dataset folder as "
            f"'{FOLDER_PREFIX}/path/to/folder' (interactions.csv or .parquet, optional dataset.yaml; see "
            f"mmgrec_lib.data.folder)")


def load_dataset(name: str, root=None, seed: int = 0, **kwargs) -> RecDataset:
    """Load a dataset by name.

    Args:
        name: one of :data:`DATASETS`, or ``"folder:/path/to/folder"`` (also a bare path containing ``/``)
            for your own dataset (:func:`mmgrec_lib.data.folder.load_folder`).
        root: datasets folder; defaults to ``$MMGREC_DATA``. Not used by folder datasets.
        seed: seed of the per-user random 80/10/10 split for loaders that split (ml100k, mmgcn,
            synthetic, folder datasets without ``split.seed`` in their yaml); tiktok, amazon-baby and
            folder datasets with a given split keep their split and record the seed as unused.
        **kwargs: passed to the loader (e.g. ``features`` for ml100k, ``n_items`` for synthetic, ``name``
            for folders); unknown ones raise ``TypeError``.
    """
    if name == "ml100k":
        from .ml100k import load_ml100k
        return load_ml100k(root=root, seed=seed, **kwargs)
    if name in ("tiktok", "amazon-baby"):
        from .mmssl import load_mmssl
        return load_mmssl(name, root=root, **kwargs)
    if name == "mmgcn":
        from .mmgcn import load_mmgcn
        return load_mmgcn(root=root, seed=seed, **kwargs)
    if name == "synthetic":
        from .synthetic import make_synthetic
        if root is not None:
            raise TypeError("synthetic data is generated; it takes no root folder")
        return make_synthetic(seed=seed, **kwargs)
    if is_folder_spec(name):
        from .folder import load_folder
        if root is not None:
            raise TypeError(f"{name}: a folder dataset is read from its own path; it takes no root folder")
        return load_folder(folder_of(name), seed=seed, **kwargs)
    raise ValueError(_unknown(name))
