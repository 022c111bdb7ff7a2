"""MMGCN / official-MMGRec format folders (e.g. the authors' ``sample`` data).

Folder contents (file names may carry a suffix such as ``_sample``)::

    user_item_dict*.npy      np.save of a dict {user id: [item ids]} (a pickle inside an object .npy)
    v_feat*.npy | v_feat*.pt -> "visual"    (n_items, d) dense
    a_feat*.npy | a_feat*.pt -> "acoustic"  (n_items, d) dense
    t_feat*.npy | t_feat*.pt -> "textual"   (n_items, d) dense, or an int64 (2, E) item-word edge list

Reading: the dict is unpickled with the restricted unpickler (never ``allow_pickle=True``); ``.npy``
features with ``allow_pickle=False``; ``.pt`` with ``torch.load(weights_only=True)``. Missing modality
files simply mean the modality is absent.

Item ids: MMGCN code often numbers items after the users (item id = n_users + i). The offset is
detected from the feature row count ``n_feat``: ids already in ``[0, n_feat)`` are used as they are;
ids in ``[n_users, n_users + n_feat)`` are shifted by ``n_users``; anything else is an error. Without
dense features, ids are shifted only when every id is ``>= n_users``. ``item_offset=`` overrides the
detection. ``n_items`` is the feature row count (items without interactions are kept), else the
largest id + 1.

Text edge lists become an L2-normalised bag of words over the distinct word ids (counts of repeated
edges add up); when the vocabulary is larger than ``text_dim`` (default 64) it is reduced with
``sklearn.decomposition.TruncatedSVD(n_components=text_dim, random_state=0)`` (LSA). Items without
words get a zero row and ``feature_masks["textual"] == False``.

Interactions (deduplicated, sorted by (user, item)) are split per user 80/10/10 with ``seed``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .paths import dataset_folder, root_hint
from .dataset import DataError, RecDataset, random_split
from .features import check_feature_matrix
from .safe_pickle import load_npy_object

__all__ = ["MMGCN_MODALITIES", "load_mmgcn", "read_user_item_dict", "read_feature_file", "text_edges_to_features"]

#: File prefix -> modality.
MMGCN_MODALITIES = {"v": "visual", "a": "acoustic", "t": "textual"}


def _find(folder: Path, stem: str, exts: tuple[str, ...]) -> Path | None:
    """The single file ``<stem>*<ext>`` in ``folder`` (``None`` if absent; DataError if ambiguous)."""
    hits = sorted(p for ext in exts for p in folder.glob(f"{stem}*{ext}") if p.is_file())
    if len(hits) > 1:
        raise DataError(f"{folder}: several candidate files for {stem}*: {[p.name for p in hits]}; keep one")
    return hits[0] if hits else None


def read_user_item_dict(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``user_item_dict*.npy`` into parallel ``(users, items)`` int64 arrays (raw ids, duplicates kept).

    Raises:
        DataError: disallowed pickle globals, content that is not ``{int: [int, ...]}``, negative ids.
    """
    path = Path(path)
    d = load_npy_object(path, expect=dict, what="a dict {user id: [item ids]}")
    users, items = [], []
    for u, its in d.items():           # file parsing: one entry per user
        if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)):
            raise DataError(f"{path}: user keys must be integers, got {type(u).__name__} ({u!r})")
        arr = np.asarray(list(its) if isinstance(its, (set, frozenset)) else its)
        if arr.size and (arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer)):
            raise DataError(f"{path}: items of user {u} must be a list of integers, got "
                            f"{type(its).__name__} of dtype {arr.dtype}")
        users.append(np.full(arr.size, int(u), dtype=np.int64))
        items.append(arr.astype(np.int64).ravel())
    users_a = np.concatenate(users) if users else np.zeros(0, np.int64)
    items_a = np.concatenate(items) if items else np.zeros(0, np.int64)
    for ids, what in ((users_a, "user"), (items_a, "item")):
        if ids.size and ids.min() < 0:
            raise DataError(f"{path}: negative {what} ids (e.g. {ids[ids < 0][:3].tolist()})")
    return users_a, items_a


def read_feature_file(path: str | os.PathLike) -> np.ndarray:
    """Load a numeric array from ``.npy`` (``allow_pickle=False``) or ``.pt`` (``weights_only=True``)."""
    path = Path(path)
    try:
        if path.suffix == ".pt":
            obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            obj = np.load(path, allow_pickle=False)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, ...)
        raise DataError(f"{path}: not a readable numeric {path.suffix} array ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if not isinstance(obj, np.ndarray):
        raise DataError(f"{path}: expected a tensor / array, got {type(obj).__name__}")
    if not (np.issubdtype(obj.dtype, np.number)):
        raise DataError(f"{path}: expected a numeric array, got dtype {obj.dtype}")
    return obj


def text_edges_to_features(edges: np.ndarray, n_items: int, text_dim: int = 64,
                           where: str = "<text edges>") -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Item-word edge list ``(2, E)`` -> ``(features, mask, info)``.

    Features are the L2-normalised bag of words over distinct word ids, reduced with
    ``TruncatedSVD(random_state=0)`` to ``min(text_dim, n_items)`` dims when the vocabulary exceeds
    ``text_dim``. ``mask`` is ``False`` for items with no word.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    item_ids, word_ids = edges[0].astype(np.int64), edges[1].astype(np.int64)
    if item_ids.size and (item_ids.min() < 0 or item_ids.max() >= n_items):
        bad = item_ids[(item_ids < 0) | (item_ids >= n_items)]
        raise DataError(f"{where}: {bad.size} text edges reference item ids out of range [0, {n_items}) "
                        f"(e.g. {bad[:3].tolist()})")
    if word_ids.size and word_ids.min() < 0:
        raise DataError(f"{where}: negative word ids in the text edge list")
    vocab, cols = np.unique(word_ids, return_inverse=True)
    bow = sp.csr_matrix((np.ones(item_ids.size, dtype=np.float64), (item_ids, cols)),
                        shape=(n_items, vocab.size))       # repeated (item, word) edges add up
    bow.sum_duplicates()
    mask = np.diff(bow.indptr) > 0
    bow = normalize(bow, norm="l2", axis=1)
    info: dict[str, Any] = {"format": "item-word edge list", "edges": int(item_ids.size), "vocab": int(vocab.size)}
    if vocab.size > text_dim:
        k = max(1, min(text_dim, n_items, vocab.size - 1))
        svd = TruncatedSVD(n_components=k, random_state=0)
        dense = svd.fit_transform(bow)
        info.update(method=f"L2-normalised bag of words -> TruncatedSVD({k})",
                    explained_variance=float(svd.explained_variance_ratio_.sum()))
    else:
        dense = bow.toarray()
        info.update(method="L2-normalised bag of words")
    dense = dense.astype(np.float32)
    dense[~mask] = 0.0
    info["dim"] = int(dense.shape[1])
    return dense, mask, info


def load_mmgcn(root: str | os.PathLike | None = None, path: str | os.PathLike | None = None, seed: int = 0,
               subset: str = "tiktok", name: str | None = None, item_offset: int | None = None,
               text_dim: int = 64) -> RecDataset:
    """Load an MMGCN-format folder as a :class:`RecDataset` with a per-user random 80/10/10 split.

    Args:
        root: data folder (default ``$MMGREC_DATA``); the folder read is ``root/mmgrec-sample/<subset>``.
        path: read this folder instead.
        seed: split seed.
        subset: ``"tiktok"`` or ``"movielens"`` (sample folders under ``mmgrec-sample/``).
        name: dataset name (default ``"mmgcn-<folder name>"``).
        item_offset: subtract this from item ids; ``None`` detects the MMGCN ``n_users`` offset.
        text_dim: maximum dimension of text features built from an item-word edge list.

    Raises:
        DataError: missing folder / interaction file, disallowed pickle content, ids that fit neither
            the feature rows nor the offset convention, feature files with mismatched row counts,
            NaN / inf values, or no interactions.
    """
    folder = dataset_folder("mmgcn", f"mmgrec-sample/{subset}", root, path)
    if not folder.is_dir():
        if path is not None:
            raise DataError(f"{folder}: folder not found (the path= argument); it should be an MMGCN-format folder "
                            f"with user_item_dict*.npy")
        hint = root_hint(root, f"mmgrec-sample/{subset}/")
        raise DataError(f"{folder}: folder not found. {hint[:1].upper()}{hint[1:]} "
                        f"(or pass path= to an MMGCN-format folder)")
    dict_file = _find(folder, "user_item_dict", (".npy",))
    if dict_file is None:
        raise DataError(f"{folder}: no user_item_dict*.npy (the MMGCN interaction file) found")
    raw_users, raw_items = read_user_item_dict(dict_file)
    if raw_users.size == 0:
        raise DataError(f"{dict_file}: no interactions; the train split would be empty")
    n_users = int(raw_users.max()) + 1
    files = [str(dict_file)]

    # ---- features: dense matrices fix n_items; a text edge list is converted once n_items is known
    dense: dict[str, tuple[Path, np.ndarray]] = {}
    text_edges: tuple[Path, np.ndarray] | None = None
    for prefix, modality in MMGCN_MODALITIES.items():
        f = _find(folder, f"{prefix}_feat", (".npy", ".pt"))
        if f is None:
            continue
        files.append(str(f))
        arr = read_feature_file(f)
        if modality == "textual" and np.issubdtype(arr.dtype, np.integer) and arr.ndim == 2 and arr.shape[0] == 2:
            text_edges = (f, arr)
        else:
            dense[modality] = (f, arr)
    rows = {m: (f, a.shape[0] if a.ndim == 2 else None) for m, (f, a) in dense.items()}
    n_feat = None
    for m, (f, r) in rows.items():
        if r is None:
            raise DataError(f"{f}: {m} features must be a 2-D (items, dim) matrix, got shape {dense[m][1].shape}")
        if n_feat is None:
            n_feat, first = r, f
        elif r != n_feat:
            raise DataError(f"{f}: {r} feature rows but {first.name} has {n_feat}; every modality needs one "
                            f"row per item")

    # ---- item id offset (MMGCN numbers items after users)
    lo, hi = int(raw_items.min()), int(raw_items.max())
    how = "given"
    if item_offset is None:
        if n_feat is not None:
            if hi < n_feat:
                item_offset, how = 0, "ids fit the feature rows"
            elif lo >= n_users and hi - n_users < n_feat:
                item_offset, how = n_users, "ids fit the feature rows after subtracting n_users"
            else:
                raise DataError(f"{dict_file}: item ids span [{lo}, {hi}] but the feature files have {n_feat} rows "
                                f"({n_users} users); ids fit neither [0, {n_feat}) nor the MMGCN offset "
                                f"[{n_users}, {n_users + n_feat})")
        else:
            item_offset = n_users if lo >= n_users else 0
            how = "all ids >= n_users" if item_offset else "ids start below n_users"
    items = raw_items - item_offset
    n_items = n_feat if n_feat is not None else int(items.max()) + 1
    if text_edges is not None and n_feat is None and text_edges[1].shape[1]:
        t_items = text_edges[1][0]
        t_items = t_items - (item_offset if t_items.min() >= item_offset else 0)
        n_items = max(n_items, int(t_items.max()) + 1)
    if items.min() < 0 or items.max() >= n_items:
        bad = raw_items[(items < 0) | (items >= n_items)]
        raise DataError(f"{dict_file}: {bad.size} item ids out of range for {n_items} items with offset "
                        f"{item_offset} (e.g. {bad[:3].tolist()})")

    feats: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    feat_info: dict[str, Any] = {}
    for m, (f, arr) in dense.items():
        feats[m] = check_feature_matrix(arr, n_items, str(f), m)
        masks[m] = np.ones(n_items, dtype=bool)
        feat_info[m] = {"file": f.name, "format": "dense", "dim": int(arr.shape[1])}
    if text_edges is not None:
        f, edges = text_edges
        edges = edges.astype(np.int64)
        if item_offset and edges[0].size and edges[0].min() >= item_offset:
            edges = np.stack([edges[0] - item_offset, edges[1]])
        feats["textual"], masks["textual"], feat_info["textual"] = text_edges_to_features(
            edges, n_items, text_dim, str(f))
        feat_info["textual"]["file"] = f.name

    pairs = np.unique(raw_users * n_items + items)          # dedup; sorted by (user, item)
    dup = int(items.size - pairs.size)
    train, val, test = random_split(pairs // n_items, pairs % n_items, seed=seed)
    info = {"source": str(folder), "files": files, "item_offset": int(item_offset), "item_offset_reason": how,
            "split": {"method": "per-user random 80/10/10 over (user, item)-sorted unique pairs", "seed": seed},
            "features": feat_info}
    ds = RecDataset.from_splits(name or f"mmgcn-{folder.name}", n_users, n_items, train, val, test,
                                features=feats, feature_masks=masks, source=str(folder), info=info)
    ds.info["duplicates_dropped"]["before_split"] = dup
    return ds
