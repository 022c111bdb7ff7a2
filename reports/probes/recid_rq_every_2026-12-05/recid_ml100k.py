"""Probe: the Graph RQ-VAE alone on ml100k (notebook 01's configuration = notebook 09's paper rung: alternate,
L = 128, 60 epochs, patience 10) with its RQ-VAE step after every k-th BPR step, one run per K:SEED argument.

Usage, from the repository root, with `eval "$(.venv/bin/mmgrec env)"` and MMGREC_DATA set:
    python reports/probes/recid_rq_every_2026-12-05/recid_ml100k.py 1:0 2:0 1:1 2:1 ...
Runs go to /tmp/gt/runs_rq (not runs/: fresh runs on this machine); one JSON line per run on stdout."""
import sys, json, time, dataclasses
from mmgrec_lib.numerics import portable_numerics
portable_numerics()
import torch, yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import load_or_assign_recids, profile_bases
torch.set_num_threads(1)
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
recid_base, _, _ = profile_bases(prof)
for job in sys.argv[1:]:
    k, seed = map(int, job.split(":"))
    ds = load_dataset("ml100k", seed=seed)
    rc = dataclasses.replace(recid_base, seed=seed, rq_every=k)
    t0 = time.time()
    run, _, reused = load_or_assign_recids(ds, rc, runs_dir="/tmp/gt/runs_rq", progress=False)
    st = run.stats
    out = {"k": k, "seed": seed, "reused": reused, "wall_s": time.time() - t0,
           **{f: st.get(f) for f in ("val_recall@10", "best_epoch", "epochs_run", "unique_semantic_frac",
                                     "max_group_size", "sec_per_epoch", "total_sec")}}
    print(json.dumps(out), flush=True)
