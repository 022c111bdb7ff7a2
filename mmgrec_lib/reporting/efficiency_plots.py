"""The efficiency figure of notebook 07 (paper Fig. 5, extended): per-user inference time and memory against
catalogue size, log-log, one panel column per benchmark part. Conventions as in :mod:`.plots`: dataset name
in the title, labelled axes, legend outside the data."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from .plots import _titled, plain_log_ticks

#: colour per method family (the ``family`` column of :func:`mmgrec_lib.experiments.efficiency.bench_catalogue`)
FAMILY_COLOURS = {"mmgrec beam": "tab:red", "exact matmul": "tab:blue", "faiss flat": "tab:green",
                  "faiss ivf": "tab:purple", "faiss hnsw": "tab:purple"}
BEAM_MARKERS = {10: "o", 20: "s"}


def compact_count(n: float) -> str:
    """``419``, ``1.68k``, ``30k``, ``1M``: short labels for catalogue sizes."""
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e3:
        return f"{n / 1e3:.3g}k"
    return f"{n:.0f}"


def _size_ticks(ax, sizes) -> None:
    """The measured sizes as the x ticks, labelled compactly (no overlapping minor labels)."""
    ax.xaxis.set_major_locator(FixedLocator(sorted(sizes)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: compact_count(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _style(row: pd.Series, big: int) -> dict:
    fam = row["family"]
    marker = BEAM_MARKERS.get(int(row["beam"]), "D") if fam == "mmgrec beam" else "^"
    return {"color": FAMILY_COLOURS.get(fam, "tab:gray"), "marker": marker,
            "linestyle": "-" if row["batch"] == big else "--",
            "alpha": 1.0 if fam == "mmgrec beam" or row["batch"] == big else 0.8}


def efficiency_figure(parts: Mapping[str, pd.DataFrame], dataset: str = "", memory: bool = True) -> plt.Figure:
    """``parts``: panel title -> benchmark table (one row per catalogue size and method). Top row: median
    milliseconds per user; bottom row (``memory``): MiB a call needs, i.e. the structures kept between calls
    plus the call's extra peak. Solid lines: the large batch; dashed: batch 1."""
    rows = 2 if memory else 1
    fig, axes = plt.subplots(rows, len(parts), figsize=(5.2 * len(parts) + 2.6, 4.0 * rows), squeeze=False,
                             layout="constrained")
    handles: dict[str, Line2D] = {}
    for col, (title, df) in enumerate(parts.items()):
        big = int(df["batch"].max())
        for method, g in df.groupby("method", sort=False):
            g = g.sort_values("n_items")
            style = _style(g.iloc[0], big)
            line = axes[0, col].plot(g["n_items"], g["ms_per_user"], label=method, **style)[0]
            handles.setdefault(method, line)
            if memory:
                total = (g["structure_mb"].fillna(0) + g["peak_mb"].fillna(0)).clip(lower=1e-2)
                axes[1, col].plot(g["n_items"], total, **style)
        axes[0, col].set_title(title)
        for r in range(rows):
            ax = axes[r, col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("catalogue size (items)")
            ax.grid(True, which="major", alpha=0.3)
        for r in range(rows):
            plain_log_ticks(axes[r, col])
            _size_ticks(axes[r, col], df["n_items"].unique())
        axes[0, col].set_ylabel("inference time per user (ms)")
        if memory:
            axes[1, col].set_ylabel("memory per call (MiB):\nkept structures + extra peak")
    fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize=8,
               title="solid: large batch, dashed: batch 1", title_fontsize=8)
    fig.suptitle(_titled(dataset, "top-10 inference cost against catalogue size (cf. paper Fig. 5)"))
    return fig


__all__ = ["efficiency_figure", "compact_count", "FAMILY_COLOURS"]
