"""One generator training epoch of a rung of notebook 09's ladder (full profile, split seed 0), timed; nothing saved.

Usage, from the repository root (or a worktree at another commit), with ``eval "$(.venv/bin/mmgrec env)"`` and
``MMGREC_DATA`` set: ``python reports/probes/generator_step_2026-12-05/epoch_time_rung.py DATASET RUNG THREADS``.
Prints one JSON line: the epoch's training seconds and its validation pass's. The rung's Rec-ID run comes from
``runs/`` (trained first if missing)."""
import dataclasses
import json
import sys

import pandas as pd
import torch
import yaml

from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import load_or_assign_recids, profile_rung_config
from mmgrec_lib.generator.training import train_generator

dataset, rung, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == dataset][0]
rc, gc, lp = profile_rung_config(prof, rung, pd.read_csv(f"reports/tables/ladder_{dataset}.csv"))
ds = load_dataset(dataset, seed=0)
recids, _, _ = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
lp = dataclasses.replace(lp, epochs=1, eval_every=1, patience=0, checkpoint=None, progress=False, cpu_threads=threads)
_, res = train_generator(ds, recids.table, recids.user_emb, recids.item_emb, gc.replace(eval_every=None), lp)
print(json.dumps({"dataset": dataset, "rung": rung, "threads": threads, "train_s": res.history[-1]["train_s"],
                  "val_s": res.history[-1]["val_s"]}))
