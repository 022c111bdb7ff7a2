"""Graph RQ-VAE (eq. 4-10) and Rec-ID assignment end to end on a tiny synthetic dataset (CPU, seconds)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.nn import SAGEConv

from mmgrec_lib.tokenizer.graph_rqvae import (GraphEncoder, GraphRQVAEConfig, RecIDRun, assign_recids,
                                    item_feature_matrix, mean_adjacency)
from mmgrec_lib.tokenizer.recid import RecIDTable
from mmgrec_lib.tokenizer.alternatives import assign_hkmeans, assign_id_without_graph

from _fixtures import make_tiny_dataset

TINY = dict(dim=8, n_layers=2, codebook_size=8, batch_size=256, epochs=3, rq_epochs=5, patience=0,
            rq_hidden_dim=16, rq_latent_dim=4, device="cpu", seed=0)


def without_features(ds):
    """The same interactions with no item features (like amazon-baby)."""
    return dataclasses.replace(ds, features={}, feature_masks={})


@pytest.fixture(scope="module")
def dataset():
    return make_tiny_dataset()


@pytest.fixture(scope="module")
def run(dataset) -> RecIDRun:
    return assign_recids(dataset, GraphRQVAEConfig(**TINY), progress=False)


# ---------------------------------------------------------------------- config and inputs
def test_config_validation():
    with pytest.raises(ValueError, match="schedule"):
        GraphRQVAEConfig(schedule="sequential")
    assert GraphRQVAEConfig(schedule="joint").schedule == "joint"
    with pytest.raises(ValueError, match="codebook_size"):
        GraphRQVAEConfig(codebook_size=1)
    with pytest.raises(ValueError, match="lr"):
        GraphRQVAEConfig(lr=0.0)
    with pytest.raises(ValueError, match="collision"):
        GraphRQVAEConfig(collision="tiger")
    with pytest.raises(ValueError, match="n_layers"):
        GraphRQVAEConfig(n_layers=0)
    with pytest.raises(TypeError, match="unknown parameter"):
        GraphRQVAEConfig.from_dict({"dims": 3})
    cfg = GraphRQVAEConfig.from_dict({"dim": 16})
    assert cfg.to_dict()["dim"] == 16 and cfg.n_levels == 3 and cfg.beta == 0.25


def test_missing_modality_contributes_exact_zeros(dataset):
    ds = dataclasses.replace(dataset, features=dict(dataset.features), feature_masks=dict(dataset.feature_masks))
    mask = np.ones(ds.n_items, dtype=bool)
    mask[:5] = False
    vis = ds.features["visual"].copy()
    vis[:5] = 1e6                                                 # garbage in rows flagged as missing
    ds.features["visual"], ds.feature_masks["visual"] = vis, mask
    d_v = vis.shape[1]
    for norm in ("l2", "standardize", "none"):
        feats, col_mask = item_feature_matrix(ds, norm)
        assert (feats[:5, :d_v] == 0).all() and not col_mask[:5, :d_v].any() and col_mask[:5, d_v:].all()
        # masking them again is the identity, bit for bit: why the trainer passes no mask to its forwards
        assert torch.equal(feats.masked_fill(~col_mask, 0.0), feats)
    feats, col_mask = item_feature_matrix(ds, "standardize")
    assert torch.isfinite(feats).all() and feats[5:, :d_v].abs().max() < 10    # statistics ignore garbage rows
    feats, col_mask = item_feature_matrix(ds, "l2")
    assert torch.allclose(feats[5:, :d_v].norm(dim=1), torch.ones(ds.n_items - 5))
    enc = GraphEncoder(ds.n_users, ds.n_items, feats.shape[1], dim=4, seed=0)
    garbage = feats.clone()
    garbage[:5, :d_v] = float("nan")                              # the model masks before the projection
    _, h0 = enc.layer0(garbage, col_mask)
    _, h0_clean = enc.layer0(feats, col_mask)
    assert torch.equal(h0, h0_clean) and h0.shape == (ds.n_items, 8)


def test_gcn_layer_is_eq5_mean_aggregation(dataset):
    e = dataset.train_edge_index()
    adj = mean_adjacency(e, dataset.n_users, dataset.n_items)
    n = dataset.n_users + dataset.n_items
    dense = adj.to_dense()
    has_nb = torch.zeros(n, dtype=torch.bool)
    has_nb[e[0]] = True
    has_nb[e[1] + dataset.n_users] = True
    assert torch.allclose(dense.sum(1)[has_nb], torch.ones(int(has_nb.sum())))
    # our SAGEConv over the 1/deg adjacency == PyG's mean-aggregation SAGEConv over the edge list
    enc = GraphEncoder(dataset.n_users, dataset.n_items, 0, dim=6, n_layers=1, seed=0)
    ref = SAGEConv(6, 6, aggr="mean", root_weight=True)
    ref.load_state_dict(enc.convs[0].state_dict())
    both = torch.cat([torch.stack([e[0], e[1] + dataset.n_users]), torch.stack([e[1] + dataset.n_users, e[0]])], 1)
    x = torch.cat([enc.user_emb.weight, enc.item_emb.weight]).detach()
    h_u, h_i = enc(adj)
    expected = torch.nn.functional.leaky_relu(ref(x, both), 0.01)
    assert torch.allclose(torch.cat([h_u, h_i]), expected, atol=1e-5)
    # a narrowing layer (12 -> 6) applies W2 before the mean: PyG's values up to float rounding
    wide = GraphEncoder(dataset.n_users, dataset.n_items, 0, dim=6, n_layers=1, seed=0).convs[0]
    wide = type(wide)(12, 6, aggr="sum", root_weight=True)
    ref = SAGEConv(12, 6, aggr="mean", root_weight=True)
    ref.load_state_dict(wide.state_dict())
    x12 = torch.randn(x.shape[0], 12, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(wide(x12, adj), ref(x12, both), atol=1e-5)
    widths = []
    wide._eq5(x12, lambda z: widths.append(z.shape[1]) or z, x12)                  # the mean runs 6 wide
    assert widths == [6]


@pytest.mark.parametrize("encoder, n_layers", [("sage", 2), ("sage", 1), ("lightgcn", 2)])
def test_node_embeddings_are_rows_of_the_full_forward(dataset, encoder, n_layers):
    """The last layer computed at some nodes only (a BPR batch, the items of an RQ-VAE step) gives the full
    forward's rows bit for bit, and gradients equal to float rounding (bit for bit where the last layer has no
    weights: the LightGCN-style encoder)."""
    from mmgrec_lib.data.sparse import RowProduct
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer

    cfg = GraphRQVAEConfig(dim=8, codebook_size=8, epochs=1, encoder=encoder, n_layers=n_layers, device="cpu")
    tr = _Trainer(dataset, cfg, torch.device("cpu"))       # n_layers 1: the last layer narrows (projects first)
    enc, n_u = tr.model.graph, dataset.n_users
    nodes = torch.tensor([0, 3, n_u + 2, n_u + dataset.n_items - 1, n_u - 1])
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(nodes.numel(), enc.out_dim, generator=g)

    def grads(fn):
        enc.zero_grad(set_to_none=True)
        out = fn()
        (out * grad).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}

    full, g_full = grads(lambda: torch.cat(enc(tr.adj, tr.features))[nodes])
    for arg in (nodes, RowProduct(tr.adj, nodes)):
        rows, g_rows = grads(lambda: enc.node_embeddings(tr.adj, arg, tr.features))
        assert torch.equal(rows, full) and g_rows.keys() == g_full.keys()
        for name in g_full:
            if encoder == "lightgcn":
                assert torch.equal(g_rows[name], g_full[name]), name
            else:
                assert torch.allclose(g_rows[name], g_full[name], rtol=1e-5, atol=1e-7), name
    items = tr.items()
    assert torch.equal(items, enc(tr.adj, tr.features)[1])


def _eq5_out_of_place(enc, adj, adj_t, feats, rows=None):
    """GraphEncoder's forward as written before session 36 (a new tensor for every operation; gathers by
    indexing): the reference its in-place additions and activations, and its index_select gathers, must equal."""
    import torch.nn.functional as F
    from mmgrec_lib.data.sparse import RowProduct, constant_spmm

    h = torch.cat([enc.user_emb.weight, torch.cat([enc.proj(feats), enc.item_emb.weight], 1)])
    for n, conv in enumerate(enc.convs):
        last = rows is not None and n == len(enc.convs) - 1
        product = RowProduct(adj, rows) if last else None
        mean = product if last else (lambda z: constant_spmm(adj, z, adj_t))
        root = h[rows] if last else h
        if conv.in_channels > conv.out_channels:
            out = mean(F.linear(h, conv.lin_l.weight)) + conv.lin_l.bias
        else:
            out = conv.lin_l(mean(h))
        h = F.leaky_relu(out + conv.lin_r(root), enc.negative_slope)
    return h


@pytest.mark.parametrize("threads", [1, 2])
def test_encoder_and_bpr_loss_equal_their_out_of_place_form_bit_for_bit(dataset, threads):
    """Session 36's exact step changes: eq. 5's sums added in place into one buffer, LeakyReLU in place, and
    gathers by ``index_select`` (its backward is a cheaper ``index_add_``; a batch's users repeat) give the values
    and the gradients of the out-of-place form bit for bit, on one thread and on two (deterministic algorithms,
    as ``cpu_threads`` sets them)."""
    from mmgrec_lib.data.sparse import transpose_csr
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer
    from mmgrec_lib.training.loop import cpu_threads

    tr = _Trainer(dataset, GraphRQVAEConfig(dim=8, codebook_size=8, epochs=1, device="cpu"), torch.device("cpu"))
    enc, model, n_u = tr.model.graph, tr.model, dataset.n_users
    adj_t = transpose_csr(tr.adj)
    u, i, j = (t[:96] for t in tr.sampler.epoch_triples(torch.Generator().manual_seed(0)))
    assert u.unique().numel() < u.numel()                                     # repeated users
    nodes, inv = torch.unique(torch.cat([u, i + n_u, j + n_u]), return_inverse=True)
    ru, rp, rn = inv.split(u.numel())
    upstream = torch.randn(dataset.n_users + dataset.n_items, enc.out_dim, generator=torch.Generator().manual_seed(1))

    def grads(fn):
        model.zero_grad(set_to_none=True)
        out = fn()
        out.backward() if out.ndim == 0 else (out * upstream[:out.shape[0]]).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}

    def ref_bpr():
        h = _eq5_out_of_place(enc, tr.adj, adj_t, tr.features, nodes)
        x = (h[ru] * (h[rp] - h[rn])).sum(-1)
        e = enc
        l2 = (e.user_emb(u).pow(2).sum() + e.item_emb(i).pow(2).sum() + e.item_emb(j).pow(2).sum()) / (2 * u.numel())
        return -torch.nn.functional.logsigmoid(x).mean() + tr.cfg.reg * l2

    def new_bpr():
        h = enc.node_embeddings(tr.adj, nodes, tr.features)
        return model.bpr_loss(h, h, u, i, j, tr.cfg.reg, rows=(ru, rp, rn))

    with cpu_threads(threads):
        pairs = [(lambda: torch.cat(enc(tr.adj, tr.features)),
                  lambda: _eq5_out_of_place(enc, tr.adj, adj_t, tr.features)),
                 (tr.items, lambda: _eq5_out_of_place(enc, tr.adj, adj_t, tr.features, tr.item_rows.rows)),
                 (new_bpr, ref_bpr)]
        for new, ref in pairs:
            (out, g_new), (want, g_ref) = grads(new), grads(ref)
            assert torch.equal(out, want) and g_new.keys() == g_ref.keys()
            for name in g_ref:
                assert torch.equal(g_new[name], g_ref[name]), name


def test_encoder_refuses_a_negative_slope():
    """The in-place LeakyReLU's backward reads its output, which a negative slope would make ambiguous."""
    with pytest.raises(ValueError, match="negative_slope"):
        GraphEncoder(5, 5, 0, dim=4, negative_slope=-0.1)


def test_bpr_step_on_batch_rows_matches_the_full_forward_loss(dataset):
    """The training step's loss from the batch's rows equals the loss of the full forward (same parameters)."""
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer

    tr = _Trainer(dataset, GraphRQVAEConfig(dim=8, codebook_size=8, epochs=1, device="cpu"), torch.device("cpu"))
    u, i, j = (t[:64] for t in tr.sampler.epoch_triples(torch.Generator().manual_seed(0)))
    with torch.no_grad():
        h_u, h_i = tr.embed()
        ref = tr.model.bpr_loss(h_u, h_i, u, i, j, tr.cfg.reg).item()
    loss, keep = tr._bpr_step(u, i, j)
    assert keep is None and loss == pytest.approx(ref, rel=1e-6)


# ---------------------------------------------------------------------- end to end
def test_run_outputs(run, dataset):
    assert run.user_emb.shape == (dataset.n_users, 8) and run.item_emb.shape == (dataset.n_items, 8)
    assert run.user_emb.dtype == torch.float32 and torch.isfinite(run.item_emb).all()
    assert run.semantic.shape == (dataset.n_items, 3)
    assert int(run.semantic.min()) >= 0 and int(run.semantic.max()) < 8
    assert isinstance(run.table, RecIDTable) and run.codes.shape == (dataset.n_items, 4)
    assert torch.equal(run.codes[:, :3], run.semantic)
    assert torch.equal(run.table.item_of(run.codes), torch.arange(dataset.n_items))
    # popularity token: inside each collision group, more popular items get smaller tokens
    pop = dataset.item_popularity()
    for key in {tuple(r) for r in run.semantic.tolist()}:
        members = np.flatnonzero((run.semantic == torch.tensor(key)).all(1).numpy())
        order = sorted(members, key=lambda i: (-pop[i], i))
        assert run.codes[order, 3].tolist() == list(range(len(members)))
    for key in ("usage_l1", "perplexity_l3", "unique_semantic_frac", "max_group_size", "recon_error",
                "val_recall@10", "reseeded_total", "sec_per_epoch"):
        assert key in run.stats
    assert 0 < run.stats["usage_l1"] <= 1
    phases = [r["phase"] for r in run.history]
    assert phases.count("alternate") == 3 and phases.count("rq") == 5
    assert all("recall@10" in r for r in run.history if r["phase"] == "alternate")


def test_same_seed_same_recids(run, dataset):
    again = assign_recids(dataset, GraphRQVAEConfig(**TINY), progress=False)
    assert torch.equal(again.codes, run.codes)
    assert torch.allclose(again.item_emb, run.item_emb)


def test_run_save_load_round_trip(run, tmp_path):
    path = run.save(tmp_path / "run.pt")
    back = RecIDRun.load(path)
    assert torch.equal(back.codes, run.codes) and torch.equal(back.semantic, run.semantic)
    assert torch.equal(back.user_emb, run.user_emb) and torch.equal(back.item_emb, run.item_emb)
    assert back.table.cardinalities == run.table.cardinalities
    assert back.config == run.config and back.stats == run.stats and back.history == run.history
    assert back.model_state.keys() == run.model_state.keys()
    torch.save({"format": "x"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a Rec-ID run"):
        RecIDRun.load(tmp_path / "bad.pt")


def test_two_stage_no_features_and_collision_modes():
    ds = without_features(make_tiny_dataset(n_users=20, n_items=30, per_user=8))
    assert ds.modalities == []
    cfg = GraphRQVAEConfig(**{**TINY, "schedule": "two_stage", "collision": "none", "epochs": 2, "rq_epochs": 3})
    run = assign_recids(ds, cfg, progress=False)
    assert run.table is None and run.semantic.shape == (30, 3)
    assert run.item_emb.shape == (30, 8)
    assert run.stats["n_semantic_ids"] + run.stats["n_collision_groups"] <= 30
    assert [r["phase"] for r in run.history] == ["bpr"] * 2 + ["rq"] * 3
    with pytest.raises(ValueError, match="collision='none'"):
        run.codes
    rnd = run.with_codes(run.semantic, None, collision="random", method="random")
    assert rnd.table is not None and torch.equal(rnd.table.item_of(rnd.codes), torch.arange(30))


@pytest.mark.parametrize("schedule", ["two_stage", "alternate"])
def test_every_step_runs_on_one_thread_whatever_the_callers_setting(dataset, schedule, monkeypatch):
    """The run key has no thread count, so no step may take the caller's: the RQ phase's frozen representations
    (``_Trainer.embed`` outside the loops) once ran on two threads in a script and on one in a sweep worker, and
    one key gave other codes in the two (ml100k, 2026-12-06). The caller's setting is restored afterwards."""
    from mmgrec_lib.tokenizer import graph_rqvae
    seen = []
    embed = graph_rqvae._Trainer.embed

    def spy(self):
        seen.append(torch.get_num_threads())
        return embed(self)
    monkeypatch.setattr(graph_rqvae._Trainer, "embed", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = assign_recids(dataset, GraphRQVAEConfig(**{**TINY, "schedule": schedule}), progress=False)
        assert torch.get_num_threads() == 2                                   # restored
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}, seen
    torch.set_num_threads(1)
    try:
        again = assign_recids(dataset, GraphRQVAEConfig(**{**TINY, "schedule": schedule}), progress=False)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(run.semantic, again.semantic) and torch.equal(run.item_emb, again.item_emb)


def test_rq_loss_reaches_the_graph_unless_stopped(dataset):
    from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAE
    feats, mask = item_feature_matrix(dataset)
    adj = mean_adjacency(dataset.train_edge_index(), dataset.n_users, dataset.n_items)
    model = GraphRQVAE(dataset.n_users, dataset.n_items, feats.shape[1], GraphRQVAEConfig(**TINY))
    _, h_i = model(adj, feats, mask)
    model.rq_loss(h_i).loss.backward()                            # eq. 10 jointly: gradient into W, W1, W2
    assert model.graph.proj.weight.grad.abs().sum() > 0 and model.graph.convs[0].lin_l.weight.grad is not None
    model.zero_grad(set_to_none=True)
    model.rq_loss(h_i.detach()).loss.backward()                   # sg(h_i): RQ-VAE only
    assert model.graph.proj.weight.grad is None and model.rqvae.encoder[0].weight.grad is not None
    cfg = GraphRQVAEConfig(**{**TINY, "epochs": 1, "rq_epochs": 0, "rq_grad_to_graph": False})
    run = assign_recids(dataset, cfg, progress=False)
    assert run.semantic.shape == (dataset.n_items, 3) and run.config["rq_grad_to_graph"] is False


def test_errors_on_bad_dataset(dataset):
    empty = dataclasses.replace(dataset, train=sp.csr_matrix((dataset.n_users, dataset.n_items), dtype=np.float32))
    with pytest.raises(ValueError, match="no training interactions"):
        assign_recids(empty, GraphRQVAEConfig(**TINY), progress=False)
    with pytest.raises(TypeError, match="GraphRQVAEConfig"):
        assign_recids(dataset, {"dim": 8}, progress=False)


# ---------------------------------------------------------------------- alternatives on the same pipeline
def test_hkmeans_and_id_without_graph_runs(run, dataset):
    hk = assign_hkmeans(run, dataset)
    assert hk.method == "hkmeans" and torch.equal(hk.item_emb, run.item_emb)
    assert int(hk.semantic.max()) < 8 and torch.equal(hk.table.item_of(hk.codes), torch.arange(dataset.n_items))
    assert hk.stats["method"] == "hkmeans" and "usage_l1" in hk.stats
    cfg = GraphRQVAEConfig(**TINY)
    wo = assign_id_without_graph(dataset, cfg, base_run=run)
    assert wo.method == "id_wo_graph" and torch.equal(wo.user_emb, run.user_emb)
    assert int(wo.semantic.max()) < 8 and np.isfinite(wo.stats["recon_error"])
    alone = assign_id_without_graph(dataset, cfg)
    assert alone.user_emb.shape == (dataset.n_users, cfg.rq_latent_dim)
    assert torch.equal(alone.semantic, wo.semantic)
    no_feat = without_features(dataset)
    with pytest.raises(ValueError, match="no item features"):
        assign_id_without_graph(no_feat, cfg)


# ---------------------------------------------------------------------- levers beyond the paper (issue 11)
def test_lightgcn_encoder_is_the_layer_mean_of_symmetric_propagation(dataset):
    """encoder="lightgcn": H = mean_n (D^-1/2 A D^-1/2)^n H0 over the eq. 4 nodes; width 2D with features."""
    from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAE, symmetric_adjacency
    feats, mask = item_feature_matrix(dataset)
    cfg = GraphRQVAEConfig(**{**TINY, "encoder": "lightgcn"})
    model = GraphRQVAE(dataset.n_users, dataset.n_items, feats.shape[1], cfg)
    adj = symmetric_adjacency(dataset.train_edge_index(), dataset.n_users, dataset.n_items)
    h_u, h_i = model(adj, feats, mask)
    assert h_u.shape == (dataset.n_users, 16) and h_i.shape == (dataset.n_items, 16)
    # reference: dense normalised adjacency built from the interaction matrix
    R = torch.as_tensor(dataset.train.toarray(), dtype=torch.float32)
    U, I = R.shape
    A = torch.zeros(U + I, U + I)
    A[:U, U:], A[U:, :U] = R, R.T
    d = A.sum(1).clamp_min(1).rsqrt()
    A = d[:, None] * A * d[None, :]
    x0 = torch.cat(model.graph.layer0(feats, mask))
    ref = (x0 + A @ x0 + A @ (A @ x0)) / 3
    assert torch.allclose(torch.cat([h_u, h_i]), ref, atol=1e-5)
    run = assign_recids(dataset, GraphRQVAEConfig(**{**TINY, "encoder": "lightgcn", "schedule": "two_stage"}),
                        progress=False)
    assert run.item_emb.shape == (dataset.n_items, 16) and run.semantic.shape == (dataset.n_items, 3)
    assert run.config["encoder"] == "lightgcn"


def test_later_fields_at_their_defaults_leave_saved_configs_and_keys_unchanged(dataset, tmp_path):
    from mmgrec_lib.experiments.runs import recid_run_path
    base = GraphRQVAEConfig(**TINY)
    assert not {"encoder", "rq_weight", "rq_every"} & set(base.to_dict())
    assert GraphRQVAEConfig.from_dict(base.to_dict()) == base
    other = GraphRQVAEConfig(**{**TINY, "encoder": "lightgcn", "rq_weight": 0.5})
    assert other.to_dict()["encoder"] == "lightgcn" and other.to_dict()["rq_weight"] == 0.5
    assert recid_run_path(tmp_path, dataset, base) != recid_run_path(tmp_path, dataset, other)
    with pytest.raises(ValueError, match="encoder"):
        GraphRQVAEConfig(**{**TINY, "encoder": "gat"})
    with pytest.raises(ValueError, match="rq_weight"):
        GraphRQVAEConfig(**{**TINY, "rq_weight": -1.0})
    with pytest.raises(ValueError, match="rq_every"):
        GraphRQVAEConfig(**{**TINY, "rq_every": 0})


def test_rq_every_k_takes_the_rq_step_after_every_kth_bpr_step(dataset):
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer
    from mmgrec_lib.training.timing import PhaseTimer
    cfg = {**TINY, "batch_size": 64}
    n_batches = -(-int(dataset.train.nnz) // cfg["batch_size"])
    assert n_batches >= 3
    rows, trainers = {}, {}
    for k in (1, 2):
        tr = _Trainer(dataset, GraphRQVAEConfig(**{**cfg, "rq_every": k}), torch.device("cpu"))
        tr.timer = PhaseTimer()
        rows[k] = tr.epoch_alternate(0, torch.Generator().manual_seed(5))
        trainers[k] = tr
    assert int(trainers[1].model.rqvae.quantizer.steps) == n_batches               # one RQ-VAE forward per step
    assert int(trainers[2].model.rqvae.quantizer.steps) == -(-n_batches // 2)      # batches 0, 2, 4, ...
    assert trainers[2].timer.steps == n_batches and set(rows[2]) == set(rows[1])
    first = {}
    for k in (1, 2):                                            # the first step (batch 0) is the same either way
        tr = _Trainer(dataset, GraphRQVAEConfig(**{**cfg, "rq_every": k}), torch.device("cpu"))
        u, i, j = next(tr._triples(torch.Generator().manual_seed(5)))
        tr._alternate_step(u, i, j, torch.Generator().manual_seed(6), batch=0)
        first[k] = [p.detach().clone() for p in tr.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(first[1], first[2]))
    run = assign_recids(dataset, GraphRQVAEConfig(**{**TINY, "rq_every": 2}), progress=False)
    assert run.config["rq_every"] == 2 and run.semantic.shape == (dataset.n_items, 3)


def test_rq_weight_scales_the_alternating_rq_step(dataset):
    """The RQ step's gradient reaching the graph (and the RQ-VAE) is rq_weight times the unweighted one."""
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer
    grads = []
    for w in (1.0, 0.25):
        trainer = _Trainer(dataset, GraphRQVAEConfig(**{**TINY, "rq_weight": w}), torch.device("cpu"))
        trainer._rq_step(trainer.embed()[1], torch.Generator().manual_seed(0))
        grads.append((trainer.model.graph.proj.weight.grad.clone(),
                      trainer.model.rqvae.encoder[0].weight.grad.clone()))
    for full, quarter in zip(*grads):
        assert full.abs().sum() > 0 and torch.allclose(quarter, 0.25 * full, atol=1e-7)


@pytest.mark.parametrize("weight", [1.0, 0.25])
def test_joint_step_is_one_step_on_the_sum_of_both_losses(dataset, weight):
    """The joint schedule's step: the gradient of L_bpr + rq_weight * L_rqvae computed from the full forward
    (eq. 10's sum), from one graph pass whose last layer runs at the batch's users and every item."""
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer
    cfg = GraphRQVAEConfig(**{**TINY, "schedule": "joint", "rq_weight": weight})
    ref, joint = (_Trainer(dataset, cfg, torch.device("cpu")) for _ in range(2))
    u, i, j = (t[:64] for t in ref.sampler.epoch_triples(torch.Generator().manual_seed(0)))
    h_u, h_i = ref.embed()
    bpr = ref.model.bpr_loss(h_u, h_i, u, i, j, cfg.reg)
    rq = ref.model.rq_loss(h_i)
    (bpr + weight * rq.loss).backward()
    joint.opt.step = lambda: None                                # keep the gradients, skip the update
    loss, out = joint._joint_step(u, i, j, torch.Generator().manual_seed(0))
    assert loss == pytest.approx(bpr.item(), rel=1e-6) and out.loss.item() == pytest.approx(rq.loss.item(), rel=1e-5)
    for (name, a), b in zip(ref.model.named_parameters(), joint.model.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7), name
    assert joint.model.graph.proj.weight.grad.abs().sum() > 0      # both terms reach the graph


def test_joint_schedule_end_to_end(dataset):
    cfg = GraphRQVAEConfig(**{**TINY, "schedule": "joint"})
    run = assign_recids(dataset, cfg, progress=False)
    assert run.semantic.shape == (dataset.n_items, 3) and run.config["schedule"] == "joint"
    phases = [r["phase"] for r in run.history]
    assert phases.count("joint") == 3 and phases.count("rq") == 5
    graph_rows = [r for r in run.history if r["phase"] == "joint"]
    assert all({"bpr", "recall@10", "usage_l1"} <= set(r) for r in graph_rows)
    again = assign_recids(dataset, cfg, progress=False)
    assert torch.equal(again.codes, run.codes)
    other = assign_recids(dataset, GraphRQVAEConfig(**TINY), progress=False)     # alternate: another optimisation
    assert not torch.equal(other.item_emb, run.item_emb)
