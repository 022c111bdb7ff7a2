"""The GraphSAGE baseline shares ``MeanSAGEConv`` (whose eq. 5 sums session 36 made in place): SHA-256 of its state
after two ml100k epochs (split seed 0), to compare two commits (``PYTHONPATH=<worktree>`` for the other one).

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"`` and ``MMGREC_DATA`` set:

    python reports/probes/recid_step_2026-12-05/graphsage_hash.py THREADS
"""
import sys
from pathlib import Path

import torch

from mmgrec_lib.baselines import BASELINES
from mmgrec_lib.data import load_dataset
from mmgrec_lib.training.loop import LoopConfig, cpu_threads

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "step_levers_2026-12-05"))
from e2e_hashes import digest                                            # noqa: E402  session 34's state hash

threads = int(sys.argv[1])
ds = load_dataset("ml100k", seed=0)
with cpu_threads(threads):
    model = BASELINES["graphsage"].from_dataset(ds, device="cpu")
    model.fit(ds, LoopConfig(epochs=2, patience=0, eval_every=2, progress=False), torch.Generator().manual_seed(0))
print(threads, digest(model))
