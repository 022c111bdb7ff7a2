"""One dataset object for every source.

A :class:`RecDataset` holds implicit-feedback interactions split into train / validation / test
(``scipy.sparse.csr_matrix`` of shape ``(n_users, n_items)``, binary ``float32``), item features per
modality (``float32``, one row per item) with a presence mask per modality, and item metadata.

Every loader in :mod:`mmgrec_lib.data` returns one of these, already validated; ``validate`` raises a
:class:`DataError` that names the source and the problem.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .sparse import csr_pairs


class DataError(ValueError):
    """Bad input data. The message names the file (or source) and the problem."""


SPLITS = ("train", "val", "test")


@dataclass
class RecDataset:
    """Users, items, split interactions and multimodal item features.

    Attributes:
        name: dataset name (``"ml100k"``, ``"tiktok"``, ...).
        n_users, n_items: sizes; users and items are 0-based contiguous ids.
        train, val, test: ``csr_matrix`` ``(n_users, n_items)``, ``float32`` ones, pairwise disjoint.
        features: modality name (``"visual"``, ``"acoustic"``, ``"textual"``) -> ``(n_items, d_m)`` float32.
            Rows of items that lack the modality are zero.
        feature_masks: modality -> ``(n_items,)`` bool, ``True`` where the item has that modality.
        item_titles: optional list of ``n_items`` titles (``None`` where unknown).
        item_meta: optional per-item DataFrame (index = item id), e.g. year, genres, poster path.
        info: provenance and loader notes (source paths, split seed, duplicates dropped, ...).
        user_ids, item_ids: optional ``(n_users,)`` / ``(n_items,)`` arrays of the raw ids in the source files,
            position = internal id (``int64`` when every raw id is an integer, else ``object`` strings); set by
            loaders that factorise arbitrary ids (:func:`~mmgrec_lib.data.folder.load_folder`). Map a raw id
            back with ``pd.Index(ds.item_ids).get_loc(raw)``.
    """

    name: str
    n_users: int
    n_items: int
    train: sp.csr_matrix
    val: sp.csr_matrix
    test: sp.csr_matrix
    features: dict[str, np.ndarray] = field(default_factory=dict)
    feature_masks: dict[str, np.ndarray] = field(default_factory=dict)
    item_titles: list[str | None] | None = None
    item_meta: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_splits(
        cls,
        name: str,
        n_users: int,
        n_items: int,
        train: tuple[np.ndarray, np.ndarray] | sp.spmatrix,
        val: tuple[np.ndarray, np.ndarray] | sp.spmatrix,
        test: tuple[np.ndarray, np.ndarray] | sp.spmatrix,
        features: dict[str, np.ndarray] | None = None,
        feature_masks: dict[str, np.ndarray] | None = None,
        source: str = "<memory>",
        **kwargs: Any,
    ) -> "RecDataset":
        """Build and validate a dataset from (users, items) arrays or sparse matrices per split.

        Duplicate (user, item) pairs inside a split are dropped and counted in ``info["duplicates_dropped"]``;
        explicit zeros stored in a sparse split are not interactions: they are dropped and counted in
        ``info["explicit_zeros_dropped"]``. Floating-point features of any precision (float16, float64, ...)
        are cast to float32 by :func:`to_float32`, which refuses NaN / inf and values that overflow float32.
        """
        info = dict(kwargs.pop("info", {}) or {})
        mats, dropped, zeros = {}, {}, {}
        for split, value in zip(SPLITS, (train, val, test)):
            mats[split], dropped[split], zeros[split] = _to_binary_csr(value, n_users, n_items, f"{source} [{split}]")
        info.setdefault("source", source)
        info["duplicates_dropped"] = {k: int(v) for k, v in dropped.items()}
        info["explicit_zeros_dropped"] = {k: int(v) for k, v in zeros.items()}
        features = {k: np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v)
                    for k, v in (features or {}).items()}
        features = {k: to_float32(v, source, f"'{k}' features") if np.issubdtype(v.dtype, np.floating) else v
                    for k, v in features.items()}
        masks = dict(feature_masks or {})
        for m, f in features.items():
            if m not in masks and f.ndim == 2:
                masks[m] = np.ones(f.shape[0], dtype=bool)
        ds = cls(name=name, n_users=int(n_users), n_items=int(n_items), features=features,
                 feature_masks=masks, info=info, **mats, **kwargs)
        ds.validate(source)
        return ds

    # ------------------------------------------------------------------ validation
    def validate(self, source: str | None = None) -> "RecDataset":
        """Check shapes, dtypes, finiteness and disjointness; raise :class:`DataError` naming ``source``."""
        src = source or self.info.get("source", self.name)
        if self.n_users <= 0 or self.n_items <= 0:
            raise DataError(f"{src}: dataset has {self.n_users} users and {self.n_items} items; both must be > 0")
        for split in SPLITS:
            m = getattr(self, split)
            if not sp.isspmatrix_csr(m):
                raise DataError(f"{src}: split '{split}' must be a scipy.sparse CSR matrix, got {type(m).__name__}")
            if m.shape != (self.n_users, self.n_items):
                raise DataError(f"{src}: split '{split}' has shape {m.shape}, expected ({self.n_users}, {self.n_items})")
        if self.train.nnz == 0:
            raise DataError(f"{src}: the train split is empty")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            overlap = getattr(self, a).multiply(getattr(self, b)).nnz
            if overlap:
                raise DataError(f"{src}: splits '{a}' and '{b}' share {overlap} (user, item) pairs; they must be disjoint")
        for m, f in self.features.items():
            if f.ndim != 2 or f.shape[0] != self.n_items:
                raise DataError(f"{src}: '{m}' features have shape {f.shape}, expected ({self.n_items}, d): "
                                f"one row per item")
            if f.dtype != np.float32:
                raise DataError(f"{src}: '{m}' features have dtype {f.dtype}; loaders must cast to float32")
            bad = ~np.isfinite(f)
            if bad.any():
                rows = np.unique(np.nonzero(bad)[0])
                raise DataError(f"{src}: '{m}' features contain NaN or inf in {len(rows)} item rows "
                                f"(first: {rows[:5].tolist()})")
            mask = self.feature_masks.get(m)
            if mask is None or mask.shape != (self.n_items,) or mask.dtype != bool:
                raise DataError(f"{src}: '{m}' needs a boolean mask of shape ({self.n_items},)")
        if self.item_titles is not None and len(self.item_titles) != self.n_items:
            raise DataError(f"{src}: {len(self.item_titles)} item titles for {self.n_items} items")
        for what, ids, n in (("user", self.user_ids, self.n_users), ("item", self.item_ids, self.n_items)):
            if ids is not None and np.shape(ids) != (n,):
                raise DataError(f"{src}: {what}_ids has shape {np.shape(ids)}, expected ({n},): one raw id per {what}")
        return self

    # ------------------------------------------------------------------ views
    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def split(self, name: str) -> sp.csr_matrix:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def item_popularity(self) -> np.ndarray:
        """Number of training interactions per item, ``(n_items,)`` int64."""
        return np.asarray(self.train.sum(axis=0)).ravel().astype(np.int64)

    def user_items(self, split: str = "train") -> list[np.ndarray]:
        """Per-user sorted item arrays of a split (a Python list; not for hot paths)."""
        m = self.split(split)
        return [m.indices[m.indptr[u]:m.indptr[u + 1]] for u in range(self.n_users)]

    def train_edge_index(self) -> torch.Tensor:
        """``(2, E)`` long tensor of (user, item) training pairs, users and items both 0-based."""
        return torch.stack(csr_pairs(self.train))

    def feature_tensor(self, modalities: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenated item features ``(n_items, sum d_m)`` and a ``(n_items, n_modalities)`` presence mask."""
        mods = modalities if modalities is not None else self.modalities
        if not mods:
            return torch.zeros(self.n_items, 0), torch.zeros(self.n_items, 0, dtype=torch.bool)
        feats = torch.from_numpy(np.concatenate([self.features[m] for m in mods], axis=1))
        mask = torch.from_numpy(np.stack([self.feature_masks[m] for m in mods], axis=1))
        return feats, mask

    def title(self, item: int) -> str:
        t = self.item_titles[item] if self.item_titles is not None else None
        return t if t else f"item {item}"

    def stats(self) -> dict[str, Any]:
        """Summary statistics (one row of the dataset table)."""
        n_inter = {s: int(self.split(s).nnz) for s in SPLITS}
        total = sum(n_inter.values())
        row: dict[str, Any] = {
            "dataset": self.name, "users": self.n_users, "items": self.n_items,
            "interactions": total, **{f"{s}_interactions": v for s, v in n_inter.items()},
            "density": total / (self.n_users * self.n_items),
            "mean_items_per_user": total / self.n_users,
            "cold_items_in_train": int((self.item_popularity() == 0).sum()),
        }
        for m in self.modalities:
            row[f"{m}_dim"] = int(self.features[m].shape[1])
            row[f"{m}_coverage"] = float(self.feature_masks[m].mean())
        return row

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}:{self.features[m].shape[1]}" for m in self.modalities) or "none"
        return (f"RecDataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
                f"train={self.train.nnz}, val={self.val.nnz}, test={self.test.nnz}, modalities=[{mods}])")


def to_float32(array, where: str, what: str = "features") -> np.ndarray:
    """Cast a numeric array to C-contiguous ``float32``, refusing values that would not survive the cast.

    Args:
        array: array-like (float16 / float32 / float64 / longdouble, or integers).
        where: file or source named in error messages.
        what: what the array is, for error messages (e.g. ``"'visual' features"``).

    Raises:
        DataError: non-numeric dtype; NaN or inf in the input (``"contain NaN or inf in N rows (first:
            [...])"`` with the NaN and inf counts); finite values whose magnitude exceeds the float32 range
            (``"overflow float32"``, with the largest magnitude), which a plain cast would turn into inf.
    """
    a = np.asarray(array)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise DataError(f"{where}: {what} have non-numeric dtype {a.dtype}")

    def rows_of(mask: np.ndarray) -> np.ndarray:
        return np.unique(np.nonzero(mask)[0]) if mask.ndim else np.zeros(1, np.int64)

    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            rows = rows_of(bad)
            n_nan = int(np.isnan(a).sum())
            raise DataError(f"{where}: {what} contain NaN or inf in {rows.size} rows (first: {rows[:5].tolist()}): "
                            f"{n_nan} NaN and {int(bad.sum()) - n_nan} inf values")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=np.float32)
    over = np.isinf(out)
    if over.any():                                   # finite before the cast, inf after: out of float32 range
        rows = rows_of(over)
        biggest = float(np.max(np.abs(a[over])))
        raise DataError(f"{where}: {what} overflow float32 in {rows.size} rows (first: {rows[:5].tolist()}): "
                        f"largest magnitude {biggest:.4g} > float32 max {float(np.finfo(np.float32).max):.4g}; "
                        f"rescale them before loading")
    return out


def _to_binary_csr(value, n_users: int, n_items: int, where: str) -> tuple[sp.csr_matrix, int, int]:
    """(users, items) arrays or a sparse matrix -> binary float32 CSR; returns (matrix, duplicates dropped,
    explicit zeros dropped)."""
    zeros = 0
    if sp.issparse(value):
        coo = value.tocoo()
        if coo.shape != (n_users, n_items):
            raise DataError(f"{where}: matrix shape {coo.shape} does not match ({n_users}, {n_items})")
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        keep = coo.data != 0
        zeros = int(keep.size - keep.sum())
        users, items = users[keep], items[keep]
    else:
        users, items = (np.asarray(a) for a in value)
        if users.shape != items.shape or users.ndim != 1:
            raise DataError(f"{where}: users and items must be 1-D arrays of equal length, "
                            f"got {users.shape} and {items.shape}")
        if users.size and not (np.issubdtype(users.dtype, np.integer) and np.issubdtype(items.dtype, np.integer)):
            raise DataError(f"{where}: user and item ids must be integers, got {users.dtype} and {items.dtype}")
        users, items = users.astype(np.int64), items.astype(np.int64)
    for ids, n, what in ((users, n_users, "user"), (items, n_items, "item")):
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            bad = ids[(ids < 0) | (ids >= n)]
            raise DataError(f"{where}: {bad.size} {what} ids out of range [0, {n}) (e.g. {bad[:3].tolist()})")
    flat = np.unique(users * n_items + items)
    dropped = users.size - flat.size
    mat = sp.csr_matrix((np.ones(flat.size, dtype=np.float32), (flat // n_items, flat % n_items)),
                        shape=(n_users, n_items))
    mat.sort_indices()
    return mat, dropped, zeros


def random_split(
    users: np.ndarray, items: np.ndarray, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per-user random split of (deduplicated) interactions into train/val/test (the paper's 80/10/10).

    Each user's interactions are shuffled with ``numpy.random.default_rng(seed)``; the first
    ``round(0.8 n)`` go to train, the next ``round(0.1 n)`` to validation, the rest to test. Users with
    a single interaction keep it in train. Vectorised: one global shuffle, then a stable sort by user.
    """
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"split ratios must sum to 1, got {ratios}")
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(users.size)
    order = perm[np.argsort(users[perm], kind="stable")]          # grouped by user, random within user
    u_sorted = users[order]
    _, starts, counts = np.unique(u_sorted, return_index=True, return_counts=True)
    rank = np.arange(users.size) - np.repeat(starts, counts)      # position within the user's shuffled list
    n = np.repeat(counts, counts)
    n_train = np.maximum(np.rint(n * ratios[0]), 1)
    n_val = np.rint(n * ratios[1])
    part = np.where(rank < n_train, 0, np.where(rank < n_train + n_val, 1, 2))
    out = []
    for p in range(3):
        sel = order[part == p]
        out.append((users[sel], items[sel]))
    return tuple(out)
