"""Rec-ID disambiguation (eq. 11-12), the tensor trie, persistence, statistics and HK-Means codes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.tokenizer.alternatives import hkmeans_codes
from mmgrec_lib.tokenizer.stats import group_size_distribution, level_usage, recid_stats, stats_frame


def random_semantic(n: int = 50, levels: int = 3, card: int = 3, seed: int = 0) -> np.ndarray:
    """Small codes with many collisions."""
    return np.random.default_rng(seed).integers(0, card, size=(n, levels))


# ---------------------------------------------------------------------- disambiguation
def test_popularity_token_ranks_by_popularity_then_item_id():
    sem = np.array([[0, 1], [0, 1], [2, 2], [0, 1], [0, 1], [2, 2]])
    pop = np.array([5, 9, 3, 5, 1, 7])
    codes = disambiguate(sem, pop, "popularity")
    assert codes.shape == (6, 3)
    np.testing.assert_array_equal(codes[:, :2], sem)
    # group (0, 1): items 0 (5), 1 (9), 3 (5), 4 (1) -> 1 first, then the tie 0 < 3, then 4
    assert codes[[1, 0, 3, 4], 2].tolist() == [0, 1, 2, 3]
    # group (2, 2): items 5 (7) before 2 (3)
    assert codes[[5, 2], 2].tolist() == [0, 1]


@pytest.mark.parametrize("mode", ["popularity", "random"])
def test_collision_token_makes_ids_unique(mode):
    sem = random_semantic(80)
    pop = np.random.default_rng(1).integers(0, 4, 80)            # many ties
    codes = disambiguate(sem, pop, mode, seed=3)
    assert np.unique(codes, axis=0).shape[0] == 80
    # the last token enumerates each collision group 0..K-1
    for key in {tuple(r) for r in sem}:
        members = np.all(sem == key, axis=1)
        assert sorted(codes[members, -1].tolist()) == list(range(int(members.sum())))
    RecIDTable(codes)                                             # accepted as unique


def test_random_mode_is_seeded_and_none_mode_reports_only():
    sem = random_semantic(40)
    a = disambiguate(sem, None, "random", seed=5)
    np.testing.assert_array_equal(a, disambiguate(sem, None, "random", seed=5))
    assert not np.array_equal(a, disambiguate(sem, None, "random", seed=6))
    np.testing.assert_array_equal(disambiguate(sem, None, "none"), sem)
    with pytest.raises(ValueError, match="popularity mode needs"):
        disambiguate(sem, None, "popularity")
    with pytest.raises(ValueError, match="unknown collision mode"):
        disambiguate(sem, None, "tiger")


# ---------------------------------------------------------------------- trie
@pytest.fixture
def table() -> RecIDTable:
    sem = random_semantic(60, card=4, seed=2)
    codes = disambiguate(sem, np.arange(60)[::-1], "popularity")
    cards = [4, 4, 4, int(codes[:, -1].max()) + 1]
    return RecIDTable(codes, cards, {"note": "test"})


def test_trie_maps_every_assigned_id_back_to_its_item(table):
    assert torch.equal(table.item_of(table.codes), torch.arange(table.n_items))


def test_trie_rejects_tuples_that_are_not_assigned(table):
    assigned = {tuple(r) for r in table.codes.tolist()}
    g = torch.Generator().manual_seed(0)
    cand = torch.stack([torch.randint(c + 1, (400,), generator=g) for c in table.cardinalities], 1)  # some out of range
    cand = torch.cat([cand, torch.tensor([[-1, 0, 0, 0], [0, 0, 0, 99]])])
    items = table.item_of(cand)
    for row, item in zip(cand.tolist(), items.tolist()):
        if tuple(row) in assigned:
            assert table.codes[item].tolist() == row
        else:
            assert item == -1


def test_allowed_masks_are_exactly_the_assigned_next_tokens(table):
    codes = table.codes.tolist()
    nodes = {(): 0}                                               # prefix -> node id, discovered by stepping
    for level in range(table.n_levels):
        next_nodes = {}
        for prefix, node in nodes.items():
            expected = {c[level] for c in codes if tuple(c[:level]) == prefix}
            mask = table.allowed(level, torch.tensor([node]))[0]
            assert set(torch.nonzero(mask).flatten().tolist()) == expected
            for tok in expected:
                nxt = int(table.step(level, torch.tensor([node]), torch.tensor([tok]))[0])
                assert nxt >= 0
                next_nodes[prefix + (tok,)] = nxt
            bad = [t for t in range(table.cardinalities[level]) if t not in expected]
            if bad:
                assert (table.step(level, torch.tensor([node] * len(bad)), torch.tensor(bad)) == -1).all()
        nodes = next_nodes
    # the leaves are the items
    assert {p: n for p, n in nodes.items()} == {tuple(c): i for i, c in enumerate(codes)}
    # a dead prefix (-1) allows nothing and steps nowhere
    assert not table.allowed(0, torch.tensor([-1])).any()
    assert int(table.step(1, torch.tensor([-1]), torch.tensor([0]))[0]) == -1


def test_table_save_load_round_trip(table, tmp_path):
    path = table.save(tmp_path / "ids.pt")
    loaded = RecIDTable.load(path)
    assert torch.equal(loaded.codes, table.codes)
    assert loaded.cardinalities == table.cardinalities and loaded.config == {"note": "test"}
    for a, b in zip(loaded.children, table.children):
        assert torch.equal(a, b)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Rec-ID table"):
        RecIDTable.load(tmp_path / "other.pt")


def test_table_rejects_bad_codes():
    with pytest.raises(ValueError, match="not unique"):
        RecIDTable(np.array([[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="non-negative"):
        RecIDTable(np.array([[0, -1], [0, 1]]))
    with pytest.raises(ValueError, match="cardinalities"):
        RecIDTable(np.array([[0, 3], [0, 1]]), [1, 2])


# ---------------------------------------------------------------------- statistics
def test_stats_on_hand_made_codes():
    sem = np.array([[0, 0], [0, 0], [0, 1], [1, 2], [1, 2], [1, 2]])
    codes = disambiguate(sem, np.ones(6), "popularity")
    usage = level_usage(sem, 4)
    assert [u["used"] for u in usage] == [2, 3]
    assert usage[0]["usage"] == 0.5 and usage[0]["perplexity"] == pytest.approx(2.0)
    row = recid_stats(sem, 4, codes, recon_error=0.5, extra={"method": "x"})
    assert row["n_semantic_ids"] == 3 and row["unique_semantic_frac"] == pytest.approx(1 / 6)
    assert row["unique_prefix_frac_d1"] == 0.0
    assert row["n_collision_groups"] == 2 and row["max_group_size"] == 3
    assert row["collided_items_frac"] == pytest.approx(5 / 6)
    assert row["max_last_token"] == 2 and row["recon_error"] == 0.5 and row["method"] == "x"
    dist = group_size_distribution(sem)
    assert dist.set_index("size")["groups"].to_dict() == {1: 1, 2: 1, 3: 1}
    df = stats_frame({"popularity": row, "random": row})
    assert list(df["method"]) == ["popularity", "random"] and df.columns[0] == "method"


# ---------------------------------------------------------------------- HK-Means
def test_hkmeans_codes_in_range_and_hierarchical():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 4)) * 5
    x = centers[rng.integers(0, 3, 70)] + rng.normal(size=(70, 4))
    x[-3:] = x[-4]                                               # a few identical rows
    k = 3
    codes = hkmeans_codes(x, k, n_levels=3, seed=0)
    assert codes.shape == (70, 3) and codes.min() >= 0 and codes.max() < k
    np.testing.assert_array_equal(codes, hkmeans_codes(x, k, n_levels=3, seed=0))   # seeded
    # level-1 clusters are the top-level k-means clusters: well separated centres are recovered
    from sklearn.metrics import adjusted_rand_score
    truth = np.argmin(((x[:, None] - centers[None]) ** 2).sum(-1), 1)
    assert adjusted_rand_score(truth, codes[:, 0]) > 0.9
    # hierarchy: the level-l code is local to the level-(l-1) prefix - each prefix node has <= k children,
    # and items with the same full prefix stay together in every coarser node
    for depth in (1, 2):
        for prefix in {tuple(r) for r in codes[:, :depth]}:
            members = np.all(codes[:, :depth] == prefix, axis=1)
            assert len(np.unique(codes[members, depth])) <= k
    # identical rows never get split
    assert (codes[-4:] == codes[-4]).all()


def test_hkmeans_small_clusters_and_bad_input():
    x = np.array([[0.0], [0.1], [10.0], [10.2], [10.4]])
    codes = hkmeans_codes(x, 2, n_levels=3, seed=0)
    # top level: {0, 0.1} and {10, 10.2, 10.4}; a node with <= k distinct members gives each its own code
    # in item order (no k-means call), a larger one is split by k-means, down to one item per leaf here
    assert codes[0, 0] == codes[1, 0] != codes[2, 0] == codes[3, 0] == codes[4, 0]
    assert codes[:2, 1].tolist() == [0, 1] and codes[:2, 2].tolist() == [0, 0]
    assert len({tuple(r) for r in codes}) == 5
    single = hkmeans_codes(np.zeros((1, 2)), 4)
    assert single.tolist() == [[0, 0, 0]]
    with pytest.raises(ValueError, match="NaN"):
        hkmeans_codes(np.array([[np.nan], [1.0]]), 2)
    with pytest.raises(ValueError, match="non-empty"):
        hkmeans_codes(np.zeros((0, 2)), 2)


def test_exhaustive_small_trie_masks():
    # every tuple of a full 2x2x2 grid minus one: the missing tuple is rejected, everything else found
    grid = np.array(list(itertools.product(range(2), repeat=3)))
    codes = grid[:-1]
    t = RecIDTable(codes, [2, 2, 2])
    assert t.item_of(torch.as_tensor(grid)).tolist() == list(range(7)) + [-1]
    node = t.step(1, t.step(0, torch.tensor([0]), torch.tensor([1])), torch.tensor([1]))
    assert t.allowed(2, node)[0].tolist() == [True, False]
