"""Seed 2's capped run (at most 28 epochs) against the uncapped run of the same configuration, both on two threads:
whether the capped run is an exact prefix of the uncapped one (its history equal epoch for epoch) and the paired
test over test users. Both runs are read from the seed-run ledger (their per-user test hits), their histories from
the runs folder.

Usage, from the repository root, with MMGREC_DATA set: .venv/bin/python reports/probes/epoch_cap_2026-12-05/capped_vs_uncapped.py
"""
import json
from pathlib import Path

import torch

from mmgrec_lib.data import load_dataset
from mmgrec_lib.evaluation.significance import paired_test
from mmgrec_lib.experiments.ledger import RunLedger
from mmgrec_lib.experiments.recorded import recorded_run
from mmgrec_lib.generator.training import TIME_KEYS

CAPPED, UNCAPPED = "generator_ml100k_fe68ddcad4", "generator_ml100k_8adbc3e8a6"   # w3_threads2_cap28 / w3_threads2, seed 2

book = RunLedger("reports/ledgers/seed_runs_ml100k.jsonl")
ds = load_dataset("ml100k", seed=2)
runs = {k: recorded_run(book.get(k), ds, Path("runs") / f"{k}.pt", where=k) for k in (CAPPED, UNCAPPED)}
out = {"capped": CAPPED, "uncapped": UNCAPPED}
strip = lambda h: [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in h]   # the rest is equal in equal runs
ckpt = {k: torch.load(Path("runs") / f"{k}.pt", map_location="cpu", weights_only=False) for k in (CAPPED, UNCAPPED)
        if (Path("runs") / f"{k}.pt").exists()}
if len(ckpt) == 2:
    a, b = strip(ckpt[CAPPED]["history"]), strip(ckpt[UNCAPPED]["history"])
    out["history_is_prefix"] = a == b[:len(a)]
    out["train_seconds"] = {k: round(sum(c["epoch_seconds"]), 1) for k, c in ckpt.items()}
for name, key in (("capped", CAPPED), ("uncapped", UNCAPPED)):
    line = book.get(key)
    out[f"{name}_facts"] = {m: line[m] for m in ("best_epoch", "epochs_run", "val_recall@10", "test_recall@10",
                                                   "test_ndcg@10", "test_recall@20", "test_ndcg@20")}
out["paired"] = {m: paired_test(runs[CAPPED].test, runs[UNCAPPED].test, m)
                 for m in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")}
text = json.dumps(out, indent=1, default=float)
Path(__file__).with_name("result_capped_vs_uncapped_seed2.json").write_text(text + "\n")
print(text)
