"""MMGRec generator model: shapes, masking, relation-aware attention, encoder inputs, input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from _fixtures import make_tiny_dataset
import mmgrec_lib.generator.model as gm
from mmgrec_lib.generator.model import DecoderLayer, MMGRecGenerator, RelationAwareSelfAttention, math_attention
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.training import cpu_threads

SMALL = dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32)


def _table(n_items: int, seed: int = 0, levels: int = 2, card: int = 4) -> RecIDTable:
    rng = np.random.default_rng(seed)
    return RecIDTable(disambiguate(rng.integers(0, card, (n_items, levels)), rng.integers(0, 50, n_items)))


def _reprs(n_users: int, n_items: int, seed: int = 0, du: int = 12, di: int = 10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_users, du, generator=g), torch.randn(n_items, di, generator=g)


def _model(ds, **kw) -> MMGRecGenerator:
    u, i = _reprs(ds.n_users, ds.n_items)
    torch.manual_seed(0)
    args = {**SMALL, "max_len": 6, **kw}
    return MMGRecGenerator(_table(ds.n_items), u, i, ds.train, **args).eval()


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


# ---------------------------------------------------------------------- shapes and logits
def test_forward_shapes_and_level_ranges(ds):
    m = _model(ds)
    tr = ds.train.tocoo()
    users, items = torch.from_numpy(tr.row[:9].astype(np.int64)), torch.from_numpy(tr.col[:9].astype(np.int64))
    logits = m(users, items)
    cards = m.cardinalities
    assert logits.shape == (9, m.n_levels, max(cards))
    for lvl, c in enumerate(cards):
        assert torch.isfinite(logits[:, lvl, :c]).all()
        assert torch.isneginf(logits[:, lvl, c:]).all()
    loss = m.loss(users, items)
    assert loss.ndim == 0 and torch.isfinite(loss)
    mem, pad = m.encode(users)
    assert mem.shape[:2] == pad.shape and mem.shape[2] == 16 and pad.shape[1] <= 6
    # the vocabulary: disjoint level ranges, then BOS and PAD
    assert m.offsets.tolist() == list(np.cumsum([0] + cards[:-1]))
    assert (m.bos, m.pad_token) == (sum(cards), sum(cards) + 1)


@pytest.mark.parametrize("attention", ["relation", "sinusoidal", "none"])
def test_padding_does_not_change_outputs(attention):
    # user 0 has 3 items, user 1 has 7: encoding user 0 alone (no padding) or next to user 1 (4 pads)
    # must give the same encoder states at the real positions and the same logits.
    n_items = 20
    rows = [0] * 3 + [1] * 7
    cols = [2, 5, 9] + [1, 3, 4, 6, 8, 10, 11]
    hist = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(2, n_items))
    u, i = _reprs(2, n_items)
    torch.manual_seed(0)
    m = MMGRecGenerator(_table(n_items), u, i, hist, max_len=10, attention=attention, **SMALL).eval()
    alone, pad_a = m.encode(torch.tensor([0]))
    both, pad_b = m.encode(torch.tensor([0, 1]))
    assert pad_a.shape == (1, 3) and pad_b.shape == (2, 7) and pad_b[0].sum() == 4
    torch.testing.assert_close(alone[0], both[0, :3], rtol=1e-5, atol=1e-5)
    la = m(torch.tensor([0]), torch.tensor([2]))
    lb = m(torch.tensor([0, 1]), torch.tensor([2, 1]))
    torch.testing.assert_close(la[0], lb[0], rtol=1e-5, atol=1e-5)


def test_attention_ignores_garbage_in_padded_positions():
    torch.manual_seed(0)
    att = RelationAwareSelfAttention(16, 4, d_user=5).eval()
    x = torch.randn(2, 6, 16)
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    h_u = torch.randn(2, 5)
    y1 = att(x, pad, h_u)
    x2 = x.clone()
    x2[0, 4:] = 100 * torch.randn(2, 16)
    y2 = att(x2, pad, h_u)
    torch.testing.assert_close(y1[0, :4], y2[0, :4])
    torch.testing.assert_close(y1[1], y2[1])


# ---------------------------------------------------------------------- relation-aware attention
def test_relation_attention_is_standard_attention_when_user_scalars_are_zero():
    torch.manual_seed(0)
    D, H = 16, 4
    att = RelationAwareSelfAttention(D, H, d_user=5).eval()
    with torch.no_grad():
        att.user_mlp[-1].weight.zero_()
        att.user_mlp[-1].bias.zero_()
    ref = nn.MultiheadAttention(D, H, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(att.qkv.weight)
        ref.in_proj_bias.copy_(att.qkv.bias)
        ref.out_proj.weight.copy_(att.out.weight)
        ref.out_proj.bias.copy_(att.out.bias)
    x = torch.randn(3, 7, D)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[0, 5:] = True
    pad[2, 1:] = True
    h_u = torch.randn(3, 5)
    assert torch.equal(att.user_scalars(h_u), torch.zeros(3, 3))
    want, _ = ref(x, x, x, key_padding_mask=pad, need_weights=False)
    torch.testing.assert_close(att(x, pad, h_u), want, rtol=1e-5, atol=1e-5)
    # standard-attention variant (no user term) is the same computation
    std = RelationAwareSelfAttention(D, H, d_user=None).eval()
    std.load_state_dict({k: v for k, v in att.state_dict().items() if k.startswith(("qkv", "out"))})
    torch.testing.assert_close(std(x, pad, None), want, rtol=1e-5, atol=1e-5)


def test_relation_attention_matches_eq_17_and_19_written_out():
    torch.manual_seed(1)
    B, N, D, H = 2, 5, 8, 2
    dh = D // H
    att = RelationAwareSelfAttention(D, H, d_user=3).eval()
    E, h_u = torch.randn(B, N, D), torch.randn(B, 3)
    pad = torch.zeros(B, N, dtype=torch.bool)
    s = att.user_scalars(h_u)                                              # (B, 3)
    Wq, Wk, Wv = att.qkv.weight.split(D, 0)                                # (D, D) each, rows = output dims
    bq, bk, bv = att.qkv.bias.split(D, 0)
    heads = []
    for b in range(B):
        Wu = [s[b, c] * att.U[c] for c in range(3)]                        # W_u^{Q,K,V} = MLP(h_u) U
        Qu, Ku, Vu = (E[b] @ w for w in Wu)                                # (N, D)
        out_b = []
        for h in range(H):
            sl = slice(h * dh, (h + 1) * dh)
            Q, K, V = E[b] @ Wq[sl].T + bq[sl], E[b] @ Wk[sl].T + bk[sl], E[b] @ Wv[sl].T + bv[sl]
            eps = Q @ K.T / math.sqrt(dh) + Qu @ Ku.T / math.sqrt(D)        # eq. 17
            out_b.append(torch.softmax(eps, -1) @ (V + Vu[:, sl]))          # eq. 15 / 19
        heads.append(torch.cat(out_b, -1))
    want = att.out(torch.stack(heads))
    torch.testing.assert_close(att(E, pad, h_u), want, rtol=1e-5, atol=1e-5)


def _attention_inputs(B: int = 6, N: int = 9, H: int = 2, dh: int = 8, seed: int = 0):
    """q, k, v (B, H, N, dh) as the encoder makes them (views of one projection) and the relation bias with padded
    keys (each row keeps key 0), all from ``x``, the leaf whose gradient the tests compare."""
    g = torch.Generator().manual_seed(seed)
    D = H * dh
    x = torch.randn(B, N, 5 * D, generator=g, requires_grad=True)
    q, k, v, eq, ek = x.split(D, dim=-1)
    pad = torch.rand(B, N, generator=g) < 0.4
    pad[:, 0] = False
    bias = (eq @ ek.transpose(1, 2) / 5.0).masked_fill(pad[:, None, :], float("-inf"))[:, None]   # (B, 1, N, N)
    q, k, v = (t.reshape(B, N, H, dh).transpose(1, 2) for t in (q, k, v))
    return x, q, k, v, bias


@pytest.mark.parametrize("threads", [1, 2])
def test_math_attention_is_sdpa_bit_for_bit(threads):
    out = {}
    with cpu_threads(threads):                                  # the thread settings a training runs under
        for name, fn in (("sdpa", lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b)),
                         ("math", math_attention)):
            x, q, k, v, bias = _attention_inputs(B=40, N=30)
            y = fn(q, k, v, bias)
            y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1)))
            out[name] = (y.detach(), x.grad)
    assert torch.equal(out["math"][0], out["sdpa"][0])
    assert torch.equal(out["math"][1], out["sdpa"][1])
    assert out["math"][1].abs().sum() > 0


def test_relation_attention_takes_math_attention_exactly_where_sdpa_would_take_its_math_path(monkeypatch):
    torch.manual_seed(0)
    att = RelationAwareSelfAttention(16, 2, d_user=5).train()
    x, h_u = torch.randn(4, 7, 16), torch.randn(4, 5)
    pad = torch.zeros(4, 7, dtype=torch.bool)
    pad[1, 3:] = True

    def run():
        att.zero_grad(set_to_none=True)
        y = att(x, pad, h_u)
        y.square().sum().backward()
        return y.detach(), [p.grad.clone() for p in att.parameters()]

    y_math, g_math = run()
    calls = []
    monkeypatch.setattr(gm, "math_attention",
                        lambda q, k, v, b: calls.append(1) or F.scaled_dot_product_attention(q, k, v, attn_mask=b))
    y_sdpa, g_sdpa = run()
    assert calls and torch.equal(y_math, y_sdpa) and all(torch.equal(a, b) for a, b in zip(g_math, g_sdpa))
    calls.clear()
    with torch.no_grad():                     # no gradient: SDPA picks its fused kernel, so it is called itself
        att(x, pad, h_u)
    att.eval()
    att(x, pad, h_u)                          # eval with gradients: still the math path
    assert calls == [1]
    calls.clear()
    RelationAwareSelfAttention(16, 2, d_user=5, dropout=0.1).train()(x, pad, h_u)   # attention dropout: SDPA's
    RelationAwareSelfAttention(16, 2, d_user=None).train()(x, pad, None)            # constant key mask: SDPA's
    assert calls == []


def _decoder_layer_run(layer: nn.Module, beams: int, seed: int = 0):
    """Output and every gradient (inputs, then parameters) of ``layer`` on the generator's teacher-forcing
    shapes: ``beams`` target sequences of 4 positions per row side by side (block-diagonal causal mask; one
    sequence: the causal flag), a memory of 7 with padded keys; torch's generator seeded for dropout."""
    g = torch.Generator().manual_seed(seed)
    B, S, l, E = 48, 7, 4, 16
    x = torch.randn(B, beams * l, E, generator=g, requires_grad=True)
    memory = torch.randn(B, S, E, generator=g, requires_grad=True)
    pad = torch.rand(B, S, generator=g) < 0.3
    pad[:, 0] = False
    beam, pos = torch.arange(beams).repeat_interleave(l), torch.arange(l).repeat(beams)
    mask = (beam[:, None] != beam[None, :]) | (pos[None, :] > pos[:, None])
    layer.zero_grad(set_to_none=True)
    torch.manual_seed(seed + 1)
    y = layer(x, memory, tgt_mask=mask, memory_key_padding_mask=pad, tgt_is_causal=beams == 1)
    y.backward(torch.randn(y.shape, generator=g))
    return [y.detach(), x.grad, memory.grad] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("beams, attn_dropout", [(8, 0.0), (1, 0.0), (3, 0.2)])
def test_decoder_layer_is_torch_decoder_layer_bit_for_bit(threads, beams, attn_dropout):
    torch.manual_seed(0)
    ours = DecoderLayer(16, 2, 32, 0.1, batch_first=True).train()
    ref = nn.TransformerDecoderLayer(16, 2, 32, 0.1, batch_first=True).train()
    ref.load_state_dict(ours.state_dict())
    for layer in (ours, ref):
        layer.self_attn.dropout = layer.multihead_attn.dropout = attn_dropout
    with cpu_threads(threads):                                  # the thread settings a training runs under
        got, want = _decoder_layer_run(ours, beams), _decoder_layer_run(ref, beams)
    assert len(got) == len(want) == 3 + len(list(ref.parameters()))
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert got[2].abs().sum() > 0 and got[3].abs().sum() > 0


def test_decoder_layer_leaves_everything_but_training_attention_to_torch(monkeypatch):
    real, calls = gm.packed_attention, []
    monkeypatch.setattr(gm, "packed_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    ours = DecoderLayer(16, 2, 32, 0.0, batch_first=True).train()
    _decoder_layer_run(ours, beams=2)
    assert calls == [1, 1]                                  # self- and cross-attention
    calls.clear()
    ref = nn.TransformerDecoderLayer(16, 2, 32, 0.0, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x, memory = torch.randn(5, 4, 16), torch.randn(5, 7, 16)
    causal = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
    with torch.no_grad():                                   # eval: MHA's own (possibly fused) inference path
        assert torch.equal(ours.eval()(x, memory, tgt_mask=causal), ref.eval()(x, memory, tgt_mask=causal))
    ours.train()(x, memory)                                 # no target mask: torch's layer
    DecoderLayer(16, 2, 32, 0.0, batch_first=True, norm_first=True).train()(x, memory, tgt_mask=causal)
    ours(x, memory, tgt_mask=causal, tgt_key_padding_mask=torch.zeros(5, 4, dtype=torch.bool))
    assert calls == []


def _padded_loss(model, users, items, weights=None, restricted=False, distill_weight=0.0):
    """The loss as written before it read the levels' logits one by one: from :meth:`forward`'s padded
    ``(B, T, M, Cmax)`` logits, sliced per level (the reference of the test below)."""
    logits = model(users, items)
    B, T = items.shape
    flat = items.reshape(-1)
    valid = flat >= 0
    logits = logits.reshape(-1, model.n_levels, logits.shape[-1])[valid]
    targets = flat[valid]
    codes = model.codes[targets]

    def level(lvl):
        z = logits[:, lvl, :model.cardinalities[lvl]]
        if restricted:
            z = z.masked_fill(~model.trie.allowed(lvl, model.trie.item_node(lvl)[targets]), float("-inf"))
        return z

    w = None if weights is None else weights.reshape(-1, 1).expand(-1, T).reshape(-1)[valid]
    if w is None:
        total = logits.new_zeros(())
        for lvl in range(model.n_levels):
            total = total + F.cross_entropy(level(lvl), codes[:, lvl])
        ce = total / model.n_levels
    else:
        per_target = logits.new_zeros(targets.shape[0])
        for lvl in range(model.n_levels):
            per_target = per_target + F.cross_entropy(level(lvl), codes[:, lvl], reduction="none")
        ce = (w * per_target).sum() / (w.sum().clamp_min(1e-12) * model.n_levels)
    if not distill_weight:
        return ce
    teacher = model.teacher_log_conditionals(users.reshape(-1, 1).expand(-1, T).reshape(-1)[valid], targets, 1.0)
    kl = logits.new_zeros(targets.shape[0])
    for lvl in range(model.n_levels):
        kl = kl + model.distill_kl(teacher[lvl], F.log_softmax(level(lvl), dim=1))
    kl_mean = kl.mean() / model.n_levels if w is None else (w * kl).sum() / (w.sum() * model.n_levels)
    return ce + distill_weight * kl_mean


@pytest.mark.parametrize("kw", [{}, {"weights": True}, {"restricted": True}, {"distill_weight": 2.0},
                                {"distill_weight": 1.0, "weights": True, "restricted": True}])
def test_loss_reads_each_levels_logits_as_the_padded_forward_holds_them(ds, kw):
    u, i = _reprs(ds.n_users, ds.n_items, du=10, di=10)
    torch.manual_seed(0)
    model = MMGRecGenerator(_table(ds.n_items), u, i, ds.train, **SMALL, max_len=6, dropout=0.0,
                            distill_teacher=True).train()
    users = torch.arange(10)
    items = torch.stack([torch.arange(10), torch.arange(10, 20), torch.arange(20, 30)], 1)   # (10, 3)
    items[2, 1:] = -1
    items[5, 2] = -1
    weights = torch.rand(10, generator=torch.Generator().manual_seed(2)) + 0.5 if kw.get("weights") else None
    args = dict(restricted=kw.get("restricted", False), distill_weight=kw.get("distill_weight", 0.0))
    out = []
    for fn in (lambda: model.loss(users, items, weights=weights, distill_temperature=1.0, **args),
               lambda: _padded_loss(model, users, items, weights, **args)):
        model.zero_grad(set_to_none=True)
        loss = fn()
        loss.backward()
        out.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (a, ga), (b, gb) = out
    assert torch.equal(a, b) and len(ga) == len(gb) and all(torch.equal(x, y) for x, y in zip(ga, gb))


# ---------------------------------------------------------------------- encoder inputs
def test_target_never_in_its_own_encoder_input(ds):
    m = _model(ds, max_len=4)
    tr = ds.train.tocoo()
    users = torch.from_numpy(tr.row.astype(np.int64))
    items = torch.from_numpy(tr.col.astype(np.int64))
    counts = torch.from_numpy(np.diff(ds.train.indptr).astype(np.int64))
    train_sets = [set(r) for r in ds.user_items("train")]
    g = torch.Generator().manual_seed(0)
    for gen in (g, None):                                                  # training draw and inference hash
        ids, pad = m.encoder_inputs(users, exclude_items=items, generator=gen)
        real = ~pad & (ids < ds.n_items)
        assert not ((ids == items[:, None]) & real).any()
        assert torch.equal(real.sum(1), (counts[users] - 1).clamp(max=4))
        for b in range(0, len(users), 7):
            assert set(ids[b][real[b]].tolist()) <= train_sets[int(users[b])] - {int(items[b])}
    # without a target the whole history is used (up to max_len)
    ids, pad = m.encoder_inputs(torch.arange(ds.n_users))
    assert torch.equal((~pad).sum(1), counts.clamp(max=4))


def test_excluded_items_are_found_by_position_as_by_comparison(ds):
    """The input mask removes exactly the excluded items that the user has (found by a sorted search of
    (user, item) keys), as an all-pairs comparison of the history with the excluded items does: several targets
    per row, -1 padding, items the user never had; also after the history is replaced."""
    m = _model(ds, max_len=1000)
    g = torch.Generator().manual_seed(3)
    users = torch.randint(0, ds.n_users, (40,), generator=g)
    excl = torch.randint(-1, ds.n_items, (40, 5), generator=g)
    rows = [sorted(ds.train[int(u)].indices.tolist()) for u in users]
    excl[:, 0] = torch.tensor([r[len(r) // 2] if r else -1 for r in rows])       # one item each user has
    for _ in range(2):
        ids, keep = m.history.padded(users)
        ref = keep & (ids[:, :, None] != excl[:, None, :]).all(-1)
        col = m.history.positions(users, excl)
        assert ((col >= 0) == torch.tensor([[int(e) in set(r) for e in x] for r, x in zip(rows, excl)])).all()
        got, pad = m.encoder_inputs(users, exclude_items=excl)
        assert torch.equal((~pad).sum(1), ref.sum(1))
        for b in range(len(users)):
            assert got[b][~pad[b]].tolist() == ids[b][ref[b]].tolist()            # same items, CSR order
        m.set_history(ds.train + ds.val)                                            # other rows
        rows = [sorted((ds.train + ds.val)[int(u)].indices.tolist()) for u in users]


def test_subset_sampling_fresh_in_training_and_seeded_at_inference(ds):
    m = _model(ds, max_len=3)
    users = torch.arange(ds.n_users)
    g = torch.Generator().manual_seed(0)
    a, _ = m.encoder_inputs(users, generator=g)
    b, _ = m.encoder_inputs(users, generator=g)
    assert not torch.equal(a, b)                                           # a fresh subset each draw
    c, _ = m.encoder_inputs(users)
    d, _ = m.encoder_inputs(users.flip(0))
    assert torch.equal(c, d.flip(0))                                       # inference: batch-independent
    assert torch.equal(c, m.encoder_inputs(users)[0])


def test_user_without_input_items_is_handled():
    hist = sp.csr_matrix((np.ones(1, np.float32), ([0], [3])), shape=(2, 10))   # user 1: nothing
    u, i = _reprs(2, 10)
    m = MMGRecGenerator(_table(10), u, i, hist, **SMALL).eval()
    ids, pad = m.encoder_inputs(torch.tensor([0, 1]), exclude_items=torch.tensor([3, 0]))
    assert pad.shape == (2, 1) and not pad.any() and (ids == 10).all()     # one PAD vector, unmasked
    out = m(torch.tensor([0, 1]), torch.tensor([3, 5]))
    assert torch.isfinite(out[:, 0, : m.cardinalities[0]]).all()


# ---------------------------------------------------------------------- variants and registration
@pytest.mark.parametrize("kw", [dict(attention="relation"), dict(attention="sinusoidal"), dict(attention="none"),
                                dict(item_embedding="learned"), dict(finetune_item_emb=True)])
def test_every_trainable_parameter_gets_a_gradient(ds, kw):
    m = _model(ds, **kw).train()
    tr = ds.train.tocoo()
    m.loss(torch.from_numpy(tr.row[:32].astype(np.int64)), torch.from_numpy(tr.col[:32].astype(np.int64))).backward()
    names = {n for n, _ in m.named_parameters()}
    assert all(p.grad is not None for p in m.parameters()), [n for n, p in m.named_parameters() if p.grad is None]
    assert any("norm" in n for n in names)                                 # LayerNorms are registered
    assert ("encoder.0.attn.U" in names) == (kw.get("attention", "relation") == "relation")
    trainable_items = kw.get("item_embedding") == "learned" or kw.get("finetune_item_emb", False)
    assert ("item_table" in names) == trainable_items


# ---------------------------------------------------------------------- clear errors
def test_clear_errors(ds):
    u, i = _reprs(ds.n_users, ds.n_items)
    table = _table(ds.n_items)
    with pytest.raises(ValueError, match="item_repr has"):
        MMGRecGenerator(table, u, i[:-1], ds.train, **SMALL)
    with pytest.raises(ValueError, match="2-D"):
        MMGRecGenerator(table, u[:, 0], i, ds.train, **SMALL)
    bad = i.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        MMGRecGenerator(table, u, bad, ds.train, **SMALL)
    badu = u.clone()
    badu[0, 0] = float("inf")
    with pytest.raises(ValueError, match="user_repr contains NaN or inf"):
        MMGRecGenerator(table, badu, i, ds.train, **SMALL)
    with pytest.raises(ValueError, match="history has shape"):
        MMGRecGenerator(table, u[:-1], i, ds.train, **SMALL)
    with pytest.raises(ValueError, match="unknown attention"):
        MMGRecGenerator(table, u, i, ds.train, attention="rope", **SMALL)
    m = MMGRecGenerator(table, u, i, ds.train, **SMALL)
    with pytest.raises(ValueError, match="item ids must be in"):
        m.loss(torch.tensor([0]), torch.tensor([ds.n_items]))
    with pytest.raises(ValueError, match="user ids must be in"):
        m(torch.tensor([-1]), torch.tensor([0]))


def test_beams_sharing_memory_equal_repeated_memory(ds):
    m = _model(ds)
    users = torch.arange(5)
    memory, pad = m.encode(users)
    g = torch.Generator().manual_seed(0)
    prefix = torch.stack([torch.randint(0, c, (5, 3), generator=g) for c in m.cardinalities[:2]], -1)  # (5, 3, 2)
    shared = m.decode(memory, pad, prefix)                                          # (5, 3, 3, D)
    repeated = m.decode(memory.repeat_interleave(3, 0), pad.repeat_interleave(3, 0), prefix.reshape(15, 2))
    assert shared.shape == (5, 3, 3, 16)
    torch.testing.assert_close(shared.reshape(15, 3, 16), repeated, rtol=1e-5, atol=1e-5)


def test_grouped_targets_all_left_out_and_single_column_equals_one_target(ds):
    m = _model(ds, max_len=50)
    users = torch.arange(ds.n_users)
    rows = ds.user_items("train")
    targets = torch.full((ds.n_users, 3), -1, dtype=torch.long)
    for u, r in enumerate(rows):
        r = list(r)[:3]
        targets[u, :len(r)] = torch.tensor(r, dtype=torch.long)
    ids, pad = m.encoder_inputs(users, exclude_items=targets)
    real = ~pad & (ids < ds.n_items)
    counts = torch.tensor([len(r) for r in rows])
    assert torch.equal(real.sum(1), counts - (targets >= 0).sum(1))         # exactly the targets left out
    assert not ((ids[:, :, None] == targets[:, None, :]) & real[:, :, None]).any()
    # (B, T) logits: one block per target; with only column 0 set it equals the one-target call
    logits = m(users, targets)
    assert logits.shape == (ds.n_users, 3, m.n_levels, max(m.cardinalities))
    one = targets.clone()
    one[:, 1:] = -1
    assert torch.allclose(m(users, one)[:, 0], m(users, targets[:, 0]), atol=1e-5)
    # the loss averages over real targets only
    per = torch.stack([m.loss(users[b:b + 1], targets[b:b + 1, 0]) for b in range(3)])
    assert torch.allclose(m.loss(users[:3], one[:3]), per.mean(), atol=1e-5)
    with pytest.raises(ValueError, match="item ids"):
        m(users[:2], torch.tensor([[0, ds.n_items], [1, -1]]))
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, T\)"):
        m(users[:2], torch.zeros(3, 2, dtype=torch.long))
