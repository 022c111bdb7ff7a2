"""Table of the k = 2 lever on TikTok over every split seed with a result file (result_tiktok_cosine_4_rq2_seed*.json):
first stage and generator, base (k = 1) against lever (k = 2), and the mean, the number of seeds where the lever is
higher, and a paired test over seeds (Wilcoxon signed-rank on the per-seed differences).

Usage, from the repository root: .venv/bin/python reports/probes/recid_rq_every_2026-12-05/summarise_rq2.py
"""
import glob
import json
from pathlib import Path

import pandas as pd
from scipy.stats import wilcoxon

rows = []
for f in sorted(glob.glob(str(Path(__file__).with_name("result_tiktok_cosine_4_rq2_seed*.json")))):
    r = json.load(open(f))
    row = {"seed": r["seed"]}
    for side, k in (("base", 1), ("lever", 2)):
        s = r[side]
        row[f"first_val_k{k}"] = s["first_stage"]["val_recall@10"]
        row[f"val_k{k}"] = s["val_recall@10"]
        for m in ("recall@10", "ndcg@10", "recall@20"):
            row[f"{m}_k{k}"] = s["test"][m]
        row[f"coverage@10_k{k}"] = s["coverage@10"]
    row.update({f"p_{m}": p for m, p in r["p_lever_vs_base"].items()})
    rows.append(row)
df = pd.DataFrame(rows).sort_values("seed")
pd.set_option("display.width", 250)
print(df.round(4).to_string(index=False))
summary = []
for m in ("first_val", "val", "recall@10", "ndcg@10", "recall@20", "coverage@10"):
    d = df[f"{m}_k2"] - df[f"{m}_k1"]
    summary.append({"metric": m, "mean_k1": df[f"{m}_k1"].mean(), "mean_k2": df[f"{m}_k2"].mean(),
                    "mean_diff": d.mean(), "std_k1_over_seeds": df[f"{m}_k1"].std(), "k2_higher": int((d > 0).sum()),
                    "seeds": len(d), "p_wilcoxon_seeds": wilcoxon(d).pvalue if len(d) > 1 and (d != 0).any() else float("nan")})
s = pd.DataFrame(summary)
print(s.round(4).to_string(index=False))
df.to_csv(Path(__file__).with_name("result_tiktok_rq2_seeds.csv"), index=False)
s.to_csv(Path(__file__).with_name("result_tiktok_rq2_summary.csv"), index=False)
