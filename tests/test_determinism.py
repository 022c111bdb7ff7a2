"""Same seed -> same Rec-IDs and metrics on CPU, also when torch uses several threads.

conftest pins torch to one thread for speed; these tests switch to two on purpose, because multi-threaded
float reductions are where run-to-run differences came from (they flipped Rec-ID codes).
"""
import contextlib
import copy

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
    """``assign_recids`` called with two threads set: its loop trains on its own ``LoopConfig.cpu_threads`` (one
    thread) and restores the caller's two; the two-thread alternating epoch itself is checked below."""
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
        assert not torch.utils.deterministic.fill_uninitialized_memory      # no NaN pass over each allocation
        assert torch.get_num_threads() == 2
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory
    with pytest.raises(RuntimeError), cpu_threads(2):
        raise RuntimeError("boom")
    assert not torch.are_deterministic_algorithms_enabled()      # restored after an error too
    assert torch.utils.deterministic.fill_uninitialized_memory


def test_cpu_threads_leaves_a_callers_deterministic_settings_alone():
    with _deterministic_with_fill():
        with cpu_threads(2):
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.utils.deterministic.fill_uninitialized_memory
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()


@contextlib.contextmanager
def _deterministic_with_fill():
    """Deterministic algorithms with torch's default NaN fill of new tensors, switched on by the caller (so
    :func:`cpu_threads` leaves both alone): the setting before ``cpu_threads`` turned the fill off."""
    assert not torch.are_deterministic_algorithms_enabled() and torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


def _alternating_epoch_state(ds) -> dict:
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer

    cfg = GraphRQVAEConfig(codebook_size=16, batch_size=512, device="cpu")
    trainer = _Trainer(ds, cfg, torch.device("cpu"))
    with cpu_threads(2):
        trainer.model.train()
        trainer.epoch_alternate(0, torch.Generator().manual_seed(0))
    return copy.deepcopy(trainer.model.state_dict())


def _generator_run(threads: int):
    from _fixtures import random_recid_setup
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.generator.training import train_generator

    ds, table, u, i = random_recid_setup(n_users=60, n_items=80, dim=16)
    cfg = GeneratorConfig.from_dict(dict(d_model=32, n_layers=1, n_heads=2, dim_feedforward=64, max_len=8,
                                         batch_size=64, beam_width=10, val_ks=(10,), device="cpu"))
    model, res = train_generator(ds, table, u, i, cfg, LoopConfig(epochs=2, patience=0, progress=False,
                                                                  cpu_threads=threads),
                                 torch.Generator().manual_seed(0))
    return copy.deepcopy(model.state_dict()), [r["recall@10"] for r in res.history if "recall@10" in r]


def test_alternating_epoch_identical_with_two_threads():
    ds = make_synthetic(n_users=300, n_items=400, seed=0)
    assert _same(_alternating_epoch_state(ds), _alternating_epoch_state(ds))


def test_two_thread_training_is_the_same_without_the_nan_fill():
    """Turning off the NaN fill of new tensors (what :func:`cpu_threads` does above one thread) changes no
    result: an alternating Graph RQ-VAE epoch and a generator training on two threads, bit for bit."""
    ds = make_synthetic(n_users=300, n_items=400, seed=0)
    gen_without = _generator_run(2)
    recid_without = _alternating_epoch_state(ds)
    with _deterministic_with_fill():
        gen_with = _generator_run(2)
        recid_with = _alternating_epoch_state(ds)
    assert _same(recid_without, recid_with) and _same(gen_without[0], gen_with[0])
    assert gen_without[1] == gen_with[1]


def _same(a, b) -> bool:
    """Bit-for-bit equality of state dicts (tensors, and the extra states' dicts of tensors)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


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
