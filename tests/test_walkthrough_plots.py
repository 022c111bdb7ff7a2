"""Walkthrough figures (notebook 08): the beam trace equals the real beam search; trees, purity, figures."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.generator import MMGRecGenerator
from mmgrec_lib.generator.decoding import beam_search
from mmgrec_lib.reporting import walkthrough_plots as wp
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def setup():
    ds = make_tiny_dataset(n_users=30, n_items=50)
    rng = np.random.default_rng(3)
    sem = np.stack([rng.integers(0, 4, ds.n_items), rng.integers(0, 3, ds.n_items), rng.integers(0, 3, ds.n_items)], 1)
    table = RecIDTable(disambiguate(sem, ds.item_popularity()))
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = MMGRecGenerator(table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g),
                            ds.train, d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8).eval()
    return ds, table, model


@pytest.mark.parametrize("user,k,width", [(0, 5, 5), (3, 4, 7), (11, 10, 20)])
def test_beam_trace_ends_with_the_beam_search_list(setup, user, k, width):
    ds, table, model = setup
    trace = wp.beam_trace(model, ds, user, k, width)
    M = table.n_levels
    assert sorted(trace["level"].unique()) == list(range(1, M + 1))
    for lv, d in trace.groupby("level"):
        assert d["kept"].sum() == min(width, len(d))
        assert (np.diff(d.sort_values("rank")["logp"].to_numpy()) <= 1e-12).all()        # ranked best first
        if lv > 1:                                   # every candidate extends a prefix kept one level up
            kept_up = set(trace[(trace["level"] == lv - 1) & trace["kept"]]["prefix"])
            assert set(d["parent"]) <= kept_up
    last = trace[trace["level"] == M].sort_values("rank")
    items, scores = beam_search(model, torch.tensor([user]), k, width, exclude=ds.val)
    assert last["item"].head(k).tolist() == items[0].tolist()
    np.testing.assert_allclose(last["logp"].head(k).to_numpy(), scores[0].numpy(), rtol=1e-4, atol=1e-4)
    banned = set(ds.train[user].indices.tolist()) | set(ds.val[user].indices.tolist())
    assert not banned & set(last["item"].tolist())
    # summed log-probability = parent's sum + this level's step
    by_prefix = dict(zip(trace["prefix"], trace["logp"]))
    for r in trace[trace["level"] > 1].itertuples():
        assert r.logp == pytest.approx(by_prefix[r.parent] + r.step_logp, abs=1e-5)


def test_beam_trace_rejects_bad_arguments(setup):
    ds, _, model = setup
    with pytest.raises(ValueError, match="k <= beam_width"):
        wp.beam_trace(model, ds, 0, 5, 3)
    with pytest.raises(ValueError, match="out of range"):
        wp.beam_trace(model, ds, ds.n_users, 2, 2)


def test_pick_example_user_returns_a_user_with_a_hit_when_there_is_one(setup):
    ds, _, model = setup
    user, hit = wp.pick_example_user(model, ds, k=10, beam_width=20)
    items, _ = beam_search(model, torch.tensor([user]), 10, 20, exclude=ds.val)
    assert hit == bool(set(items[0].tolist()) & set(ds.test[user].indices.tolist()))
    assert ds.test[user].nnz > 0


def test_level_purity():
    sem = np.array([[0, 1], [0, 2], [1, 0], [1, 0], [2, 1]])
    assert wp.level_purity(sem, np.array([5, 5, 6, 6, 7])) == 1.0
    assert wp.level_purity(sem, np.array([5, 6, 6, 6, 7])) == pytest.approx(4 / 5)
    assert wp.level_purity(sem, np.array([0, 0, 0, 1, 1]), level=1) == pytest.approx(3 / 5)   # 1 of 2 per code
    with pytest.raises(ValueError):
        wp.level_purity(sem, np.array([0, 1]))


def test_tree_items_shows_the_largest_collision_group_and_other_branches(setup):
    ds, table, _ = setup
    codes = table.codes.numpy()
    pop = ds.item_popularity()
    items = wp.tree_items(codes, pop, n=8, other=2)
    assert len(items) == len(set(items.tolist())) == 8
    sem = codes[:, :-1]
    largest = np.unique(sem, axis=0, return_counts=True)[1].max()
    shown_groups = np.unique(sem[items], axis=0, return_counts=True)[1]
    assert shown_groups.max() == min(largest, 6)                    # the whole group fits in n - other
    assert len({int(sem[i, 0]) for i in items}) == 3                # the branch and two others
    assert [tuple(codes[i]) for i in items] == sorted(tuple(codes[i]) for i in items)   # leaf order


def test_figures_have_titles_labels_and_legends_outside(setup):
    ds, table, model = setup
    codes = table.codes.numpy()
    items = wp.tree_items(codes, ds.item_popularity(), n=6, other=1)
    fig = wp.recid_tree(codes, items, {int(items[0]): "first"}, dataset="tiny")
    ax = fig.axes[0]
    assert fig._suptitle.get_text().startswith("tiny: ") and ax.get_xlabel() and ax.get_ylabel()
    assert any("first" in t.get_text() for t in ax.texts)
    _legend_outside(fig)

    trace = wp.beam_trace(model, ds, 0, 4, 4)
    fig = wp.beam_steps(trace, 4, highlight=ds.test[0].indices.tolist(), dataset="tiny", title="beam search")
    assert len(fig.axes) == table.n_levels and fig._suptitle.get_text() == "tiny: beam search"
    for ax in fig.axes:
        assert ax.get_xlabel() == "log p(prefix | user)"
        assert len(ax.patches) == min(7, int((trace["level"] == int(ax.get_title().split()[1][:-1])).sum()))
    _legend_outside(fig)


def _legend_outside(fig):
    fig.canvas.draw()
    assert len(fig.legends) == 1
    lb = fig.legends[0].get_window_extent()
    assert all(lb.x0 >= ax.get_window_extent().x1 - 1 for ax in fig.axes)   # right of every panel's data area
