"""Full-ranking Recall@K / NDCG@K: a hand-computed case, both input paths, exclusions, an independent
cross-check (torchmetrics) and the paired test."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.retrieval import retrieval_normalized_dcg, retrieval_recall

from mmgrec_lib.data.dataset import RecDataset
from mmgrec_lib.evaluation import evaluate, excluded_matrix, paired_test


def _pairs(*pairs):
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


@pytest.fixture
def hand() -> tuple[RecDataset, torch.Tensor]:
    """3 users x 6 items.

    user 0: train {0}, val {1}, test {2, 3, 4}
    user 1: train {3},          test {5}
    user 2: train {0, 1}, val {2}, no test items
    """
    ds = RecDataset.from_splits(
        "hand", 3, 6,
        train=_pairs((0, 0), (1, 3), (2, 0), (2, 1)),
        val=_pairs((0, 1), (2, 2)),
        test=_pairs((0, 2), (0, 3), (0, 4), (1, 5)))
    scores = torch.tensor([
        [0.9, 0.8, 0.3, 0.7, 0.1, 0.5],     # train item 0 and val item 1 score highest but are excluded on test
        [0.2, 0.1, 0.4, 0.95, 0.3, 0.6],    # train item 3 is excluded
        [0.5, 0.4, 0.1, 0.3, 0.2, 0.0],
    ])
    return ds, scores


L3 = 1 / math.log2(3)                       # discount of rank 2 = 0.6309297536
L4 = 1 / math.log2(4)                       # discount of rank 3 = 0.5


def test_hand_computed_test_split(hand):
    ds, scores = hand
    res = evaluate(scores, ds, "test", ks=(2, 3))
    # user 0: candidates {2: .3, 3: .7, 4: .1, 5: .5} -> ranking 3, 5, 2, 4; T = {2, 3, 4}
    #   R@2 = 1/3;  DCG@2 = 1 (item 3 at rank 1);        IDCG@2 = 1 + L3 (min(|T|=3, K=2) = 2 terms)
    #   R@3 = 2/3;  DCG@3 = 1 + L4 (item 2 at rank 3);   IDCG@3 = 1 + L3 + L4
    # user 1: candidates {0: .2, 1: .1, 2: .4, 4: .3, 5: .6} -> ranking 5, 2, 4, 0, 1; T = {5}: hit at rank 1
    #   R@2 = R@3 = 1, NDCG@2 = NDCG@3 = 1 (IDCG = 1: one test item)
    # user 2: no test item -> skipped
    assert list(res.per_user.index) == [0, 1]
    u0 = res.per_user.loc[0]
    assert u0["recall@2"] == pytest.approx(1 / 3)
    assert u0["ndcg@2"] == pytest.approx(1 / (1 + L3))                  # 0.6131471928
    assert u0["recall@3"] == pytest.approx(2 / 3)
    assert u0["ndcg@3"] == pytest.approx((1 + L4) / (1 + L3 + L4))      # 1.5 / 2.1309297536 = 0.7039180890
    assert res.per_user.loc[1].tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])
    means = res.mean()
    assert means["recall@2"] == pytest.approx((1 / 3 + 1) / 2)          # 0.6666666667
    assert means["ndcg@2"] == pytest.approx(0.8065735964)               # (0.6131471928 + 1) / 2
    assert means["recall@3"] == pytest.approx((2 / 3 + 1) / 2)          # 0.8333333333
    assert means["ndcg@3"] == pytest.approx(0.8519590445)               # (0.7039180890 + 1) / 2


def test_hand_computed_val_split(hand):
    ds, scores = hand
    res = evaluate(scores, ds, "val", ks=(2, 3))
    # only training items are excluded on "val" (test items stay candidates)
    # user 0: candidates {1: .8, 3: .7, 5: .5, 2: .3, 4: .1}; V = {1} at rank 1 -> all metrics 1
    # user 2: candidates {3: .3, 4: .2, 2: .1, 5: 0}; V = {2} at rank 3
    #   R@2 = 0, NDCG@2 = 0;  R@3 = 1, NDCG@3 = L4 / 1 = 0.5
    # user 1: no val item -> skipped
    assert list(res.per_user.index) == [0, 2]
    assert res.per_user.loc[2].tolist() == pytest.approx([0.0, 0.0, 1.0, 0.5])
    assert res.mean() == pytest.approx({"recall@2": 0.5, "ndcg@2": 0.5, "recall@3": 1.0, "ndcg@3": 0.75})


def test_k_larger_than_the_catalogue(hand):
    ds, scores = hand
    res = evaluate(scores, ds, "test", ks=(3, 10))       # 10 > 6 items: every candidate is ranked
    assert res["recall@10"] == pytest.approx(1.0)
    # user 0: hits at ranks 1, 3, 4 of 4 candidates; IDCG over min(3, 10) = 3 ranks
    ndcg0 = (1 + L4 + 1 / math.log2(5)) / (1 + L3 + L4)
    assert res.per_user.loc[0, "ndcg@10"] == pytest.approx(ndcg0)


def test_ranked_lists_match_scores_when_lists_are_the_argsort(hand):
    ds, scores = hand
    lists = torch.argsort(scores, dim=1, descending=True)                # includes excluded items
    for split in ("val", "test"):
        a = evaluate(scores, ds, split, ks=(1, 2, 3))
        b = evaluate(lists, ds, split, ks=(1, 2, 3))
        c = evaluate(lambda u: lists[u], ds, split, ks=(1, 2, 3))      # callable path
        assert a.per_user.equals(b.per_user) and a.per_user.equals(c.per_user)


def test_ranked_lists_random_distinct_scores():
    ds = _random_dataset(seed=1)
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(ds.n_users, ds.n_items, generator=g, dtype=torch.float64)  # distinct a.s.
    lists = torch.argsort(scores, dim=1, descending=True)
    for split in ("val", "test"):
        a = evaluate(scores, ds, split, ks=(5, 10), batch_size=7)
        b = evaluate(lists, ds, split, ks=(5, 10), batch_size=7)
        assert np.allclose(a.per_user.to_numpy(), b.per_user.to_numpy(), rtol=0, atol=1e-12)


def test_ranked_lists_padding_and_excluded_items_are_dropped(hand):
    ds, _ = hand
    # user 0's list starts with its train item 0 and val item 1, then -1 padding: all dropped before the cut
    lists = torch.tensor([[0, 1, -1, 3, 5, 2, 4], [5, -1, -1, -1, -1, -1, -1], [3, 4, 2, 5, 0, 1, -1]])
    res = evaluate(lists, ds, "test", ks=(2, 3))
    assert res.per_user.loc[0, "recall@2"] == pytest.approx(1 / 3)      # effective list 3, 5, 2, 4
    assert res.per_user.loc[0, "recall@3"] == pytest.approx(2 / 3)
    assert res.per_user.loc[1, "recall@2"] == pytest.approx(1.0)


def test_duplicate_items_in_a_ranked_list_count_once(hand):
    ds, _ = hand
    lists = torch.tensor([[3, 3, 5, 2, 4], [5, 5, 0, 1, 2], [3, 4, 2, 5, 0]])
    res = evaluate(lists, ds, "test", ks=(2, 3))
    # user 0: effective list 3, 5, 2, 4 -> R@2 = 1/3 (not 2/3), R@3 = 2/3
    assert res.per_user.loc[0, "recall@2"] == pytest.approx(1 / 3)
    assert res.per_user.loc[0, "recall@3"] == pytest.approx(2 / 3)
    # user 1: effective list 5, 0, 1 -> R@3 = 1 (not 2)
    assert res.per_user.loc[1, "recall@3"] == pytest.approx(1.0)
    assert (res.per_user.to_numpy() <= 1 + 1e-12).all()


def test_excluded_items_are_never_counted(hand):
    ds, scores = hand
    # give user 0 a "test" item that is also... impossible (splits are disjoint), so check the masking directly:
    # an oracle that scores exactly the excluded items highest still only gets credit for held-out items
    excl_test = torch.from_numpy(excluded_matrix(ds, "test").toarray()).bool()
    assert excl_test[0].tolist() == [True, True, False, False, False, False]     # train {0} + val {1}
    assert torch.equal(torch.from_numpy(excluded_matrix(ds, "val").toarray()).bool(),
                       torch.from_numpy(ds.train.toarray()).bool())
    adversarial = excl_test.double() * 100 + scores                              # excluded items on top
    assert evaluate(adversarial, ds, "test", ks=(2, 3)).per_user.equals(evaluate(scores, ds, "test", ks=(2, 3)).per_user)
    # a scorer that ranks only excluded items finitely gets nothing
    only_excluded = torch.where(excl_test, 1.0, -torch.inf)
    assert evaluate(only_excluded, ds, "test", ks=(2,))["recall@2"] == 0.0


def test_users_without_test_items_are_skipped(hand):
    ds, scores = hand
    res = evaluate(scores, ds, "test", ks=(2,))
    assert 2 not in res.per_user.index and len(res.per_user) == 2
    # making user 2's scores anything does not change the result
    other = scores.clone()
    other[2] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert evaluate(other, ds, "test", ks=(2,)).mean() == res.mean()


# ---------------------------------------------------------------------------------------- cross-check
def _random_dataset(seed: int, n_users: int = 25, n_items: int = 40) -> RecDataset:
    """Random disjoint splits with many held-out items per user (so |T| > K happens) and a few users
    with no test items."""
    rng = np.random.default_rng(seed)
    r = rng.random((n_users, n_items))
    r[: 3, :] = np.minimum(r[:3], 0.39)              # users 0..2: no test items
    split = np.where(r < 0.3, 0, np.where(r < 0.4, 1, np.where(r < 0.75, 2, 3)))
    sets = [np.nonzero(split == s) for s in range(3)]
    return RecDataset.from_splits("random", n_users, n_items, *sets)


@pytest.mark.parametrize("split", ["val", "test"])
def test_matches_torchmetrics_on_random_data(split):
    ds = _random_dataset(seed=0)
    scores = torch.rand(ds.n_users, ds.n_items, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ks = (5, 10)
    res = evaluate(scores, ds, split, ks=ks, batch_size=8)
    target = torch.from_numpy(ds.split(split).toarray()).bool()
    excl = torch.from_numpy(excluded_matrix(ds, split).toarray()).bool()
    users = [u for u in range(ds.n_users) if target[u].any()]
    assert list(res.per_user.index) == users
    assert any(int(target[u].sum()) > max(ks) for u in users)   # the IDCG cap min(|T|, K) is exercised
    for u in users:
        cand = ~excl[u]                                           # rank only the candidate items
        for k in ks:
            # torchmetrics: recall = hits@k / all relevant; NDCG's ideal ranking puts all relevant first
            # and is cut at k, i.e. IDCG sums min(|T|, k) discounts -- both exactly our definitions
            r = retrieval_recall(scores[u, cand], target[u, cand], top_k=k)
            n = retrieval_normalized_dcg(scores[u, cand], target[u, cand], top_k=k)
            assert res.per_user.loc[u, f"recall@{k}"] == pytest.approx(float(r), abs=1e-6)
            assert res.per_user.loc[u, f"ndcg@{k}"] == pytest.approx(float(n), abs=1e-6)


# ---------------------------------------------------------------------------------------- paired test
def test_paired_test_identical_and_clearly_better():
    ds = _random_dataset(seed=2, n_users=60)
    g = torch.Generator().manual_seed(0)
    random_scores = torch.rand(ds.n_users, ds.n_items, generator=g)
    oracle = torch.from_numpy(ds.test.toarray()) + 0.5 * torch.rand(ds.n_users, ds.n_items, generator=g)
    a = evaluate(random_scores, ds, "test", ks=(10,))
    same = paired_test(a, evaluate(random_scores.clone(), ds, "test", ks=(10,)))
    assert same["p_ttest"] == 1.0 and same["p_wilcoxon"] == 1.0 and same["diff"] == 0.0
    better = paired_test(evaluate(oracle, ds, "test", ks=(10,)), a)
    assert better["diff"] > 0.3
    assert better["p_ttest"] < 1e-6 and better["p_wilcoxon"] < 1e-6
    assert better["users"] == len(a.per_user)
    with pytest.raises(ValueError, match="different splits"):
        paired_test(a, evaluate(random_scores, ds, "val", ks=(10,)))


def test_list_diagnostics_coverage_popularity_and_overlap():
    from _fixtures import make_tiny_dataset
    from mmgrec_lib.evaluation import list_diagnostics

    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    pop = ds.item_popularity()
    top = np.lexsort((np.arange(ds.n_items), -pop))                        # most popular first
    same = np.tile(top[:5], (6, 1))                                        # everyone gets the top-5
    d = list_diagnostics(same, ds, popular=5)
    assert d["coverage"] == pytest.approx(5 / 40) and d["popular_share"] == 1.0
    assert d["mean_pop_rank"] == pytest.approx(2.0) and d["overlap_between_users"] == 1.0
    disjoint = np.arange(30).reshape(6, 5)
    disjoint[0, 4] = -1                                                    # an empty slot is ignored
    d = list_diagnostics(disjoint, ds, popular=5)
    assert d["coverage"] == pytest.approx(29 / 40) and d["overlap_between_users"] == 0.0
    assert d["popular_share"] == pytest.approx(np.isin(disjoint[disjoint >= 0], top[:5]).mean())
    with pytest.raises(ValueError, match="40 items"):
        list_diagnostics(np.array([[0, 40]]), ds)
    with pytest.raises(ValueError, match=r"\(users, k\)"):
        list_diagnostics(np.arange(3), ds)


def test_pair_set_membership_matches_the_dense_mask():
    """Hits are found by membership in a sorted key set; the dense mask it replaces gives the same answers."""
    import scipy.sparse as sp

    from mmgrec_lib.data.sparse import PairSet, rows_mask

    rng = np.random.default_rng(0)
    mat = sp.random(50, 30, density=0.2, format="csr", random_state=1)
    pairs = PairSet(mat)
    rows = torch.as_tensor(rng.choice(50, 20, replace=False))
    cols = torch.as_tensor(rng.integers(0, 30, (20, 12)))
    dense = rows_mask(mat, rows.numpy())
    assert torch.equal(pairs.contains(rows, cols), torch.gather(dense, 1, cols))
    assert torch.equal(pairs.counts, torch.as_tensor(np.diff(mat.indptr)))
    empty = PairSet(sp.csr_matrix((4, 5)))
    assert not empty.contains(torch.arange(2), torch.zeros(2, 3, dtype=torch.long)).any()
    # list padding (-1) is never a hit, even where row * n_cols - 1 is the previous row's last non-zero
    edge = PairSet(sp.csr_matrix(np.array([[0, 0, 1], [1, 0, 0]])))
    assert edge.contains(torch.tensor([0]), torch.tensor([[2]])).item()
    assert not edge.contains(torch.tensor([1]), torch.tensor([[-1, -1]])).any()
