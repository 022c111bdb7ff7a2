"""One generator training epoch of a rung of notebook 09's ladder (full profile, split seed 0), timed; nothing saved.

Usage, from the repository root (or a worktree at another commit), with ``eval "$(.venv/bin/mmgrec env)"`` and
``MMGREC_DATA`` set: ``python reports/probes/generator_step_2026-12-05/epoch_time_rung.py DATASET RUNG THREADS``.
Prints one JSON line: the epoch's training seconds and its validation pass's. The rung's Rec-ID run comes from
``runs/`` (trained first if missing)."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_hashes import rung_training  # noqa: E402  (the same rung training as the hash probe)

dataset, rung, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
_, res = rung_training(dataset, rung, 1, threads)
print(json.dumps({"dataset": dataset, "rung": rung, "threads": threads, "train_s": res.history[-1]["train_s"],
                  "val_s": res.history[-1]["val_s"]}))
