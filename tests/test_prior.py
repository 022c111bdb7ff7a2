"""Popularity-corrected decoding (not the paper's): the prior telescopes over the trie, beam search at full width
equals exact scoring with the prior, weight 0 changes nothing, a larger weight never raises the popularity of
the exact top-k, and bad arguments are refused."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.generator import MMGRecGenerator, PopularityPrior
from mmgrec_lib.generator.decoding import beam_search, exact_scores
from mmgrec_lib.generator.training import evaluate_generator
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate


def _model(levels_card: int, seed: int):
    ds = make_tiny_dataset(n_users=30, n_items=60)
    rng = np.random.default_rng(seed)
    table = RecIDTable(disambiguate(rng.integers(0, levels_card, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MMGRecGenerator(table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g),
                            ds.train, d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8).eval()
    return ds, model


@pytest.fixture(scope="module", params=[3, 24], ids=["dense-levels", "padded-levels"])
def setup(request):
    ds, model = _model(request.param, seed=request.param)
    assert (model.trie.padded(1) is not None) == (request.param == 24)
    return ds, model


def test_prior_telescopes_to_the_items_log_popularity(setup):
    ds, model = setup
    counts = ds.item_popularity()
    prior = PopularityPrior(model.trie, counts, weight=0.7, alpha=0.5)
    q = (counts + 0.5) / (counts + 0.5).sum()
    torch.testing.assert_close(prior.item_term(), torch.as_tensor(-0.7 * np.log(q), dtype=torch.float32),
                               rtol=1e-5, atol=1e-5)
    # walking each item's Rec-ID step by step adds up to its whole term
    trie, node, total = model.trie, torch.zeros(ds.n_items, dtype=torch.long), torch.zeros(ds.n_items)
    for lvl in range(trie.n_levels):
        child = trie.step(lvl, node, trie.codes[:, lvl])
        total += prior.step(lvl, node, child[:, None])[:, 0]
        node = child
    assert torch.equal(node, torch.arange(ds.n_items))
    torch.testing.assert_close(total, prior.item_term(), rtol=1e-5, atol=1e-5)


def test_full_width_beam_equals_exact_scoring_with_the_prior(setup):
    ds, model = setup
    users, k = torch.arange(ds.n_users), 10
    prior = PopularityPrior(model.trie, ds.item_popularity(), weight=1.0)
    items, scores = beam_search(model, users, k, beam_width=ds.n_items, exclude=ds.val, prior=prior)
    exact = exact_scores(model, users, exclude=ds.val, prior=prior)                 # (B, I)
    plain = exact_scores(model, users, exclude=ds.val)
    finite = torch.isfinite(plain)
    assert torch.equal(finite, torch.isfinite(exact))
    torch.testing.assert_close(exact[finite], (plain + prior.item_term()[None])[finite], rtol=1e-5, atol=1e-5)
    top = exact.topk(k, dim=1)
    torch.testing.assert_close(scores, top.values, rtol=1e-4, atol=1e-4)
    assert torch.equal(items, top.indices)


def test_weight_zero_is_the_models_own_decoding(setup):
    ds, model = setup
    users = torch.arange(ds.n_users)
    zero = PopularityPrior(model.trie, ds.item_popularity(), weight=0.0)
    a = beam_search(model, users, 10, 12, exclude=ds.val)
    b = beam_search(model, users, 10, 12, exclude=ds.val, prior=zero)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    r0 = evaluate_generator(model, ds, "val", ks=(10,), beam_width=12)
    r1 = evaluate_generator(model, ds, "val", ks=(10,), beam_width=12, prior=zero)
    assert r0.mean() == r1.mean()


def test_a_larger_weight_never_raises_the_popularity_of_the_exact_top_k(setup):
    ds, model = setup
    users, k = torch.arange(ds.n_users), 5
    counts = ds.item_popularity()
    logq = torch.as_tensor(np.log(counts + 1.0), dtype=torch.float32)
    sums = []
    for w in (0.0, 0.5, 1.0, 3.0):
        top = exact_scores(model, users, prior=PopularityPrior(model.trie, counts, w)).topk(k, dim=1).indices
        sums.append(logq[top].sum(1))                                               # (B,) per user
    for lo, hi in zip(sums, sums[1:]):
        assert (hi <= lo + 1e-4).all()
    assert (sums[-1] < sums[0] - 1e-4).any()                                        # and it does move


def test_bad_priors_are_refused(setup):
    ds, model = setup
    counts = ds.item_popularity()
    with pytest.raises(ValueError, match="counts has 59 entries"):
        PopularityPrior(model.trie, counts[:-1], 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        PopularityPrior(model.trie, -np.ones(ds.n_items), 1.0)
    with pytest.raises(ValueError, match="weight"):
        PopularityPrior(model.trie, counts, float("nan"))
    with pytest.raises(ValueError, match="weight"):
        PopularityPrior(model.trie, counts, -1.0)
    with pytest.raises(ValueError, match="alpha"):
        PopularityPrior(model.trie, counts, 1.0, alpha=0.0)


def test_prior_sweep_cache_is_reused_and_dropped_when_the_checkpoint_changes(setup, tmp_path, monkeypatch):
    from mmgrec_lib.experiments import debias
    from mmgrec_lib.experiments.decode_cache import cache_path
    ds, model = setup
    ckpt = tmp_path / "gen.pt"
    ckpt.write_bytes(b"weights v1")
    cache = cache_path(ckpt)                                                 # beside the checkpoint: gen.decode.pt
    calls = []
    real = debias.prior_evaluate
    monkeypatch.setattr(debias, "prior_evaluate", lambda m, d, split, w, *a, **k: calls.append((split, w)) or real(m, d, split, w, *a, **k))
    first, w1, _ = debias.prior_sweep(model, ds, (0.0, 0.5), beam=12, ks=(10,), test=False, checkpoint=ckpt)
    assert calls == [("val", 0.0), ("val", 0.5)] and cache.is_file()
    again, w2, _ = debias.prior_sweep(model, ds, (0.0, 0.5, 1.0), beam=12, ks=(10,), test=False, checkpoint=ckpt)
    assert calls[2:] == [("val", 1.0)]                                       # only the new weight is decoded
    pd.testing.assert_frame_equal(first.drop(columns="chosen"), again.iloc[:2].drop(columns="chosen"))
    debias.prior_sweep(model, ds, (0.0,), beam=10, ks=(10,), test=False, checkpoint=ckpt)
    assert calls[3:] == [("val", 0.0)]                                       # another beam is another entry
    ckpt.write_bytes(b"weights v2, retrained")
    debias.prior_sweep(model, ds, (0.0,), beam=12, ks=(10,), test=False, checkpoint=ckpt)
    assert calls[4:] == [("val", 0.0)]                                       # a changed checkpoint: decoded again
    cache.write_bytes(b"not a torch file")
    debias.prior_sweep(model, ds, (0.5,), beam=12, ks=(10,), test=False, checkpoint=ckpt)
    assert calls[5:] == [("val", 0.5)]                                       # an unreadable cache is ignored
    debias.prior_sweep(model, ds, (0.5,), beam=12, ks=(10,), test=False)
    assert calls[6:] == [("val", 0.5)]                                       # without a checkpoint nothing is kept
