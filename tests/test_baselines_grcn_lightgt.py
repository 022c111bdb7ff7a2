"""GRCN and LightGT under the Recommender interface: shapes, learning signal on planted clusters, save/load,
determinism, exact resume (with dropout on), clear errors without modality features or with bad configs; GRCN's
refined edge weights against a direct computation; LightGT's layer-wise position encodings against a dense
LightGCN and its input subsets. Tiny data only (make_tiny_dataset: 40 users x 60 items, two modalities)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines import Recommender
from mmgrec_lib.baselines.grcn import GRCN, GRCNConfig
from mmgrec_lib.baselines.lightgt import LightGT, LightGTConfig
from mmgrec_lib.evaluation import evaluate
from mmgrec_lib.training import LoopConfig

SMALL = {
    GRCN: dict(dim=16, content_dim=8, n_layers=2, n_routing=3, edge_dropout=0.2, lr=0.02, batch_size=128,
               device="cpu"),
    LightGT: dict(dim=16, n_layers=2, n_heads=2, dropout=0.1, max_len=8, n_gcn_layers=2, lr=0.02, batch_size=128,
                  device="cpu"),
}
MODELS = [GRCN, LightGT]


def _loop(epochs=25, **kw):
    return LoopConfig(epochs=epochs, patience=kw.pop("patience", 0), progress=False, **kw)


def _build(cls, ds, **kw):
    return cls.from_dataset(ds, **{**SMALL[cls], **kw})


def _trained(cls, ds, seed=0, epochs=25, **kw):
    model = _build(cls, ds, **kw)
    result = model.fit(ds, _loop(epochs), torch.Generator().manual_seed(seed))
    return model, result


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


@pytest.mark.parametrize("cls", MODELS)
def test_score_shape_and_recommend(cls, ds):
    model, _ = _trained(cls, ds, epochs=2)
    users = torch.tensor([0, 5, 39])
    scores = model.score(users)
    assert scores.shape == (3, ds.n_items) and scores.is_floating_point() and torch.isfinite(scores).all()
    assert model.device == torch.device("cpu")
    top = model.recommend(users, k=5, exclude=ds.train)
    assert top.shape == (3, 5) and top.dtype == torch.long
    train = torch.from_numpy(ds.train[users.numpy()].toarray()).bool()
    assert not torch.gather(train, 1, top).any()                       # training items never recommended
    ranked = torch.gather(scores.masked_fill(train, -torch.inf), 1, top)
    assert (ranked[:, :-1] >= ranked[:, 1:]).all()                      # best first
    with pytest.raises(ValueError, match=r"out of range \[0, 40\)"):
        model.score(torch.tensor([0, 40]))


def _random_recall(ds, seeds=range(8)) -> float:
    """Mean validation recall@10 of uniformly random scorers (about 0.17 on the tiny data)."""
    vals = [evaluate(lambda u, s=s: torch.rand(len(u), ds.n_items, generator=torch.Generator().manual_seed(s)),
                     ds, "val", ks=(10,))["recall@10"] for s in seeds]
    return float(np.mean(vals))


@pytest.mark.parametrize("cls", MODELS)
def test_trained_models_beat_random_on_planted_clusters(cls, ds):
    rand = _random_recall(ds)
    assert 0.05 < rand < 0.35
    model, result = _trained(cls, ds, seed=0)
    val = evaluate(model.score, ds, "val", ks=(10,))["recall@10"]
    assert val == pytest.approx(result.best_score)                    # best weights restored
    assert val > rand + 0.25, f"{cls.__name__}: val recall@10 {val:.3f} vs random {rand:.3f}"
    test = evaluate(model.score, ds, "test", ks=(10,))["recall@10"]    # not used for model selection
    assert test > rand + 0.15, f"{cls.__name__}: test recall@10 {test:.3f} vs random {rand:.3f}"


@pytest.mark.parametrize("cls", MODELS)
def test_save_load_round_trip(cls, ds, tmp_path):
    model, _ = _trained(cls, ds, epochs=3)
    path = model.save(tmp_path / "model.pt")
    users = torch.arange(ds.n_users)
    for loaded in (Recommender.load(path), cls.load(path)):
        assert type(loaded) is cls and loaded.config == model.config
        assert torch.equal(loaded.score(users), model.score(users))


@pytest.mark.parametrize("cls", MODELS)
def test_same_seed_same_scores(cls, ds):
    users = torch.arange(ds.n_users)
    torch.manual_seed(123)                                            # the global RNG plays no part
    a, _ = _trained(cls, ds, seed=3, epochs=3)
    torch.manual_seed(456)
    state = torch.get_rng_state()
    b, _ = _trained(cls, ds, seed=3, epochs=3)
    assert torch.equal(torch.get_rng_state(), state)                  # ... and is left as it was
    c, _ = _trained(cls, ds, seed=4, epochs=3)
    assert torch.equal(a.score(users), b.score(users))
    assert not torch.equal(a.score(users), c.score(users))


@pytest.mark.parametrize("cls", MODELS)
def test_interrupted_fit_resumes_exactly(cls, ds, tmp_path):
    users = torch.arange(ds.n_users)
    full, ref = _trained(cls, ds, seed=1, epochs=5)
    ckpt = tmp_path / "ckpt.pt"
    part = _build(cls, ds)
    part.fit(ds, _loop(2, checkpoint=ckpt), torch.Generator().manual_seed(1))
    fresh = _build(cls, ds)                                           # new model and optimizer
    res = fresh.fit(ds, _loop(5, checkpoint=ckpt), torch.Generator().manual_seed(1))
    assert res.resumed_from == 2 and res.history == ref.history
    assert torch.equal(fresh.score(users), full.score(users))


@pytest.mark.parametrize("cls", MODELS)
def test_no_modality_features_is_a_clear_error(cls, ds):
    bare = dataclasses.replace(make_tiny_dataset(), features={}, feature_masks={})
    with pytest.raises(ValueError, match=rf"{cls.__name__} needs item modality features.*'tiny' has none"):
        cls.from_dataset(bare, device="cpu")
    with pytest.raises(ValueError, match="needs item modality features"):
        cls(ds.n_users, ds.n_items, device="cpu", edge_index=ds.train_edge_index())
    with pytest.raises(ValueError, match=r"has no modality \['audio'\]"):
        cls.from_dataset(ds, modalities=("audio",), device="cpu")
    one, _ = _trained(cls, ds, epochs=2, modalities=("textual",))     # a single modality works
    assert one.n_modalities == 1 and one.item_features.shape == (ds.n_items, ds.features["textual"].shape[1])
    assert torch.isfinite(one.score(torch.arange(ds.n_users))).all()


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


def test_items_lacking_a_modality():
    ds2 = make_tiny_dataset()
    ds2.feature_masks["visual"][:5] = False
    ds2.features["visual"][:5] = 0.0
    for cls in MODELS:
        model, _ = _trained(cls, ds2, epochs=2)
        assert not model.feature_masks[:5, 0].any() and model.feature_masks[5:].all()
        assert torch.isfinite(model.score(torch.arange(ds2.n_users))).all()


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
