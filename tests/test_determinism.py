"""Same seed -> same Rec-IDs and metrics on CPU, also when torch uses several threads.

conftest pins torch to one thread for speed; these tests switch to two on purpose, because multi-threaded
float reductions are where run-to-run differences came from (they flipped Rec-ID codes).
"""
import pytest
import torch

from mmgrec_lib.data.synthetic import make_synthetic
from mmgrec_lib.evaluation import evaluate
from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAEConfig, assign_recids
from mmgrec_lib.training import LoopConfig, cpu_threads


@pytest.fixture
def two_threads():
    with cpu_threads(2):
        yield


def test_recids_identical_with_two_threads(two_threads):
    ds = make_synthetic(n_users=200, n_items=500, seed=0)
    cfg = GraphRQVAEConfig(epochs=2, rq_epochs=3, codebook_size=16, device="cpu")
    a = assign_recids(ds, cfg, progress=False)
    b = assign_recids(ds, cfg, progress=False)
    assert torch.equal(a.item_emb, b.item_emb)
    assert torch.equal(a.table.codes, b.table.codes)
    assert torch.get_num_threads() == 2          # the loop restores the caller's setting


def test_baseline_metrics_identical_with_two_threads(two_threads):
    from mmgrec_lib.baselines import LightGCN

    ds = make_synthetic(n_users=200, n_items=500, seed=0)
    results = []
    for _ in range(2):
        model = LightGCN.from_dataset(ds, dim=16, device="cpu")
        model.fit(ds, LoopConfig(epochs=2, patience=0, progress=False), torch.Generator().manual_seed(0))
        results.append(evaluate(model.score, ds, "test").mean())
    assert results[0] == results[1]


def test_id_without_graph_trains_on_one_thread(monkeypatch):
    """The "ID w/o" RQ-VAE trains outside the epoch loop; it must pin one thread too (its TikTok codes changed
    between identical multi-threaded runs)."""
    import torch

    from _fixtures import make_tiny_dataset
    from mmgrec_lib.tokenizer import alternatives, GraphRQVAEConfig

    seen = []
    real = alternatives.train_rqvae

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(alternatives, "train_rqvae", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        alternatives.feature_rqvae_codes(make_tiny_dataset(), GraphRQVAEConfig(codebook_size=4, rq_epochs=2, device="cpu"))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cpu_threads_switches_on_deterministic_algorithms_and_restores():
    """Several threads turn on torch's deterministic algorithms for the block (gradients of gathers with repeated
    indices otherwise add up across threads in a varying order); one thread leaves the setting alone."""
    assert not torch.are_deterministic_algorithms_enabled()
    with cpu_threads(1):
        assert not torch.are_deterministic_algorithms_enabled()
    with cpu_threads(2):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.get_num_threads() == 2
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError), cpu_threads(2):
        raise RuntimeError("boom")
    assert not torch.are_deterministic_algorithms_enabled()      # restored after an error too


def _lightgcn_weights(ds, threads: int) -> torch.Tensor:
    from mmgrec_lib.baselines import LightGCN

    model = LightGCN.from_dataset(ds, dim=64, batch_size=4096, device="cpu")    # big enough to run threaded
    model.fit(ds, LoopConfig(epochs=1, patience=0, eval_every=1, progress=False, cpu_threads=threads),
              torch.Generator().manual_seed(0))
    return model.gnn.embedding.weight.detach().clone()


def test_lightgcn_trains_alike_on_one_and_two_threads():
    """A LightGCN run on two threads gives the same weights as on one, bit for bit (what lets ``mmgrec bench train
    --threads 2`` stand for the one-thread runs of the notebooks), and two two-thread runs agree."""
    ds = make_synthetic(n_users=1500, n_items=1000, mean_items_per_user=15, seed=0)
    one, two, again = (_lightgcn_weights(ds, t) for t in (1, 2, 2))
    assert torch.equal(two, again)
    assert torch.equal(one, two)
