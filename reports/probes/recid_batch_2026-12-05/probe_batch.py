"""Probe (issue 10): the Graph RQ-VAE BPR batch size, a value of the paper's own grid ({500, 1000, 2000, 3000}),
under TikTok's chosen rung, over split seeds: base rung and lever both trained on *this* machine (the seed-run
ledger's base lines come from another machine, whose runs of one key differ from this one's), so each pair
differs by the lever alone. Reports each first stage's validation Recall@10, unique semantic IDs, epochs and
seconds, and each generator's validation, test metrics, paired p over test users and list coverage@10.

Usage, from the repository root:
    probe_batch.py DATASET BASE_RUNG NAME FIELD=VALUE [FIELD=VALUE ...] --seeds 0 1 2
(the arguments of ../levers_2026-12-04/probe_lever.py). The lever's runs are recorded in the seed-run ledger;
the base's are not (its key's committed line stays the one notebook 09 read). Writes
result_DATASET_NAME_seedN.json beside this file."""
import argparse, dataclasses, json, time
from pathlib import Path
from mmgrec_lib.numerics import portable_numerics
portable_numerics()
import torch, yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.evaluation.significance import paired_test
from mmgrec_lib.experiments import Rung, ladder_bases, rung_configs, run_generator, load_or_assign_recids
from mmgrec_lib.experiments.ledger import RunLedger
from mmgrec_lib.experiments.recorded import list_coverage, recall, remember
from mmgrec_lib.experiments.runs import generator_run_path, recid_run_path

ap = argparse.ArgumentParser()
ap.add_argument("dataset"); ap.add_argument("base"); ap.add_argument("name"); ap.add_argument("changes", nargs="+")
ap.add_argument("--seeds", type=int, nargs="+", default=[0])
args = ap.parse_args()
changes = {k: yaml.safe_load(v) for k, v in (c.split("=", 1) for c in args.changes)}
recid_changes = {k[len("recid."):]: v for k, v in changes.items() if k.startswith("recid.")}
gen_changes = {k: v for k, v in changes.items() if not k.startswith("recid.")}
torch.set_num_threads(1)
RUNS = "runs"
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == args.dataset][0]
recid_base, gen_base, loop = ladder_bases(*(prof[k] for k in ("CODEBOOK_SIZE", "RECID_EPOCHS", "RECID_RQ_EPOCHS",
                                                              "FINETUNE_ITEM_EMB", "EPOCHS", "PATIENCE", "EVAL_EVERY")))
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
        recids, _, reused = load_or_assign_recids(ds, rc, runs_dir=RUNS, progress=False)   # trained here
        recid_s = time.time() - t0
        run = run_generator(ds, recids, gc, lp, runs_dir=RUNS)
        if which == "lever":
            remember(book, run)
        st = recids.stats
        first = {"recid_key": recid_run_path(RUNS, ds, rc).stem, "reused": reused,
                 **{k: st.get(k) for k in ("val_recall@10", "best_epoch", "epochs_run", "unique_semantic_frac",
                                           "sec_per_epoch", "total_sec", "machine")}}
        runs[which] = run
        out[which] = {"rung": name, "key": path.stem, "first_stage": first, "recid_seconds": recid_s,
                      "train_seconds": run.train_seconds, "best_epoch": run.fit.best_epoch,
                      "epochs_run": len(run.fit.history), "val_recall@10": run.fit.best_score,
                      "test": run.test.mean(),
                      "coverage@10": list_coverage(run, ds, book, beam_width=gc.train.beam_width)}
    out["p_lever_vs_base"] = {m: paired_test(runs["lever"].test, runs["base"].test, m)["p_wilcoxon"]
                              for m in ("recall@10", "ndcg@10", "recall@20")}
    print(json.dumps(out, default=float), flush=True)
    Path(__file__).with_name(f"result_{args.dataset}_{args.name}_seed{seed}.json").write_text(
        json.dumps(out, default=float, indent=1))
