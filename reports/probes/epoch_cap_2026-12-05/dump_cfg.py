"""Step 1 of the old-code check (README, "Seed 1 on one thread"): write the configuration of notebook 03's ml100k rung
(distill_lgc_w3) as the current code builds it to /tmp/prof/cfg.json. Run from the repository root with the current
code: .venv/bin/python reports/probes/epoch_cap_2026-12-05/dump_cfg.py"""
import os
os.makedirs("/tmp/prof", exist_ok=True)
import json, yaml, pandas as pd, dataclasses
from mmgrec_lib.experiments import profile_rung_config
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
rc, gc, lp = profile_rung_config(prof, "distill_lgc_w3", pd.read_csv("reports/tables/ladder_ml100k.csv"))
print(rc); print(gc); print(lp)
json.dump({"recid": dataclasses.asdict(rc), "gen": {"model": dataclasses.asdict(gc.model), "train": dataclasses.asdict(gc.train)}, "loop": dataclasses.asdict(lp)}, open("/tmp/prof/cfg.json", "w"), default=str)
