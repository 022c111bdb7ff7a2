"""GRCN and LightGT under the Recommender interface: shapes, learning signal on planted clusters, save/load,
determinism, exact resume (with dropout on), clear errors without modality features or with bad configs; GRCN's
refined edge weights against a direct computation; LightGT's layer-wise position encodings against a dense
LightGCN and its input subsets. Tiny data only (make_tiny_dataset: 40 users x 60 items, two modalities)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _baseline_checks import CommonChecks, Harness, ModalityChecks
from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines.grcn import GRCN, GRCNConfig
from mmgrec_lib.baselines.lightgt import LightGT, LightGTConfig

SMALL = {
    GRCN: dict(dim=16, content_dim=8, n_layers=2, n_routing=3, edge_dropout=0.2, lr=0.02, batch_size=128,
               device="cpu"),
    LightGT: dict(dim=16, n_layers=2, n_heads=2, dropout=0.1, max_len=8, n_gcn_layers=2, lr=0.02, batch_size=128,
                  device="cpu"),
}
MODELS = [GRCN, LightGT]
H = Harness(SMALL)
_build, _trained = H.build, H.trained


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


class TestCommon(CommonChecks, ModalityChecks):
    harness, MODELS, SEED_EPOCHS, KEEPS_GLOBAL_RNG = H, MODELS, 3, True


def test_config_errors(ds):
    for make, match in [(lambda: GRCNConfig(weight_mode="mean"), "weight_mode must be one of"),
                        (lambda: GRCNConfig(edge_dropout=1.0), r"edge_dropout must be in \[0, 1\)"),
                        (lambda: GRCNConfig(n_layers=0), "n_layers must be > 0"),
                        (lambda: GRCNConfig(n_routing=-1), "n_routing must be >= 0"),
                        (lambda: GRCNConfig(content_dim=0), "content_dim must be > 0"),
                        (lambda: LightGTConfig(dim=30, n_heads=4), r"n_heads \(4\) must divide dim \(30\)"),
                        (lambda: LightGTConfig(dropout=-0.1), r"dropout must be in \[0, 1\)"),
                        (lambda: LightGTConfig(max_len=0), "max_len must be > 0"),
                        (lambda: LightGTConfig(n_layers=0), "n_layers must be > 0"),
                        (lambda: LightGTConfig(n_gcn_layers=-1), "n_gcn_layers must be >= 0"),
                        (lambda: LightGT.from_dataset(ds, n_heads=3, dim=16, device="cpu"), "must divide dim")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match=r"LightGTConfig: max_len = 2.5"):
        LightGTConfig(max_len=2.5)


# ---------------------------------------------------------------------------------------------- GRCN
def _direct_refined_weights(model: GRCN) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge affinities ``(E, M)`` and pruned max weights ``(E,)`` by a per-user loop (the plain way)."""
    users, items = model.edge_index
    s = torch.zeros(len(users), model.n_modalities, dtype=torch.double)
    for m in range(model.n_modalities):
        x = model.modality_block(m).double()
        lin = model.proj[m]
        f = F.leaky_relu(x @ lin.weight.double().T + lin.bias.double(), model.config.negative_slope)
        f = F.normalize(f, dim=1) * model.feature_masks[:, m, None]                  # (I, C)
        for u in users.unique().tolist():
            edges = torch.nonzero(users == u).flatten()
            fu = f[items[edges]]                                                     # (n_u, C)
            p = F.normalize(model.preference[m, u].double(), dim=0)
            for _ in range(model.config.n_routing):
                alpha = torch.softmax(fu @ p, 0)
                p = F.normalize(p + alpha @ fu, dim=0)
            s[edges, m] = fu @ p
    return s, s.max(1).values.clamp_min(0)


def test_grcn_refined_edge_weights_match_direct_computation(ds):
    model, _ = _trained(GRCN, ds, epochs=2)
    with torch.no_grad():
        _, _, s, w = model.refine()
    s_ref, w_ref = _direct_refined_weights(model)
    assert s.shape == (ds.train.nnz, 2) and w.shape == (ds.train.nnz,)
    assert torch.allclose(s.double(), s_ref, atol=1e-5) and torch.allclose(w.double(), w_ref, atol=1e-5)
    assert (s.abs() <= 1 + 1e-5).all()                                  # cosines
    # softmax weighting: a learned convex combination of the modality affinities, then pruned
    soft = _build(GRCN, ds, weight_mode="softmax")
    with torch.no_grad():
        soft.modality_logits.copy_(torch.tensor([0.0, float(np.log(3.0))]))
        _, _, s2, w2 = soft.refine()
    assert torch.allclose(w2, (0.25 * s2[:, 0] + 0.75 * s2[:, 1]).clamp_min(0), atol=1e-6)


def test_grcn_routing_matches_edgewise_equation_with_gradients():
    """route_preferences (sampled and sparse products on an EdgePattern) against the routing written edge by
    edge (gathers and index_add), values and gradients."""
    from mmgrec_lib.baselines.grcn import route_preferences, segment_softmax
    from mmgrec_lib.data.sparse import EdgePattern
    g = torch.Generator().manual_seed(0)
    users = torch.tensor([0, 0, 1, 2, 2, 2, 4, 3])
    items = torch.tensor([1, 4, 0, 0, 2, 3, 1, 4])
    pref = F.normalize(torch.randn(5, 6, dtype=torch.float64, generator=g), dim=1).requires_grad_()
    feats = F.normalize(torch.randn(5, 6, dtype=torch.float64, generator=g), dim=1).requires_grad_()

    def edgewise(p, f):
        f_e = f[items]
        for _ in range(3):
            alpha = segment_softmax((p[users] * f_e).sum(-1), users, 5)
            p = F.normalize(p + torch.zeros_like(p).index_add(0, users, alpha[:, None] * f_e), dim=1)
        return p

    ref = edgewise(pref, feats)
    out = route_preferences(pref, feats, EdgePattern(users, items, (5, 5)), 3)
    assert torch.allclose(out, ref, atol=1e-12)
    g_ref = torch.autograd.grad((ref * ref.detach().cos()).sum(), (pref, feats))
    g_out = torch.autograd.grad((out * out.detach().cos()).sum(), (pref, feats))
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(g_out, g_ref))


def test_grcn_pruned_edges_carry_no_messages(ds):
    model = _build(GRCN, ds, n_layers=1, n_routing=0, edge_dropout=0.0)      # unrouted: many negative affinities
    with torch.no_grad():
        model.id_emb.zero_()
        gen = torch.Generator().manual_seed(0)
        model.id_emb[ds.n_users:] = torch.randn(ds.n_items, model.config.dim, generator=gen)
        _, _, _, w = model.refine()
        user_rep, _ = model._propagate(train=False)
    users, items = model.edge_index
    n = ds.n_users + ds.n_items
    dense = torch.zeros(n, n, dtype=torch.double)
    dense[users, items + ds.n_users] = w.double()
    dense[items + ds.n_users, users] = w.double()
    deg = dense.sum(1)
    inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
    a_hat = inv[:, None] * dense * inv[None, :]
    expected = (model.id_emb.double() + a_hat @ model.id_emb.double()) / 2                   # L = 1 layer mean
    assert (w == 0).any() and (w > 0).any()                             # some edges pruned
    assert torch.allclose(user_rep[:, :model.config.dim].double(), expected[:ds.n_users], atol=1e-5)


# ---------------------------------------------------------------------------------------------- LightGT
def _dense_norm_adj(ds) -> torch.Tensor:
    n = ds.n_users + ds.n_items
    r = torch.from_numpy(ds.train.toarray()).double()
    a = torch.zeros(n, n, dtype=torch.double)
    a[:ds.n_users, ds.n_users:] = r
    a[ds.n_users:, :ds.n_users] = r.T
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
    return inv[:, None] * a * inv[None, :]


def test_lightgt_position_encoding_of_layer_l_is_lightgcn_layer_l(ds):
    model, _ = _trained(LightGT, ds, epochs=2, n_layers=3, n_gcn_layers=1)
    a_hat = _dense_norm_adj(ds)
    e = model.id_emb.detach().double()
    pe = model.position_encodings()
    assert len(pe) == 3
    for l in range(1, 4):                                              # E^(l) = A^l E^(0), item rows
        e = a_hat @ e
        assert torch.allclose(pe[l - 1].double(), e[ds.n_users:], atol=1e-6), f"layer {l}"
    # the encoder layers receive exactly these encodings at their item positions
    users = torch.arange(ds.n_users)
    items, pad = model.input_items(users)
    seen = {}

    def record(l):
        def hook(module, args):
            seen.setdefault(l, args[1].clone())                        # first call: the whole batch
        return hook

    hooks = [layer.register_forward_pre_hook(record(l)) for l, layer in enumerate(model.encoders[0])]
    try:
        model.score(users)
    finally:
        for h in hooks:
            h.remove()
    for l in range(3):
        assert torch.allclose(seen[l][~pad], pe[l][items[~pad]])
    # the mean of layers 0..K is the LightGCN representation (K = 1 here)
    _, e_bar, _, _ = model._inference_state()
    e0 = model.id_emb.detach().double()
    assert torch.allclose(e_bar.double(), (e0 + a_hat @ e0) / 2, atol=1e-6)


def test_lightgt_input_subsets(ds):
    model = _build(LightGT, ds, max_len=4)
    indptr, flat = model.user_items()
    users = torch.arange(ds.n_users)
    deg = torch.from_numpy(np.diff(ds.train.indptr))
    assert deg.max() > 4                                               # some users are cut to max_len
    items, pad = model.input_items(users)
    assert items.shape == (ds.n_users, 4) and torch.equal((~pad).sum(1), deg.clamp(max=4))
    for u in range(ds.n_users):                                        # a subset of the user's own items
        own = set(ds.train[u].indices.tolist())
        chosen = items[u][~pad[u]].tolist()
        assert len(set(chosen)) == len(chosen) and set(chosen) <= own
    # inference: the same subset whichever batch the user is scored in
    for batch in (torch.tensor([7]), torch.tensor([3, 7, 0]), torch.tensor([7, 7, 12, 39])):
        b_items, b_pad = model.input_items(batch)
        for row, u in enumerate(batch.tolist()):
            assert b_items[row][~b_pad[row]].tolist() == items[u][~pad[u]].tolist()
    full = model.score(users)
    parts = torch.cat([model.score(users[i:i + 3]) for i in range(0, ds.n_users, 3)])
    single = torch.cat([model.score(users[i:i + 1]) for i in range(ds.n_users)])
    assert torch.allclose(full, parts, atol=1e-5) and torch.allclose(full, single, atol=1e-5)
    # training: random subsets of the right size from the generator (reproducible, varying between draws)
    draws = [model.input_items(users, torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(draws[0][0], draws[1][0]) and not torch.equal(draws[0][0], draws[2][0])
    t_items, t_pad = draws[0]
    assert torch.equal(t_pad, pad)
    for u in range(ds.n_users):
        chosen = t_items[u][~t_pad[u]].tolist()
        assert len(set(chosen)) == len(chosen) and set(chosen) <= set(ds.train[u].indices.tolist())
    # every item of a user is drawn now and then
    counts = torch.zeros(ds.n_items)
    gen = torch.Generator().manual_seed(2)
    for _ in range(200):
        it, pd = model.input_items(torch.tensor([0]), gen)
        counts[it[0][~pd[0]]] += 1
    own = torch.from_numpy(ds.train[0].indices.astype(np.int64))
    assert (counts[own] > 0).all() and counts.sum() == 200 * min(4, len(own))


def test_lightgt_gathered_item_content_equals_per_slot_projection(ds):
    """bpr_loss projects every item's features once and gathers (item_content); the same user vectors and
    gradients as projecting each input slot."""
    model = _build(LightGT, ds, dropout=0.0)
    users = torch.arange(ds.n_users)
    layers = model.lightgcn_layers()
    g_all = [model.modality_embeddings(m) for m in range(model.n_modalities)]
    a = model.user_content(users, layers, torch.Generator().manual_seed(3), item_content=g_all)
    b = model.user_content(users, layers, torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-6)
    weights = [p for p in model.proj.parameters()]
    g_a = torch.autograd.grad(a.square().sum(), weights)
    g_b = torch.autograd.grad(b.square().sum(), weights)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(g_a, g_b))


def test_lightgt_split_score_is_the_reference_codes_weighted_sum(ds):
    """score="split": w * e_u.e_i + (1 - w) * sum_m t^m_u . g^m_i, no cross terms, as one dot product."""
    model, _ = _trained(LightGT, ds, epochs=2, score="split", score_weight=0.3, max_len=60)   # every item: no subset
    users = torch.arange(ds.n_users)
    layers, e_bar, _, g = model._inference_state()
    with torch.no_grad():
        model.eval()
        t = model.user_content_parts(users, layers, item_content=g)                      # M x (U, D)
    ids = e_bar[:ds.n_users] @ e_bar[ds.n_users:].T                                      # (U, I)
    content = sum(tm @ gm.T for tm, gm in zip(t, g))                                     # (U, I)
    assert torch.allclose(model.score(users), 0.3 * ids + 0.7 * content, atol=1e-5)
    u_rep, i_rep = model.embeddings()
    assert u_rep.shape == (ds.n_users, 16 * (model.n_modalities + 1)) and i_rep.shape[1] == u_rep.shape[1]
    # the "sum" form keeps one D-wide vector: the ID and content representations added
    plain = _build(LightGT, ds)
    assert plain.embeddings()[0].shape == (ds.n_users, 16)
    # the training loss scores with the same vectors (every item is in the input, so the subsets agree)
    rng = torch.Generator().manual_seed(0)
    u, p, n = (torch.randint(0, k, (32,), generator=rng) for k in (ds.n_users, ds.n_items, ds.n_items))
    model.eval()
    loss = model.bpr_loss(u, p, n)
    s = model.score(torch.arange(ds.n_users))
    y = s[u, p] - s[u, n]
    e = model.id_emb
    reg = (e[u].square().sum() + e[p + ds.n_users].square().sum() + e[n + ds.n_users].square().sum()) / 32
    assert torch.allclose(loss, -F.logsigmoid(y).mean() + model.config.reg * reg, atol=1e-5)
    for bad, match in [(dict(score="dot"), "score must be one of"), (dict(score_weight=1.5), r"score_weight must be in \[0, 1\]")]:
        with pytest.raises(ValueError, match=match):
            LightGTConfig(**bad)


def test_options_added_later_keep_earlier_run_keys(ds, tmp_path):
    """A config field added after runs existed leaves their keys alone at its original value, and changes it
    at any other value."""
    import dataclasses
    from mmgrec_lib.experiments.runs import baseline_run_path, config_key, dataset_key, run_key
    from mmgrec_lib.training import LoopConfig
    loop = LoopConfig(epochs=3)
    cfg = LightGTConfig()
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("score", "score_weight", "user_token")}
    from mmgrec_lib.experiments.runs import loop_key
    expected = tmp_path / f"{ds.name}_lightgt_{run_key(dataset_key(ds), 'lightgt', old, loop_key(loop), 0)}.pt"
    assert baseline_run_path(tmp_path, ds, "lightgt", cfg, loop, 0) == expected
    assert config_key(dataclasses.replace(cfg, score_weight=0.05)) == old
    split = baseline_run_path(tmp_path, ds, "lightgt", dataclasses.replace(cfg, score="split"), loop, 0)
    assert split != expected


def test_lightgt_user_token_reads_the_users_own_position(ds, tmp_path):
    """user_token=True: a learned user vector leads each modality's sequence, with the user's LightGCN layer-l
    output as its position encoding; the content vector is LeakyReLU(out(h_0)); it learns, saves and loads."""
    model, result = _trained(LightGT, ds, epochs=6, user_token=True)
    assert model.user_vec is not None and model.user_vec.shape == (ds.n_users, 16)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    users = torch.arange(ds.n_users)
    scores = model.score(users)
    assert scores.shape == (ds.n_users, ds.n_items) and torch.isfinite(scores).all()
    # the first encoder layer sees [p_u, g(items)] with [sg(E^(1)_u), sg(E^(1)_items)] as position encodings
    layers = model.lightgcn_layers()
    seen = {}
    hooks = [model.encoders[0][0].register_forward_pre_hook(lambda mod, args: seen.setdefault("args", args)),
             model.encoders[0][-1].register_forward_hook(lambda mod, args, out: seen.setdefault("out", out))]
    try:
        model.eval()
        with torch.no_grad():
            parts = model.user_content_parts(users, layers)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():                                              # read at the token's position
        assert torch.allclose(parts[0], F.leaky_relu(model.out[0](seen["out"][:, 0])), atol=1e-6)
    h, pos, mask = seen["args"]
    items, pad = model.input_items(users)
    assert torch.allclose(h[:, 0], model.user_vec.detach()) and torch.allclose(pos[:, 0], layers[1][users])
    assert torch.allclose(pos[:, 1:][~pad], layers[1][ds.n_users:][items[~pad]])
    assert not mask[:, 0].any()                                         # the token is never masked
    assert parts[0].shape == (ds.n_users, 16)
    # the user vector changes the content vector (a free parameter of the content branch)
    with torch.no_grad():
        model.user_vec[0] += 1.0
        moved = model.user_content_parts(users[:1], layers)[0]
    assert not torch.allclose(moved, parts[0][:1])
    with torch.no_grad():
        model.user_vec[0] -= 1.0
    path = tmp_path / "lightgt_token.pt"
    model.save(path)
    again = type(model).load(path)
    assert torch.allclose(again.score(users), scores, atol=1e-6)
    assert _build(LightGT, ds).user_vec is None                        # off by default: earlier runs unchanged


@pytest.mark.parametrize("form", ["sum", "split"])
def test_lightgt_score_parts_add_up_to_the_score(ds, form):
    """score_parts: "full" is the model's score; "id" the LightGCN branch; "content" the content branch as the
    form combines it; in the split form the score is w * id + (1 - w) * content exactly, in the sum form the
    remainder is the two cross terms. score_parts_table ranks each part alone."""
    from mmgrec_lib.experiments.zoo import score_parts_table
    model, _ = _trained(LightGT, ds, epochs=2, score=form, score_weight=0.3)
    parts = model.score_parts()
    assert set(parts) == {"id", "content", "full"} | {f"content_{m}" for m in range(model.n_modalities)}
    dot = {k: u @ i.T for k, (u, i) in parts.items()}                                  # (U, I) each
    users = torch.arange(ds.n_users)
    assert torch.allclose(dot["full"], model.score(users), atol=1e-5)
    e_bar = model._inference_state()[1]
    assert torch.allclose(dot["id"], e_bar[:ds.n_users] @ e_bar[ds.n_users:].T, atol=1e-6)
    per_modality = sum(dot[f"content_{m}"] for m in range(model.n_modalities))
    if form == "split":
        assert torch.allclose(dot["content"], per_modality, atol=1e-5)
        assert torch.allclose(dot["full"], 0.3 * dot["id"] + 0.7 * dot["content"], atol=1e-5)
    else:
        (eu, ei), (tu, gi) = parts["id"], parts["content"]
        cross = eu @ gi.T + tu @ ei.T
        assert torch.allclose(dot["full"], dot["id"] + dot["content"] + cross, atol=1e-5)
    table = score_parts_table(model, ds, split="val")
    assert list(table["part"]) == list(parts) and table[["recall@10", "ndcg@10"]].notna().all().all()
    assert table["recall@10"].between(0, 1).all() and (table[["user_norm", "item_norm"]] > 0).all().all()
    with pytest.raises(TypeError, match="no score_parts"):
        score_parts_table(object(), ds)
