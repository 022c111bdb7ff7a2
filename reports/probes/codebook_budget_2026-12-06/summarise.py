"""Table of the probe's results: L = 256 against 128 per split seed (paired Wilcoxon over test users) and across seeds
(paired t-test on the seeds' means). usage: summarise.py  (prints Markdown)"""
import json
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel, wilcoxon

HERE = Path(__file__).resolve().parent


def load(size, seed):
    p = HERE / f"result_L{size}_seed{seed}.json"
    return json.loads(p.read_text()) if p.is_file() else None


rows, pairs = [], []
for seed in range(10):
    a, b = load(128, seed), load(256, seed)
    if a is None or b is None:
        continue
    p = {m: wilcoxon(np.array(b["per_user"][m]) - np.array(a["per_user"][m]), zero_method="wilcox").pvalue
         for m in ("recall@10", "ndcg@10")}
    pairs.append((a, b))
    rows.append(f"| {seed} | {a['unique_semantic_frac']:.4f} / {b['unique_semantic_frac']:.4f} | "
                f"{a['val_recall@10']:.4f} / {b['val_recall@10']:.4f} | {a['test']['recall@10']:.4f} / {b['test']['recall@10']:.4f} | "
                f"{a['test']['ndcg@10']:.4f} / {b['test']['ndcg@10']:.4f} | {p['recall@10']:.3g} / {p['ndcg@10']:.3g} | "
                f"{a['best_epoch']} / {b['best_epoch']} | {a['train_seconds']:.0f} / {b['train_seconds']:.0f} |")
print("| split seed | unique semantic IDs (128 / 256) | val R@10 | test R@10 | test N@10 | p over users (R@10 / N@10) | best epoch | train s |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
if len(pairs) > 1:
    def metric(run, key):
        return run[key] if key == "val_recall@10" else run["test"][key]
    for key in ("val_recall@10", "recall@10", "ndcg@10"):
        a, b = [metric(x, key) for x, _ in pairs], [metric(y, key) for _, y in pairs]
        print(f"\n{key}: L=128 {np.mean(a):.4f}, L=256 {np.mean(b):.4f}, paired t across {len(a)} seeds p = "
              f"{ttest_rel(b, a).pvalue:.3g}", end="")
    print()
