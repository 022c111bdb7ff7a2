"""Statistics of a Rec-ID assignment: codebook usage, perplexity, collisions, reconstruction error.

Everything is computed from the ``(n_items, M - 1)`` semantic tokens (and optionally the disambiguated
``(n_items, M)`` Rec-IDs) and returned as one flat dict, so rows for "popularity", "random", "HK-Means",
"ID w/o" ... stack into a table (``recid_stats_<dataset>.csv``) with :func:`stats_frame`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch


def as_code_matrix(codes: np.ndarray | torch.Tensor) -> np.ndarray:
    """Codes as an ``(n_items, levels)`` int64 numpy matrix (from a tensor or an array)."""
    arr = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be (n_items, levels), got shape {arr.shape}")
    return arr.astype(np.int64)


def level_usage(semantic: np.ndarray | torch.Tensor, codebook_size: int | Sequence[int]) -> list[dict[str, float]]:
    """Per level: ``usage`` (fraction of the ``codebook_size`` codes used by at least one item), ``used``
    (count) and ``perplexity`` (``exp`` of the entropy of the code distribution; ``L`` when uniform)."""
    sem = as_code_matrix(semantic)
    sizes = [int(codebook_size)] * sem.shape[1] if np.isscalar(codebook_size) else [int(c) for c in codebook_size]
    if len(sizes) != sem.shape[1]:
        raise ValueError(f"{len(sizes)} codebook sizes for {sem.shape[1]} levels")
    out = []
    for level, size in enumerate(sizes):
        counts = np.bincount(sem[:, level], minlength=size).astype(np.float64)
        p = counts[counts > 0] / max(counts.sum(), 1.0)
        out.append({"used": int((counts > 0).sum()), "usage": float((counts > 0).sum() / size),
                    "perplexity": float(np.exp(-(p * np.log(p)).sum())) if p.size else 0.0})
    return out


def group_sizes(semantic: np.ndarray | torch.Tensor, depth: int | None = None) -> np.ndarray:
    """Number of items sharing each distinct semantic prefix of length ``depth`` (default: all levels)."""
    sem = as_code_matrix(semantic)
    depth = sem.shape[1] if depth is None else int(depth)
    _, counts = np.unique(sem[:, :depth], axis=0, return_counts=True)
    return counts


def group_size_distribution(semantic: np.ndarray | torch.Tensor) -> pd.DataFrame:
    """Collision groups by size: ``size``, ``groups`` (how many semantic IDs have that many items), ``items``."""
    sizes, n_groups = np.unique(group_sizes(semantic), return_counts=True)
    return pd.DataFrame({"size": sizes, "groups": n_groups, "items": sizes * n_groups})


def recid_stats(
    semantic: np.ndarray | torch.Tensor,
    codebook_size: int | Sequence[int],
    codes: np.ndarray | torch.Tensor | None = None,
    recon_error: float | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """One flat row of Rec-ID statistics.

    Args:
        semantic: ``(n_items, M - 1)`` semantic tokens.
        codebook_size: codes per level (an int, or one per level).
        codes: optional disambiguated ``(n_items, M)`` Rec-IDs; their last column gives the largest
            popularity / random token (else it is inferred as the largest collision group size - 1).
        recon_error: optional mean reconstruction error of the quantiser.
        extra: more columns (method name, dataset, re-seeded codes, validation recall, ...).

    Keys: ``n_items``, ``n_levels``, ``usage_l{m}`` / ``used_l{m}`` / ``perplexity_l{m}`` per level ``m``
    (1-based), ``mean_usage``, ``mean_perplexity``, ``n_semantic_ids``, ``unique_prefix_frac_d{d}`` (fraction
    of items alone on their length-``d`` prefix), ``unique_semantic_frac`` (= the full-depth one),
    ``n_collision_groups`` (semantic IDs shared by >= 2 items), ``collided_items_frac``,
    ``max_group_size``, ``mean_group_size`` (items per semantic ID), ``p90_group_size`` (90th percentile of
    the group size an item is in), ``max_last_token``, ``recon_error``, plus ``extra``.
    """
    sem = as_code_matrix(semantic)
    n_items, n_levels = sem.shape
    row: dict[str, object] = {"n_items": int(n_items), "n_levels": int(n_levels)}
    usage = level_usage(sem, codebook_size)
    for m, u in enumerate(usage, start=1):
        row[f"usage_l{m}"], row[f"used_l{m}"], row[f"perplexity_l{m}"] = u["usage"], u["used"], u["perplexity"]
    row["mean_usage"] = float(np.mean([u["usage"] for u in usage]))
    row["mean_perplexity"] = float(np.mean([u["perplexity"] for u in usage]))
    for d in range(1, n_levels + 1):
        sizes = group_sizes(sem, d)
        row[f"unique_prefix_frac_d{d}"] = float((sizes == 1).sum() / n_items)
    sizes = group_sizes(sem)
    per_item = np.repeat(sizes, sizes)                       # group size seen by each item
    row["n_semantic_ids"] = int(sizes.size)
    row["unique_semantic_frac"] = row[f"unique_prefix_frac_d{n_levels}"]
    row["n_collision_groups"] = int((sizes > 1).sum())
    row["collided_items_frac"] = float(sizes[sizes > 1].sum() / n_items)
    row["max_group_size"] = int(sizes.max())
    row["mean_group_size"] = float(n_items / sizes.size)
    row["p90_group_size"] = float(np.percentile(per_item, 90))
    if codes is not None:
        full = as_code_matrix(codes)
        if full.shape[0] != n_items:
            raise ValueError(f"codes have {full.shape[0]} rows for {n_items} items")
        row["max_last_token"] = int(full[:, -1].max()) if full.shape[1] > n_levels else int(sizes.max()) - 1
    else:
        row["max_last_token"] = int(sizes.max()) - 1
    row["recon_error"] = float(recon_error) if recon_error is not None else float("nan")
    if extra:
        row.update(dict(extra))
    return row


def stats_frame(rows: Mapping[str, Mapping[str, object]] | Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """Stack stats rows into a DataFrame; a mapping's keys become (and override) the ``method`` column, placed first."""
    if isinstance(rows, Mapping):
        records = [{**dict(r), "method": name} for name, r in rows.items()]
    else:
        records = [dict(r) for r in rows]
    df = pd.DataFrame.from_records(records)
    if "method" in df.columns:
        df = df[["method"] + [c for c in df.columns if c != "method"]]
    return df
