"""MMSSL-format datasets (TikTok, Amazon-Baby): pickled sparse split matrices plus optional features.

Folder layout (as distributed with MMSSL / LATTICE-style code)::

    trnMat.pkl, valMat.pkl, tstMat.pkl   pickled scipy.sparse matrices (users x items), the given split
    image_feat.npy  -> "visual"          (n_items, d), any float dtype (TikTok: float16)
    audio_feat.npy  -> "acoustic"
    text_feat.npy   -> "textual"

The given split is kept as is. The names ``tiktok`` and ``amazon-baby`` mean the reference datasets
(:data:`MMSSL_REFERENCE`): a folder of another size is refused under those names (its tables would be
mislabelled); load it under its own name with ``path=``, or keep the name explicitly with
``reference=False``. Pickles are read with the restricted unpickler of
:mod:`mmgrec_lib.data.safe_pickle` (numpy / scipy.sparse classes only); feature files with
``np.load(allow_pickle=False)`` and cast to float32 before any arithmetic.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .paths import dataset_folder, root_hint
from .dataset import SPLITS, DataError, RecDataset
from .features import check_feature_matrix
from .safe_pickle import load_pickle

__all__ = ["MMSSL_DATASETS", "MMSSL_REFERENCE", "MATRIX_FILES", "FEATURE_FILES", "load_mmssl"]

#: Known datasets -> modalities whose feature file must be present.
MMSSL_DATASETS: dict[str, tuple[str, ...]] = {"tiktok": ("visual", "acoustic"), "amazon-baby": ()}
#: What the known names stand for: (users, items) of the reference copies (the shared data folder's README).
MMSSL_REFERENCE: dict[str, tuple[int, int, str]] = {
    "tiktok": (9308, 6710, "the MMSSL TikTok subset"),
    "amazon-baby": (19_445, 7050, "the MMSSL Amazon-Baby set"),
}
MATRIX_FILES = {"train": "trnMat.pkl", "val": "valMat.pkl", "test": "tstMat.pkl"}
FEATURE_FILES = {"visual": "image_feat.npy", "acoustic": "audio_feat.npy", "textual": "text_feat.npy"}


def _load_features(path: Path, n_items: int, modality: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable numeric .npy feature file ({exc})") from exc
    return check_feature_matrix(arr, n_items, str(path), modality)


def load_mmssl(name: str, root: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
               reference: bool = True) -> RecDataset:
    """Load an MMSSL-format dataset, keeping its train / validation / test split.

    Args:
        name: ``"tiktok"`` or ``"amazon-baby"`` (the sub-folder of ``root``); with ``path``, any name.
        root: data folder (default ``$MMGREC_DATA``); the dataset is read from ``root/name``.
        path: read this folder instead of ``root/name``.
        reference: for the known names (``tiktok``, ``amazon-baby``), refuse a folder whose users x items
            differ from the reference dataset's (:data:`MMSSL_REFERENCE`), so that no table calls other data
            by that name. ``False`` keeps the name for a variant (a subsample, a test copy); the dataset's
            ``info["reference"]`` then says that it differs.

    Every feature file present (``image_feat.npy``, ``audio_feat.npy``, ``text_feat.npy``) becomes a
    modality; for ``tiktok`` the visual and acoustic files are required.

    Raises:
        DataError: missing / unreadable files, pickles with disallowed globals or non-sparse content,
            shape mismatches between splits or with feature rows, NaN / inf features, overlapping
            splits, empty train split, a known name on a folder of another size (see ``reference``).
    """
    if path is None:
        if name not in MMSSL_DATASETS:
            raise ValueError(f"load_mmssl: unknown dataset {name!r}; expected one of {list(MMSSL_DATASETS)} "
                             f"(or pass path=)")
    folder = dataset_folder(name, name, root, path)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found. {_where(name, root, path, '/ with ' + _MATRICES)}")
    mats: dict[str, sp.coo_matrix] = {}
    for split, fname in MATRIX_FILES.items():
        f = folder / fname
        if not f.is_file():
            raise DataError(f"{f}: file not found ({split} split). {_where(name, root, path, '/' + fname)}")
        m = load_pickle(f, expect=(sp.spmatrix, sp.sparray), what="a scipy.sparse (users x items) matrix")
        if m.ndim != 2:
            raise DataError(f"{f}: expected a 2-D users x items matrix, got shape {m.shape}")
        mats[split] = m
    shape = mats["train"].shape
    for split, m in mats.items():
        if m.shape != shape:
            raise DataError(f"{folder / MATRIX_FILES[split]}: shape {m.shape} differs from "
                            f"{MATRIX_FILES['train']} {shape}; all splits must be users x items of the same size")
    n_users, n_items = int(shape[0]), int(shape[1])
    differs = _check_reference(name, folder, n_users, n_items, reference)
    required = MMSSL_DATASETS.get(name, ()) if path is None else ()
    feats: dict[str, np.ndarray] = {}
    files = [str(folder / f) for f in MATRIX_FILES.values()]
    for modality, fname in FEATURE_FILES.items():
        f = folder / fname
        if f.is_file():
            feats[modality] = _load_features(f, n_items, modality)
            files.append(str(f))
        elif modality in required:
            raise DataError(f"{f}: file not found ({modality} features of {name}). "
                            f"{_where(name, root, path, '/' + fname)}")
    info = {"source": str(folder), "files": files, "split": {"method": "given (MMSSL files)", "seed": None},
            "feature_files": {m: FEATURE_FILES[m] for m in feats}}
    if differs:
        info["reference"] = differs
    return RecDataset.from_splits(
        name, n_users, n_items, *(mats[s] for s in SPLITS), features=feats,
        feature_masks={m: np.ones(n_items, dtype=bool) for m in feats}, source=str(folder), info=info)


_MATRICES = ", ".join(MATRIX_FILES.values())


def _where(name: str, root, path, wanted: str) -> str:
    """Advice for a missing folder or file that fits the argument used (``path=``, ``root=`` or MMGREC_DATA):
    ``wanted`` is what ``<name>`` should hold, e.g. ``"/trnMat.pkl"``."""
    if path is not None:
        return f"The folder passed as path= should hold {wanted.removeprefix('/').removeprefix(' with ')}"
    hint = root_hint(root, f"{name}{wanted}")
    return hint[:1].upper() + hint[1:]


def _check_reference(name: str, folder: Path, n_users: int, n_items: int, reference: bool) -> str | None:
    """A known name on a folder of another size: an error (``reference``) or the note for ``info``."""
    if name not in MMSSL_REFERENCE:
        return None
    ref_users, ref_items, what = MMSSL_REFERENCE[name]
    if (n_users, n_items) == (ref_users, ref_items):
        return None
    note = (f"{n_users} users x {n_items} items, not the {ref_users} x {ref_items} of {what} that "
            f"the name {name!r} stands for")
    if reference:
        raise DataError(f"{folder}: holds {note}; refusing to label other data {name!r}. Load it under its own "
                        f"name with load_mmssl('my-data', path='{folder}'), or pass reference=False to keep the "
                        f"name {name!r} for a variant of it (a subsample, a test copy)")
    return note
