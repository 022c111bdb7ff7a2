"""Report figures as plain functions: each returns a matplotlib ``Figure`` (no widgets, no global state)."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..data.dataset import RecDataset


def degree_distributions(dataset: RecDataset) -> plt.Figure:
    """Log-log histograms of training interactions per user and per item."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    user_deg = np.diff(dataset.train.indptr)
    item_deg = dataset.item_popularity()
    for ax, deg, what in ((axes[0], user_deg, "user"), (axes[1], item_deg, "item")):
        deg = deg[deg > 0]
        bins = np.unique(np.logspace(0, np.log10(max(deg.max(), 2)), 30).astype(int))
        ax.hist(deg, bins=bins, color="C0" if what == "user" else "C1", edgecolor="white")
        ax.set(xscale="log", yscale="log", xlabel=f"training interactions per {what}", ylabel=f"{what}s",
               title=f"{dataset.name}: {what} degree (median {int(np.median(deg))})")
    fig.tight_layout()
    return fig


def modality_coverage(dataset: RecDataset) -> plt.Figure:
    """Share of items that have each modality (bars) with the feature width in the label."""
    fig, ax = plt.subplots(figsize=(5, 3))
    mods = dataset.modalities
    if not mods:
        ax.text(0.5, 0.5, f"{dataset.name}: no item features", ha="center", va="center")
        ax.set_axis_off()
        return fig
    cov = [float(dataset.feature_masks[m].mean()) for m in mods]
    labels = [f"{m}\n({dataset.features[m].shape[1]}-d)" for m in mods]
    ax.bar(labels, cov, color=sns.color_palette("deep", len(mods)))
    for i, c in enumerate(cov):
        ax.text(i, c + 0.01, f"{c:.1%}", ha="center")
    ax.set(ylim=(0, 1.1), ylabel="share of items", title=f"{dataset.name}: modality coverage")
    fig.tight_layout()
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping]], metric: str = "recall@10",
                    loss_key: str | None = "loss", x: str = "epoch") -> plt.Figure:
    """Validation ``metric`` (and the training loss when present) per epoch, one line per model.

    ``x="time"`` plots against cumulative training seconds (the histories' ``train_s``) instead, to compare
    runs whose epochs cost different amounts of time.
    """
    if x not in ("epoch", "time"):
        raise ValueError(f"x must be 'epoch' or 'time', got {x!r}")
    fig, axes = plt.subplots(1, 2 if loss_key else 1, figsize=(11 if loss_key else 6, 3.6), squeeze=False)
    ax_m = axes[0, 0]
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
        if loss_key and loss_key in df:
            axes[0, 1].plot(df["epoch"], df[loss_key], label=name, color=color)
    xlabel = "epoch" if x == "epoch" else "training seconds"
    ax_m.set(xlabel=xlabel, ylabel=f"validation {metric}", title=f"validation {metric}")
    ax_m.legend()
    if loss_key:
        axes[0, 1].set(xlabel=xlabel, ylabel=loss_key, yscale="log", title=f"training {loss_key}")
        axes[0, 1].legend()
    fig.tight_layout()
    return fig


def metric_bars(table: pd.DataFrame, metrics: Sequence[str] = ("recall@10", "ndcg@10", "recall@20", "ndcg@20"),
                model_col: str = "model", title: str = "") -> plt.Figure:
    """Grouped bars of test metrics per model."""
    long = table.melt(id_vars=[model_col], value_vars=[m for m in metrics if m in table], var_name="metric")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(data=long, x="metric", y="value", hue=model_col, ax=ax)
    ax.set(xlabel="", ylabel="test value", title=title)
    fig.tight_layout()
    return fig


__all__ = ["degree_distributions", "modality_coverage", "training_curves", "metric_bars"]


def recid_training_curves(history: Sequence[Mapping]) -> plt.Figure:
    """Graph RQ-VAE training: BPR loss, validation Recall@10 of ``h_u h_iᵀ``, RQ-VAE loss terms and
    per-level codebook usage, across every phase (``alternate``/``bpr`` then ``rq``) on one time axis."""
    df = pd.DataFrame(list(history))
    if df.empty:
        raise ValueError("empty history: nothing to plot")
    df["step"] = np.arange(1, len(df) + 1)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    graph = df[df["phase"] != "rq"]
    if "bpr" in graph:
        axes[0].plot(graph["step"], graph["bpr"], color="C0")
    axes[0].set(title="BPR loss (graph phase)", xlabel="epoch", yscale="log")
    if "recall@10" in graph:
        d = graph.dropna(subset=["recall@10"])
        axes[1].plot(d["step"], d["recall@10"], marker=".", color="C2")
    axes[1].set(title="validation Recall@10 of $h_u h_i^T$", xlabel="epoch")
    for key, color in (("recon", "C3"), ("codebook", "C4"), ("commit", "C5")):
        if key in df:
            axes[2].plot(df["step"], df[key], label=key, color=color)
    axes[2].set(title="RQ-VAE loss terms", xlabel="epoch (all phases)", yscale="log")
    axes[2].legend()
    for m in range(1, 10):
        if f"usage_l{m}" in df:
            axes[3].plot(df["step"], df[f"usage_l{m}"], label=f"level {m}")
    axes[3].set(title="codebook usage (share of codes used)", xlabel="epoch (all phases)", ylim=(0, 1.05))
    axes[3].legend()
    if (df["phase"] == "rq").any():
        start = int(df.loc[df["phase"] == "rq", "step"].min())
        for ax in axes[2:]:
            ax.axvline(start - 0.5, color="grey", ls=":", lw=1)
    fig.tight_layout()
    return fig
