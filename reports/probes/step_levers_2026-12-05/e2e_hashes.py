"""End-to-end state hashes of short real trainings, to show a change leaves runs bit for bit as they were.

Usage, from the repository root (or a worktree at another commit), with ``eval "$(.venv/bin/mmgrec env)"`` and
``MMGREC_DATA`` set:

    python reports/probes/step_levers_2026-12-05/e2e_hashes.py THREADS > hashes.json

On ml100k (split seed 0): Graph RQ-VAE (alternating schedule, 3 epochs, then 5 RQ-only epochs), MF, LightGCN,
VBPR and LATTICE (3 epochs each), and the generator of notebook 03's chosen rung (``distill_lgc_w3``, 2 epochs) on
that Rec-ID run. Each line: the SHA-256 of the trained model's tensors and the test metrics."""
import dataclasses
import hashlib
import json
import sys

import pandas as pd
import torch
import yaml

from mmgrec_lib.baselines import BASELINES
from mmgrec_lib.data import load_dataset
from mmgrec_lib.evaluation import evaluate
from mmgrec_lib.experiments import profile_rung_config
from mmgrec_lib.generator.training import train_generator
from mmgrec_lib.tokenizer import GraphRQVAEConfig, assign_recids
from mmgrec_lib.training.loop import LoopConfig, cpu_threads


def digest(module: torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) of every tensor in ``module.state_dict()``; step_levers.py uses it too."""
    h = hashlib.sha256()
    for v in module.state_dict().values():
        if torch.is_tensor(v):
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    ds = load_dataset("ml100k", seed=0)
    out = {}
    with cpu_threads(threads):
        run = assign_recids(ds, GraphRQVAEConfig(epochs=3, rq_epochs=5, codebook_size=128, seed=0, device="cpu"),
                            progress=False)
        out["graph_rqvae"] = hashlib.sha256(run.semantic.numpy().tobytes() + run.item_emb.numpy().tobytes()
                                            + run.user_emb.numpy().tobytes()).hexdigest()[:16]
        for name in ("mf", "lightgcn", "vbpr", "lattice"):
            model = BASELINES[name].from_dataset(ds, device="cpu")
            model.fit(ds, LoopConfig(epochs=3, patience=0, eval_every=3, progress=False), torch.Generator().manual_seed(0))
            res = evaluate(model.score, ds, "test", ks=(10,), device=model.device).mean()
            out[name] = {"hash": digest(model), "recall@10": res["recall@10"]}
        prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
        rc, gc, lp = profile_rung_config(prof, "distill_lgc_w3", pd.read_csv("reports/tables/ladder_ml100k.csv"))
        lp = dataclasses.replace(lp, epochs=2, eval_every=2, patience=0, checkpoint=None, progress=False, cpu_threads=threads)
        model, res = train_generator(ds, run.table, run.user_emb, run.item_emb, gc, lp)
        out["generator"] = {"hash": digest(model), "val": res.history[-1].get("recall@10")}
    print(json.dumps({"threads": threads, **out}, indent=1))
