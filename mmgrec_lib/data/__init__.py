"""Datasets: one :class:`RecDataset` for every source, via :func:`load_dataset`."""
from .dataset import DataError, RecDataset, random_split

__all__ = ["DataError", "RecDataset", "random_split", "load_dataset", "DATASETS"]

DATASETS = ("ml100k", "tiktok", "amazon-baby", "mmgcn", "synthetic")


def load_dataset(name: str, root=None, **kwargs) -> RecDataset:
    """Load a dataset by name.

    ``root`` defaults to ``$MMGREC_DATA``. Keyword arguments go to the loader (e.g. ``seed`` for the
    ml100k split, ``n_items`` for ``synthetic``); unknown ones raise ``TypeError``.
    """
    if name == "ml100k":
        from .ml100k import load_ml100k
        return load_ml100k(root=root, **kwargs)
    if name in ("tiktok", "amazon-baby"):
        from .mmssl import load_mmssl
        return load_mmssl(name, root=root, **kwargs)
    if name == "mmgcn":
        from .mmgcn import load_mmgcn
        return load_mmgcn(root=root, **kwargs)
    if name == "synthetic":
        from .synthetic import make_synthetic
        return make_synthetic(**kwargs)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
