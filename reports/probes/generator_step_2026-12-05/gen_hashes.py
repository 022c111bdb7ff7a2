"""Generator trainings hashed end to end, to show that a change to the generator's step leaves runs bit for bit
as they were (model weights, every epoch's loss, validation metrics of the constrained beam search).

Usage, from the repository root (or a worktree at another commit), with ``eval "$(.venv/bin/mmgrec env)"`` and
``MMGREC_DATA`` set:

    python reports/probes/generator_step_2026-12-05/gen_hashes.py THREADS [PART ...] > hashes.json

Parts (default all):
- ``ml100k``: notebook 03's chosen rung (``distill_lgc_w3``: relation-aware attention, eight targets per input,
  distillation) on its Rec-ID run from ``runs/`` (trained first if missing), split seed 0, 2 epochs, validated
  after the second;
- ``tiktok``: TikTok's chosen rung (``cosine_4``: the user as a memory token, one target per input, cosine
  schedule) on its Rec-ID run, 1 epoch, validated;
- ``options``: a tiny synthetic dataset with random Rec-IDs, 3 epochs each of the base settings and of every
  training option that changes the step (attention modes, restricted loss, label smoothing, user and target
  weights, set loss, logit adjustment, distillation, attention dropout, tied output, the user token).
"""
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import torch
import yaml

from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import load_or_assign_recids, profile_rung_config
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.generator.training import TIME_KEYS, train_generator
from mmgrec_lib.training.loop import LoopConfig, cpu_threads

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from _fixtures import random_recid_setup  # noqa: E402


def digest(model: torch.nn.Module, history: list[dict]) -> str:
    """SHA-256 (16 hex digits) of the model's tensors and of the history without its timings."""
    h = hashlib.sha256()
    for v in model.state_dict().values():
        if torch.is_tensor(v):
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
    h.update(json.dumps([{k: v for k, v in r.items() if k not in TIME_KEYS} for r in history],
                        sort_keys=True, default=float).encode())
    return h.hexdigest()[:16]


def rung_setup(dataset: str, rung: str):
    """A rung of notebook 09's ladder in its full profile, split seed 0: ``(dataset, Rec-ID run, generator config,
    loop config)``, the Rec-ID run from ``runs/`` (trained first if missing). ``profile_step.py`` and
    ``epoch_time_rung.py`` use it too."""
    prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == dataset][0]
    rc, gc, lp = profile_rung_config(prof, rung, pd.read_csv(f"reports/tables/ladder_{dataset}.csv"))
    ds = load_dataset(dataset, seed=0)
    recids, _, _ = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
    return ds, recids, gc, lp


def rung_training(dataset: str, rung: str, epochs: int, threads: int):
    """``(model, FitResult)`` of ``epochs`` epochs of the rung on ``threads`` threads, validated after the last."""
    ds, recids, gc, lp = rung_setup(dataset, rung)
    lp = dataclasses.replace(lp, epochs=epochs, eval_every=epochs, patience=0, checkpoint=None, progress=False,
                             cpu_threads=threads)
    return train_generator(ds, recids.table, recids.user_emb, recids.item_emb, gc.replace(eval_every=None), lp)


def rung_run(dataset: str, rung: str, epochs: int, threads: int) -> dict:
    model, res = rung_training(dataset, rung, epochs, threads)
    last = res.history[-1]
    return {"hash": digest(model, res.history), "loss": [r["loss"] for r in res.history],
            "val_recall@10": last.get("recall@10"), "val_ndcg@10": last.get("ndcg@10")}


BASE = dict(d_model=16, n_layers=2, n_heads=2, dim_feedforward=32, max_len=6, batch_size=48, beam_width=10,
            val_ks=(10,), lr=5e-3, targets_per_input=2, device="cpu")
OPTIONS = {
    "base": {},
    "one_target": {"targets_per_input": 1},
    "sinusoidal": {"attention": "sinusoidal"},
    "no_pe": {"attention": "none"},
    "restricted": {"restricted_loss": True},
    "label_smoothing": {"label_smoothing": 0.1},
    "user_weight": {"user_weight_power": 0.5},
    "target_pop": {"target_pop_power": 0.5},
    "set_loss": {"set_loss": True},
    "logit_adjust": {"logit_adjust": 0.5},
    "distill": {"distill_weight": 2.0, "distill_temperature": 0.5},
    "distill_restricted_weighted": {"distill_weight": 1.0, "restricted_loss": True, "user_weight_power": 0.5},
    "attn_dropout": {"attn_dropout": 0.1},
    "user_memory": {"user_memory": True},
    "learned_items": {"item_embedding": "learned"},
    "tie_output": {"tie_output": True},
}


def option_runs(threads: int) -> dict:
    ds, table, users, items = random_recid_setup(n_users=40, n_items=60, codes=3, seed=0, dim=8)
    codebooks = torch.randn(table.n_levels - 1, 3, 5, generator=torch.Generator().manual_seed(3))
    out = {}
    for name, over in OPTIONS.items():
        gc = GeneratorConfig.from_dict({**BASE, **over})
        lp = LoopConfig(epochs=3, eval_every=3, patience=0, progress=False, cpu_threads=threads)
        model, res = train_generator(ds, table, users, items, gc, lp, torch.Generator().manual_seed(7),
                                     codebooks=codebooks if over.get("tie_output") else None)
        out[name] = {"hash": digest(model, res.history), "loss": res.history[-1]["loss"],
                     "val_recall@10": res.history[-1].get("recall@10")}
    return out


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    parts = sys.argv[2:] or ["options", "ml100k", "tiktok"]
    out = {"threads": threads}
    with cpu_threads(threads):
        if "options" in parts:
            out["options"] = option_runs(threads)
        if "ml100k" in parts:
            out["ml100k_distill_lgc_w3"] = rung_run("ml100k", "distill_lgc_w3", 2, threads)
        if "tiktok" in parts:
            out["tiktok_cosine_4"] = rung_run("tiktok", "cosine_4", 1, threads)
    print(json.dumps(out, indent=1))
