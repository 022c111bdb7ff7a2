"""Multimodal graph baselines (MMGCN, LATTICE, FREEDOM) under the Recommender interface: shapes, learning
signal on planted clusters, save/load, determinism, exact resume, clear errors without modality features, and
the kNN item-item graphs against dense references. Tiny data only (make_tiny_dataset: 40 users x 60 items,
two modalities clustered like the interactions)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _baseline_checks import CommonChecks, Harness, ModalityChecks, loop as _loop
from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines.freedom import FREEDOM, FREEDOMConfig
from mmgrec_lib.baselines.lattice import LATTICE, LATTICEConfig, edge_spmm, knn_edges, knn_graph
from mmgrec_lib.baselines.mmgcn import MMGCN, MMGCNConfig, modality_features, normalized_edge_values

SMALL = {
    MMGCN: dict(dim=16, n_layers=2, lr=0.02, batch_size=128, device="cpu"),
    LATTICE: dict(dim=16, feat_dim=8, n_layers=2, knn_k=5, lr=0.02, batch_size=128, device="cpu"),
    FREEDOM: dict(dim=16, n_layers=2, knn_k=5, edge_dropout=0.5, lr=0.02, batch_size=128, device="cpu"),
}
MODELS = [MMGCN, LATTICE, FREEDOM]
H = Harness(SMALL)
_build = H.build


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


class TestCommon(CommonChecks, ModalityChecks):
    harness, MODELS, SEED_EPOCHS = H, MODELS, 3


def test_config_errors():
    for make, match in [(lambda: LATTICEConfig(lambda_coeff=1.5), "lambda_coeff must be in"),
                        (lambda: LATTICEConfig(knn_k=0), "knn_k must be > 0"),
                        (lambda: FREEDOMConfig(edge_dropout=1.0), "edge_dropout must be in"),
                        (lambda: FREEDOMConfig(modality_weights=(-1.0, 1.0)), "modality_weights must be"),
                        (lambda: MMGCNConfig(n_layers=0), "n_layers must be > 0"),
                        (lambda: MMGCNConfig(reg=-1.0), "reg must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match=r"MMGCNConfig: dim = '16'"):
        MMGCNConfig(dim="16")
    assert FREEDOMConfig(modality_weights=[1, 2]).modality_weights == (1.0, 2.0)
    with pytest.raises(ValueError, match="modality_weights has 1 entries for 2 modalities"):
        FREEDOM.from_dataset(make_tiny_dataset(), modality_weights=(1.0,), device="cpu")


# ---------------------------------------------------------------------------------------------- kNN graphs
def _dense_knn_reference(x: torch.Tensor, k: int, weighted: bool, mask=None) -> torch.Tensor:
    """Dense ``D^-1/2 S D^-1/2`` of the symmetrised top-k cosine graph (the straightforward way)."""
    n = x.shape[0]
    mask = torch.ones(n, dtype=torch.bool) if mask is None else mask
    xn = F.normalize(x.double(), dim=1)
    sim = xn @ xn.T                                                                  # (N, N)
    sim[:, ~mask] = -torch.inf
    top = torch.zeros(n, n, dtype=torch.bool)
    for i in torch.nonzero(mask).flatten():
        top[i, torch.topk(sim[i], k).indices] = True
    sym = top | top.T
    s = torch.where(sym, (xn @ xn.T).clamp_min(0) if weighted else torch.ones(n, n, dtype=torch.double), 0.0)
    deg = s.sum(1)
    inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), 0.0)
    return inv[:, None] * s * inv[None, :]


def _dense(ei, w, n):
    return torch.sparse_coo_tensor(ei, w.double(), (n, n), check_invariants=True).to_dense()


@pytest.mark.parametrize("modality", ["visual", "textual"])
def test_knn_graph_keeps_k_neighbours_and_matches_dense_reference(ds, modality):
    x = torch.from_numpy(ds.features[modality])
    n, k = x.shape[0], 5
    ei = knn_edges(x, k)
    assert ei.shape == (2, n * k)
    assert torch.equal(torch.bincount(ei[0], minlength=n), torch.full((n,), k))     # exactly k per item
    assert len(torch.unique(ei[0] * n + ei[1])) == n * k                            # no repeated neighbour
    assert (ei[1].view(n, k) == torch.arange(n)[:, None]).any(1).all()              # itself included
    assert torch.equal(knn_edges(x, k, chunk_size=7), ei)                           # chunking changes nothing
    for weighted in (True, False):
        g_ei, g_w = knn_graph(x, k, weighted=weighted, chunk_size=11)
        dense = _dense(g_ei, g_w, n)
        assert torch.allclose(dense, dense.T, atol=1e-6)                            # symmetric
        assert torch.allclose(dense, _dense_knn_reference(x, k, weighted), atol=1e-6)
        assert (dense > 0).sum(1).min() >= k                                        # symmetrised: at least k


def test_knn_graph_items_lacking_the_modality(ds):
    x = torch.from_numpy(ds.features["visual"]).clone()
    mask = torch.ones(ds.n_items, dtype=torch.bool)
    mask[:4] = False
    x[:4] = 0.0
    ei = knn_edges(x, 5, mask)
    assert ei.shape == (2, (ds.n_items - 4) * 5) and (ei >= 4).all()               # no edges to or from them
    g_ei, g_w = knn_graph(x, 5, mask)
    assert torch.allclose(_dense(g_ei, g_w, ds.n_items), _dense_knn_reference(x, 5, True, mask), atol=1e-6)


def test_model_item_graphs_are_the_knn_graphs(ds):
    feats = modality_features(ds)
    lattice = _build(LATTICE, ds)
    freedom = _build(FREEDOM, ds, modality_weights=(0.25, 0.75))
    d_vis = ds.features["visual"].shape[1]
    blocks = [feats["item_features"][:, :d_vis], feats["item_features"][:, d_vis:]]
    refs = [_dense_knn_reference(b, 5, weighted) for weighted in (True, False) for b in blocks]
    for m in range(2):                                          # LATTICE: frozen weighted graph per modality
        assert torch.allclose(_dense(*lattice.original_graph(m), ds.n_items), refs[m], atol=1e-6)
    # FREEDOM: one frozen graph, the beta-weighted sum of the binary modality graphs
    expected = 0.25 * refs[2] + 0.75 * refs[3]
    assert torch.allclose(_dense(freedom.item_edge_index, freedom.item_values, ds.n_items), expected, atol=1e-6)


def test_edge_spmm_gradients():
    torch.manual_seed(0)
    x = torch.randn(12, 5, dtype=torch.double)
    ei = knn_graph(x, 3)[0]

    def f(x, h):
        v = normalized_edge_values(ei, F.normalize(x, dim=1)[ei[0]].mul(F.normalize(x, dim=1)[ei[1]]).sum(-1).abs(), 12)
        return edge_spmm(ei, v, h)

    h = torch.randn(12, 4, dtype=torch.double)
    assert torch.autograd.gradcheck(f, (x.requires_grad_(), h.requires_grad_()))


def test_freedom_pruning_is_degree_sensitive_and_renormalised(ds):
    model = _build(FREEDOM, ds, edge_dropout=0.5)
    n_edges = ds.train.nnz
    adj = model.pruned_adjacency(torch.Generator().manual_seed(0)).to_dense()      # (U+I, U+I)
    assert int((adj > 0).sum()) == 2 * (n_edges // 2)                               # half kept, both directions
    assert torch.allclose(adj, adj.T)
    deg = (adj > 0).sum(1).float()
    nz = torch.nonzero(adj)
    assert torch.allclose(adj[nz[:, 0], nz[:, 1]], (deg[nz[:, 0]] * deg[nz[:, 1]]).rsqrt())  # D'^-1/2 A' D'^-1/2
    again = model.pruned_adjacency(torch.Generator().manual_seed(0)).to_dense()
    assert torch.equal(adj, again)                                                  # from the generator only
    # edges between high-degree nodes are dropped more often: count over draws
    users, items = model.edge_index
    d_u, d_i = torch.bincount(users).float(), torch.bincount(items).float()
    p = (d_u[users] * d_i[items]).rsqrt()
    kept = torch.zeros(n_edges)
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        a = model.pruned_adjacency(gen)
        kept += (a.to_dense()[users, items + ds.n_users] > 0).float()
    low, high = p <= p.median(), p > p.median()
    assert kept[high].mean() > kept[low].mean()
    full = _build(FREEDOM, ds, edge_dropout=0.0)                                    # no pruning: the full graph
    assert torch.equal(full.pruned_adjacency(gen).to_dense(), full.adjacency("sym").to_dense())



@pytest.mark.parametrize("every_step", [False, True])
def test_lattice_learned_graphs_rebuilt_once_per_epoch_as_in_the_reference(ds, monkeypatch, every_step):
    """Training builds the learned graphs at each epoch's first step (the reference code's schedule) and reuses
    them as constants; rebuild_every_step=True builds them at every step; the projections learn either way."""
    model = _build(LATTICE, ds, batch_size=64, rebuild_every_step=every_step)
    calls = []
    original = LATTICE.learned_graph
    monkeypatch.setattr(LATTICE, "learned_graph", lambda self, m: calls.append(m) or original(self, m))
    before = [p.detach().clone() for p in model.proj.parameters()]
    epochs = 2
    model.fit(ds, _loop(epochs), torch.Generator().manual_seed(0))
    steps = -(-ds.train.nnz // 64)                                        # steps per epoch
    builds_in_training = epochs * (steps if every_step else 1) * model.n_modalities
    assert len(calls) >= builds_in_training                               # + the validations' builds
    validations = len(calls) - builds_in_training
    assert validations % model.n_modalities == 0 and validations <= epochs * model.n_modalities
    assert any(not torch.equal(a, b) for a, b in zip(before, model.proj.parameters()))


def test_mmgcn_score_parts_are_the_modality_networks(ds):
    """score_parts: one part per modality network, whose vectors sum to the model's representation; "full" is the
    model's score."""
    from mmgrec_lib.experiments.zoo import score_parts_table
    model, _ = H.trained(MMGCN, ds, epochs=2)
    parts = model.score_parts()
    assert list(parts) == [f"modality_{m}" for m in range(model.n_modalities)] + ["full"]
    users = torch.arange(ds.n_users)
    assert torch.allclose(parts["full"][0] @ parts["full"][1].T, model.score(users), atol=1e-5)
    for side in (0, 1):
        total = sum(parts[f"modality_{m}"][side] for m in range(model.n_modalities))
        assert torch.allclose(total, parts["full"][side], atol=1e-5)
    table = score_parts_table(model, ds, split="val")
    assert list(table["part"]) == list(parts) and table["recall@10"].between(0, 1).all()
