"""Time ml100k generator epochs of notebook 03's chosen rung (distill_lgc_w3, split seed 0), nothing saved.

Usage, from the repository root, with `eval "$(.venv/bin/mmgrec env)"` and MMGREC_DATA set:
    python reports/probes/generator_two_threads_2026-12-05/epoch_time.py THREADS BATCH EPOCHS [KEY=VALUE ...]
BATCH 0 keeps the rung's batch size (512 targets). KEY=VALUE: generator config fields to change (YAML values, e.g.
``user_sample_cap=64``; added 2026-12-06). Prints the seconds per epoch and the clock-timed phases per step.
The rung's Rec-ID run must be in runs/ (notebook 03 or 09 trains it) or is trained first."""
import sys, time, dataclasses, json
from mmgrec_lib.numerics import portable_numerics
portable_numerics()
import torch, yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import load_or_assign_recids, profile_rung_config
from mmgrec_lib.training.loop import LoopConfig
from mmgrec_lib.training.timing import PhaseTimer
from mmgrec_lib.generator.training import train_generator
threads, batch, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
import pandas as pd
rc, gc, lp = profile_rung_config(prof, "distill_lgc_w3", pd.read_csv("reports/tables/ladder_ml100k.csv"))
ds = load_dataset("ml100k", seed=0)
recids, _, reused = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
print("recids reused", reused, flush=True)
gc = gc.replace(batch_size=batch) if batch else gc
gc = gc.replace(**{k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])})
print(gc.train.batch_size, gc.train.targets_per_input, gc.model.max_len, lp, flush=True)
lp = dataclasses.replace(lp, epochs=epochs, eval_every=100, patience=0, checkpoint=None, cpu_threads=threads)
gc = gc.replace(eval_every=None)
timer = PhaseTimer()
t0 = time.perf_counter()
model, res = train_generator(ds, recids.table, recids.user_emb, recids.item_emb, gc, lp, timer=timer)
print(json.dumps({"threads": threads, "batch": gc.train.batch_size, "epochs": [r.get("train_s") for r in res.history],
                  "val_s": res.history[-1].get("val_s"), "total": time.perf_counter() - t0}), flush=True)
print(timer.summary(), flush=True)
