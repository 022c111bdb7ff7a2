"""Retrain the three two-thread ml100k generator runs of this probe (notebook 03's configuration distill_lgc_w3,
cpu_threads 2, split seeds 0-2) after the NaN-fill change of session 33, into a scratch runs folder, and compare
them with the committed runs of the same keys: validation curve, best epoch and test metrics must be equal bit for
bit; the seconds are the new ones.

Usage, from the repository root, with `eval "$(.venv/bin/mmgrec env)"` and MMGREC_DATA set, quiet machine:
    python reports/probes/generator_two_threads_2026-12-05/rerun_nofill.py SCRATCH_DIR SEED...
Reads the Rec-ID runs and the committed generator runs from runs/ (or the seed-run ledger's lines)."""
import dataclasses, json, sys, time
from pathlib import Path
from mmgrec_lib.numerics import portable_numerics
portable_numerics()
import pandas as pd, yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import load_or_assign_recids, profile_rung_config, run_generator

HERE = Path(__file__).parent


def retrain(seed: int, scratch: Path):
    """Notebook 03's configuration (distill_lgc_w3, cpu_threads 2) on split seed ``seed``, trained into ``scratch``
    (its Rec-ID run from runs/): ``(run, wall seconds, whether the Rec-IDs were reused)``. Also used by
    ``../generator_step_2026-12-05/rerun_trainings.py``."""
    prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
    rc0, gc0, lp0 = profile_rung_config(prof, "distill_lgc_w3", pd.read_csv("reports/tables/ladder_ml100k.csv"))
    ds = load_dataset("ml100k", seed=seed)
    rc, gc = dataclasses.replace(rc0, seed=seed), gc0.replace(seed=seed)
    recids, _, reused = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
    t0 = time.time()
    run = run_generator(ds, recids, gc, dataclasses.replace(lp0, cpu_threads=2), runs_dir=scratch)
    return run, time.time() - t0, reused


def same_run(run, before: dict) -> bool:
    """Whether ``run`` has ``before``'s (a result file's) epochs, best epoch, validation score and test metrics."""
    test = run.test.mean()
    return (run.fit.best_epoch == before["best_epoch"] and len(run.fit.history) == before["epochs_run"]
            and run.fit.best_score == before["val_recall@10"]
            and all(test[k] == before["test"][k] for k in before["test"]))


if __name__ == "__main__":
    scratch, seeds = Path(sys.argv[1]), [int(s) for s in sys.argv[2:]]
    scratch.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        before = json.loads((HERE / f"result_ml100k_w3_threads2_seed{seed}.json").read_text())["lever"]
        run, wall, reused = retrain(seed, scratch)
        out = {"seed": seed, "recids_reused": reused, "train_seconds": run.train_seconds, "wall_seconds": wall,
               "train_seconds_before": before["train_seconds"], "epochs_run": len(run.fit.history),
               "best_epoch": run.fit.best_epoch, "val_recall@10": run.fit.best_score, "test": run.test.mean(),
               "same_as_before_bit_for_bit": same_run(run, before)}
        print(json.dumps(out, default=float), flush=True)
        (HERE / f"result_ml100k_w3_threads2_nofill_seed{seed}.json").write_text(json.dumps(out, default=float, indent=1))
