"""Probe (issue 10): a bounded cosine schedule on ml100k's chosen rung, against the chosen rung itself, on the same
Rec-ID runs. Configs as notebook 09's seed runs (split and training seeds N; one thread, the runner's regime), so
the chosen rung's run keys are the ladder's and a variant's are what notebook 09 would give the same rung.

Usage, from the repository root, with ``MMGREC_DATA`` set (the script pins the portable kernels itself):
    python reports/probes/cosine_schedule_2026-12-06/probe_rung.py RUNG SEED
RUNG: ``distill_lgc_w3`` or a name of ``VARIANTS`` (a ``_p14`` one after the run it continues). Writes ``result_<RUNG>_seed<N>.json`` beside this file (means,
timings and the per-user test metrics, for paired tests)."""
import dataclasses
import json
import sys
import time
from pathlib import Path

from mmgrec_lib.numerics import portable_numerics

portable_numerics()
import torch  # noqa: E402
import yaml  # noqa: E402

from mmgrec_lib.data import load_dataset  # noqa: E402
from mmgrec_lib.experiments import Rung, load_or_assign_recids, profile_bases, rung_configs, run_generator  # noqa: E402
from mmgrec_lib.experiments.runs import generator_run_path  # noqa: E402
from mmgrec_lib.training.loop import extend_patience  # noqa: E402

# rungs on distill_lgc_w3 (lr 1e-3 constant, up to 60 epochs, early stopping after 5 validations without gain)
VARIANTS = {
    "w3_cosine28": {"lr": 2.0e-3, "lr_schedule": "cosine", "schedule_epochs": 28, "epochs": 28},
    "w3_cosine28_lr1e-3": {"lr": 1.0e-3, "lr_schedule": "cosine", "schedule_epochs": 28, "epochs": 28},
}
# the same schedules without early stopping (patience 14 validations: a 28-epoch run validated every 2 epochs never
# stops), continued exactly from the run with patience 5 (``extend_patience``: the same states until that one stopped)
for _name in ("w3_cosine28", "w3_cosine28_lr1e-3"):
    VARIANTS[_name + "_p14"] = {**VARIANTS[_name], "patience": 14}
EXTENDS = {"w3_cosine28_p14": "w3_cosine28", "w3_cosine28_lr1e-3_p14": "w3_cosine28_lr1e-3"}
RUNS = "runs"


def seed_configs(seed: int) -> dict:
    """``name -> (recid_config, generator_config, loop)`` of notebook 09's ml100k rungs and of ``VARIANTS``, with
    split seed ``seed``'s Rec-ID and training seeds (the seed runs' keys)."""
    prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
    rungs = [Rung.from_dict(r) for r in prof["LADDER"]]
    rungs += [Rung(name=k, base="distill_lgc_w3", generator=v, note="probe") for k, v in VARIANTS.items()]
    return {r.name: (dataclasses.replace(rc, seed=seed), gc.replace(seed=seed), lp)
            for r, (rc, gc, lp) in zip(rungs, rung_configs(*profile_bases(prof), rungs))}


def main(name: str, seed: int, out_dir: Path | None = None) -> dict:
    """Trains (or loads) rung ``name`` on split seed ``seed``; writes its result file into ``out_dir`` (default: beside
    this file)."""
    torch.set_num_threads(1)
    configs = seed_configs(seed)
    rc, gc, lp = configs[name]
    ds = load_dataset("ml100k", seed=seed)
    t0 = time.perf_counter()
    recids, recid_path, _ = load_or_assign_recids(ds, rc, runs_dir=RUNS, progress=False)
    t1 = time.perf_counter()
    extended_from = None
    if name in EXTENDS:
        target = generator_run_path(RUNS, ds, recids.config, gc, lp)
        _, src_gc, src_lp = configs[EXTENDS[name]]
        source = generator_run_path(RUNS, ds, recids.config, src_gc, src_lp)
        if not target.exists():
            if not source.exists():
                raise FileNotFoundError(f"{name} continues {EXTENDS[name]}'s run {source}, which is not there: train it first")
            extend_patience(source, target)
        extended_from = source.stem
    run = run_generator(ds, recids, gc, lp, runs_dir=RUNS)
    wall = time.perf_counter() - t1
    hist = run.fit.history
    out = {"rung": name, "seed": seed, "key": Path(run.checkpoint).stem, "recid_key": Path(recid_path).stem, "unique_semantic_frac": recids.stats.get("unique_semantic_frac"),
           "recid_seconds": t1 - t0, "resumed_from": run.fit.resumed_from, "extended_from": extended_from, "train_seconds": run.train_seconds,
           "wall_seconds": wall, "epochs_run": len(hist), "best_epoch": run.fit.best_epoch,
           "val_recall@10": run.fit.best_score, "test": run.test.mean(),
           "val_curve": [[r["epoch"], r.get("recall@10")] for r in hist if "recall@10" in r],
           "epoch_train_s": [r.get("train_s") for r in hist],
           "threads": torch.get_num_threads(),
           "per_user_test": {c: [round(float(x), 6) for x in run.test.per_user[c]] for c in ("recall@10", "ndcg@10")},
           "users": [int(u) for u in run.test.per_user.index]}
    print(json.dumps({k: v for k, v in out.items() if k not in ("per_user_test", "users", "epoch_train_s")},
                     default=float), flush=True)
    (out_dir or Path(__file__).parent).joinpath(f"result_{name}_seed{seed}.json").write_text(json.dumps(out, default=float) + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
