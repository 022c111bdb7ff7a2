"""GraphSAGE, GAT and NGCF baselines: shapes, learning signal on planted clusters, save/load, determinism, exact
resume (with dropout on), clear errors, and NGCF's layer against a dense computation of its equation.
Tiny data only (make_tiny_dataset: 40 users x 60 items)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _baseline_checks import CommonChecks, Harness, loop as _loop
from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines.gat import GAT, GATConfig
from mmgrec_lib.baselines.graphsage import GraphSAGE, GraphSAGEConfig
from mmgrec_lib.baselines.ngcf import NGCF, NGCFConfig, NGCFConv
from mmgrec_lib.data.sparse import bipartite_edge_index

# small, fast settings for the tiny data (a few steps per epoch); dropout on, so resume and determinism
# cover the dropout RNG
SMALL = {
    GraphSAGE: dict(dim=16, n_layers=2, lr=0.02, batch_size=128, dropout=0.1, device="cpu"),
    GAT: dict(dim=16, n_layers=2, heads=2, lr=0.02, batch_size=128, dropout=0.1, attn_dropout=0.1, device="cpu"),
    NGCF: dict(dim=16, n_layers=2, lr=0.02, batch_size=128, dropout=0.1, device="cpu"),
}
MODELS = [GraphSAGE, GAT, NGCF]
H = Harness(SMALL)
_build, _trained = H.build, H.trained


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


class TestCommon(CommonChecks):
    harness, MODELS, KEEPS_GLOBAL_RNG = H, MODELS, True


@pytest.mark.parametrize("cls", MODELS)
def test_loss_decreases(cls, ds):
    _, result = _trained(cls, ds, epochs=8)
    losses = [row["loss"] for row in result.history]
    assert losses[0] == pytest.approx(np.log(2), abs=0.05)            # near-zero scores at the start
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize("cls", MODELS)
def test_dropout_only_in_training_and_cache_follows_weights(cls, ds):
    model = _build(cls, ds, dropout=0.5)                              # a fresh module is in train mode
    users = torch.arange(ds.n_users)
    s1 = model.score(users)
    assert torch.equal(s1, model.score(users))                        # no dropout at inference
    with torch.no_grad():
        model.eval()
        assert torch.equal(model.propagate(model.graph()), model.embeddings())
        model.emb.mul_(2.0)                                           # weights changed: cache invalidated
    assert not torch.equal(model.score(users), s1)
    model.train()
    g = model.graph()
    torch.manual_seed(0)
    assert not torch.equal(model.propagate(g), model.propagate(g))     # dropout active in training
    s2 = model.score(users)
    model.set_graph(model.edge_index[:, :10])                         # new graph: caches invalidated
    assert not torch.equal(model.score(users), s2)


@pytest.mark.parametrize("cls, field, value", [
    (GraphSAGE, "dim", 0), (GraphSAGE, "n_layers", 0), (GraphSAGE, "lr", 0.0), (GraphSAGE, "dropout", 1.0),
    (GraphSAGE, "reg", -1.0),
    (GAT, "heads", 0), (GAT, "attn_dropout", -0.1), (GAT, "attn_dropout", 1.0), (GAT, "batch_size", 0),
    (NGCF, "n_layers", 0), (NGCF, "dropout", 1.5), (NGCF, "init_std", 0.0), (NGCF, "negative_slope", -0.1),
])
def test_bad_config_names_the_field(cls, field, value):
    with pytest.raises(ValueError, match=rf"{cls.config_class.__name__}: {field} must be"):
        cls(10, 10, **{field: value})
    with pytest.raises(ValueError, match=rf"{field} must be"):
        cls.config_class(**{field: value})


@pytest.mark.parametrize("cls", MODELS)
def test_bad_graph_and_input_give_clear_errors(cls, ds):
    with pytest.raises(ValueError, match=r"edge_index must be \(2, E\)"):
        cls(40, 60, edge_index=torch.zeros(3, 4, dtype=torch.long), device="cpu")
    with pytest.raises(ValueError, match=r"outside \[0, 40\) x \[0, 60\)"):
        cls(40, 60, edge_index=torch.tensor([[0, 1], [2, 60]]), device="cpu")
    with pytest.raises(RuntimeError, match="no training graph"):
        cls(40, 60, device="cpu").score(torch.tensor([0]))
    model = _build(cls, ds)
    with pytest.raises(ValueError, match=r"out of range \[0, 40\)"):
        model.score(torch.tensor([0, 40]))
    with pytest.raises(TypeError, match="unknown parameter"):
        cls(10, 10, dimension=8)
    with pytest.raises(ValueError, match="was built for 40 users x 60 items"):
        model.fit(make_tiny_dataset(n_users=30), _loop(1), torch.Generator().manual_seed(0))


def _dense_laplacian(edge_index: torch.Tensor, n_users: int, n: int) -> torch.Tensor:
    """D^{-1/2} A D^{-1/2} of the bipartite graph, dense, built entry by entry from the (user, item) pairs."""
    a = torch.zeros(n, n, dtype=torch.float64)
    for u, i in edge_index.T.tolist():
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = a.sum(1).clamp_min(1.0).rsqrt()
    return d[:, None] * a * d[None, :]


def test_ngcf_layer_matches_dense_equation(ds):
    model = _build(NGCF, ds, n_layers=1).eval()
    n = ds.n_users + ds.n_items
    lap = _dense_laplacian(model.edge_index, ds.n_users, n)                        # (N, N)
    e = model.emb.detach().double()                                                 # (N, D)
    conv = model.convs[0]
    w1, w2 = conv.lin1.weight.detach().double().T, conv.lin2.weight.detach().double().T   # (D, D)
    eye = torch.eye(n, dtype=torch.float64)
    ref = F.leaky_relu((lap + eye) @ e @ w1 + ((lap @ e) * e) @ w2, 0.2)           # eq. 7
    with torch.no_grad():
        out = model.propagate(model.graph())                                       # (N, 2D)
        ei = bipartite_edge_index(model.edge_index, ds.n_users)                     # edge-list path
        lap32 = lap.float()
        via_edges = conv(model.emb, ei, lap32[ei[1], ei[0]])
    assert out.shape == (n, 2 * model.config.dim)
    assert torch.equal(out[:, :model.config.dim], model.emb.detach())             # layer 0 first (eq. 9)
    assert torch.allclose(out[:, model.config.dim:].double(), ref, atol=1e-5)
    assert torch.allclose(via_edges.double(), ref, atol=1e-5)
    assert isinstance(conv, NGCFConv)


def test_graphsage_layer_is_root_plus_neighbour_mean(ds):
    model = _build(GraphSAGE, ds, n_layers=1).eval()
    n = ds.n_users + ds.n_items
    a = (_dense_laplacian(model.edge_index, ds.n_users, n) > 0).double()
    mean = a / a.sum(1, keepdim=True).clamp_min(1.0)                                 # D^{-1} A
    with torch.no_grad():
        model.convs[0].lin_l.bias.normal_()
        e = model.emb.double()
        conv = model.convs[0]
        ref = e @ conv.lin_r.weight.double().T + (mean @ e) @ conv.lin_l.weight.double().T + conv.lin_l.bias.double()
        assert torch.allclose(model.propagate(model.graph()).double(), ref, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_gat_layer_equals_pyg_gatconv_with_gradients(ds, training):
    """gat_layer (one sparse product) gives GATConv's output and gradients, attention dropout included."""
    from torch_geometric.nn.conv import GATConv

    from mmgrec_lib.baselines.gat import GATGraph, gat_layer
    torch.manual_seed(0)
    model = _build(GAT, ds, n_layers=1)
    ei = bipartite_edge_index(model.edge_index, ds.n_users)
    n = ds.n_users + ds.n_items
    conv = GATConv(16, 16, heads=3, concat=False, add_self_loops=True, dropout=0.3).double()
    with torch.no_grad():
        conv.bias.normal_()
    conv.train(training)
    x = torch.randn(n, 16, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    ref = conv(x, ei)
    torch.manual_seed(1)
    out = gat_layer(conv, x, GATGraph(ei, n, 3))
    assert out.shape == (n, 16)
    assert torch.allclose(out, ref, atol=1e-12)
    weights = (x, conv.lin.weight, conv.att_src, conv.att_dst, conv.bias)
    g_ref = torch.autograd.grad((ref * ref.detach().sin()).sum(), weights)
    g_out = torch.autograd.grad((out * out.detach().sin()).sum(), weights)
    for a, b in zip(g_out, g_ref):
        assert torch.allclose(a, b, atol=1e-10)


def test_defaults_are_valid():
    for cfg in (GraphSAGEConfig(), GATConfig(), NGCFConfig()):
        assert cfg.device == "auto" and cfg.n_layers >= 1


def test_gat_counts_a_repeated_pair_once(ds):
    model = _build(GAT, ds).eval()
    ei = model.edge_index.clone()
    users = torch.arange(4)
    plain = model.score(users)
    model.set_graph(torch.cat([ei, ei[:, :5]], 1))
    assert torch.equal(model.score(users), plain)
