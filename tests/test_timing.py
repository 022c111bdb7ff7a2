"""Wall-clock phase timing for benchmarks: the timer's arithmetic, and trainers that run alike with and without it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.generator.training import TIME_KEYS, train_generator
from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAEConfig, _Trainer
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.training import LoopConfig
from mmgrec_lib.training.timing import PhaseTimer, phase


def test_phase_timer_sums_each_phase_and_divides_by_steps(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.25, 2.0, 2.5])                      # (start, end) of three phases
    monkeypatch.setattr("mmgrec_lib.training.timing.time.perf_counter", lambda: next(clock))
    timer = PhaseTimer()
    assert timer.per_step_ms() == {} and timer.summary() == ""
    for name in ("forward", "backward", "forward"):
        with timer(name):
            pass
    timer.step()
    timer.step()
    assert timer.seconds == {"forward": 1.0, "backward": 0.25}
    assert timer.per_step_ms() == {"forward": 500.0, "backward": 125.0}
    assert timer.summary() == "forward 500.0, backward 125.0 ms per step (2 steps)"


def test_a_phase_that_raises_is_still_counted():
    timer = PhaseTimer()
    with pytest.raises(RuntimeError):
        with timer("boom"):
            raise RuntimeError("x")
    assert timer.seconds["boom"] >= 0.0


def test_no_timer_is_a_no_op():
    with phase(None, "anything"):
        x = 1
    assert x == 1


TINY = dict(dim=8, n_layers=2, codebook_size=8, batch_size=64, epochs=1, rq_epochs=0, patience=0, rq_hidden_dim=16,
            rq_latent_dim=4, device="cpu", seed=0)
PHASES = {"alternate": ["bpr_forward", "bpr_backward", "bpr_optimizer", "rq_graph_forward", "rq_forward",
                        "rq_backward", "rq_optimizer"],
          "two_stage": ["bpr_forward", "bpr_backward", "bpr_optimizer"],
          "joint": ["forward", "backward", "optimizer"]}


@pytest.mark.parametrize("schedule", list(PHASES))
def test_graph_rqvae_epoch_is_the_same_with_a_timer(schedule):
    ds = make_tiny_dataset()
    cfg = GraphRQVAEConfig(**{**TINY, "schedule": schedule})
    plain, timed = (_Trainer(ds, cfg, torch.device("cpu")) for _ in range(2))
    timed.timer = PhaseTimer()
    rows = [t.graph_epoch()(0, torch.Generator().manual_seed(3)) for t in (plain, timed)]
    for a, b in zip(plain.model.state_dict().values(), timed.model.state_dict().values()):
        if isinstance(a, torch.Tensor):                                 # (the quantiser's extra state is a dict)
            assert torch.equal(a, b)
    assert {k: v for k, v in rows[0].items() if k != "time_s"} == {k: v for k, v in rows[1].items() if k != "time_s"}
    n_steps = -(-int(ds.train.nnz) // cfg.batch_size)
    assert timed.timer.steps == n_steps and list(timed.timer.seconds) == PHASES[schedule]
    assert all(v > 0 for v in timed.timer.per_step_ms().values())


def test_generator_training_is_the_same_with_a_timer():
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    rng = np.random.default_rng(0)
    table = RecIDTable(disambiguate(rng.integers(0, 4, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(1)
    u, i = torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g)
    cfg = GeneratorConfig.from_dict(dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=5,
                                         batch_size=64, beam_width=10, val_ks=(10,), device="cpu"))
    loop = LoopConfig(epochs=2, patience=0, progress=False)
    timer = PhaseTimer()
    (m0, r0), (m1, r1) = (train_generator(ds, table, u, i, cfg, loop, torch.Generator().manual_seed(7), timer=t)
                          for t in (None, timer))
    for a, b in zip(m0.state_dict().values(), m1.state_dict().values()):
        assert torch.equal(a, b)
    strip = [[{k: v for k, v in row.items() if k not in TIME_KEYS} for row in r.history] for r in (r0, r1)]
    assert strip[0] == strip[1]
    assert list(timer.seconds) == ["forward", "backward", "optimizer"] and timer.steps >= 2
