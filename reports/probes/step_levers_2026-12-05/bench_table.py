"""Assemble reports/tables/throughput_bench from `mmgrec bench train --csv` files (in the order given) and add issue
10's target per stage (train_s; eval_s for the evaluation pass) and whether the row meets it.

Usage: python reports/probes/step_levers_2026-12-05/bench_table.py CAPTION_FILE CSV [CSV ...]"""
import sys
from pathlib import Path

import pandas as pd

from mmgrec_lib.reporting import save_table

TARGETS = {"evaluation": 10.0, "lightgcn": 5.0, "graph_rqvae": 20.0, "generator": 120.0}
df = pd.concat([pd.read_csv(f) for f in sys.argv[2:]], ignore_index=True)
df.insert(1, "target_s", df["stage"].map(TARGETS))
measured = df["eval_s"].where(df["stage"] == "evaluation", df["train_s"])
df["target_met"] = measured <= df["target_s"]
save_table(df, "throughput_bench", "reports", caption=Path(sys.argv[1]).read_text().strip())
print(df.to_string())
