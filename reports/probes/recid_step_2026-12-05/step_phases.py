"""Milliseconds per phase of an alternating Graph RQ-VAE step at the paper size (the benchmark's synthetic dataset,
batch 2048, L = 256), steps 5-39 of the first epoch (after the k-means initialisation in step 0), with the RQ-VAE
forward split into encoder, quantiser and decoder. Runs whichever ``mmgrec_lib`` comes first on the path
(``PYTHONPATH=<worktree>`` for another commit).

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"``:

    python reports/probes/recid_step_2026-12-05/step_phases.py THREADS LABEL >> phases.jsonl
"""
import json
import sys
import time
from collections import defaultdict

import torch

from mmgrec_lib.experiments.throughput import PAPER_SCALE, bench_dataset
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.tokenizer.graph_rqvae import _Trainer
from mmgrec_lib.training.loop import cpu_threads
from mmgrec_lib.training.timing import PhaseTimer

threads, label = int(sys.argv[1]), sys.argv[2]
dataset = bench_dataset(**PAPER_SCALE)
trainer = _Trainer(dataset, GraphRQVAEConfig(codebook_size=256, epochs=1, seed=0, device="cpu"), torch.device("cpu"))
modules, started, seconds = trainer.model.rqvae, {}, defaultdict(float)
for name in ("encoder", "quantizer", "decoder"):
    module = getattr(modules, name)
    module.register_forward_pre_hook(lambda m, a, name=name: started.__setitem__(name, time.perf_counter()))
    module.register_forward_hook(
        lambda m, a, o, name=name: seconds.__setitem__(name, seconds[name] + time.perf_counter() - started[name]))
gen = torch.Generator().manual_seed(0)
with cpu_threads(threads):
    trainer.model.train()
    for batch, (u, i, j) in enumerate(trainer._triples(gen)):
        if batch == 40:
            break
        if batch == 5:
            seconds.clear()
            trainer.timer = PhaseTimer("cpu")
        trainer._alternate_step(u, i, j, gen, batch)
        if trainer.timer is not None:
            trainer.timer.step()
steps = trainer.timer.steps
phases = trainer.timer.per_step_ms()
print(json.dumps({"label": label, "threads": threads, "steps": steps,
                  "ms_per_step": {k: round(v, 2) for k, v in phases.items()},
                  "step_total_ms": round(sum(phases.values()), 1),
                  "rq_forward_parts_ms": {k: round(1e3 * v / steps, 2) for k, v in seconds.items()}}))
