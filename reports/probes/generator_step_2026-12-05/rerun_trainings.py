"""Retrain the three two-thread ml100k generator runs of ``../generator_two_threads_2026-12-05`` (notebook 03's
configuration ``distill_lgc_w3``, ``cpu_threads`` 2, split seeds 0-2) with this session's code, into a scratch runs
folder, and compare them with that probe's last rerun (``result_ml100k_w3_threads2_nofill_seed<N>.json``, the
code before this session's change): validation curve, best epoch and test metrics must be equal bit for bit, and
the last and best weights equal those of the run file of the same key in ``runs/`` where it is there; the seconds are new.

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"`` and ``MMGREC_DATA`` set, quiet machine:
    python reports/probes/generator_step_2026-12-05/rerun_trainings.py SCRATCH_DIR SEED...
Writes ``result_rerun_seed<N>.json`` here."""
import dataclasses
import json
import sys
import time
from pathlib import Path

from mmgrec_lib.numerics import portable_numerics

portable_numerics()
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from mmgrec_lib.data import load_dataset  # noqa: E402
from mmgrec_lib.experiments import load_or_assign_recids, profile_rung_config, run_generator  # noqa: E402

scratch, seeds = Path(sys.argv[1]), [int(s) for s in sys.argv[2:]]
scratch.mkdir(parents=True, exist_ok=True)
here = Path(__file__).parent
earlier = here.parent / "generator_two_threads_2026-12-05"
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
rc0, gc0, lp0 = profile_rung_config(prof, "distill_lgc_w3", pd.read_csv("reports/tables/ladder_ml100k.csv"))
lp0 = dataclasses.replace(lp0, cpu_threads=2)
for seed in seeds:
    before = json.loads((earlier / f"result_ml100k_w3_threads2_nofill_seed{seed}.json").read_text())
    ds = load_dataset("ml100k", seed=seed)
    rc, gc = dataclasses.replace(rc0, seed=seed), gc0.replace(seed=seed)
    recids, _, reused = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
    t0 = time.time()
    run = run_generator(ds, recids, gc, lp0, runs_dir=scratch)
    wall = time.time() - t0
    test = run.test.mean()
    same = (run.fit.best_epoch == before["best_epoch"] and len(run.fit.history) == before["epochs_run"]
            and run.fit.best_score == before["val_recall@10"]
            and all(test[k] == before["test"][k] for k in before["test"]))
    new_file = sorted((p for p in scratch.glob("generator_ml100k_*.pt") if ".decode" not in p.name),
                      key=lambda p: p.stat().st_mtime)[-1]
    old_file = Path("runs") / new_file.name
    weights_equal = None
    if old_file.exists():
        a, b = (torch.load(f, map_location="cpu", weights_only=False) for f in (new_file, old_file))
        weights_equal = all(a[w].keys() == b[w].keys() and all(torch.equal(a[w][k], b[w][k]) for k in a[w])
                            for w in ("model", "best_model"))         # last and best weights
    out = {"seed": seed, "key": new_file.stem, "recids_reused": reused, "train_seconds": run.train_seconds,
           "wall_seconds": wall, "train_seconds_before": before["train_seconds"],
           "epochs_run": len(run.fit.history), "best_epoch": run.fit.best_epoch, "val_recall@10": run.fit.best_score,
           "test": test, "same_as_before_bit_for_bit": same, "weights_equal_to_runs_file": weights_equal}
    print(json.dumps(out, default=float), flush=True)
    (here / f"result_rerun_seed{seed}.json").write_text(json.dumps(out, default=float, indent=1) + "\n")
