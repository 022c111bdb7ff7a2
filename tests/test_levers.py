"""The remaining generator levers of issue 11 (none of them the paper's; each off by default and left out of run
keys while off): popularity-debiased targets (``target_pop_power``), the set loss over a row's targets
(``set_loss``) and the output head tied to the RQ-VAE codebooks (``tie_output``). Off: bit-identical to the
plain loss; on: equal to the formulas written out here, exact under chunked accumulation, decodable, trainable."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _fixtures import make_tiny_dataset
from mmgrec_lib.experiments.runs import run_generator
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.generator import training as gt
from mmgrec_lib.generator.config import LATER_DEFAULTS, ModelConfig, TrainConfig
from mmgrec_lib.generator.decoding import beam_search, exact_scores
from mmgrec_lib.generator.model import MMGRecGenerator, tied_codewords
from mmgrec_lib.tokenizer import GraphRQVAEConfig, assign_recids
from mmgrec_lib.tokenizer.alternatives import assign_hkmeans, assign_id_without_graph
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.training import LoopConfig

SMALL = dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=5)
CFG = dict(SMALL, batch_size=64, beam_width=10, val_ks=(10,), lr=5e-3, device="cpu")
NEW_FIELDS = ("tie_output", "target_pop_power", "set_loss")
CARD = 4                                                      # semantic codebook size of the fixture's Rec-IDs
TINY_RECID = dict(dim=8, n_layers=2, codebook_size=8, batch_size=256, epochs=2, rq_epochs=3, patience=0,
                  rq_hidden_dim=16, rq_latent_dim=4, device="cpu", seed=0)


@pytest.fixture(scope="module")
def inputs():
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    rng = np.random.default_rng(0)
    codes = disambiguate(rng.integers(0, CARD, (ds.n_items, 2)), ds.item_popularity())
    table = RecIDTable(codes, [CARD, CARD, int(codes[:, -1].max()) + 1])          # 3 levels, full codebooks
    g = torch.Generator().manual_seed(1)
    books = torch.randn(2, CARD, 3, generator=g) * torch.tensor([4.0, 0.5])[:, None, None]   # (M-1, L, d_code)
    return ds, table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g), books


@pytest.fixture(scope="module")
def big():
    """Users with >= 20 training items, so groups of targets_per_input > 1 hold several targets."""
    ds = make_tiny_dataset(n_users=16, n_items=150, per_user=70, seed=1)
    rng = np.random.default_rng(1)
    table = RecIDTable(disambiguate(rng.integers(0, CARD, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(2)
    return ds, table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g)


def _model(inputs, **kw) -> MMGRecGenerator:
    ds, table, u, i, books = inputs
    torch.manual_seed(0)
    return MMGRecGenerator(table, u, i, ds.train, codebooks=books, distill_teacher=True, **{**SMALL, **kw}).eval()


def _rows(n_rows: int = 8, T: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` users and ``(B, T)`` targets with ``-1`` padding (rows of 3, 2 and 1 targets)."""
    users = torch.arange(n_rows)
    items = torch.arange(n_rows * T).reshape(n_rows, T) % 40
    items[1::3, 2] = -1
    items[2::3, 1:] = -1
    return users, items


def _grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _target_log_likelihoods(model, users, items, restricted=False) -> torch.Tensor:
    """``(B, T)`` full Rec-ID log-likelihood of every target slot (``-inf`` at padding), written out."""
    logits = model(users, items)                                                    # (B, T, M, Cmax)
    out = torch.full(items.shape, float("-inf"))
    for b in range(items.shape[0]):
        for t in range(items.shape[1]):
            it = int(items[b, t])
            if it < 0:
                continue
            total = 0.0
            for lvl, card in enumerate(model.cardinalities):
                z = logits[b, t, lvl, :card]
                if restricted:
                    z = z.masked_fill(~model.trie.allowed(lvl, model.trie.item_node(lvl)[it:it + 1])[0], float("-inf"))
                total = total + F.log_softmax(z, 0)[model.codes[it, lvl]]
            out[b, t] = total
    return out


# ---------------------------------------------------------------------- config and run keys
def test_run_key_at_defaults_leaves_out_the_new_fields():
    base = GeneratorConfig.from_dict(CFG)
    key = base.key_settings()
    old = {k: v for k, v in base.flat().items()                    # the key as computed before these fields
           if k not in NEW_FIELDS and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
    assert key == old and not set(NEW_FIELDS) & set(key)
    on = base.replace(tie_output=True, target_pop_power=0.5).key_settings()
    assert (on["tie_output"], on["target_pop_power"]) == (True, 0.5)
    assert base.replace(targets_per_input=4, set_loss=True).key_settings()["set_loss"] is True
    assert ModelConfig().tie_output is False and TrainConfig().set_loss is False
    assert TrainConfig().target_pop_power == 0.0


@pytest.mark.parametrize("changes,error,field", [
    ({"target_pop_power": -0.5}, ValueError, "target_pop_power"),
    ({"target_pop_power": float("nan")}, ValueError, "target_pop_power"),
    ({"target_pop_power": float("inf")}, ValueError, "target_pop_power"),
    ({"target_pop_power": "1"}, TypeError, "target_pop_power"),
    ({"set_loss": 1}, TypeError, "set_loss"),
    ({"tie_output": "yes"}, TypeError, "tie_output"),
    ({"set_loss": True}, ValueError, "set_loss"),                                  # targets_per_input 1
    ({"set_loss": True, "targets_per_input": 4, "label_smoothing": 0.1}, ValueError, "label_smoothing"),
    ({"set_loss": True, "targets_per_input": 4, "distill_weight": 1.0}, ValueError, "distill_weight"),
    ({"set_loss": True, "targets_per_input": 4, "target_pop_power": 0.5}, ValueError, "target_pop_power"),
])
def test_bad_values_name_the_field(changes, error, field):
    with pytest.raises(error, match=field):
        GeneratorConfig.from_dict({**CFG, **changes})
    # supported combinations build
    GeneratorConfig.from_dict({**CFG, "set_loss": True, "targets_per_input": 4, "restricted_loss": True,
                               "user_weight_power": 0.5, "tie_output": True})
    GeneratorConfig.from_dict({**CFG, "target_pop_power": 1.0, "user_weight_power": 0.5, "distill_weight": 1.0,
                               "label_smoothing": 0.1})


# ---------------------------------------------------------------------- off: bit-identical
def test_options_off_are_bit_identical(inputs):
    ds, table, u, i, books = inputs
    model = _model(inputs)
    users, items = _rows()
    l0, g0 = _grads(model, lambda: model.loss(users, items))
    l1, g1 = _grads(model, lambda: model.loss(users, items, set_loss=False, weights=None))
    assert torch.equal(l0, l1) and g0.keys() == g1.keys() and all(torch.equal(g0[n], g1[n]) for n in g0)
    valid = items >= 0                                             # the plain loss, written out
    logits = model(users, items)[valid]                                            # (P, M, Cmax)
    codes = model.codes[items[valid]]
    ref = sum(F.cross_entropy(logits[:, lvl, :c], codes[:, lvl])
              for lvl, c in enumerate(model.cardinalities)) / model.n_levels
    assert torch.equal(l0, ref.detach())
    # (B, T) weights that repeat a row's weight are the (B,) row weights, bit for bit
    w = torch.linspace(0.5, 2.0, users.numel())
    lw, gw = _grads(model, lambda: model.loss(users, items, weights=w))
    lt, gt_ = _grads(model, lambda: model.loss(users, items, weights=w[:, None].expand_as(items).clone()))
    assert torch.equal(lw, lt) and all(torch.equal(gw[n], gt_[n]) for n in gw)
    # tie_output off: handing the codebooks over changes nothing (same weights, same logits, no buffer)
    torch.manual_seed(0)
    plain = MMGRecGenerator(table, u, i, ds.train, distill_teacher=True, **SMALL).eval()
    assert model.code_proj is None and "codewords" not in dict(model.named_buffers())
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(model.state_dict()[k], plain.state_dict()[k]) for k in plain.state_dict())
    assert torch.equal(plain(users, items), model(users, items))
    h = torch.randn(5, SMALL["d_model"])
    for lvl in range(model.n_levels):                              # level_logits: the head's rows of the level
        lo = int(model.offsets[lvl])
        ref = F.linear(h, model.head.weight[lo:lo + model.cardinalities[lvl]],
                       model.head.bias[lo:lo + model.cardinalities[lvl]])
        assert torch.equal(model.level_logits(h, lvl), ref)


def test_default_epochs_ignore_the_new_fields_at_their_defaults(inputs):
    ds, table, u, i, _ = inputs
    users, items = gt.training_pairs(ds)

    def epoch(**kw):
        config = GeneratorConfig.from_dict({**CFG, "batch_size": 16, "targets_per_input": 2, **kw})
        model = gt.build_generator(ds, table, u, i, config)
        opt = gt.make_optimizer(model, config.train)
        loss = gt.run_epoch(model, opt, users, items, config.train, torch.Generator().manual_seed(3))["loss"]
        return loss, model.state_dict()
    for kw in ({}, {"user_weight_power": 0.5}):
        l0, s0 = epoch(**kw)
        l1, s1 = epoch(**kw, target_pop_power=0.0, set_loss=False, tie_output=False)
        assert l0 == l1 and all(torch.equal(s0[k], s1[k]) for k in s0)


# ---------------------------------------------------------------------- popularity-debiased targets
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_target_weights_are_pop_power_normalised(big, p):
    ds = big[0]
    users, items = gt.training_pairs(ds)
    counts = torch.bincount(users, minlength=ds.n_users)
    pop = torch.bincount(items, minlength=ds.n_items)
    g_users, g_items = gt.training_groups(counts, users, items, 3, torch.Generator().manual_seed(0))
    assert int((g_items >= 0).sum(1).max()) > 1                                     # several targets per row
    beta = 0.7
    w = gt.target_weights(TrainConfig(target_pop_power=beta, user_weight_power=p), counts, pop, g_users, g_items)
    assert w.shape == g_items.shape and (w[g_items < 0] == 0).all()
    ref = torch.zeros(g_items.shape, dtype=torch.float64)
    for r in range(g_items.shape[0]):
        for t in range(g_items.shape[1]):
            it = int(g_items[r, t])
            if it >= 0:
                ref[r, t] = float(pop[it]) ** -beta * float(counts[g_users[r]]) ** -p
    ref *= int((g_items >= 0).sum()) / ref.sum()
    torch.testing.assert_close(w.double(), ref, rtol=1e-6, atol=1e-7)
    assert float(w[g_items >= 0].mean()) == pytest.approx(1.0, rel=1e-5)
    pops = pop[g_items[g_items >= 0]]
    assert float(w[g_items >= 0][pops == pops.max()].max()) < float(w[g_items >= 0][pops == pops.min()].min())
    # off: no weights, or the (G,) user weights of user_weight_power as before
    assert gt.target_weights(TrainConfig(), counts, pop, g_users, g_items) is None
    uw = gt.target_weights(TrainConfig(user_weight_power=0.5), counts, pop, g_users, g_items)
    assert uw.shape == g_users.shape


def test_per_target_weights_give_the_brute_force_weighted_mean(inputs):
    model = _model(inputs)
    users, items = _rows()
    w = torch.rand(items.shape, generator=torch.Generator().manual_seed(4)) + 0.1
    w[items < 0] = 123.0                                                           # ignored at padding
    got = model.loss(users, items, weights=w)
    logits = model(users, items)
    num = den = 0.0
    for b in range(items.shape[0]):
        for t in range(items.shape[1]):
            it = int(items[b, t])
            if it < 0:
                continue
            ce = sum(F.cross_entropy(logits[b, t, lvl, :c][None], model.codes[it, lvl][None])
                     for lvl, c in enumerate(model.cardinalities)) / model.n_levels
            num, den = num + float(w[b, t]) * ce, den + float(w[b, t])
    torch.testing.assert_close(got, num / den)
    with pytest.raises(ValueError, match="weights"):
        model.loss(users, items, weights=w[:, :2])


@pytest.mark.parametrize("extra", [{}, {"restricted": True, "distill_weight": 0.7, "distill_temperature": 1.3},
                                   {"label_smoothing": 0.1}])
def test_chunked_accumulation_is_exact_with_per_target_weights(inputs, extra):
    model = _model(inputs, finetune_item_emb=True)
    users, items = _rows(10)
    w = torch.rand(items.shape, generator=torch.Generator().manual_seed(5)) + 0.1

    def run(chunks):
        model.zero_grad(set_to_none=True)
        total, n = gt.accumulate_gradients(model, users, items, chunks, weights=w, **extra)
        return total, n, [p.grad.clone() for p in model.parameters() if p.grad is not None]
    t1, n1, g1 = run([torch.arange(10)])
    t2, n2, g2 = run([torch.tensor([2, 5, 8]), torch.tensor([0, 1, 3, 4]), torch.tensor([6, 7, 9])])
    assert n1 == n2 == int((items >= 0).sum()) and torch.allclose(t1, t2)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g2))
    with torch.no_grad():
        single = model.loss(users, items, weights=w, **extra)
    assert float(t1) == pytest.approx(float(single) * float(w[items >= 0].sum()), rel=1e-5)


# ---------------------------------------------------------------------- set loss
@pytest.mark.parametrize("restricted", [False, True])
def test_set_loss_is_the_hand_written_logsumexp(inputs, restricted):
    model = _model(inputs)
    users, items = _rows()
    ll = _target_log_likelihoods(model, users, items, restricted)                  # (B, T)
    n_r = (items >= 0).sum(1)
    row = -torch.logsumexp(ll, 1) + torch.log(n_r.float())                         # -log mean_t p(t | u)
    got = model.loss(users, items, set_loss=True, restricted=restricted)
    torch.testing.assert_close(got, row.mean() / model.n_levels)
    w = torch.linspace(0.2, 2.0, users.numel())
    torch.testing.assert_close(model.loss(users, items, set_loss=True, restricted=restricted, weights=w),
                               (w * row).sum() / w.sum() / model.n_levels)
    # one target per row: the plain loss; full rows: at most the plain loss (Jensen)
    one = items[:, :1]
    torch.testing.assert_close(model.loss(users, one, set_loss=True, restricted=restricted),
                               model.loss(users, one, restricted=restricted))
    full = torch.arange(24).reshape(8, 3)
    assert model.loss(users, full, set_loss=True) <= model.loss(users, full)
    with pytest.raises(ValueError, match="set_loss"):
        model.loss(users, items, set_loss=True, label_smoothing=0.1)
    with pytest.raises(ValueError, match="per-row"):
        model.loss(users, items, set_loss=True, weights=torch.ones(items.shape))


@pytest.mark.parametrize("weighted,restricted", [(False, False), (True, False), (False, True)])
def test_set_loss_is_exact_under_chunking(inputs, weighted, restricted):
    model = _model(inputs, finetune_item_emb=True)
    users, items = _rows(10)
    items[4] = -1                                                                  # a row without targets
    w = torch.linspace(0.5, 2.0, 10) if weighted else None

    def run(chunks):
        model.zero_grad(set_to_none=True)
        total, n = gt.accumulate_gradients(model, users, items, chunks, weights=w, restricted=restricted,
                                           set_loss=True)
        return total, n, [p.grad.clone() for p in model.parameters() if p.grad is not None]
    t1, n1, g1 = run([torch.arange(10)])
    t2, n2, g2 = run([torch.tensor([0, 3, 6, 9]), torch.tensor([1, 4, 7]), torch.tensor([2, 5, 8])])
    assert n1 == n2 == 9                                                           # rows with targets
    assert torch.allclose(t1, t2) and all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g2))
    with torch.no_grad():
        single = model.loss(users, items, weights=w, restricted=restricted, set_loss=True)
    rows = (items >= 0).any(1)
    scale = 9 if w is None else float(w[rows].sum())
    assert float(t1) == pytest.approx(float(single) * scale, rel=1e-5)
    # and the one pass's gradient is the gradient of that loss
    _, g = _grads(model, lambda: model.loss(users, items, weights=w, restricted=restricted, set_loss=True))
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g.values()))


def test_set_loss_with_single_target_rows_trains_like_the_plain_loss(inputs):
    """The small fixture's users have < 20 items: every group holds one target, so the set loss is the plain one."""
    ds, table, u, i, _ = inputs
    users, items = gt.training_pairs(ds)

    def epoch(**kw):
        config = GeneratorConfig.from_dict({**CFG, "batch_size": 16, "targets_per_input": 2, "dropout": 0.0, **kw})
        model = gt.build_generator(ds, table, u, i, config)
        opt = gt.make_optimizer(model, config.train)
        return gt.run_epoch(model, opt, users, items, config.train, torch.Generator().manual_seed(3))["loss"], model
    l0, m0 = epoch()
    l1, m1 = epoch(set_loss=True)
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(m0.parameters(), m1.parameters()))


# ---------------------------------------------------------------------- tied output head
def test_tied_codewords_are_standardised_per_level(inputs):
    books = inputs[4]
    c = tied_codewords(books).view(2, CARD, -1)
    ref = (books - books.mean(1, keepdim=True))
    ref = ref / ref.pow(2).sum(2).mean(1).sqrt()[:, None, None]
    torch.testing.assert_close(c, ref)
    torch.testing.assert_close(c.pow(2).sum(2).mean(1), torch.ones(2))             # one scale per level


def test_tied_logits_are_h_P_c_plus_b(inputs):
    model = _model(inputs, tie_output=True)
    assert "codewords" not in model.state_dict() and not model.codewords.requires_grad
    assert set(model.state_dict()) >= {"code_proj.weight", "code_bias", "head.weight", "head.bias"}
    assert model.head.weight.shape == (model.cardinalities[-1], SMALL["d_model"])
    c = tied_codewords(inputs[4])                                                  # (n_sem, d_code)
    P, b = model.code_proj.weight, model.code_bias                                 # (D, d_code), (n_sem,)
    h = torch.randn(6, SMALL["d_model"], generator=torch.Generator().manual_seed(0))
    for lvl in range(model.n_levels - 1):
        rows = slice(lvl * CARD, (lvl + 1) * CARD)
        torch.testing.assert_close(model.level_logits(h, lvl), h @ (c[rows] @ P.T).T + b[rows])
    last = model.n_levels - 1
    torch.testing.assert_close(model.level_logits(h, last), h @ model.head.weight.T + model.head.bias)
    # teacher forcing reads the same head: forward's logits are level_logits of the decoder states
    users, items = _rows()
    logits = model(users, items)                                                   # (B, T, M, Cmax)
    memory, pad = model.encode(users, exclude_items=items)
    states = model.decode(memory, pad, model.codes[items.clamp(min=0)][..., :-1])  # (B, T, M, D)
    for lvl, card in enumerate(model.cardinalities):
        torch.testing.assert_close(logits[..., lvl, :card], model.level_logits(states[..., lvl, :], lvl))
    # the codewords stay frozen; P, b and the last level's rows learn
    _, g = _grads(model, lambda: model.loss(users, items))
    assert {"code_proj.weight", "code_bias", "head.weight"} <= set(g) and model.codewords.grad is None


def test_beam_search_equals_exact_scoring_with_the_tied_head(inputs):
    ds = inputs[0]
    model = _model(inputs, tie_output=True)
    users = torch.arange(ds.n_users)
    k = 10
    items, scores = beam_search(model, users, k, beam_width=ds.n_items)
    exact = exact_scores(model, users)
    top = exact.topk(k, dim=1)
    torch.testing.assert_close(scores, top.values, rtol=1e-4, atol=1e-4)
    assert torch.equal(items, top.indices)
    assert torch.equal(model.recommend(users, k, ds.n_items)[0], items)


def test_tie_output_needs_matching_codebooks(inputs):
    ds, table, u, i, books = inputs
    with pytest.raises(ValueError, match="codebooks"):
        MMGRecGenerator(table, u, i, ds.train, tie_output=True, **SMALL)
    with pytest.raises(ValueError, match="codebooks"):
        MMGRecGenerator(table, u, i, ds.train, codebooks=books[:, :3], tie_output=True, **SMALL)
    with pytest.raises(ValueError, match="codebooks"):
        MMGRecGenerator(table, u, i, ds.train, codebooks=books[:1], tie_output=True, **SMALL)
    with pytest.raises(ValueError, match="finite"):
        MMGRecGenerator(table, u, i, ds.train, codebooks=books * math.inf, tie_output=True, **SMALL)


# ---------------------------------------------------------------------- the Rec-ID runs' codebooks
@pytest.fixture(scope="module")
def recid_runs():
    ds = make_tiny_dataset()
    run = assign_recids(ds, GraphRQVAEConfig(**TINY_RECID), progress=False)
    return ds, run


def test_semantic_codebooks_of_each_kind_of_run(recid_runs):
    ds, run = recid_runs
    books = run.semantic_codebooks()
    assert books.shape == (3, 8, 4) and books.dtype == torch.float32
    assert torch.equal(books, run.model_state["rqvae.quantizer.codebooks"].float())
    cfg = GraphRQVAEConfig(**TINY_RECID)
    alone = assign_id_without_graph(ds, cfg)                                        # its own RQ-VAE
    assert torch.equal(alone.semantic_codebooks(), alone.model_state["quantizer.codebooks"].float())
    for other in (assign_hkmeans(run, ds), assign_id_without_graph(ds, cfg, base_run=run)):
        with pytest.raises(ValueError, match="no RQ-VAE codebooks"):
            other.semantic_codebooks()


# ---------------------------------------------------------------------- end to end
def test_tied_generator_trains_from_a_graph_rqvae_run(recid_runs, tmp_path):
    ds, run = recid_runs
    config = GeneratorConfig.from_dict({**CFG, "tie_output": True})
    res = run_generator(ds, run, config, LoopConfig(epochs=2, patience=0, progress=False), runs_dir=tmp_path,
                        ks=(10,))
    assert [r["epoch"] for r in res.fit.history] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in res.fit.history) and "recall@10" in res.test.mean()
    torch.testing.assert_close(res.model.codewords.cpu(), tied_codewords(run.semantic_codebooks()))
    again = run_generator(ds, run, config, LoopConfig(epochs=2, patience=0, progress=False), runs_dir=tmp_path,
                        ks=(10,))
    assert again.checkpoint == res.checkpoint and again.test.mean() == res.test.mean()   # reused by run key
    hk = assign_hkmeans(run, ds)
    with pytest.raises(ValueError, match="tie_output"):
        run_generator(ds, hk, config, LoopConfig(epochs=1, patience=0, progress=False), ks=(10,))


@pytest.mark.parametrize("levers", [{"target_pop_power": 0.5, "targets_per_input": 3, "user_weight_power": 0.5},
                                    {"target_pop_power": 1.0},
                                    {"set_loss": True, "targets_per_input": 3, "restricted_loss": True,
                                     "user_weight_power": 0.5},
                                    {"set_loss": True, "targets_per_input": 4}])
def test_two_epoch_training_with_each_loss_lever(big, levers):
    ds, table, u, i = big
    config = GeneratorConfig.from_dict({**CFG, **levers})
    loop = LoopConfig(epochs=2, patience=0, progress=False)
    model, res = gt.train_generator(ds, table, u, i, config, loop, torch.Generator().manual_seed(7))
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert all(np.isfinite(r["loss"]) and "recall@10" in r for r in res.history)
    plain, res0 = gt.train_generator(ds, table, u, i, GeneratorConfig.from_dict(
        {**CFG, "targets_per_input": levers.get("targets_per_input", 1)}), loop, torch.Generator().manual_seed(7))
    assert res.history[0]["loss"] != res0.history[0]["loss"]                        # the lever changes training
