"""The logit-adjusted loss (not the paper's; ``logit_adjust``): its token priors are distributions that add up along
an item's Rec-ID to the item's log-popularity, the adjusted loss is the cross-entropy of the adjusted logits written
out here from the codes alone, ``tau = 0`` is the plain loss bit for bit, the field is checked and left out of run
keys while off, and a model trains with it and decodes valid lists."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _fixtures import make_tiny_dataset
from mmgrec_lib.generator import GeneratorConfig, LogitAdjustment, MMGRecGenerator, PopularityPrior
from mmgrec_lib.generator import training as gt
from mmgrec_lib.generator.config import LATER_DEFAULTS, TrainConfig
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.training import LoopConfig

SMALL = dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8)
CFG = dict(SMALL, batch_size=64, beam_width=10, val_ks=(10,), lr=5e-3, device="cpu", dropout=0.0)


@pytest.fixture(scope="module", params=[3, 24], ids=["dense-levels", "padded-levels"])
def setup(request):
    ds = make_tiny_dataset(n_users=30, n_items=60)
    rng = np.random.default_rng(request.param)
    table = RecIDTable(disambiguate(rng.integers(0, request.param, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(request.param)
    u, i = torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g)
    torch.manual_seed(0)
    model = MMGRecGenerator(table, u, i, ds.train, **SMALL, dropout=0.0).eval()
    assert (model.trie.padded(1) is not None) == (request.param == 24)
    return ds, table, u, i, model


def _counts(ds) -> torch.Tensor:
    return torch.as_tensor(np.asarray(ds.item_popularity()), dtype=torch.long)


def test_token_priors_are_distributions_over_each_level(setup):
    ds, _, _, _, model = setup
    adj = LogitAdjustment(model.trie, _counts(ds), tau=1.0, alpha=0.5)
    for lvl in range(model.n_levels):
        nodes = torch.arange(model.trie.child_table(lvl).shape[0])
        log_pi = adj(lvl, nodes)                                                    # (n_nodes, C_lvl)
        assert log_pi.shape == (nodes.numel(), model.cardinalities[lvl]) and torch.isfinite(log_pi).all()
        torch.testing.assert_close(log_pi.double().exp().sum(1), torch.ones(nodes.numel(), dtype=torch.float64),
                                   rtol=1e-6, atol=1e-6)             # float32 terms
        # a token that extends no Rec-ID is never more likely than one that does
        valid = model.trie.child_table(lvl)[nodes] >= 0
        lowest_valid = log_pi.masked_fill(~valid, float("inf")).min(1).values
        highest_invalid = log_pi.masked_fill(valid, float("-inf")).max(1).values
        assert (highest_invalid <= lowest_valid).all()


def test_adjustments_add_up_to_the_items_log_popularity(setup):
    ds, _, _, _, model = setup
    counts, alpha, tau = _counts(ds) + 1, 1e-7, 0.8                                # every item seen: finite logs
    adj = LogitAdjustment(model.trie, counts, tau=tau, alpha=alpha)
    total = torch.zeros(ds.n_items, dtype=torch.float64)
    for lvl in range(model.n_levels):
        rows = adj(lvl, model.trie.item_node(lvl))                                  # (I, C)
        total += rows.double().gather(1, model.codes[:, lvl:lvl + 1])[:, 0]
    q = counts.double() / counts.double().sum()
    torch.testing.assert_close(total, tau * q.log(), rtol=1e-4, atol=1e-4)
    # the same as popularity-corrected decoding's whole term with weight -tau
    torch.testing.assert_close(total.float(), PopularityPrior(model.trie, counts, tau, alpha).item_term() * -1.0,
                               rtol=1e-4, atol=1e-4)


def test_adjusted_loss_is_the_cross_entropy_written_out_from_the_codes(setup):
    ds, _, _, _, model = setup
    counts, alpha, tau = _counts(ds), 0.5, 1.3
    users, items = torch.arange(12), torch.arange(12) * 4 % ds.n_items
    logits = model(users, items)                                                    # (B, M, Cmax)
    codes, mass = model.codes.numpy(), counts.double().numpy() + alpha
    ref = 0.0
    for lvl in range(model.n_levels):
        card = model.cardinalities[lvl]
        rows = []
        for t in items.tolist():
            same = (codes[:, :lvl] == codes[t, :lvl]).all(1)                       # items under the target's prefix
            m_child = np.array([mass[same & (codes[:, lvl] == c)].sum() for c in range(card)])
            rows.append(np.log(m_child + alpha) - np.log(mass[same].sum() + alpha * card))
        z = logits[:, lvl, :card] + tau * torch.as_tensor(np.array(rows), dtype=torch.float32)
        ref = ref + F.cross_entropy(z, model.codes[items, lvl])
    got = model.loss(users, items, adjust=LogitAdjustment(model.trie, counts, tau=tau, alpha=alpha))
    torch.testing.assert_close(got, ref / model.n_levels, rtol=1e-5, atol=1e-6)
    plain = model.loss(users, items)
    assert torch.equal(model.loss(users, items, adjust=LogitAdjustment(model.trie, counts, tau=0.0)), plain)
    assert not torch.allclose(got, plain)


def test_field_is_checked_and_left_out_of_run_keys_while_off():
    base = GeneratorConfig.from_dict(CFG)
    assert TrainConfig().logit_adjust == 0.0 == LATER_DEFAULTS["logit_adjust"]
    assert "logit_adjust" not in base.key_settings()
    assert base.replace(logit_adjust=0.5).key_settings()["logit_adjust"] == 0.5
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="logit_adjust"):
            GeneratorConfig.from_dict({**CFG, "logit_adjust": bad})
    with pytest.raises(ValueError, match="tau"):
        LogitAdjustment(None, [1], tau=-1.0)


def test_training_with_logit_adjustment_changes_the_model_and_decodes_valid_lists(setup):
    ds, table, u, i, _ = setup
    loop = LoopConfig(epochs=2, patience=0, progress=False)

    def train(tau):
        return gt.train_generator(ds, table, u, i, GeneratorConfig.from_dict({**CFG, "logit_adjust": tau}), loop,
                                  torch.Generator().manual_seed(3))
    plain, res0 = train(0.0)
    model, res = train(1.0)
    assert all(np.isfinite(r["loss"]) for r in res.history)
    assert res.history[0]["loss"] != res0.history[0]["loss"]
    users = torch.arange(ds.n_users)
    lists, _ = model.recommend(users, 10, 10)
    assert lists.shape == (ds.n_users, 10)
    train_items = torch.as_tensor(ds.train.toarray(), dtype=torch.bool)
    valid = lists >= 0
    assert not train_items.gather(1, lists.clamp(min=0))[valid].any()              # training items never listed
    assert not all(torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters()))
