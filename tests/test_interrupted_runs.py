"""Interrupted runs and read-only places (issue 13): a training process killed with SIGKILL in the middle of
its checkpoint writes resumes to the uninterrupted result and leaves no temporary files; stale temporary
files of dead writers are cleaned; an unwritable feature cache costs a warning, not the computed features;
damaged checkpoints can be overwritten; written files get the usual mode; a resumed Graph RQ-VAE run
reports the time of the whole run."""
from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mmgrec_lib.data import features as F
from mmgrec_lib.data import paths
from mmgrec_lib.data.paths import atomic_write, remove_stale_temporaries
from mmgrec_lib.training import LoopConfig, fit
from mmgrec_lib.utils import CheckpointError, atomic_save, load_checkpoint

from _fixtures import make_tiny_dataset


# ---------------------------------------------------------------------------------------- kill -9 and resume
class Tiny:
    """A small MLP regression trained with Adam on shuffled minibatches with generator-drawn noise: every
    random draw comes from the generator that the loop checkpoints, so a resumed run is exact."""

    def __init__(self):
        data = torch.Generator().manual_seed(123)
        self.x = torch.randn(256, 8, generator=data)
        self.y = torch.sin(self.x @ torch.randn(8, generator=data))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.01)

    def train_epoch(self, epoch, generator):
        perm = torch.randperm(256, generator=generator)
        total = 0.0
        for start in range(0, 256, 32):
            idx = perm[start:start + 32]
            noise = 0.05 * torch.randn(len(idx), 8, generator=generator)
            loss = ((self.model(self.x[idx] + noise).squeeze(1) - self.y[idx]) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
        return {"loss": total / 8}

    def validate(self):
        return {"neg_mse": -float(((self.model(self.x).squeeze(1) - self.y) ** 2).mean())}

    def run(self, epochs, checkpoint=None):
        loop = LoopConfig(epochs=epochs, patience=0, monitor="neg_mse", checkpoint=checkpoint, progress=False)
        return fit(self.model, self.optimizer, self.train_epoch, self.validate, loop, torch.Generator().manual_seed(7))


EPOCHS = 14


def _train_with_slow_writes(checkpoint, result):
    """The training process: checkpoint writes are stretched (1 KiB, pause, 1 KiB, ...) so that a kill lands
    inside them; the result (history, weights) goes to ``result`` when the run completes."""
    real_save = torch.save

    def slow_save(obj, fh, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        for i in range(0, len(data), 1024):
            fh.write(data[i:i + 1024])
            fh.flush()
            time.sleep(0.002)

    torch.save = slow_save                     # this process only (a forked child)
    tiny = Tiny()
    res = tiny.run(EPOCHS, checkpoint)
    real_save({"history": res.history, "best_epoch": res.best_epoch, "resumed_from": res.resumed_from,
               "state": tiny.model.state_dict()}, result)


def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_sigkill_during_checkpoint_writes_resumes_exactly_and_leaves_no_temporaries(tmp_path):
    reference = Tiny()
    ref = reference.run(EPOCHS)                                  # uninterrupted, no checkpoint

    runs = tmp_path / "runs"
    runs.mkdir()
    ckpt, result = runs / "tiny.pt", tmp_path / "result.pt"
    ctx = multiprocessing.get_context("fork")                    # a real process, without a second torch import
    rng = np.random.default_rng(0)
    killed_mid_write, epochs_at_kill = 0, []
    for attempt in range(3):
        proc = ctx.Process(target=_train_with_slow_writes, args=(ckpt, result))
        proc.start()
        wanted, seen = int(rng.integers(1, 4)), set()            # kill during its 1st, 2nd or 3rd write
        deadline = time.monotonic() + 60
        while len(seen) < wanted:
            assert proc.is_alive(), f"attempt {attempt}: the run ended before {wanted} checkpoint writes"
            assert time.monotonic() < deadline, "no checkpoint write seen within 60 s"
            seen |= {n for n in _temporaries(runs) if f".{proc.pid}." in n}
            time.sleep(0.0005)
        time.sleep(float(rng.uniform(0, 0.008)))                 # somewhere inside the ~20 ms write
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        killed_mid_write += any(f".{proc.pid}." in n for n in _temporaries(runs))
        if ckpt.exists():                                        # what survives is a whole checkpoint
            epochs_at_kill.append(load_checkpoint(ckpt)["epoch"])
    assert killed_mid_write >= 1, "no kill landed inside a checkpoint write: the test did not test that"
    assert _temporaries(runs), "the killed writers' temporary files should be there before the next write"

    proc = ctx.Process(target=_train_with_slow_writes, args=(ckpt, result))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 0
    out = torch.load(result, weights_only=False)
    assert out["resumed_from"] > 0 and out["resumed_from"] == max(epochs_at_kill)
    assert out["history"] == ref.history and out["best_epoch"] == ref.best_epoch
    for name, value in reference.model.state_dict().items():
        assert torch.equal(out["state"][name], value), name
    assert _temporaries(runs) == [] and sorted(os.listdir(runs)) == ["tiny.pt"]


# ---------------------------------------------------------------------------------------- stale temporaries
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    host, dead = paths._host(), _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    old = time.time() - 2 * paths.STALE_TMP_SECONDS
    try:
        names = {
            f".run.pt.{host}.{dead}.aaaa1111.tmp": False,        # this host, writer gone: removed
            f".run.pt.{host}.{os.getpid()}.bbbb2222.tmp": True,  # this process (another thread may write)
            f".run.pt.{host}.{sleeper.pid}.cccc3333.tmp": True,  # a live writer
            f".run.pt.otherhost.{dead}.dddd4444.tmp": True,      # another host, recent: can't tell, kept
            f".run.pt.otherhost.{dead}.eeee5555.tmp:old": False,  # another host, old: removed
            ".run.pt.ffff6666.tmp": True,                        # unnamed writer, recent: kept
            ".run.pt.gggg7777.tmp:old": False,                   # unnamed writer, old: removed
            f".other.pt.{host}.{dead}.hhhh8888.tmp": True,       # another file's temporary
            f".run.pt.x.{host}.{dead}.iiii9999.tmp": True,       # the temporary of run.pt.x
            "notes.txt": True,
        }
        for spec in names:
            name = spec.removesuffix(":old")
            (tmp_path / name).write_bytes(b"partial")
            if spec.endswith(":old"):
                os.utime(tmp_path / name, (old, old))
        atomic_write(tmp_path / "run.pt", lambda fh: fh.write(b"whole"))
        left = set(os.listdir(tmp_path))
        for spec, kept in names.items():
            assert (spec.removesuffix(":old") in left) == kept, spec
        assert (tmp_path / "run.pt").read_bytes() == b"whole"
    finally:
        sleeper.kill()
        sleeper.wait()
    # once the live writer is gone too, the next write takes its leftover
    removed = remove_stale_temporaries(tmp_path / "run.pt")
    assert [p.name for p in removed] == [f".run.pt.{host}.{sleeper.pid}.cccc3333.tmp"]


def test_concurrent_writers_of_one_file_never_lose_a_write(tmp_path):
    """Threads of one process share a pid: their temporaries are never taken for stale ones."""
    import threading

    target, errors = tmp_path / "shared.pt", []

    def writer(k):
        try:
            for i in range(20):
                atomic_save({"writer": k, "i": i, "pad": torch.zeros(2000)}, target)
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and load_checkpoint(target)["i"] == 19
    assert sorted(os.listdir(tmp_path)) == ["shared.pt"]


# ---------------------------------------------------------------------------------------- read-only cache
@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(F, "_WARNED_UNCACHED", set())


def test_cache_folder_not_creatable_warns_once_and_returns_the_features(tmp_path, monkeypatch, fresh_warnings):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path / "a-file" / "cache"))
    calls = []

    def compute():
        calls.append(len(caught))                                # warnings issued before the computation
        return np.ones((3, 2))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = F.cached_array("demo", "k1", compute, n_rows=3)
        second = F.cached_array("demo", "k2", compute, n_rows=3)
    assert first.dtype == np.float32 and first.shape == (3, 2) and np.array_equal(first, second)
    assert calls == [1, 1]                                       # warned before computing, and only once
    msg = str(caught[0].message)
    assert caught[0].category is RuntimeWarning
    assert "a-file/cache/features (from MMGREC_CACHE) cannot be created" in msg
    assert "computed features are used but not cached" in msg and "set MMGREC_CACHE to a writable folder" in msg


def test_cache_write_failing_after_the_computation_keeps_the_features(tmp_path, monkeypatch, fresh_warnings):
    def denied(array, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(F, "_save_npy", denied)
    with pytest.warns(RuntimeWarning, match=r"feature cache folder .*features \(from the cache= argument\) "
                                            r"PermissionError: .*Permission denied.*not cached"):
        arr = F.cached_array("demo", "k", lambda: np.full((2, 2), 5.0), cache=tmp_path / "c", n_rows=2)
    assert arr.tolist() == [[5.0, 5.0], [5.0, 5.0]]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder(tmp_path, monkeypatch, fresh_warnings):
    cache = tmp_path / "ro"
    (cache / "features").mkdir(parents=True)
    (cache / "features").chmod(0o555)
    monkeypatch.setenv("MMGREC_CACHE", str(cache))
    try:
        with pytest.warns(RuntimeWarning, match=r"\(from MMGREC_CACHE\) is not writable"):
            arr = F.cached_array("demo", "k", lambda: np.zeros((1, 1)))
        assert arr.shape == (1, 1)
    finally:
        (cache / "features").chmod(0o755)


def test_a_writable_cache_is_still_used(tmp_path, fresh_warnings):
    calls = []
    compute = lambda: calls.append(1) or np.ones((2, 3))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no warning on the normal path
        a = F.cached_array("demo", "k", compute, cache=tmp_path, n_rows=2)
        b = F.cached_array("demo", "k", compute, cache=tmp_path, n_rows=2)
    assert calls == [1] and np.array_equal(a, b)


# ---------------------------------------------------------------------------------------- damaged checkpoints
def test_damaged_checkpoint_is_named_and_overwritten_with_resume_false(tmp_path):
    ckpt = tmp_path / "runs" / "tiny.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CheckpointError, match=r"tiny\.pt could not be read .*delete it .*resume=False"):
        Tiny().run(3, ckpt)
    fresh = Tiny()
    loop = LoopConfig(epochs=3, patience=0, monitor="neg_mse", checkpoint=ckpt, resume=False, progress=False)
    res = fit(fresh.model, fresh.optimizer, fresh.train_epoch, fresh.validate, loop, torch.Generator().manual_seed(7))
    assert res.resumed_from == 0 and load_checkpoint(ckpt)["epoch"] == 3           # overwritten
    again = Tiny().run(3, ckpt)                                                      # and usable again
    assert again.resumed_from == 3 and again.history == res.history


def test_damaged_recid_run_is_named_and_overwrite_recomputes_it(tmp_path):
    from mmgrec_lib.experiments import load_or_assign_recids
    from mmgrec_lib.experiments.runs import recid_run_path
    from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAEConfig

    ds = make_tiny_dataset()
    cfg = GraphRQVAEConfig(dim=8, codebook_size=8, batch_size=256, epochs=1, rq_epochs=1, patience=0,
                           rq_hidden_dim=16, rq_latent_dim=4, device="cpu", seed=0)
    path = recid_run_path(tmp_path, ds, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"recid_.*\.pt could not be read.*Delete .*recid_.*\.pt to compute "
                                              r"the Rec-IDs again, or call load_or_assign_recids\(\.\.\., "
                                              r"overwrite=True\)"):
        load_or_assign_recids(ds, cfg, runs_dir=tmp_path, progress=False)
    run, saved, reused = load_or_assign_recids(ds, cfg, runs_dir=tmp_path, progress=False, overwrite=True)
    assert saved == path and not reused
    assert load_or_assign_recids(ds, cfg, runs_dir=tmp_path, progress=False)[2]      # reused next time


# ---------------------------------------------------------------------------------------- file modes
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o007, 0o660)])
def test_tables_and_checkpoints_get_the_usual_mode(tmp_path, umask, mode):
    from mmgrec_lib.reporting import save_table

    before = os.umask(umask)
    try:
        csv = save_table(pd.DataFrame({"a": [1]}), "t", tmp_path / "reports")
        ckpt = atomic_save({"x": 1}, tmp_path / "runs" / "c.pt")
        loop_ckpt = tmp_path / "runs" / "loop.pt"
        Tiny().run(1, loop_ckpt)
    finally:
        os.umask(before)
    for f in (csv, csv.with_suffix(".md"), ckpt, loop_ckpt):
        assert f.stat().st_mode & 0o777 == mode, f


# ---------------------------------------------------------------------------------------- Graph RQ-VAE timing
def test_resumed_graph_rqvae_reports_the_time_of_the_whole_run(tmp_path):
    from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAEConfig, assign_recids

    ds = make_tiny_dataset()
    small = dict(dim=8, codebook_size=8, batch_size=256, rq_epochs=2, patience=0, rq_hidden_dim=16,
                 rq_latent_dim=4, device="cpu", seed=0)
    ckpt = tmp_path / "g.ckpt"
    assign_recids(ds, GraphRQVAEConfig(epochs=2, **small), progress=False, checkpoint=ckpt)
    state = load_checkpoint(ckpt)                  # pretend the first two epochs took 100 s each
    state["epoch_seconds"] = [100.0, 100.0]
    for row in state["history"]:
        row["time_s"] = 100.0
    torch.save(state, ckpt)
    run = assign_recids(ds, GraphRQVAEConfig(epochs=4, **small), progress=False, checkpoint=ckpt)
    st = run.stats
    assert st["resumed_from_epoch"] == 2 and st["epochs_run"] == 4
    assert st["this_call_sec"] < 100 < 200 <= st["total_sec"]
    assert st["total_sec"] >= st["sec_per_epoch"] * st["epochs_run"]          # one run, seen whole by both
    assert st["total_sec"] == pytest.approx(st["this_call_sec"] + 200, abs=1.0)
