"""The generic epoch loop: early stopping, best-weight restore, exact resume, atomic checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgrec_lib import utils
from mmgrec_lib.training import LoopConfig, fit
from mmgrec_lib.utils import load_checkpoint


# ---------------------------------------------------------------------------------------- early stopping
class Scripted:
    """A one-parameter model whose weight records the epoch, and a scripted validation score sequence."""

    def __init__(self, scores):
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.scores = list(scores)
        self.validations = 0

    def train_epoch(self, epoch, generator):
        with torch.no_grad():
            self.model.weight.fill_(epoch + 1)          # weight == number of epochs done
        return {"loss": 0.0}

    def validate(self):
        score = self.scores[self.validations]
        self.validations += 1
        return {"recall@10": score}


def test_early_stopping_stops_after_patience_and_restores_best():
    # best at epoch 2 (0.5); epochs 3, 4, 5 do not beat it -> with patience 3, stop after epoch 5
    s = Scripted([0.1, 0.5, 0.3, 0.5, 0.4, 0.9, 0.9])
    res = fit(s.model, s.optimizer, s.train_epoch, s.validate, LoopConfig(epochs=7, patience=3, progress=False),
              torch.Generator().manual_seed(0))
    assert res.stopped_early and res.best_epoch == 2 and res.best_score == 0.5
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5]
    assert s.model.weight.item() == 2.0                 # weights of epoch 2 restored, not of epoch 5


def test_patience_counts_validations_not_epochs():
    # eval_every=2 validates after epochs 2, 4, 6, 8; best at epoch 2; 2 bad validations (4, 6) -> stop at 6
    s = Scripted([0.5, 0.1, 0.2, 0.9])
    res = fit(s.model, s.optimizer, s.train_epoch, s.validate,
              LoopConfig(epochs=8, patience=2, eval_every=2, progress=False), torch.Generator().manual_seed(0))
    assert res.stopped_early and res.best_epoch == 2 and len(res.history) == 6
    assert "recall@10" not in res.history[0] and "recall@10" in res.history[1]
    assert s.model.weight.item() == 2.0


def test_patience_zero_never_stops():
    s = Scripted([0.5, 0.1, 0.1, 0.1])
    res = fit(s.model, s.optimizer, s.train_epoch, s.validate, LoopConfig(epochs=4, patience=0, progress=False),
              torch.Generator().manual_seed(0))
    assert not res.stopped_early and len(res.history) == 4 and s.model.weight.item() == 1.0


# ---------------------------------------------------------------------------------------- exact resume
class Regression:
    """Linear regression with Adam, shuffled minibatches and generator-drawn noise (all randomness from
    the generator handed to ``train_epoch``), validated by negative MSE."""

    def __init__(self, init_seed: int):
        data = torch.Generator().manual_seed(123)
        self.x = torch.randn(64, 4, generator=data)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(64, generator=data)
        torch.manual_seed(init_seed)                    # different fresh objects start from different weights
        self.model = torch.nn.Linear(4, 1)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.05)

    def train_epoch(self, epoch, generator):
        perm = torch.randperm(64, generator=generator)
        total = 0.0
        for start in range(0, 64, 16):
            idx = perm[start:start + 16]
            noise = 0.01 * torch.randn(len(idx), 4, generator=generator)
            loss = ((self.model(self.x[idx] + noise).squeeze(1) - self.y[idx]) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
        return {"loss": total / 4}

    def validate(self):
        return {"neg_mse": -float(((self.model(self.x).squeeze(1) - self.y) ** 2).mean())}

    def run(self, epochs, checkpoint=None, eval_every=1, seed=0):
        loop = LoopConfig(epochs=epochs, patience=50, eval_every=eval_every, monitor="neg_mse",
                          checkpoint=checkpoint, progress=False)
        return fit(self.model, self.optimizer, self.train_epoch, self.validate, loop,
                   torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("eval_every,interrupt_at", [(1, 3), (2, 4)])
def test_interrupted_run_resumes_exactly(tmp_path, eval_every, interrupt_at):
    full = Regression(init_seed=0)
    ref = full.run(epochs=7, eval_every=eval_every)

    ckpt = tmp_path / "run.pt"
    first = Regression(init_seed=0)
    part = first.run(epochs=interrupt_at, checkpoint=ckpt, eval_every=eval_every)
    assert len(part.history) == interrupt_at
    fresh = Regression(init_seed=99)                    # fresh model and optimizer objects, other init
    res = fresh.run(epochs=7, checkpoint=ckpt, eval_every=eval_every, seed=12345)  # seed ignored: restored
    assert res.resumed_from == interrupt_at
    assert res.history == ref.history
    assert (res.best_epoch, res.best_score) == (ref.best_epoch, ref.best_score)
    for a, b in zip(fresh.model.state_dict().values(), full.model.state_dict().values()):
        assert torch.equal(a, b)
    # a finished run resumes as a no-op and returns the same result
    again = Regression(init_seed=5)
    res2 = again.run(epochs=7, checkpoint=ckpt)
    assert res2.history == ref.history
    assert torch.equal(again.model.weight, full.model.weight)


def test_checkpoint_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    ckpt = tmp_path / "sub" / "run.pt"
    Regression(init_seed=0).run(epochs=2, checkpoint=ckpt)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["run.pt"]
    before = load_checkpoint(ckpt)
    assert before["epoch"] == 2 and before["finished"]

    real_save = torch.save

    def torn_save(obj, fh, *args, **kwargs):            # write half a file, then "crash"
        real_save(obj, fh, *args, **kwargs)
        fh.seek(0)
        fh.truncate(10)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(utils.torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        Regression(init_seed=0).run(epochs=4, checkpoint=ckpt)
    monkeypatch.undo()
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["run.pt"]
    after = load_checkpoint(ckpt)                       # the previous checkpoint is intact
    assert after["epoch"] == 2 and after["history"] == before["history"]


def test_eval_mode_restores_the_previous_mode_also_on_errors():
    from mmgrec_lib.utils import eval_mode

    net = torch.nn.Sequential(torch.nn.Dropout(0.5))
    with eval_mode(net):
        assert not net.training and not net[0].training
    assert net.training and net[0].training
    net.eval()
    with eval_mode(net):
        pass
    assert not net.training                                         # was eval: stays eval
    net.train()
    with pytest.raises(RuntimeError):
        with eval_mode(net):
            raise RuntimeError("boom")
    assert net.training


def test_check_ids_range_dtype_and_shape():
    from mmgrec_lib.utils import check_ids

    out = check_ids(np.array([[0, 4], [2, 1]], dtype=np.int32), 5, "item")
    assert out.dtype == torch.long and out.shape == (2, 2)
    with pytest.raises(ValueError, match=r"^MF: user ids must be in \[0, 5\): 2 out of range \[0, 5\) \(e.g. \[5, -1\]\)"):
        check_ids(torch.tensor([5, 0, -1]), 5, "user", "MF")
    with pytest.raises(ValueError, match="item ids must be integers"):
        check_ids(torch.tensor([0.0, 1.0]), 5, "item")
    assert check_ids(torch.zeros(0, dtype=torch.long), 0, "item").numel() == 0
