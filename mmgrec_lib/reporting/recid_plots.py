"""Figures and small tables for the Rec-ID collision analysis (notebook 02).

Every figure is a plain function returning a matplotlib ``Figure`` (no widgets, no global state); the
interactive explorer in :mod:`mmgrec_lib.reporting.widgets` is built on the same helpers.

Inputs are semantic tokens ``(n_items, n_levels)`` or full Rec-IDs ``(n_items, n_levels + 1)`` as numpy
arrays or tensors, usually ``RecIDRun.semantic`` / ``RecIDRun.codes``; functions that compare methods take a
mapping ``{method label: codes}`` and draw one panel (or one bar / line) per method, in the mapping's order.
Figures follow the conventions of :mod:`mmgrec_lib.reporting.plots`: ``dataset=`` leads the title, every axis
is labelled, legends sit outside the data area.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..data.dataset import RecDataset
from ..tokenizer.stats import as_code_matrix, level_usage, stats_frame
from .plots import _titled, plain_log_ticks

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
def _as_mapping(codes, name: str = "codes") -> dict[str, np.ndarray]:
    if isinstance(codes, Mapping):
        if not codes:
            raise ValueError("no methods to plot")
        return {str(k): as_code_matrix(v) for k, v in codes.items()}
    return {name: as_code_matrix(codes)}


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
    arr = as_code_matrix(codes)
    return np.unique(arr, axis=0).shape[0] == arr.shape[0]


def prefix_groups(semantic, depth: int | None = None, min_size: int = 2) -> pd.DataFrame:
    """Distinct semantic prefixes of length ``depth`` (default: all levels) with at least ``min_size`` items.

    Returns a frame with ``prefix`` (tuple), ``label`` (``"a-b-c"``) and ``size``, largest groups first
    (ties by prefix).
    """
    sem = as_code_matrix(semantic)
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
    sem = as_code_matrix(semantic)
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
    codes = as_code_matrix(run.codes if run.table is not None else run.semantic)
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
#: Distinct colours for highlighted categories (tab10 without its grey, kept for "other").
HIGHLIGHT_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
OTHER_COLOR = "0.85"


def code_usage_bars(semantics, codebook_size: int, dataset: str = "", normalize: bool = False) -> plt.Figure:
    """Items per code, per level (columns) and method (rows), codes sorted by frequency (rank-frequency bars).

    A flat profile at the dashed line (``n_items / codebook_size``) is perfectly even usage; a steep head and a
    long empty tail mean few codes carry most items. Panel titles give codes used and perplexity. Every panel
    has its own y axis (methods differ by orders of magnitude, e.g. an HK-Means level with a single code), as
    the figure title says; ``normalize=True`` plots the share of items instead of counts.
    """
    sems = _as_mapping(semantics, "semantic")
    n_levels = max(s.shape[1] for s in sems.values())
    fig, axes = plt.subplots(len(sems), n_levels, figsize=(3.7 * n_levels, 2.6 * len(sems) + 0.8),
                             squeeze=False, layout="constrained")
    for r, (name, sem) in enumerate(sems.items()):
        usage = level_usage(sem, codebook_size)
        scale = 1.0 / sem.shape[0] if normalize else 1.0
        for lv in range(n_levels):
            ax = axes[r, lv]
            if lv >= sem.shape[1]:
                ax.set_axis_off()
                continue
            counts = np.sort(np.bincount(sem[:, lv], minlength=codebook_size))[::-1]
            ax.bar(np.arange(codebook_size), counts * scale, width=1.0, color=f"C{r}")
            ax.axhline(sem.shape[0] / codebook_size * scale, color="k", ls="--", lw=0.8)
            u = usage[lv]
            ax.set_title(f"{name}: level {lv + 1}\n{u['used']}/{codebook_size} used, "
                         f"perplexity {u['perplexity']:.1f}", fontsize=9)
            ax.set_xlim(-0.5, codebook_size - 0.5)
            ax.set_xlabel("code rank (by items)", fontsize=8)
            ax.set_ylabel("share of items" if normalize else "items per code", fontsize=8)
    fig.suptitle(_titled(dataset, "items per code, codes sorted by size (dashed: perfectly even usage)")
                 + "\ny axes are independent per panel: compare shapes, not bar heights, across panels")
    return fig


def prefix_heatmap(semantics, codebook_size: int, levels: tuple[int, int] = (0, 1), dataset: str = "") -> plt.Figure:
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
    fig, axes = plt.subplots(1, len(mats), figsize=(3.9 * len(mats) + 1.0, 4.3), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    im = None
    for ax, (name, m) in zip(axes[0], mats.items()):
        im = ax.imshow(m, cmap=cmap, norm=LogNorm(vmin=1, vmax=max(vmax, 1.01)), aspect="auto",
                       interpolation="nearest")
        filled = np.isfinite(m).sum(1)
        filled = filled[filled > 0]
        ax.set_title(f"{name}\n{filled.mean():.1f} level-{b + 1} codes per level-{a + 1} code", fontsize=9)
        ax.set_xlabel(f"level-{b + 1} code (by frequency)")
        ax.set_ylabel(f"level-{a + 1} code (by frequency)")
    cb = fig.colorbar(im, ax=list(axes[0]), label="items (log scale, white = none)", shrink=0.9)
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
    fig.suptitle(_titled(dataset, f"items per (level-{a + 1}, level-{b + 1}) code pair"))
    return fig


def method_comparison(table: pd.DataFrame, method_col: str = "method", dataset: str = "") -> plt.Figure:
    """Grouped bars per method: codebook usage per level, perplexity per level, and the share of items that
    are alone on their semantic ID (``unique_semantic_frac``) vs in a collision group (``collided_items_frac``).
    One legend for all panels, below them."""
    levels = sorted(int(c[len("usage_l"):]) for c in table.columns if c.startswith("usage_l"))
    panels = [("codebook usage per level", [f"usage_l{m}" for m in levels], [f"level {m}" for m in levels],
               "RQ-VAE level", "share of codes used", (0, 1.05)),
              ("perplexity per level", [f"perplexity_l{m}" for m in levels], [f"level {m}" for m in levels],
               "RQ-VAE level", "perplexity (effective codes)", None),
              ("items by semantic ID", ["unique_semantic_frac", "collided_items_frac"],
               ["alone on its\nsemantic ID", "in a collision\ngroup"], "item", "share of items", (0, 1.05))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    methods = table[method_col].astype(str).tolist()
    width = 0.8 / max(len(methods), 1)
    for ax, (title, cols, labels, xlabel, ylabel, ylim) in zip(axes, panels):
        cols_here = [c for c in cols if c in table]
        x = np.arange(len(cols_here))
        for k, (_, row) in enumerate(table.iterrows()):
            ax.bar(x + (k - (len(methods) - 1) / 2) * width, [float(row[c]) for c in cols_here], width,
                   label=methods[k], color=f"C{k}")
        ax.set_xticks(x, [labels[cols.index(c)] for c in cols_here])
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        if ylim:
            ax.set_ylim(*ylim)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=9)
    fig.suptitle(_titled(dataset, "Rec-ID methods compared"))
    return fig


def group_size_histogram(semantics, bins: Sequence[tuple[int, int | None]] = SIZE_BINS,
                         dataset: str = "") -> plt.Figure:
    """Collision groups by size (items sharing all semantic tokens), grouped bars per method.

    Left: share of items in groups of each size (size 1 = a unique semantic ID); right: number of groups of
    each size (log scale). The largest group sets the largest last token (``max_group_size - 1``).
    """
    sems = _as_mapping(semantics, "semantic")
    labels = [str(lo) if hi == lo else (f"{lo}-{hi}" if hi is not None else f"{lo}+") for lo, hi in bins]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
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
        axes[0].bar(x + off, items, width, label=f"{name} (largest group {sizes.max()})", color=f"C{k}")
        axes[1].bar(x + off, groups, width, color=f"C{k}")
    axes[0].set(xlabel="collision group size (items per semantic ID)", ylabel="share of items",
                title="items by the size of their group")
    axes[1].set(xlabel="collision group size (items per semantic ID)", ylabel="groups (log scale)", yscale="log",
                title="number of groups by size")
    for ax in axes:
        ax.set_xticks(x, labels)
    plain_log_ticks(axes[1])
    handles, labs = axes[0].get_legend_handles_labels()
    fig.legend(handles, labs, loc="outside lower center", ncol=min(len(labs), 4), fontsize=9)
    fig.suptitle(_titled(dataset, "collision groups (items sharing all semantic tokens)"))
    return fig


_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LINESTYLES = ("-", "--", "-.", ":")


def last_token_popularity(codes, popularity: np.ndarray, max_token: int = 8, min_items: int = 5,
                          dataset: str = "", stat: str = "mean", logy: bool = True) -> plt.Figure:
    """Training popularity (``stat``: mean with ± one standard error, or median) of items by their last
    (disambiguation) token, collided items only.

    One line per method, each with its own marker and line style and a small horizontal offset so equal
    values stay visible; the x axis has one tick per token. A token is drawn when at least ``min_items``
    collided items carry it; a method without collisions is only listed in the legend. With the popularity
    rule (MMGRec, eq. 11-12) token 0 is the most popular item of its group, so the curve falls: the token is
    predictable from popularity. With the random rule (TIGER) the curve is flat up to noise. Items alone on
    their semantic ID (always token 0) are left out. ``logy``: log y axis (symmetric-log when a value is 0).
    """
    if stat not in ("mean", "median"):
        raise ValueError(f"stat must be 'mean' or 'median', got {stat!r}")
    allc = _as_mapping(codes, "codes")
    pop = np.asarray(popularity, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(8.5, 4.0), layout="constrained")
    n = len(allc)
    all_x, all_y = [], []
    for k, (name, c) in enumerate(allc.items()):
        if c.shape[0] != pop.shape[0]:
            raise ValueError(f"{name}: {c.shape[0]} items but {pop.shape[0]} popularity counts")
        _, inv, sizes = np.unique(c[:, :-1], axis=0, return_inverse=True, return_counts=True)
        collided = sizes[inv.reshape(-1)] > 1
        last = c[:, -1]
        xs, ys, se = [], [], []
        for t in range(max_token + 1):
            sel = collided & (last == t)
            if sel.sum() >= max(min_items, 1):
                v = pop[sel]
                xs.append(t)
                ys.append(float(np.mean(v) if stat == "mean" else np.median(v)))
                se.append(float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0)
        label = (f"{name} ({int(collided.sum())} collided items)" if collided.any()
                 else f"{name} (no collisions)")
        off = (k - (n - 1) / 2) * 0.07
        xo = np.asarray(xs, dtype=float) + off
        color = f"C{k % 10}"
        ax.plot(xo, ys, marker=_MARKERS[k % len(_MARKERS)], ls=_LINESTYLES[k % len(_LINESTYLES)], ms=7,
                mfc="white" if k % 2 else color, mew=1.5, lw=1.6, label=label, color=color, zorder=3 + k)
        if stat == "mean" and xs:
            y = np.asarray(ys)
            lo = np.minimum(np.asarray(se), y * 0.999) if logy else np.asarray(se)   # stay above 0 on log
            ax.errorbar(xo, y, yerr=[lo, np.asarray(se)], fmt="none", ecolor=color, elinewidth=1, capsize=0,
                        zorder=2 + k)
        all_x += xs
        all_y += ys
    top = max(max(all_x) if all_x else max_token, 1)
    ax.set_xlim(-0.5, top + 0.5)
    if top <= 20:
        ax.set_xticks(range(0, top + 1))                      # one tick per token
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    what = "mean ± s.e." if stat == "mean" else "median"
    scale = ""
    if logy and all_y and max(all_y) > 0:
        if min(all_y) > 0:
            ax.set_yscale("log")
            scale = " (log scale)"
        else:
            ax.set_yscale("symlog", linthresh=1)
            ax.set_ylim(bottom=0)
            scale = " (symlog scale)"
        plain_log_ticks(ax)
    else:
        ax.set_ylim(bottom=0)
    ax.set(xlabel="last token (rank inside the collision group)",
           ylabel=f"training interactions, {what}{scale}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    ax.set_title("popularity rule: falls as the token grows; random rule: flat", fontsize=9)
    fig.suptitle(_titled(dataset, "popularity of collided items by their last token"))
    return fig


def umap_coords(x, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP of the rows of ``x`` (deterministic: ``random_state=seed``, ``n_jobs=1``)."""
    import umap

    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    n_neighbors = int(min(n_neighbors, max(arr.shape[0] - 1, 2)))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1)
    return reducer.fit_transform(arr.astype(np.float32))


def umap_by_code(coords: np.ndarray, codes, codebook_size: int, level: int = 0, highlight: int = 8,
                 title: str = "", dataset: str = "", popularity: np.ndarray | None = None) -> plt.Figure:
    """Scatter of 2-D item coordinates (e.g. :func:`umap_coords` of ``RecIDRun.item_emb``), one panel per
    method (same coordinates in every panel), coloured by the ``highlight`` largest level-``level`` codes of
    that method in distinct colours (at most 9), every other code light grey; the legend under each panel
    gives code and size.

    Compact single-colour islands mean the code follows the geometry of the representation; colours spread
    everywhere mean it does not (expected for codes computed from other inputs, such as "ID w/o").
    With ``popularity`` (training interactions per item) a last panel colours the same points by popularity
    (log colour scale, grey = no training interaction), to tell popularity structure from code structure.
    """
    allc = _as_mapping(codes, "codes")
    xy = np.asarray(coords)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords must be (n_items, 2), got {xy.shape}")
    k_hi = int(min(max(highlight, 0), len(HIGHLIGHT_COLORS)))
    n_panels = len(allc) + (popularity is not None)
    fig, axes = plt.subplots(1, n_panels, figsize=(5.0 * n_panels, 6.0), squeeze=False, layout="constrained")
    for ax, (name, c) in zip(axes[0], allc.items()):
        if c.shape[0] != xy.shape[0]:
            raise ValueError(f"{name}: {c.shape[0]} items but {xy.shape[0]} coordinates")
        code = c[:, level]
        counts = np.bincount(code, minlength=codebook_size)
        top = [int(t) for t in np.argsort(-counts, kind="stable")[:k_hi] if counts[t] > 0]
        rest = ~np.isin(code, top)
        if rest.any():
            ax.scatter(xy[rest, 0], xy[rest, 1], s=4, color=OTHER_COLOR, linewidths=0, zorder=1,
                       label=f"other {int((counts > 0).sum()) - len(top)} codes ({int(rest.sum())} items)")
        for j, t in enumerate(top):
            sel = code == t
            ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=HIGHLIGHT_COLORS[j], linewidths=0, alpha=0.9,
                       zorder=2, label=f"code {t} ({int(counts[t])} items)")
        ax.set_title(f"{name}\nlevel-{level + 1} code ({int((counts > 0).sum())}/{codebook_size} used)",
                     fontsize=10)
        ax.set(xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2")
        handles, labels = ax.get_legend_handles_labels()
        if rest.any():                                         # highlighted codes first, "other" last
            handles, labels = handles[1:] + handles[:1], labels[1:] + labels[:1]
        leg = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=7,
                        frameon=False, title=f"{len(top)} largest level-{level + 1} codes", title_fontsize=7)
        for h in leg.legend_handles:                           # equal, readable swatches
            h.set_sizes([30])
            h.set_alpha(1.0)
    if popularity is not None:
        pop = np.asarray(popularity, dtype=np.float64)
        if pop.shape[0] != xy.shape[0]:
            raise ValueError(f"{pop.shape[0]} popularity counts but {xy.shape[0]} coordinates")
        ax = axes[0, -1]
        order = np.argsort(pop, kind="stable")                 # popular items drawn on top
        cmap = plt.get_cmap("viridis").with_extremes(bad=OTHER_COLOR)
        sc = ax.scatter(xy[order, 0], xy[order, 1], c=np.where(pop[order] > 0, pop[order], np.nan), s=6,
                        cmap=cmap, norm=LogNorm(vmin=1, vmax=max(pop.max(), 2)), linewidths=0, plotnonfinite=True)
        ax.set_title("training popularity\n(same points)", fontsize=10)
        ax.set(xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2")
        cb = fig.colorbar(sc, ax=ax, location="bottom", shrink=0.8, pad=0.02)
        cb.set_label("training interactions (log scale; grey = none)", fontsize=8)
        cb.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    head = title or "UMAP of the item representations"
    fig.suptitle(_titled(dataset, head) + f"\ncoloured by the {len(HIGHLIGHT_COLORS[:k_hi])} largest "
                 f"level-{level + 1} codes of each method (other codes grey): compact single-colour islands mean "
                 f"the code follows the representation", fontsize=11)
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
