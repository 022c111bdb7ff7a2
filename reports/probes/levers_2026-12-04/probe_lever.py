"""Probe (issue 11): one lever on top of a ladder rung of notebook 09, at the ladder's full budget, over split seeds,
against the base rung's own run for the same seed (its checkpoint when present, else the seed-run ledger's line, as
notebook 09's seed runs and notebook 04 record it; trained here when neither exists): validation, test metrics,
paired p over test users, list coverage@10.

Usage, from the repository root:
    probe_lever.py DATASET BASE_RUNG NAME FIELD=VALUE [FIELD=VALUE ...] --seeds 0 1 2 [--fresh-base] [--out DIR]
FIELD: a GeneratorConfig or LoopConfig field, or recid.FIELD for a GraphRQVAEConfig field (VALUE parsed as YAML:
2, 2.0e-3, false). Split and training seeds
are each seed, as in notebook 09's seed runs, so the run keys are those of a ladder rung
{name: NAME, base: BASE_RUNG, generator: {FIELD: VALUE}, recid: {FIELD: VALUE}}. Writes result_DATASET_NAME_seedN.json beside this file
(or into --out); every run is recorded in reports/ledgers/seed_runs_DATASET.jsonl. With --fresh-base the base rung
is trained on this machine too (or loaded from its checkpoint in runs/), never read from the ledger, whose lines may
come from another machine (runs of one key differ between machines), and it is not recorded there (its key keeps the
line the notebooks read); each side trained or loaded here also reports its first stage (first_stage)."""
import argparse, dataclasses, json, time
from pathlib import Path
from mmgrec_lib.numerics import portable_numerics
portable_numerics()
import torch, yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.evaluation.significance import paired_test
from mmgrec_lib.experiments import Rung, profile_bases, rung_configs, run_generator, load_or_assign_recids
from mmgrec_lib.experiments.ledger import RunLedger
from mmgrec_lib.experiments.recorded import list_coverage, recall, remember
from mmgrec_lib.experiments.runs import generator_run_path, recid_run_path

ap = argparse.ArgumentParser()
ap.add_argument("dataset"); ap.add_argument("base"); ap.add_argument("name"); ap.add_argument("changes", nargs="+")
ap.add_argument("--seeds", type=int, nargs="+", default=[0])
ap.add_argument("--fresh-base", action="store_true", help="train the base here too; do not read or record it in the ledger")
ap.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder of the result files")
args = ap.parse_args()
changes = {k: yaml.safe_load(v) for k, v in (c.split("=", 1) for c in args.changes)}
recid_changes = {k[len("recid."):]: v for k, v in changes.items() if k.startswith("recid.")}
gen_changes = {k: v for k, v in changes.items() if not k.startswith("recid.")}
torch.set_num_threads(1)
RUNS = "runs"
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == args.dataset][0]
recid_base, gen_base, loop = profile_bases(prof)
rungs = [Rung.from_dict(r) for r in prof["LADDER"]]
lever = Rung.from_dict({"name": args.name, "base": args.base, "generator": gen_changes, "recid": recid_changes})
known = {r.name: r for r in rungs}
if args.name not in known:
    rungs.append(lever)
elif (known[args.name].base, known[args.name].generator, known[args.name].recid) != (lever.base, lever.generator, lever.recid):
    raise SystemExit(f"rung {args.name!r} is in the ladder's profile with other changes: {known[args.name]}")
configs = dict(zip([r.name for r in rungs], rung_configs(recid_base, gen_base, loop, rungs)))  # fields checked here
# In a greedy ladder a rung without `base` goes on top of the rungs *kept* above it, not of every rung above it:
# the base's configuration follows the committed table's built_on chain (added 2026-12-04 evening, after a run on
# a TikTok base that the cumulative reading had built wrong; see README.md).
table_path = Path(f"reports/tables/ladder_{args.dataset}.csv")
if prof.get("GREEDY", True) and table_path.exists():
    import pandas as pd
    from mmgrec_lib.experiments import built_chain
    table = pd.read_csv(table_path)
    if args.base in set(table["rung"]):
        base_chain = built_chain(rungs, table, args.base)
        configs[args.base] = rung_configs(recid_base, gen_base, loop, base_chain)[-1]
        configs[args.name] = rung_configs(recid_base, gen_base, loop,
                                          base_chain + [dataclasses.replace(lever, base="")])[-1]
book = RunLedger(f"reports/ledgers/seed_runs_{args.dataset}.jsonl")
for seed in args.seeds:
    ds = load_dataset(args.dataset, seed=seed)
    out = {"dataset": args.dataset, "seed": seed, "base": args.base, "lever": args.name, "changes": changes}
    runs = {}
    for which, name in (("base", args.base), ("lever", args.name)):
        rc, gc, lp = configs[name]
        rc, gc = dataclasses.replace(rc, seed=seed), gc.replace(seed=seed)
        path = generator_run_path(RUNS, ds, rc.to_dict(), gc, lp)
        t0 = time.time()
        fresh = args.fresh_base and which == "base"
        run = None if fresh else recall(book, path, ds)               # the ledger's line when the file is missing
        recid_s, first = 0.0, None
        if run is None:
            recids, _, reused = load_or_assign_recids(ds, rc, runs_dir=RUNS, progress=False)
            recid_s = time.time() - t0
            run = run_generator(ds, recids, gc, lp, runs_dir=RUNS)
            if not fresh:
                remember(book, run)
            first = {"recid_key": recid_run_path(RUNS, ds, rc).stem, "reused": reused,
                     **{k: recids.stats.get(k) for k in ("val_recall@10", "best_epoch", "epochs_run",
                                                         "unique_semantic_frac", "sec_per_epoch", "total_sec")}}
        runs[which] = run
        out[which] = {"rung": name, "key": path.stem, "from_ledger": run.model is None, "first_stage": first,
                      "recid_seconds": recid_s,
                      "train_seconds": run.train_seconds, "best_epoch": run.fit.best_epoch,
                      "epochs_run": len(run.fit.history), "val_recall@10": run.fit.best_score,
                      "test": run.test.mean(),
                      "coverage@10": list_coverage(run, ds, book, beam_width=gc.train.beam_width)}
    out["p_lever_vs_base"] = {m: paired_test(runs["lever"].test, runs["base"].test, m)["p_wilcoxon"]
                              for m in ("recall@10", "ndcg@10", "recall@20")}
    print(json.dumps(out, default=float), flush=True)
    (args.out / f"result_{args.dataset}_{args.name}_seed{seed}.json").write_text(
        json.dumps(out, default=float, indent=1))
