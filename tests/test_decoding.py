"""Constrained beam search: valid Rec-IDs only, no training items, exact at full width, short lists."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.generator.decoding import beam_exact_overlap, beam_search, exact_scores
from mmgrec_lib.generator import MMGRecGenerator, PopularityPrior
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate


@pytest.fixture(scope="module")
def setup():
    ds = make_tiny_dataset(n_users=30, n_items=50)
    rng = np.random.default_rng(3)
    # sparse codebook usage: many prefixes have few children, some level-1 codes unused
    table = RecIDTable(disambiguate(rng.integers(0, 5, (ds.n_items, 2)) * [1, 2], ds.item_popularity()))
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = MMGRecGenerator(table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g),
                            ds.train, d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8).eval()
    return ds, table, model


def test_decoded_ids_are_valid_and_never_training_items(setup):
    ds, table, model = setup
    users = torch.arange(ds.n_users)
    items, scores, codes = beam_search(model, users, k=10, beam_width=15, exclude=ds.val, return_codes=True)
    assert items.shape == scores.shape == (ds.n_users, 10) and codes.shape == (ds.n_users, 10, table.n_levels)
    assert (items >= 0).all()                                       # plenty of candidates here
    assert torch.equal(table.item_of(codes.reshape(-1, table.n_levels)).view_as(items), items)
    assert torch.isfinite(scores).all() and (scores <= 0).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()                  # best first
    excluded = (ds.train + ds.val).tocsr()
    for u in range(ds.n_users):
        row = items[u].tolist()
        assert len(set(row)) == len(row)
        assert not set(row) & set(excluded.indices[excluded.indptr[u]:excluded.indptr[u + 1]].tolist())
    # the model's recommend() is the same search
    r_items, r_scores = model.recommend(users, 10, 15, exclude=ds.val)
    assert torch.equal(r_items, items)


@pytest.mark.parametrize("prune", [True, False])
def test_beam_equals_exact_top_k_at_full_width(setup, prune):
    ds, table, model = setup
    users = torch.arange(ds.n_users)
    k = 10
    items, scores = beam_search(model, users, k, beam_width=ds.n_items, prune=prune)
    exact = exact_scores(model, users)                               # (B, I)
    top = exact.topk(k, dim=1)
    torch.testing.assert_close(scores, top.values, rtol=1e-4, atol=1e-4)
    assert torch.equal(items, top.indices)
    # the scores the search reports are the exact log-likelihoods of the returned items
    torch.testing.assert_close(torch.gather(exact, 1, items), scores, rtol=1e-4, atol=1e-4)
    assert beam_exact_overlap(model, users, k, ds.n_items) == 1.0
    assert 0.0 <= beam_exact_overlap(model, users, k, k, exact=exact) <= 1.0
    assert beam_exact_overlap(model, users, k, ds.n_items, exact=exact) == 1.0


def test_exact_scores_mask_training_items(setup):
    ds, _, model = setup
    s = exact_scores(model, torch.arange(5), items_per_step=7)       # a last partial step
    dense = torch.from_numpy(ds.train[:5].toarray() > 0)
    assert torch.isneginf(s[dense]).all() and torch.isfinite(s[~dense]).all()
    # full-range normalisation: log-likelihoods of all Rec-IDs sum to at most 1 in probability
    s_all = exact_scores(model, torch.arange(5), exclude_train=False)
    assert (s_all.exp().sum(1) <= 1 + 1e-5).all()


def _reference_exact_scores(model, users, exclude=None):
    """The straightforward rule: teacher-force every item's whole Rec-ID on its own (full-prefix decode) and sum
    the full-range log-softmax of each of its tokens; excluded items -inf."""
    import torch.nn.functional as F
    from mmgrec_lib.generator.decoding import exclusion_pairs

    users = model.check_users(users)
    out = torch.empty(users.shape[0], model.n_items)
    with torch.no_grad():
        memory, pad = model.encode(users)
        for i in range(model.n_items):
            code = model.codes[i]
            h = model.decode(memory, pad, code[None, :-1].expand(users.shape[0], -1))     # (B, M, D)
            out[:, i] = sum(F.log_softmax(model.level_logits(h[:, lvl], lvl), -1)[:, code[lvl]]
                            for lvl in range(model.n_levels))
    rows, items = exclusion_pairs(model, users, exclude)
    out[rows, items] = float("-inf")
    return out


@pytest.mark.parametrize("levels,card,attention", [(3, 4, "relation"), (3, 3, "sinusoidal"), (1, 6, "relation"),
                                                   (0, 0, "relation")])
def test_exact_scores_walk_the_trie_and_equal_the_reference(levels, card, attention):
    ds = make_tiny_dataset(n_users=20, n_items=70)
    rng = np.random.default_rng(levels + card)
    if levels:                                       # collisions: several items share a last-level prefix
        codes = disambiguate(rng.integers(0, card, (ds.n_items, levels)), ds.item_popularity())
    else:                                            # M = 1: no prefix to walk, one token per item
        codes = rng.permutation(ds.n_items)[:, None]
    table = RecIDTable(codes)
    g = torch.Generator().manual_seed(1)
    model = MMGRecGenerator(table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g),
                            ds.train, d_model=16, n_layers=2, n_heads=2, dim_feedforward=32, max_len=6,
                            attention=attention).eval()
    users = torch.arange(ds.n_users)
    reference = _reference_exact_scores(model, users, ds.val)
    for chunk in (1, 5, 10_000):                     # one prefix per call, a partial last chunk, all at once
        got = exact_scores(model, users, exclude=ds.val, chunk_size=chunk)
        assert torch.equal(torch.isinf(got), torch.isinf(reference))
        torch.testing.assert_close(got, reference, atol=1e-5, rtol=0)
    # the deprecated items_per_step still sets the chunk size
    torch.testing.assert_close(exact_scores(model, users, exclude=ds.val, items_per_step=3), reference, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="chunk_size"):
        exact_scores(model, users, chunk_size=0)


def test_fewer_valid_candidates_than_k_are_padded(setup):
    ds, _, model = setup
    keep = {0: [1, 7, 20], 1: []}                                    # items still allowed per user
    rows, cols = [], []
    for u, allowed in keep.items():
        for i in range(ds.n_items):
            if i not in allowed:
                rows.append(u)
                cols.append(i)
    excl = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(ds.n_users, ds.n_items))
    items, scores = beam_search(model, torch.tensor([0, 1]), k=5, beam_width=6, exclude=excl)
    assert sorted(items[0, :3].tolist()) == [1, 7, 20] and (items[0, 3:] == -1).all()
    assert torch.isfinite(scores[0, :3]).all() and torch.isneginf(scores[0, 3:]).all()
    assert (items[1] == -1).all() and torch.isneginf(scores[1]).all()
    # a bool tensor works as well
    items2, _ = beam_search(model, torch.tensor([0, 1]), k=5, beam_width=6,
                            exclude=torch.from_numpy(excl[[0, 1]].toarray() > 0))
    assert torch.equal(items, items2)
    # a catalogue smaller than k
    items3, scores3 = beam_search(model, torch.tensor([2]), k=ds.n_items + 3, beam_width=ds.n_items + 3)
    n_valid = ds.n_items - ds.train[2].nnz
    assert (items3[0, :n_valid] >= 0).all() and (items3[0, n_valid:] == -1).all()


def test_beam_width_must_cover_k(setup):
    _, _, model = setup
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(model, torch.tensor([0]), k=10, beam_width=5)
    with pytest.raises(ValueError, match="beam_width"):
        model.recommend(torch.tensor([0]), k=10, beam=5)
    with pytest.raises(ValueError, match="exclude matrix"):
        beam_search(model, torch.tensor([0]), k=2, exclude=sp.csr_matrix((3, 3)))


def _dense_alive(trie, rows, items, B, level):
    """The reference rule, with dense (B, n_children) tensors: alive while some item below is not excluded."""
    last = level == trie.n_levels - 1
    n = trie.n_items if last else trie.items_below(level + 1).shape[0]
    node = items if last else trie.item_node(level + 1)[items]
    gone = torch.zeros(B, n, dtype=torch.long)
    gone.index_put_((rows, node), torch.ones_like(rows), accumulate=True)
    total = torch.ones(n, dtype=torch.long) if last else trie.items_below(level + 1)
    return gone < total


def test_alive_children_equal_the_dense_rule(setup):
    """Every node of a level as one beam: the (beam, slot) entries AliveChildren disables are exactly the
    children the dense rule calls dead, each at its parent's row and its slot there."""
    from mmgrec_lib.generator.decoding import AliveChildren, exclusion_pairs
    ds, table, model = setup
    users = torch.arange(ds.n_users)
    rows, items = exclusion_pairs(model, users, ds.val)
    alive = AliveChildren(model.trie, rows, items, prune=True)
    for level in range(table.n_levels):
        n_nodes = model.trie.child_table(level).shape[0]
        node = torch.arange(n_nodes).expand(ds.n_users, n_nodes)                 # every node as a beam
        b, w, slot = alive(level, node)
        parent, child_slot = model.trie.children_of(level, dense=model.trie.padded(level) is None)
        want = ~_dense_alive(model.trie, rows, items, ds.n_users, level)          # (U, n_children) dead
        u, child = want.nonzero(as_tuple=True)
        got = sorted(zip(b.tolist(), w.tolist(), slot.tolist()))
        assert got == sorted(zip(u.tolist(), parent[child].tolist(), child_slot[child].tolist()))
        assert len(got) > 0 or level < table.n_levels - 1                       # the last level always has some
    b, w, slot = AliveChildren(model.trie, rows, items, prune=False)(0, torch.zeros(ds.n_users, 1, dtype=torch.long))
    assert b.numel() == 0                                                        # no pruning above the last level


def test_children_of_points_back_into_the_candidate_rows(setup):
    """For every child: its parent's candidate row holds it at its slot (dense: the token; padded: the index)."""
    _, table, model = setup
    trie = model.trie
    for level in range(trie.n_levels):
        parent, slot = trie.children_of(level)
        padded = trie.padded(level)
        nexts = trie.child_table(level) if padded is None else padded[1].long()
        assert torch.equal(nexts[parent, slot], torch.arange(parent.shape[0]))
        parent, token = trie.children_of(level, dense=True)
        assert torch.equal(trie.child_table(level)[parent, token], torch.arange(parent.shape[0]))
        assert trie.full(level) == bool((trie.child_table(level) >= 0).all())


def _largest_tensor_in_beam_search(n_items: int, n_users: int = 40, B: int = 32, prior_weight: float | None = None) -> int:
    """The most elements of any tensor an op produces during one beam_search call (TorchDispatchMode)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), 30)
    hist = sp.csr_matrix((np.ones(users.size, np.float32), (users, rng.integers(0, n_items, users.size))),
                         shape=(n_users, n_items))
    hist.data[:] = 1
    table = RecIDTable(disambiguate(rng.integers(0, 48, (n_items, 3)), rng.integers(1, 100, n_items)))
    model = MMGRecGenerator(table, torch.randn(n_users, 8), torch.randn(n_items, 8), hist, d_model=16, n_layers=1,
                            n_heads=2, dim_feedforward=32, max_len=8).eval()
    exclude = sp.random(n_users, n_items, density=20 / n_items, format="csr", random_state=0)
    prior = None if prior_weight is None else PopularityPrior(model.trie, np.asarray(hist.sum(0)).ravel(), prior_weight)
    largest = [0]

    class Largest(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    largest[0] = max(largest[0], t.numel())
            return out

    with Largest():
        items, _ = beam_search(model, torch.arange(B), k=10, beam_width=20, exclude=exclude, prior=prior)
    assert (items >= 0).all()
    return largest[0]


@pytest.mark.parametrize("prior_weight", [None, 0.5])
def test_beam_search_allocates_nothing_of_size_batch_times_catalogue(prior_weight):
    small = _largest_tensor_in_beam_search(3_000, prior_weight=prior_weight)
    large = _largest_tensor_in_beam_search(150_000, prior_weight=prior_weight)
    assert large <= 1.5 * small, (small, large)          # flat in the catalogue (attention maps dominate)
    assert large < 32 * 150_000 // 4                     # far from one (B, I) mask


@pytest.mark.parametrize("attention", ["relation", "sinusoidal"])
def test_cached_decoding_equals_full_prefix_decoding(attention):
    ds = make_tiny_dataset(n_users=25, n_items=60)
    rng = np.random.default_rng(5)
    table = RecIDTable(disambiguate(rng.integers(0, 6, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(2)
    model = MMGRecGenerator(table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g),
                            ds.train, d_model=16, n_layers=2, n_heads=4, dim_feedforward=32, max_len=6,
                            attention=attention).eval()
    users = torch.arange(ds.n_users)
    fast = beam_search(model, users, k=10, beam_width=12, exclude=ds.val, return_codes=True)
    slow = beam_search(model, users, k=10, beam_width=12, exclude=ds.val, return_codes=True, cache=False)
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[2], slow[2])
    assert torch.allclose(fast[1], slow[1], atol=1e-5)
    # decode_step reproduces decode position by position on a fixed prefix
    memory, pad = model.encode(users[:4])
    prefix = table.codes[:4, :-1].clone()                          # (4, M - 1)
    full = model.decode(memory, pad, prefix)                       # (4, M, D)
    state = model.start_decoding(memory, pad)
    steps = [model.decode_step(state, None if j == 0 else prefix[:, j - 1:j])[:, 0] for j in range(table.n_levels)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
    model.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        model.decode_step(model.start_decoding(memory, pad), None)


def test_padded_trie_levels_decode_like_the_dense_tables(monkeypatch):
    """Reading sparse levels through the padded layout (fewer candidates per beam) returns the same lists, scores
    and codes as reading every level's dense table."""
    ds = make_tiny_dataset(n_users=30, n_items=80)
    rng = np.random.default_rng(4)
    table = RecIDTable(disambiguate(rng.integers(0, 24, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(1)
    model = MMGRecGenerator(table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g),
                            ds.train, d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8).eval()
    assert model.trie.padded(1) is not None                        # ~3 of 24 children per level-1 node
    users = torch.arange(ds.n_users)
    fast = beam_search(model, users, k=10, beam_width=12, exclude=ds.val, return_codes=True)
    monkeypatch.setattr(model.trie, "padded", lambda level: None)
    dense = beam_search(model, users, k=10, beam_width=12, exclude=ds.val, return_codes=True)
    assert torch.equal(fast[0], dense[0]) and torch.equal(fast[2], dense[2])
    assert torch.equal(fast[1], dense[1])
