"""Probe (issue 10): w3_cosine16 on ml100k split seed N (configs as notebook 09's seed runs: split and training seeds N),
next to the ledger line of distill_lgc_w3 for the same seed. Usage, from the repository root: probe_seeds.py N;
writes result_seedN.json beside this file."""
import dataclasses, json, sys, time
from pathlib import Path
from mmgrec_lib.numerics import portable_numerics
portable_numerics()
import torch, yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import Rung, profile_bases, rung_configs, run_generator, load_or_assign_recids
from mmgrec_lib.experiments.ledger import RunLedger
from mmgrec_lib.experiments.runs import generator_run_path
torch.set_num_threads(1)
seed = int(sys.argv[1]); RUNS = "runs"
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
ds = load_dataset("ml100k", seed=seed)
recid_base, gen_base, loop = profile_bases(prof)
rungs = [Rung.from_dict(r) for r in prof["LADDER"]]
configs = dict(zip([r.name for r in rungs], rung_configs(recid_base, gen_base, loop, rungs)))
out = {"seed": seed}
book = RunLedger("reports/ledgers/seed_runs_ml100k.jsonl")
for name in ("distill_lgc_w3", "w3_cosine16"):
    rc, gc, lp = configs[name]
    rc, gc = dataclasses.replace(rc, seed=seed), gc.replace(seed=seed)
    path = generator_run_path(RUNS, ds, rc.to_dict(), gc, lp)
    line = book.get(path.stem)
    if name == "distill_lgc_w3":
        out[name] = {"key": path.stem, "exists": path.exists(),
                     "ledger": None if line is None else {k: line.get(k) for k in ("best_epoch", "val_recall@10", "test_recall@10", "test_ndcg@10", "train_seconds", "machine")}}
        continue
    t0 = time.time()
    recids, recid_path, _ = load_or_assign_recids(ds, rc, runs_dir=RUNS, progress=False)
    t1 = time.time()
    run = run_generator(ds, recids, gc, lp, runs_dir=RUNS)
    out[name] = {"key": Path(run.checkpoint).stem, "recid_seconds": t1 - t0, "resumed_from": run.fit.resumed_from,
                 "train_seconds": run.train_seconds, "best_epoch": run.fit.best_epoch, "val": run.fit.best_score,
                 "test": run.test.mean()}
print(json.dumps(out, default=float), flush=True)
Path(__file__).with_name(f"result_seed{seed}.json").write_text(json.dumps(out, default=float, indent=1))
