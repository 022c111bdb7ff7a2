"""Figures and small tables for the Rec-ID collision analysis (notebook 02).

Every figure is a plain function returning a matplotlib ``Figure`` (no widgets, no global state); the
interactive explorer in :mod:`mmgrec_lib.reporting.widgets` is built on the same helpers.

Inputs are semantic tokens ``(n_items, n_levels)`` or full Rec-IDs ``(n_items, n_levels + 1)`` as numpy
arrays or tensors, usually ``RecIDRun.semantic`` / ``RecIDRun.codes``; functions that compare methods take a
mapping ``{method label: codes}`` and draw one panel (or one bar / line) per method, in the mapping's order.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import ListedColormap, LogNorm

from ..data.dataset import RecDataset
from ..tokenizer.stats import level_usage, stats_frame

if TYPE_CHECKING:  # pragma: no cover
    from ..tokenizer.run import RecIDRun

Codes = "np.ndarray | torch.Tensor"

#: Columns of the comparison table (``recid_stats_<dataset>``), in order; missing ones are skipped.
STATS_COLUMNS = ("method", "usage_l1", "usage_l2", "usage_l3", "perplexity_l1", "perplexity_l2", "perplexity_l3",
                 "n_semantic_ids", "unique_semantic_frac", "n_collision_groups", "collided_items_frac",
                 "max_group_size", "p90_group_size", "max_last_token", "recon_error")

#: Group-size bins of :func:`group_size_histogram` (inclusive lower, inclusive upper; ``None``: open).
SIZE_BINS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 8), (9, 16), (17, 32), (33, None))


# ====================================================================== helpers
def _np(codes) -> np.ndarray:
    arr = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be (n_items, levels), got shape {arr.shape}")
    return arr.astype(np.int64)


def _as_mapping(codes, name: str = "codes") -> dict[str, np.ndarray]:
    if isinstance(codes, Mapping):
        if not codes:
            raise ValueError("no methods to plot")
        return {str(k): _np(v) for k, v in codes.items()}
    return {name: _np(codes)}


def _wrap(text: str, width: int = 20, lines: int = 2) -> str:
    out = textwrap.wrap(str(text), width) or [""]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][:max(width - 1, 1)] + "…"
    return "\n".join(out)


def prefix_label(prefix: Sequence[int]) -> str:
    """``(12, 3)`` -> ``"12-3"``."""
    return "-".join(str(int(t)) for t in prefix)


def stats_table(runs: Mapping[str, "RecIDRun"], columns: Sequence[str] = STATS_COLUMNS) -> pd.DataFrame:
    """One row per labelled run with the readable subset ``columns`` of ``RecIDRun.stats``.

    The mapping's keys become the ``method`` column (e.g. ``"graph_rqvae+popularity"``).
    """
    df = stats_frame({label: run.stats for label, run in runs.items()})
    return df[[c for c in columns if c in df.columns]].reset_index(drop=True)


def all_unique(codes) -> bool:
    """``True`` when every row of ``codes`` (full Rec-IDs) is distinct."""
    arr = _np(codes)
    return np.unique(arr, axis=0).shape[0] == arr.shape[0]


def prefix_groups(semantic, depth: int | None = None, min_size: int = 2) -> pd.DataFrame:
    """Distinct semantic prefixes of length ``depth`` (default: all levels) with at least ``min_size`` items.

    Returns a frame with ``prefix`` (tuple), ``label`` (``"a-b-c"``) and ``size``, largest groups first
    (ties by prefix).
    """
    sem = _np(semantic)
    depth = sem.shape[1] if depth is None else int(depth)
    if not 1 <= depth <= sem.shape[1]:
        raise ValueError(f"depth must lie in [1, {sem.shape[1]}], got {depth}")
    uniq, counts = np.unique(sem[:, :depth], axis=0, return_counts=True)
    keep = counts >= min_size
    uniq, counts = uniq[keep], counts[keep]
    order = np.lexsort((*uniq.T[::-1], -counts)) if len(uniq) else np.zeros(0, dtype=np.int64)
    prefixes = [tuple(int(t) for t in uniq[i]) for i in order]
    return pd.DataFrame({"prefix": prefixes, "label": [prefix_label(p) for p in prefixes],
                         "size": counts[order].astype(np.int64)})


def items_under_prefix(semantic, prefix: Sequence[int], popularity: np.ndarray | None = None) -> np.ndarray:
    """Item ids whose semantic tokens start with ``prefix``; most popular first when ``popularity`` is given
    (ties by item id), else by item id."""
    sem = _np(semantic)
    prefix = [int(t) for t in prefix]
    if not 1 <= len(prefix) <= sem.shape[1]:
        raise ValueError(f"prefix length must lie in [1, {sem.shape[1]}], got {len(prefix)}")
    items = np.flatnonzero((sem[:, :len(prefix)] == np.asarray(prefix)).all(axis=1))
    if popularity is not None and items.size:
        items = items[np.lexsort((items, -np.asarray(popularity)[items]))]
    return items


def prefix_examples(run: "RecIDRun", dataset: RecDataset, n_groups: int = 4, depth: int | None = None,
                    max_items: int = 8, min_size: int = 2) -> pd.DataFrame:
    """The ``n_groups`` largest groups of items sharing a semantic prefix of length ``depth``, one row per item.

    Columns: ``prefix``, ``group_size``, ``item``, ``title``, ``train_pop`` (training interactions),
    ``rec_id`` (the full Rec-ID as a tuple; the semantic tokens when the run has no table). At most
    ``max_items`` items per group, most popular first.
    """
    pop = dataset.item_popularity()
    groups = prefix_groups(run.semantic, depth, min_size).head(n_groups)
    codes = _np(run.codes if run.table is not None else run.semantic)
    rows = []
    for prefix, label, size in groups.itertuples(index=False):
        for i in items_under_prefix(run.semantic, prefix, pop)[:max_items]:
            rows.append({"prefix": label, "group_size": int(size), "item": int(i), "title": dataset.title(int(i)),
                         "train_pop": int(pop[i]), "rec_id": tuple(int(t) for t in codes[i])})
    return pd.DataFrame(rows, columns=["prefix", "group_size", "item", "title", "train_pop", "rec_id"])


def poster_paths(dataset: RecDataset) -> list[str | None]:
    """Per item, the poster file path from ``item_meta["poster_path"]`` when it exists on disk, else ``None``."""
    meta = dataset.item_meta
    if meta is None or "poster_path" not in meta:
        return [None] * dataset.n_items
    out = []
    for p in meta["poster_path"].reindex(range(dataset.n_items)).tolist():
        out.append(p if isinstance(p, str) and p and Path(p).is_file() else None)
    return out


def load_thumbnail(path: str | None, size: tuple[int, int] = (120, 180)) -> np.ndarray | None:
    """The image at ``path`` as an RGB array shrunk to fit ``size`` (width, height); ``None`` when missing or
    unreadable."""
    if not path:
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail(size)
            return np.asarray(im)
    except (OSError, ValueError):
        return None


# ====================================================================== figures
def code_usage_bars(semantics, codebook_size: int) -> plt.Figure:
    """Items per code, per level (columns) and method (rows), codes sorted by frequency (rank-frequency bars).

    A flat profile at the dashed line (``n_items / codebook_size``) is perfectly even usage; a steep head and a
    long empty tail mean few codes carry most items. Panel titles give codes used and perplexity.
    """
    sems = _as_mapping(semantics, "semantic")
    n_levels = max(s.shape[1] for s in sems.values())
    fig, axes = plt.subplots(len(sems), n_levels, figsize=(3.6 * n_levels, 2.5 * len(sems) + 0.4),
                             squeeze=False, sharey="row")
    for r, (name, sem) in enumerate(sems.items()):
        usage = level_usage(sem, codebook_size)
        for lv in range(n_levels):
            ax = axes[r, lv]
            if lv >= sem.shape[1]:
                ax.set_axis_off()
                continue
            counts = np.sort(np.bincount(sem[:, lv], minlength=codebook_size))[::-1]
            ax.bar(np.arange(codebook_size), counts, width=1.0, color=f"C{r}")
            ax.axhline(sem.shape[0] / codebook_size, color="k", ls="--", lw=0.8)
            u = usage[lv]
            ax.set_title(f"{name}: level {lv + 1}\n{u['used']}/{codebook_size} used, "
                         f"perplexity {u['perplexity']:.1f}", fontsize=9)
            ax.set_xlim(-0.5, codebook_size - 0.5)
            if r == len(sems) - 1:
                ax.set_xlabel("code rank (by items)")
            if lv == 0:
                ax.set_ylabel("items")
    fig.tight_layout()
    return fig


def prefix_heatmap(semantics, codebook_size: int, levels: tuple[int, int] = (0, 1)) -> plt.Figure:
    """Items per (level-``a`` code, level-``b`` code) pair, one heatmap per method plus a shared colour bar.

    Rows are level-``a`` codes and columns level-``b`` codes, both sorted by frequency; the colour is the item
    count (log scale, white = no item). Many filled cells per row mean the second level splits the first
    level's clusters finely; a single dark column means the second level barely discriminates.
    """
    sems = _as_mapping(semantics, "semantic")
    a, b = levels
    mats = {}
    for name, sem in sems.items():
        if max(a, b) >= sem.shape[1]:
            raise ValueError(f"{name}: levels {levels} out of range for {sem.shape[1]} levels")
        m = np.zeros((codebook_size, codebook_size))
        np.add.at(m, (sem[:, a], sem[:, b]), 1)
        m = m[np.argsort(-m.sum(1), kind="stable")][:, np.argsort(-m.sum(0), kind="stable")]
        mats[name] = np.where(m > 0, m, np.nan)
    vmax = max(float(np.nanmax(m)) for m in mats.values())
    fig, axes = plt.subplots(1, len(mats), figsize=(3.9 * len(mats) + 1.0, 3.9), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    im = None
    for k, (ax, (name, m)) in enumerate(zip(axes[0], mats.items())):
        im = ax.imshow(m, cmap=cmap, norm=LogNorm(vmin=1, vmax=max(vmax, 1.01)), aspect="auto",
                       interpolation="nearest")
        filled = np.isfinite(m).sum(1)
        filled = filled[filled > 0]
        ax.set_title(f"{name}\n{filled.mean():.1f} level-{b + 1} codes per level-{a + 1} code", fontsize=9)
        ax.set_xlabel(f"level-{b + 1} code (by frequency)")
        if k == 0:
            ax.set_ylabel(f"level-{a + 1} code (by frequency)")
    fig.colorbar(im, ax=list(axes[0]), label="items", shrink=0.9)
    return fig


def method_comparison(table: pd.DataFrame, method_col: str = "method") -> plt.Figure:
    """Grouped bars per method: codebook usage per level, perplexity per level, and the share of items that
    are alone on their semantic ID (``unique_semantic_frac``) vs in a collision group (``collided_items_frac``)."""
    levels = sorted(int(c[len("usage_l"):]) for c in table.columns if c.startswith("usage_l"))
    panels = [("usage", [f"usage_l{m}" for m in levels], [f"level {m}" for m in levels],
               "share of codes used", (0, 1.05)),
              ("perplexity", [f"perplexity_l{m}" for m in levels], [f"level {m}" for m in levels],
               "perplexity (effective codes)", None),
              ("items", ["unique_semantic_frac", "collided_items_frac"], ["unique semantic ID", "in collision"],
               "share of items", (0, 1.05))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    methods = table[method_col].astype(str).tolist()
    width = 0.8 / max(len(methods), 1)
    for ax, (title, cols, labels, ylabel, ylim) in zip(axes, panels):
        cols_here = [c for c in cols if c in table]
        x = np.arange(len(cols_here))
        for k, (_, row) in enumerate(table.iterrows()):
            ax.bar(x + (k - (len(methods) - 1) / 2) * width, [float(row[c]) for c in cols_here], width,
                   label=methods[k], color=f"C{k}")
        ax.set_xticks(x, [labels[cols.index(c)] for c in cols_here])
        ax.set(ylabel=ylabel, title=title)
        if ylim:
            ax.set_ylim(*ylim)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def group_size_histogram(semantics, bins: Sequence[tuple[int, int | None]] = SIZE_BINS) -> plt.Figure:
    """Collision groups by size (items sharing all semantic tokens), grouped bars per method.

    Left: share of items in groups of each size (size 1 = a unique semantic ID); right: number of groups of
    each size (log scale). The largest group sets the largest last token (``max_group_size - 1``).
    """
    sems = _as_mapping(semantics, "semantic")
    labels = [str(lo) if hi == lo else (f"{lo}-{hi}" if hi is not None else f"{lo}+") for lo, hi in bins]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    width = 0.8 / len(sems)
    x = np.arange(len(bins))
    for k, (name, sem) in enumerate(sems.items()):
        _, sizes = np.unique(sem, axis=0, return_counts=True)
        items, groups = [], []
        for lo, hi in bins:
            sel = (sizes >= lo) & (sizes <= (hi if hi is not None else np.inf))
            items.append(sizes[sel].sum() / sem.shape[0])
            groups.append(int(sel.sum()))
        off = (k - (len(sems) - 1) / 2) * width
        axes[0].bar(x + off, items, width, label=f"{name} (max {sizes.max()})", color=f"C{k}")
        axes[1].bar(x + off, groups, width, label=name, color=f"C{k}")
    axes[0].set(xlabel="collision group size (items per semantic ID)", ylabel="share of items",
                title="items by the size of their group")
    axes[1].set(xlabel="collision group size (items per semantic ID)", ylabel="groups", yscale="log",
                title="number of groups by size")
    for ax in axes:
        ax.set_xticks(x, labels)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def last_token_popularity(codes, popularity: np.ndarray, max_token: int = 8, min_items: int = 5) -> plt.Figure:
    """Median training popularity of items by their last (disambiguation) token, collided items only.

    One line per method; a token is drawn when at least ``min_items`` collided items carry it, and a method
    without collisions is only listed in the legend. With the popularity rule (MMGRec, eq. 11-12) token 0 is the most popular item of
    its group, so the curve falls: the token is predictable from popularity. With the random rule (TIGER) the
    curve is flat up to noise. Items alone on their semantic ID (always token 0) are left out.
    """
    allc = _as_mapping(codes, "codes")
    pop = np.asarray(popularity, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k, (name, c) in enumerate(allc.items()):
        if c.shape[0] != pop.shape[0]:
            raise ValueError(f"{name}: {c.shape[0]} items but {pop.shape[0]} popularity counts")
        _, inv, sizes = np.unique(c[:, :-1], axis=0, return_inverse=True, return_counts=True)
        collided = sizes[inv.reshape(-1)] > 1
        last = c[:, -1]
        xs, ys = [], []
        for t in range(max_token + 1):
            sel = collided & (last == t)
            if sel.sum() >= max(min_items, 1):
                xs.append(t)
                ys.append(float(np.median(pop[sel])))
        label = name if collided.any() else f"{name} (no collisions)"
        ax.plot(xs, ys, marker="o", label=label, color=f"C{k}")
    ax.set(xlabel="last token (position inside the collision group)", ylabel="median training interactions",
           title="popularity by last token (items in collision groups)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def umap_coords(x, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP of the rows of ``x`` (deterministic: ``random_state=seed``, ``n_jobs=1``)."""
    import umap

    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    n_neighbors = int(min(n_neighbors, max(arr.shape[0] - 1, 2)))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1)
    return reducer.fit_transform(arr.astype(np.float32))


def _code_cmap(n: int, seed: int = 0) -> ListedColormap:
    """``n`` distinct hues in a fixed shuffled order, so neighbouring code ids get unlike colours."""
    hues = np.linspace(0, 1, n, endpoint=False)[np.random.default_rng(seed).permutation(n)]
    import colorsys

    return ListedColormap([colorsys.hls_to_rgb(h, 0.5 + 0.15 * (i % 2), 0.75) for i, h in enumerate(hues)])


def umap_by_code(coords: np.ndarray, codes, codebook_size: int, level: int = 0, annotate: int = 8,
                 title: str = "") -> plt.Figure:
    """Scatter of 2-D item coordinates (e.g. :func:`umap_coords` of ``RecIDRun.item_emb``), coloured by the
    level-``level`` code, one panel per method (same coordinates in every panel).

    The ``annotate`` largest codes are labelled at the median position of their items. Compact single-colour
    islands mean the code follows the geometry of the representation; colours spread everywhere mean it
    does not (expected for codes computed from other inputs, such as "ID w/o").
    """
    allc = _as_mapping(codes, "codes")
    xy = np.asarray(coords)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords must be (n_items, 2), got {xy.shape}")
    fig, axes = plt.subplots(1, len(allc), figsize=(5.2 * len(allc), 4.8), squeeze=False)
    cmap = _code_cmap(codebook_size)
    for ax, (name, c) in zip(axes[0], allc.items()):
        if c.shape[0] != xy.shape[0]:
            raise ValueError(f"{name}: {c.shape[0]} items but {xy.shape[0]} coordinates")
        code = c[:, level]
        ax.scatter(xy[:, 0], xy[:, 1], c=code, cmap=cmap, vmin=-0.5, vmax=codebook_size - 0.5, s=6,
                   linewidths=0, alpha=0.85)
        counts = np.bincount(code, minlength=codebook_size)
        for k in np.argsort(-counts, kind="stable")[:annotate]:
            if counts[k] == 0:
                break
            mx, my = np.median(xy[code == k], axis=0)
            ax.annotate(str(k), (mx, my), fontsize=8, ha="center", va="center", weight="bold",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=cmap(k), alpha=0.85))
        ax.set_title(f"{name}: level-{level + 1} code ({int((counts > 0).sum())} used)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def poster_grid(dataset: RecDataset, groups: Mapping[str, Sequence[int]], per_row: int = 6,
                thumb_size: tuple[int, int] = (120, 180), title: str = "") -> plt.Figure:
    """Poster thumbnails with titles: one row per group (label on the left), at most ``per_row`` items each.

    Posters come from ``dataset.item_meta["poster_path"]`` (read with PIL); items without a poster (or
    datasets without the column) get a grey "no poster" tile with the title. The figure has
    ``len(groups) * per_row`` axes; unused cells are blank.
    """
    if not groups:
        raise ValueError("no groups to show")
    paths = poster_paths(dataset)
    n_rows = len(groups)
    fig, axes = plt.subplots(n_rows, per_row, figsize=(1.75 * per_row, 2.75 * n_rows), squeeze=False)
    for r, (label, items) in enumerate(groups.items()):
        items = [int(i) for i in items][:per_row]
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(items):
                ax.set_axis_off()
                continue
            item = items[c]
            img = load_thumbnail(paths[item], thumb_size)
            if img is not None:
                ax.imshow(img)
            else:
                ax.set_facecolor("0.88")
                ax.text(0.5, 0.5, "no poster", ha="center", va="center", color="0.4", fontsize=8,
                        transform=ax.transAxes)
            ax.set_title(_wrap(dataset.title(item), 20), fontsize=7)
            for s in ax.spines.values():
                s.set_color("0.7")
        axes[r, 0].set_ylabel("\n".join(_wrap(part, 14, 2) for part in str(label).splitlines()), fontsize=9, rotation=0, ha="right", va="center",
                              labelpad=8)
        if not items:
            axes[r, 0].set_axis_on()
            axes[r, 0].text(0.5, 0.5, "(no items)", ha="center", va="center", transform=axes[r, 0].transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = ["STATS_COLUMNS", "stats_table", "all_unique", "prefix_label", "prefix_groups", "items_under_prefix",
           "prefix_examples", "poster_paths", "load_thumbnail", "code_usage_bars", "prefix_heatmap",
           "method_comparison", "group_size_histogram", "last_token_popularity", "umap_coords", "umap_by_code",
           "poster_grid"]
