"""Seconds per epoch of the paper-size alternating Graph RQ-VAE (the benchmark's synthetic 35.6k users x 18.4k items
x 202.5k training interactions, batch 2048, L = 256), each epoch apart, and the k-means initialisation of the
codebooks (inside the first step) apart from the epochs. Runs whichever ``mmgrec_lib`` comes first on the path, so
one script times two commits (``PYTHONPATH=<worktree>``).

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"``:

    python reports/probes/recid_step_2026-12-05/epoch_times.py THREADS EPOCHS LABEL >> times.jsonl
"""
import json
import sys
import time

import torch

import mmgrec_lib
from mmgrec_lib.experiments.throughput import PAPER_SCALE, bench_dataset
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.tokenizer import rqvae
from mmgrec_lib.tokenizer.graph_rqvae import _Trainer
from mmgrec_lib.training.loop import cpu_threads

threads, epochs, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
kmeans = []
original = rqvae.kmeans_centroids


def timed_kmeans(*args, **kwargs):                 # older code does not record the time itself: wrap the call
    start = time.perf_counter()
    out = original(*args, **kwargs)
    kmeans.append(time.perf_counter() - start)
    return out


rqvae.kmeans_centroids = timed_kmeans
dataset = bench_dataset(**PAPER_SCALE)
trainer = _Trainer(dataset, GraphRQVAEConfig(codebook_size=256, epochs=epochs, seed=0, device="cpu"),
                   torch.device("cpu"))
step, gen = trainer.graph_epoch(), torch.Generator().manual_seed(0)
seconds, losses = [], []
with cpu_threads(threads):
    trainer.model.train()
    for epoch in range(epochs):
        start = time.perf_counter()
        row = step(epoch, gen)
        seconds.append(time.perf_counter() - start)
        losses.append(row["bpr"])
print(json.dumps({"label": label, "code": mmgrec_lib.__file__, "threads": threads, "epoch_s": seconds,
                  "kmeans_s": sum(kmeans), "bpr": losses}))
