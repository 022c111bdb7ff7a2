"""One whole training of a rung on two threads, alone on the machine, into a scratch runs folder (the Rec-ID run is
read from ``runs/``, where ``probe_rung.py`` trained it): the time a user waits for one ml100k generator training.
The run is the two-thread run of the rung's key (``cpu_threads`` 2), not the one-thread run of ``probe_rung.py``.

Usage, from the repository root, quiet machine: python .../time_two_threads.py RUNG SEED SCRATCH
Writes ``result_two_threads_<RUNG>_seed<N>.json`` beside this file."""
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from probe_rung import seed_configs  # noqa: E402  (importing it pins the portable kernels)

from mmgrec_lib.data import load_dataset  # noqa: E402
from mmgrec_lib.experiments import load_or_assign_recids, run_generator  # noqa: E402


def main(name: str, seed: int, scratch: Path, out_dir: Path | None = None) -> dict:
    """Trains rung ``name`` on split seed ``seed`` into ``scratch`` on two threads; writes the result into ``out_dir``
    (default: beside this file)."""
    rc, gc, lp = seed_configs(seed)[name]
    lp = dataclasses.replace(lp, cpu_threads=2)
    ds = load_dataset("ml100k", seed=seed)
    recids, _, _ = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
    scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run = run_generator(ds, recids, gc, lp, runs_dir=scratch)
    out = {"rung": name, "seed": seed, "threads": 2, "key": Path(run.checkpoint).stem, "resumed_from": run.fit.resumed_from,
           "train_seconds": run.train_seconds, "wall_seconds_with_test": time.perf_counter() - t0,
           "epochs_run": len(run.fit.history), "best_epoch": run.fit.best_epoch, "val_recall@10": run.fit.best_score,
           "test": run.test.mean()}
    print(json.dumps(out, default=float), flush=True)
    (out_dir or Path(__file__).parent).joinpath(f"result_two_threads_{name}_seed{seed}.json").write_text(json.dumps(out, default=float, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
