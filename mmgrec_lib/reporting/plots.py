"""Report figures as plain functions: each returns a matplotlib ``Figure`` (no widgets, no global state).

Conventions shared with :mod:`mmgrec_lib.reporting.recid_plots`: the dataset name leads the figure title
(``dataset=`` where the function cannot read it from a :class:`RecDataset`), every axis is labelled, and
legends sit outside the data area (to the right of the panels or below them), so they never cover data.
Figures use matplotlib's constrained layout; :func:`~mmgrec_lib.reporting.tables.save_figure` saves with
``bbox_inches="tight"`` so outside legends are kept.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

from ..data.dataset import RecDataset

#: ``gid`` of the best-epoch markers drawn by :func:`training_curves` and :func:`recid_training_curves`.
BEST_EPOCH_GID = "best-epoch"


def _titled(dataset: str, text: str) -> str:
    """``"ml100k: text"``; ``text`` alone when no dataset is given."""
    return f"{dataset}: {text}" if dataset else text


def plain_log_ticks(ax) -> None:
    """Label the log (or symlog) y axis of ``ax`` with plain numbers (0.001, 1, 2, 5, 10, ...; denser when the
    range is narrow) instead of ``2 x 10^-1``-style labels. Call it after the data are drawn."""
    lo, hi = ax.get_ylim()                                   # triggers autoscaling
    for subs in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** e for e in range(-9, 10) for m in subs
                 if lo <= m * 10.0 ** e <= hi and (ax.get_yscale() == "log" or m * 10.0 ** e >= 1)]
        if len(ticks) >= 3:
            break
    else:                                                    # less than a factor ~2: evenly spaced values
        ticks = [t for t in MaxNLocator(nbins=5).tick_values(lo, hi) if lo <= t <= hi and t > 0]
    if lo <= 0 <= hi:
        ticks = [0.0] + ticks
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi)


def best_row(df: pd.DataFrame, monitor: str) -> int | None:
    """Index label of the first row with the largest ``monitor`` value (the epoch the training loop keeps:
    :func:`mmgrec_lib.training.loop.fit` replaces its best only on a strict improvement); ``None`` when the
    column is missing or empty."""
    if monitor not in df:
        return None
    vals = pd.to_numeric(df[monitor], errors="coerce")
    if vals.notna().sum() == 0:
        return None
    return vals.idxmax()                                   # first occurrence of the maximum, NaN skipped


def degree_distributions(dataset: RecDataset) -> plt.Figure:
    """Log-log histograms of training interactions per user and per item."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    user_deg = np.diff(dataset.train.indptr)
    item_deg = dataset.item_popularity()
    for ax, deg, what in ((axes[0], user_deg, "user"), (axes[1], item_deg, "item")):
        deg = deg[deg > 0]
        bins = np.unique(np.logspace(0, np.log10(max(deg.max(), 2)), 30).astype(int))
        ax.hist(deg, bins=bins, color="C0" if what == "user" else "C1", edgecolor="white")
        ax.set(xscale="log", yscale="log", xlabel=f"training interactions per {what}", ylabel=f"{what}s",
               title=f"{dataset.name}: {what} degree (median {int(np.median(deg))})")
    return fig


def modality_coverage(dataset: RecDataset) -> plt.Figure:
    """Share of items that have each modality (bars) with the feature width in the label."""
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    mods = dataset.modalities
    if not mods:
        ax.text(0.5, 0.5, f"{dataset.name}: no item features", ha="center", va="center")
        ax.set_axis_off()
        return fig
    cov = [float(dataset.feature_masks[m].mean()) for m in mods]
    labels = [f"{m}\n({dataset.features[m].shape[1]}-d)" for m in mods]
    ax.bar(labels, cov, color=sns.color_palette("deep", len(mods)))
    for i, c in enumerate(cov):
        ax.text(i, c + 0.01, f"{c:.1%}", ha="center", va="bottom")
    ax.set(ylim=(0, 1.12), xlabel="modality (feature width)", ylabel="share of items with the modality",
           title=f"{dataset.name}: modality coverage")
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping]], metric: str = "recall@10",
                    loss_key: str | None = "loss", x: str = "epoch", dataset: str = "",
                    monitor: str | None = None, title: str = "") -> plt.Figure:
    """Validation ``metric`` (and the training loss when present) per epoch, one line per model.

    Histories are :attr:`FitResult.history` lists (one dict per epoch with ``"epoch"``, the losses and, on
    validated epochs, the metrics). A star marks each model's best epoch: the first epoch with the largest
    validation ``monitor`` (default ``metric``; the value the training loop early-stops on and whose weights it
    restores), on the metric panel and on the loss panel. ``x="time"`` plots against cumulative training
    seconds (the histories' ``train_s``) instead, to compare runs whose epochs cost different amounts of time.
    ``dataset`` leads the figure title; ``title`` replaces its default text.
    """
    if x not in ("epoch", "time"):
        raise ValueError(f"x must be 'epoch' or 'time', got {x!r}")
    monitor = monitor or metric
    fig, axes = plt.subplots(1, 2 if loss_key else 1, figsize=(11 if loss_key else 6.5, 3.8), squeeze=False,
                             layout="constrained")
    ax_m = axes[0, 0]
    ax_l = axes[0, 1] if loss_key else None
    any_best = False
    for idx, (name, hist) in enumerate(histories.items()):
        df = pd.DataFrame(list(hist))
        if x == "time":
            if "train_s" not in df:
                raise ValueError(f"history of {name!r} has no train_s: cannot plot against time")
            df["epoch"] = df["train_s"].cumsum()
        color = f"C{idx % 10}"                      # one colour per model in both panels
        if metric in df:
            d = df.dropna(subset=[metric])
            ax_m.plot(d["epoch"], d[metric], marker=".", label=name, color=color)
        if ax_l is not None and loss_key in df:
            ax_l.plot(df["epoch"], df[loss_key], label=name, color=color)
        best = best_row(df, monitor)
        if best is not None:
            row = df.loc[best]
            star = dict(marker="*", ms=13, mec="k", mew=0.6, color=color, ls="none", zorder=5, gid=BEST_EPOCH_GID,
                        label=f"_best {name}")
            if metric in df and pd.notna(row.get(metric)):
                ax_m.plot([row["epoch"]], [row[metric]], **star)
                any_best = True
            if ax_l is not None and loss_key in df and pd.notna(row.get(loss_key)):
                ax_l.plot([row["epoch"]], [row[loss_key]], **star)
                any_best = True
    xlabel = "epoch" if x == "epoch" else "cumulative training seconds"
    ax_m.set(xlabel=xlabel, ylabel=f"validation {metric}", title=f"validation {metric}")
    if ax_l is not None:
        ax_l.set(xlabel=xlabel, ylabel=f"training {loss_key} (log scale)", yscale="log", title=f"training {loss_key}")
    handles, labels = ax_m.get_legend_handles_labels()
    if ax_l is not None:                            # models with a loss but no validation metric
        for h, lab in zip(*ax_l.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if any_best:
        handles.append(Line2D([], [], marker="*", ms=11, mec="k", mew=0.6, color="0.6", ls="none"))
        labels.append(f"best epoch (max validation {monitor})")
    if ax_l is not None and ax_l.get_lines():
        plain_log_ticks(ax_l)
    if x == "epoch":                                # whole epochs on the x axis
        for ax in axes[0]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    what = title or (f"validation {metric}" + (f" and training {loss_key}" if loss_key else "")
                     + (" against training time" if x == "time" else " per epoch"))
    fig.suptitle(_titled(dataset, what))
    return fig


def _metric_label(metrics: Sequence[str]) -> str:
    """``["recall@10", "ndcg@10", "recall@20"]`` -> ``"Recall@K / NDCG@K (K = 10, 20)"``."""
    pretty = {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "hit": "Hit rate", "hr": "HR",
              "mrr": "MRR", "map": "MAP"}
    fams, ks = [], []
    for m in metrics:
        name, _, k = str(m).partition("@")
        name = pretty.get(name.lower(), name)
        if name not in fams:
            fams.append(name)
        if k and k not in ks:
            ks.append(k)
    if not ks:
        return " / ".join(fams)
    return " / ".join(f"{f}@K" for f in fams) + f" (K = {', '.join(ks)})"


def metric_bars(table: pd.DataFrame, metrics: Sequence[str] = ("recall@10", "ndcg@10", "recall@20", "ndcg@20"),
                model_col: str = "model", title: str = "", dataset: str = "", split: str = "test",
                errorbar: Any = ("ci", 95)) -> plt.Figure:
    """Grouped bars of ``split`` metrics per model (one group per metric, one bar per model; several rows per
    model, e.g. one per seed, give the mean with ``errorbar``: seaborn's, e.g. ``"sd"``, or ``None``).

    The y label names the split and the metrics (e.g. ``"test Recall@K / NDCG@K (K = 10, 20)"``); the title is
    ``"<dataset>: <title>"`` (default title: ``"<split> metrics by model"``); the legend sits right of the axes.
    """
    present = [m for m in metrics if m in table]
    long = table.melt(id_vars=[model_col], value_vars=present, var_name="metric")
    fig, ax = plt.subplots(figsize=(9, 3.8), layout="constrained")
    sns.barplot(data=long, x="metric", y="value", hue=model_col, ax=ax, errorbar=errorbar)
    ax.set(xlabel="metric (cut-off K)", ylabel=f"{split} {_metric_label(present)}",
           title=_titled(dataset, title or f"{split} metrics by model"))
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), title=model_col, frameon=False)
    return fig


def metric_by_group_lines(table: pd.DataFrame, metric: str = "recall@10", reference: str | None = None,
                          title: str = "", dataset: str = "") -> plt.Figure:
    """One line per model over the groups of users of a :func:`~mmgrec_lib.evaluation.groups.metric_by_group`
    table (x: group, in its order, labelled with its share of users; y: the group's mean ``metric``). The
    ``reference`` model, if given, is drawn black and dashed."""
    if table.empty:
        raise ValueError("metric_by_group_lines: empty table, nothing to plot")
    groups = list(dict.fromkeys(table["group"]))
    shares = table.drop_duplicates("group").set_index("group")["share"]
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    x = np.arange(len(groups))
    for n, (name, part) in enumerate(table.groupby("model", sort=False)):
        y = part.set_index("group").reindex(groups)["mean"]
        style = {"color": "black", "linestyle": "--", "linewidth": 2} if name == reference else {"color": f"C{n % 10}"}
        ax.plot(x, y.to_numpy(), marker="o", label=name, **style)
    ax.set_xticks(x, [f"{g}\n({shares[g]:.0%} of users)" for g in groups])
    ax.set(xlabel="training items per user", ylabel=f"test {_metric_label([metric])}",
           title=_titled(dataset, title or f"test {metric} by training-history length"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model", frameon=False)
    return fig


def recid_training_curves(history: Sequence[Mapping], dataset: str = "", monitor: str = "recall@10") -> plt.Figure:
    """Graph RQ-VAE training: BPR loss, validation Recall@10 of ``h_u h_iᵀ``, RQ-VAE loss terms and
    per-level codebook usage, across every phase (``alternate``/``bpr`` then ``rq``) on one time axis.

    ``history`` is ``RecIDRun.history``: one row per epoch with ``"phase"`` (``"alternate"``/``"bpr"`` for the
    graph phase, ``"rq"`` for the RQ-VAE-only phase), the losses and the validation metrics. Vertical lines:
    the best graph epoch (first max of validation ``monitor``, whose joint state is restored; star on the
    Recall panel), the start of the RQ-only phase, and its best epoch (max ``neg_rq_loss``, the codebooks kept).
    """
    df = pd.DataFrame(list(history))
    if df.empty:
        raise ValueError("empty history: nothing to plot")
    if "phase" not in df:
        df["phase"] = "bpr"
    df["step"] = np.arange(1, len(df) + 1)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), layout="constrained")
    graph = df[df["phase"] != "rq"].reset_index(drop=True)
    rq = df[df["phase"] == "rq"].reset_index(drop=True)
    if "bpr" in graph:
        axes[0].plot(graph["step"], graph["bpr"], color="C0")
    axes[0].set(title="BPR loss (graph phase)", xlabel="epoch (graph phase)", ylabel="BPR loss (log scale)",
                yscale="log")
    if "recall@10" in graph:
        d = graph.dropna(subset=["recall@10"])
        axes[1].plot(d["step"], d["recall@10"], marker=".", color="C2")
    axes[1].set(title="validation Recall@10 of $h_u h_i^T$", xlabel="epoch (graph phase)",
                ylabel="validation Recall@10")
    for key, color in (("recon", "C3"), ("codebook", "C4"), ("commit", "C5")):
        if key in df:
            axes[2].plot(df["step"], df[key], label=f"{key} loss", color=color)
    axes[2].set(title="RQ-VAE loss terms (eq. 10)", xlabel="epoch (all phases)", ylabel="loss (log scale)",
                yscale="log")
    level_colors = ["C6", "C8", "C9", "C1", "C7"]
    for m in range(1, 10):
        if f"usage_l{m}" in df:
            d = df.dropna(subset=[f"usage_l{m}"])
            axes[3].plot(d["step"], d[f"usage_l{m}"], label=f"usage level {m}",
                         color=level_colors[(m - 1) % len(level_colors)])
    axes[3].set(title="codebook usage", xlabel="epoch (all phases)", ylabel="share of codes used", ylim=(0, 1.05))

    b = best_row(graph, monitor)
    if b is not None:
        step = int(graph.loc[b, "step"])
        for ax in axes:
            ax.axvline(step, color="k", ls="--", lw=0.9, label="best graph epoch (restored)", gid=BEST_EPOCH_GID)
        if "recall@10" in graph and pd.notna(graph.loc[b, "recall@10"]):
            axes[1].plot([step], [graph.loc[b, "recall@10"]], marker="*", ms=14, mec="k", mew=0.6, color="C2",
                         ls="none", zorder=5, gid=BEST_EPOCH_GID, label="_best")
    if len(rq):
        start = int(rq["step"].min())
        for ax in axes[2:]:
            ax.axvline(start - 0.5, color="grey", ls=":", lw=1.2, label="start of RQ-VAE-only phase")
        br = best_row(rq, "neg_rq_loss")
        if br is not None:
            for ax in axes[2:]:
                ax.axvline(int(rq.loc[br, "step"]), color="k", ls="-.", lw=0.9, label="best RQ-only epoch (kept)")
    for ax in (axes[0], axes[2]):
        if ax.get_lines():
            plain_log_ticks(ax)
    for ax in axes:                                 # whole epochs on the x axis
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # one legend for the whole figure, below the panels: every distinct label once, curves before markers
    entries: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    marks = ("best graph epoch (restored)", "start of RQ-VAE-only phase", "best RQ-only epoch (kept)")
    labels = [lab for lab in entries if lab not in marks] + [lab for lab in marks if lab in entries]
    if labels:
        fig.legend([entries[lab] for lab in labels], labels, loc="outside lower center",
                   ncol=min(len(labels), 6), fontsize=8)
    fig.suptitle(_titled(dataset, "Graph RQ-VAE training (graph phase, then RQ-VAE on frozen representations)"))
    return fig


__all__ = ["BEST_EPOCH_GID", "best_row", "degree_distributions", "modality_coverage", "training_curves",
           "metric_bars", "recid_training_curves"]


def ladder_plot(table: pd.DataFrame, dataset: str = "", reference: str = "lightgcn",
                metrics: Sequence[str] = ("test_recall@10", "test_ndcg@10", "test_recall@20")) -> plt.Figure:
    """The accuracy ladder (:func:`~mmgrec_lib.experiments.run_ladder`): left, the test metrics of each rung in
    order with the ``reference`` row (a baseline) as dashed lines; right, list coverage@10 per rung and the
    reference's."""
    from ..experiments.ladder import EXTRA_ROWS   # here, not at import: experiments would double plots' import time
    rungs = table[table["rung"] != reference].reset_index(drop=True)
    ref = table[table["rung"] == reference]
    labels = [f"{r} (dropped)" if "kept" in rungs and r not in EXTRA_ROWS and not k else r
              for r, k in zip(rungs["rung"], rungs.get("kept", [True] * len(rungs)))]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained", gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(rungs))
    for c, m in enumerate(m for m in metrics if m in rungs):
        axes[0].plot(x, rungs[m], marker="o", color=f"C{c}", label=m.replace("test_", ""))
        if len(ref):
            axes[0].axhline(float(ref[m].iloc[0]), color=f"C{c}", ls="--", lw=1,
                            label=f"{m.replace('test_', '')} ({reference})")
    axes[0].set_xticks(x, labels, rotation=20, ha="right")
    axes[0].set(xlabel="rung (each adds one lever; dropped: did not validate better)", ylabel="test metric",
                title=_titled(dataset, "accuracy ladder"))
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    axes[1].bar(x, rungs["coverage@10"], color="C7")
    if len(ref):
        axes[1].axhline(float(ref["coverage@10"].iloc[0]), color="k", ls="--", lw=1, label=reference)
        axes[1].legend(frameon=False)
    axes[1].set_xticks(x, labels, rotation=20, ha="right")
    axes[1].set(xlabel="rung", ylabel="distinct items in test top-10 / items", title=_titled(dataset, "list coverage"))
    return fig
