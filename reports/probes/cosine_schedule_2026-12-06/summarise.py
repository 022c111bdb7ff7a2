"""Table of the probe's runs (``result_<rung>_seed<N>.json``): per split seed, each variant against the chosen rung
``distill_lgc_w3`` trained here on the same Rec-ID run (paired Wilcoxon over test users), and the means over
seeds. Usage: python reports/probes/cosine_schedule_2026-12-06/summarise.py [DIR ...] > result_table.md
(DIR: probe folders whose result files are read together; default this one.)"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

HERE = Path(__file__).parent
BASE = "distill_lgc_w3"
runs = {}
for f in sorted(f for d in (sys.argv[1:] or [HERE]) for f in Path(d).glob("result_*_seed*.json")):
    r = json.loads(f.read_text())
    runs[(r["rung"], r["seed"])] = r
rungs = [BASE] + sorted({k[0] for k in runs} - {BASE})
seeds = sorted({k[1] for k in runs})


def p_paired(a: dict, b: dict, metric: str) -> float:
    assert a["users"] == b["users"], "per-user results over different users"
    x, y = np.asarray(a["per_user_test"][metric]), np.asarray(b["per_user_test"][metric])
    return float(wilcoxon(x, y).pvalue) if np.any(x != y) else 1.0


print("| rung | split seed | train s (1 thread, other core busy) | epochs run | best epoch | val R@10 | test R@10 | "
      "test N@10 | test R@20 | p R@10 vs base | p N@10 vs base |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for rung in rungs:
    for s in seeds:
        r = runs.get((rung, s))
        if r is None:
            continue
        b = runs.get((BASE, s))
        ps = ["", ""] if rung == BASE or b is None else [f"{p_paired(r, b, m):.3f}" for m in ("recall@10", "ndcg@10")]
        t = r["test"]
        print(f"| {rung} | {s} | {r['train_seconds']:.0f} | {r['epochs_run']} | {r['best_epoch']} | "
              f"{r['val_recall@10']:.4f} | {t['recall@10']:.4f} | {t['ndcg@10']:.4f} | {t['recall@20']:.4f} | "
              f"{ps[0]} | {ps[1]} |")
print()
print("Means over the seeds where both the rung and distill_lgc_w3 ran (the base's means over the same seeds beside "
      "each; std over seeds in brackets; p across seeds: Wilcoxon signed-rank over the seeds' paired means, shown "
      "from 5 seeds on):")
print()
print("| rung | seeds | mean train s | max epochs run | val R@10 | base val R@10 | test R@10 | base test R@10 | "
      "test N@10 | base test N@10 | val above base on | p across seeds (val / test R@10 / test N@10) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")


def ms(a) -> str:
    a = np.asarray(a)
    return f"{a.mean():.4f}" + (f" ({a.std(ddof=1):.4f})" if len(a) > 1 else "")


for rung in rungs:
    common = [s for s in seeds if (rung, s) in runs and (BASE, s) in runs]
    if not common:
        continue
    rs, bs = [runs[(rung, s)] for s in common], [runs[(BASE, s)] for s in common]
    above = "" if rung == BASE else f"{sum(r['val_recall@10'] > b['val_recall@10'] for r, b in zip(rs, bs))} of {len(rs)}"
    across = "" if rung == BASE or len(rs) < 5 else " / ".join(
        f"{wilcoxon([get(r) for r in rs], [get(b) for b in bs]).pvalue:.2f}"
        for get in (lambda x: x["val_recall@10"], lambda x: x["test"]["recall@10"], lambda x: x["test"]["ndcg@10"]))
    print(f"| {rung} | {','.join(map(str, common))} | {np.mean([r['train_seconds'] for r in rs]):.0f} | "
          f"{max(r['epochs_run'] for r in rs)} | {ms([r['val_recall@10'] for r in rs])} | "
          f"{ms([b['val_recall@10'] for b in bs])} | {ms([r['test']['recall@10'] for r in rs])} | "
          f"{ms([b['test']['recall@10'] for b in bs])} | {ms([r['test']['ndcg@10'] for r in rs])} | "
          f"{ms([b['test']['ndcg@10'] for b in bs])} | {above} | {across} |")
