"""Collision-analysis figures and the Rec-ID explorer on tiny synthetic data (CPU, seconds)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mmgrec_lib.reporting import recid_plots as rp
from mmgrec_lib.tokenizer.run import RecIDRun, build_recids

from _figure_checks import assert_labelled, assert_legends_outside, data_axes
from _fixtures import make_tiny_dataset

L = 8          # codebook size
LEVELS = 3


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def dataset():
    return make_tiny_dataset()


def make_run(dataset, seed: int = 0, collision: str = "popularity", method: str = "graph_rqvae") -> RecIDRun:
    """A RecIDRun with random embeddings and random (collision-prone) semantic codes."""
    rng = np.random.default_rng(seed)
    n = dataset.n_items
    sem = np.stack([rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, L, n)], axis=1)
    sem, table, stats = build_recids(sem, dataset.item_popularity(), collision, L, seed,
                                     {"codebook_size": L, "seed": seed}, 0.5, {"dataset": dataset.name})
    return RecIDRun(torch.randn(dataset.n_users, 8), torch.randn(n, 8), sem, table,
                    {"method": method, **stats}, [], {"codebook_size": L, "seed": seed, "collision": collision},
                    method)


@pytest.fixture(scope="module")
def runs(dataset):
    base = make_run(dataset, 0)
    return {"graph_rqvae+popularity": base,
            "graph_rqvae+random": base.with_codes(base.semantic, dataset.item_popularity(), "random",
                                                  method="graph_rqvae"),
            "hkmeans+popularity": make_run(dataset, 1, method="hkmeans")}


def _sems(runs):
    return {k: r.semantic for k, r in runs.items() if "random" not in k}


# ---------------------------------------------------------------------- tables and helpers
def test_stats_table_rows_and_columns(runs):
    df = rp.stats_table(runs)
    assert df["method"].tolist() == list(runs)
    assert {"usage_l1", "perplexity_l3", "unique_semantic_frac", "max_last_token"} <= set(df.columns)
    assert all(c in rp.STATS_COLUMNS for c in df.columns)
    assert all(rp.all_unique(r.codes) for r in runs.values())
    assert not rp.all_unique(runs["graph_rqvae+popularity"].semantic)       # the random codes collide


def test_prefix_groups_and_items(runs, dataset):
    sem = runs["graph_rqvae+popularity"].semantic.numpy()
    g = rp.prefix_groups(sem, depth=1, min_size=1)
    assert g["size"].sum() == dataset.n_items
    assert g["size"].is_monotonic_decreasing
    top = g.iloc[0]
    items = rp.items_under_prefix(sem, top["prefix"], dataset.item_popularity())
    assert len(items) == top["size"] and (sem[items, 0] == top["prefix"][0]).all()
    pops = dataset.item_popularity()[items]
    assert (np.diff(pops) <= 0).all()                                        # most popular first
    full = rp.prefix_groups(sem, min_size=2)
    assert (full["size"] >= 2).all() and full["label"].str.count("-").eq(LEVELS - 1).all()
    with pytest.raises(ValueError, match="depth"):
        rp.prefix_groups(sem, depth=LEVELS + 1)


def test_prefix_examples(runs, dataset):
    df = rp.prefix_examples(runs["graph_rqvae+popularity"], dataset, n_groups=2, max_items=3)
    assert list(df.columns) == ["prefix", "group_size", "item", "title", "train_pop", "rec_id"]
    assert df["prefix"].nunique() == 2 and df.groupby("prefix").size().max() <= 3
    assert all(len(r) == LEVELS + 1 for r in df["rec_id"])


# ---------------------------------------------------------------------- figures
def test_code_usage_bars(runs):
    sems = _sems(runs)
    fig = rp.code_usage_bars(sems, L, dataset="tinyset")
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == len(sems) * LEVELS
    assert all(len(ax.patches) == L for ax in fig.axes)                     # one bar per code
    assert_labelled(fig, "tinyset")
    assert "independent" in fig._suptitle.get_text()                        # the caption says so
    assert all(len(ax.get_shared_y_axes().get_siblings(ax)) == 1 for ax in fig.axes)   # own y axis per panel
    tops = {ax.get_ylim()[1] for ax in fig.axes}
    assert len(tops) > 1                                                    # scaled to each panel's data
    share = rp.code_usage_bars(sems, L, normalize=True)
    assert max(p.get_height() for p in share.axes[0].patches) <= 1.0
    assert share.axes[0].get_ylabel() == "share of items"
    single = rp.code_usage_bars(runs["graph_rqvae+popularity"].semantic, L)
    assert len(single.axes) == LEVELS


def test_prefix_heatmap(runs):
    sems = _sems(runs)
    fig = rp.prefix_heatmap(sems, L, dataset="tinyset")
    assert len(fig.axes) == len(sems) + 1                                   # panels + colour bar
    assert sum(len(ax.images) for ax in fig.axes) == len(sems)
    assert_labelled(fig, "tinyset")
    with pytest.raises(ValueError, match="levels"):
        rp.prefix_heatmap(sems, L, levels=(0, LEVELS))


def test_method_comparison(runs):
    table = rp.stats_table(runs)
    fig = rp.method_comparison(table, dataset="tinyset")
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == len(runs) * LEVELS                    # usage: methods x levels
    assert len(fig.axes[2].patches) == len(runs) * 2
    assert_labelled(fig, "tinyset")
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == len(runs)   # one shared legend
    assert_legends_outside(fig)


def test_group_size_histogram(runs):
    sems = _sems(runs)
    fig = rp.group_size_histogram(sems, dataset="tinyset")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].patches) == len(sems) * len(rp.SIZE_BINS)
    heights = [p.get_height() for p in fig.axes[0].patches[:len(rp.SIZE_BINS)]]
    assert sum(heights) == pytest.approx(1.0)                               # item shares sum to one
    assert_labelled(fig, "tinyset")
    assert_legends_outside(fig)


def test_last_token_popularity(runs, dataset):
    codes = {k: r.codes for k, r in runs.items()}
    fig = rp.last_token_popularity(codes, dataset.item_popularity(), min_items=1, dataset="tinyset")
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.lines) == len(codes)
    pop_line = ax.lines[0].get_ydata()
    assert pop_line[0] >= pop_line[-1]                                      # popularity token 0 is the top item
    # every method drawn distinctly: its own marker and line style, so equal curves stay visible
    assert len({l.get_marker() for l in ax.lines}) == len(codes)
    assert len({l.get_linestyle() for l in ax.lines[:4]}) == min(len(codes), 4)
    fig.canvas.draw()
    ticks = ax.get_xticks()
    assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks))           # integer token ticks
    assert all(t.get_text().lstrip("−-").isdigit() for t in ax.get_xticklabels() if t.get_text())
    assert ax.get_yscale() in ("log", "symlog") and "log" in ax.get_ylabel()
    assert_labelled(fig, "tinyset")
    assert_legends_outside(fig)
    med = rp.last_token_popularity(codes, dataset.item_popularity(), min_items=1, stat="median", logy=False)
    assert med.axes[0].get_yscale() == "linear" and "median" in med.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="popularity"):
        rp.last_token_popularity(codes, dataset.item_popularity()[:-1])
    with pytest.raises(ValueError, match="stat"):
        rp.last_token_popularity(codes, dataset.item_popularity(), stat="mode")


def test_umap_by_code(runs, dataset):
    run = runs["graph_rqvae+popularity"]
    coords = rp.umap_coords(run.item_emb, seed=0, n_neighbors=10)
    assert coords.shape == (dataset.n_items, 2) and np.isfinite(coords).all()
    again = rp.umap_coords(run.item_emb, seed=0, n_neighbors=10)
    np.testing.assert_allclose(coords, again)                               # seeded, n_jobs=1
    sems = _sems(runs)
    fig = rp.umap_by_code(coords, sems, L, highlight=3, dataset="tinyset")
    assert len(fig.axes) == 2
    for ax, sem in zip(fig.axes, sems.values()):
        code = np.asarray(sem)[:, 0]
        top = np.argsort(-np.bincount(code, minlength=L), kind="stable")[:3]
        others = ~np.isin(code, top)
        assert len(ax.collections) == 3 + others.any()                      # 3 colours + one grey layer
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[:3] == [f"code {t} ({int((code == t).sum())} items)" for t in top]
        assert len({tuple(c.get_facecolor()[0]) for c in ax.collections}) == len(ax.collections)
        assert sum(len(c.get_offsets()) for c in ax.collections) == dataset.n_items
    assert_labelled(fig, "tinyset")
    assert "largest level-1 codes" in fig._suptitle.get_text()
    assert_legends_outside(fig)
    pop = rp.umap_by_code(coords, run.semantic, L, popularity=dataset.item_popularity())
    panels = data_axes(pop)
    assert len(panels) == 2 and len(pop.axes) == 3                          # code, popularity, colour bar
    assert "popularity" in panels[1].get_title()
    with pytest.raises(ValueError, match="coords"):
        rp.umap_by_code(coords[:, :1], run.semantic, L)


def test_recid_training_curves_mark_the_best_epochs():
    from mmgrec_lib.reporting import plots

    graph = [{"phase": "alternate", "bpr": 0.7 - 0.01 * e, "recon": 1e-3, "codebook": 5e-4, "commit": 5e-4,
              "usage_l1": 1.0, "usage_l2": 0.9, "usage_l3": 0.8, "recall@10": r}
             for e, r in enumerate([0.05, 0.10, 0.14, 0.13, 0.12])]
    rq = [{"phase": "rq", "recon": 1e-3 / (e + 1), "codebook": 4e-4, "commit": 4e-4, "neg_rq_loss": v,
           "usage_l1": 1.0, "usage_l2": 1.0, "usage_l3": 1.0} for e, v in enumerate([-3.0, -2.0, -2.5])]
    fig = plots.recid_training_curves(graph + rq, dataset="tinyset")
    assert_labelled(fig, "tinyset")
    assert_legends_outside(fig)
    star = [l for l in fig.axes[1].lines if l.get_gid() == plots.BEST_EPOCH_GID and l.get_marker() == "*"]
    assert len(star) == 1 and list(star[0].get_xdata()) == [3] and list(star[0].get_ydata()) == [0.14]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"best graph epoch (restored)", "start of RQ-VAE-only phase", "best RQ-only epoch (kept)"} <= set(labels)
    kept = [l for l in fig.axes[2].lines if l.get_label() == "best RQ-only epoch (kept)"]
    assert kept and kept[0].get_xdata()[0] == len(graph) + 2                 # the second RQ epoch


@pytest.fixture
def poster_dataset(dataset, tmp_path):
    """The tiny dataset with posters for items 0 and 2, a missing file for 1, no entry for the others."""
    import dataclasses

    paths = [None] * dataset.n_items
    for i, color in ((0, "red"), (2, "blue")):
        p = tmp_path / f"{i}.jpg"
        Image.new("RGB", (60, 90), color).save(p)
        paths[i] = str(p)
    paths[1] = str(tmp_path / "missing.jpg")
    meta = pd.DataFrame({"title": [f"Movie {i} (1999)" for i in range(dataset.n_items)], "poster_path": paths})
    return dataclasses.replace(dataset, item_meta=meta, item_titles=meta["title"].tolist())


def test_poster_grid_handles_missing_posters(poster_dataset):
    paths = rp.poster_paths(poster_dataset)
    assert paths[0] and paths[2] and paths[1] is None and paths[3] is None
    fig = rp.poster_grid(poster_dataset, {"0-1-2": [0, 1, 2, 3], "5-5-5": [4]}, per_row=4)
    assert len(fig.axes) == 2 * 4
    assert sum(len(ax.images) for ax in fig.axes) == 2                      # only items 0 and 2 have posters
    no_poster = [ax for ax in fig.axes if any(t.get_text() == "no poster" for t in ax.texts)]
    assert len(no_poster) == 3                                              # items 1, 3 and 4
    assert fig.axes[0].get_title().startswith("Movie 0")


def test_poster_grid_without_meta(dataset):
    fig = rp.poster_grid(dataset, {"a": [0, 1]}, per_row=3)                  # item_meta is None
    assert len(fig.axes) == 3 and sum(len(ax.images) for ax in fig.axes) == 0
    assert rp.load_thumbnail(None) is None


# ---------------------------------------------------------------------- explorer
def test_explorer_builds_without_display(runs, poster_dataset, capsys):
    widgets = pytest.importorskip("ipywidgets")
    from mmgrec_lib.reporting.widgets import prefix_items_frame, recid_explorer

    run = runs["graph_rqvae+popularity"]
    box = recid_explorer(run, poster_dataset, max_items=5)
    assert isinstance(box, widgets.VBox)
    assert capsys.readouterr().out == ""                                    # nothing displayed or printed
    controls, summary, table, image = box.children
    level, prefix = controls.children
    assert level.value == 1 and prefix.value is not None and len(prefix.value) == 1
    assert "<table" in table.value
    level.value = LEVELS                                                    # full semantic prefixes
    assert len(prefix.value) == LEVELS
    df = prefix_items_frame(run, poster_dataset, prefix.value)
    assert len(df) >= 1 and all(r[:LEVELS] == prefix.value for r in df["rec_id"])
    assert df["title"].iloc[0] in table.value
    plain = recid_explorer(run, make_tiny_dataset(), posters=True)          # no posters: image hidden
    assert plain.children[3].layout.display == "none"
