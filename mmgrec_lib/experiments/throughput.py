r"""Training throughput of every stage at a chosen synthetic size: what ``mmgrec bench train`` prints.

One synthetic dataset (:func:`~mmgrec_lib.data.synthetic.make_synthetic`, planted clusters and power-law
popularity, per-user 80/10/10 split) shaped like a real catalogue; then, per stage, seconds per training epoch
and per full-ranking validation pass:

* ``evaluation``: one full-ranking pass over the validation users with MostPop's scores (the evaluation code
  alone: scoring is a broadcast);
* ``lightgcn``: the LightGCN baseline (BPR, one full-graph propagation per step);
* ``graph_rqvae``: one epoch of the Graph RQ-VAE graph phase (``schedule`` of the config: alternate BPR and
  RQ-VAE steps by default) and its validation (dot-product ranking);
* ``generator``: one epoch of the MMGRec generator on random Rec-IDs and random representations (its cost
  does not depend on what the tokens mean) and its validation (constrained beam search, beam 20).

Each stage trains ``epochs`` epochs (default 2) from a fixed seed; ``train_s`` is the mean of the epochs'
training times (the first epoch included: nothing is compiled or cached across epochs) less the one-off work
timed inside them, which ``setup_s`` shows apart (the RQ-VAE's k-means initialisation of its codebooks, inside the
Graph RQ-VAE's first step; ``0`` for the stages that do none inside an epoch); ``eval_s`` is one validation pass.
Threads are fixed for all stages (``threads``). ``kernels`` says which float kernels ran
(:func:`~mmgrec_lib.numerics.numerics_tag`): the portable AVX2 ones the entry points pin (the notebooks train with
them), or the CPU's own with ``MMGREC_NATIVE_ISA=1`` (faster on AVX-512 machines, runs not comparable across
machines). Numbers depend on the machine and its load; measure on a quiet machine, and compare stages within one
run.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.dataset import RecDataset
from ..data.synthetic import make_synthetic
from ..numerics import numerics_tag
from ..training.loop import LoopConfig
from ..training.timing import PhaseTimer

#: the stages in pipeline order
STAGES = ("evaluation", "lightgcn", "graph_rqvae", "generator")
#: the held-out dataset of issue 10 (train interactions), the size the throughput targets refer to
PAPER_SCALE = {"users": 35_600, "items": 18_400, "interactions": 218_000}
COLUMNS = ("stage", "train_s", "setup_s", "eval_s", "epochs", "users", "items", "train_interactions", "threads",
           "device", "kernels", "detail")


def bench_dataset(users: int, items: int, interactions: int, seed: int = 0) -> RecDataset:
    """A synthetic dataset with about ``interactions`` *training* interactions (80 % of all pairs)."""
    if users < 10 or items < 10 or interactions < users:
        raise ValueError(f"bench sizes: need users >= 10, items >= 10 and interactions >= users; got {users} users, "
                         f"{items} items, {interactions} interactions")
    per_user = interactions / 0.8 / users
    return make_synthetic(n_users=users, n_items=items, n_clusters=max(10, items // 200),
                          mean_items_per_user=max(1.0, per_user), seed=seed, name="bench")


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _loop(epochs: int, threads: int) -> LoopConfig:
    return LoopConfig(epochs=epochs, patience=0, eval_every=epochs, progress=False, cpu_threads=threads)


def bench_evaluation(dataset: RecDataset, device: str = "cpu", **_) -> dict:
    """One full-ranking validation pass (MostPop scores)."""
    from ..baselines import BASELINES
    from ..evaluation import evaluate

    model = BASELINES["mostpop"].from_dataset(dataset, device=device)
    model.fit(dataset)
    seconds, res = _timed(lambda: evaluate(model.score, dataset, "val", ks=(10, 20), device=model.device))
    return {"train_s": float("nan"), "setup_s": float("nan"), "eval_s": seconds,
            "detail": f"{len(res.per_user)} validation users"}


def bench_lightgcn(dataset: RecDataset, epochs: int = 2, threads: int = 1, device: str = "cpu", seed: int = 0) -> dict:
    """LightGCN with its default config: seconds per training epoch and per validation pass."""
    from ..baselines import BASELINES

    model = BASELINES["lightgcn"].from_dataset(dataset, device=device)
    res = model.fit(dataset, _loop(epochs, threads), torch.Generator().manual_seed(seed))
    eval_s, _ = _timed(lambda: model._validate(dataset))
    # every epoch but the last is pure training; the last one also validated once
    train = [s for s in res.epoch_seconds[:-1]] + [res.epoch_seconds[-1] - eval_s]
    return {"train_s": float(np.mean(train)), "setup_s": 0.0, "eval_s": eval_s,
            "detail": f"batch {model.config.batch_size}, {model.config.n_layers} layers, dim {model.config.dim}"}


def bench_graph_rqvae(dataset: RecDataset, epochs: int = 2, threads: int = 1, device: str = "cpu", seed: int = 0,
                      codebook_size: int = 256, schedule: str = "alternate", encoder: str = "sage",
                      batch_size: int | None = None, rq_every: int = 1, breakdown: bool = False) -> dict:
    """Graph RQ-VAE's graph phase with the default config, ``schedule`` (``"alternate"``: BPR and RQ-VAE steps
    alternate, the default; ``"two_stage"``: its first stage, BPR steps only; ``"joint"``: one step on their sum)
    and ``encoder`` (``"sage"``: eq. 5, the default; ``"lightgcn"``: LightGCN-style propagation of the fused nodes,
    the ladders' choice), ``batch_size`` BPR triples per step (``None``: the config's default), ``rq_every`` (the
    alternating schedule's RQ-VAE step after every ``rq_every``-th BPR step): seconds per epoch (``train_s``,
    without the k-means initialisation of the codebooks in the first step, which ``setup_s`` gives) and per
    validation pass; with ``breakdown``, also ``"phases"``: milliseconds per step of each phase of a step
    (:meth:`~mmgrec_lib.training.timing.PhaseTimer.per_step_text`)."""
    from ..data.device import resolve_device
    from ..tokenizer import GraphRQVAEConfig
    from ..tokenizer.graph_rqvae import _Trainer
    from ..training.loop import cpu_threads

    sizes = {} if batch_size is None else {"batch_size": batch_size}
    cfg = GraphRQVAEConfig(codebook_size=codebook_size, epochs=epochs, seed=seed, device=device, schedule=schedule,
                           encoder=encoder, rq_every=rq_every, **sizes)
    trainer = _Trainer(dataset, cfg, resolve_device(device))
    trainer.timer = PhaseTimer(trainer.device) if breakdown else None
    step = trainer.graph_epoch()
    gen = torch.Generator().manual_seed(seed)
    with cpu_threads(threads):
        trainer.model.train()
        train = [_timed(lambda e=e: step(e, gen))[0] for e in range(epochs)]
        trainer.model.eval()
        with torch.no_grad():
            eval_s, _ = _timed(trainer.validate_graph)
    setup_s = trainer.model.rqvae.quantizer.init_seconds                   # k-means, once, in the first step
    return {"train_s": (float(np.sum(train)) - setup_s) / epochs, "setup_s": setup_s, "eval_s": eval_s,
            "detail": f"{cfg.schedule}, {cfg.encoder} encoder, batch {cfg.batch_size}, L = {codebook_size}"
                      + (f", RQ step every {rq_every} BPR steps" if rq_every != 1 else ""),
            **({"phases": trainer.timer.per_step_text()} if breakdown else {})}


def bench_generator(dataset: RecDataset, epochs: int = 2, threads: int = 1, device: str = "cpu", seed: int = 0,
                    codebook_size: int = 256, targets_per_input: int = 8, breakdown: bool = False) -> dict:
    """The generator (default model, ``targets_per_input`` targets per input) on random Rec-IDs: seconds per
    epoch and per beam-search validation pass (beam 20); with ``breakdown``, also ``"phases"``: milliseconds per
    step of its forward passes, backward passes and optimiser step."""
    from ..data.device import resolve_device
    from ..generator import GeneratorConfig, ModelConfig, TrainConfig
    from ..generator.training import train_generator
    from ..tokenizer.recid import RecIDTable
    from .efficiency import synthetic_codes

    codes = synthetic_codes(dataset.n_items, codebook_size, seed=seed)
    cards = [codebook_size] * 3 + [int(codes[:, -1].max()) + 1]
    table = RecIDTable(codes, cards)
    g = torch.Generator().manual_seed(seed)
    user_repr = torch.randn(dataset.n_users, 64, generator=g)
    item_repr = torch.randn(dataset.n_items, 64, generator=g)
    config = GeneratorConfig(model=ModelConfig(), train=TrainConfig(targets_per_input=targets_per_input, seed=seed,
                                                                    device=device))
    timer = PhaseTimer(resolve_device(device)) if breakdown else None
    _, res = train_generator(dataset, table, user_repr, item_repr, config, _loop(epochs, threads), timer=timer)
    train = [row["train_s"] for row in res.history]
    eval_s = [row["val_s"] for row in res.history if "val_s" in row]
    return {"train_s": float(np.mean(train)), "setup_s": 0.0,
            "eval_s": float(eval_s[-1]) if eval_s else float("nan"),
            "detail": f"{targets_per_input} targets per input, batch {config.train.batch_size}, beam "
                      f"{config.train.beam_width}, L = {codebook_size}",
            **({"phases": timer.per_step_text()} if breakdown else {})}


#: stages whose steps ``breakdown`` splits into phases
PHASED = ("graph_rqvae", "generator")

BENCHES: dict[str, Callable[..., dict]] = {"evaluation": bench_evaluation, "lightgcn": bench_lightgcn,
                                          "graph_rqvae": bench_graph_rqvae, "generator": bench_generator}


def bench_training(users: int = PAPER_SCALE["users"], items: int = PAPER_SCALE["items"],
                   interactions: int = PAPER_SCALE["interactions"], stages: Sequence[str] = STAGES, epochs: int = 2,
                   threads: int = 1, device: str = "cpu", seed: int = 0, recid_schedule: str = "alternate",
                   recid_encoder: str = "sage", recid_batch_size: int | None = None, recid_rq_every: int = 1,
                   breakdown: bool = False,
                   report: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Time each of ``stages`` on one synthetic dataset of the given size; one row per stage (``COLUMNS``).
    ``recid_schedule``, ``recid_encoder``, ``recid_batch_size``, ``recid_rq_every``: the Graph RQ-VAE schedule, graph
    encoder, BPR batch size and RQ-step frequency timed (:func:`bench_graph_rqvae`; ``None``: the default batch size). ``breakdown``: one more column,
    ``phases``, with the milliseconds per step of each phase of the Graph RQ-VAE's and the generator's steps
    (``""`` for the other stages).

    ``report`` is called with each row as soon as it is measured (the CLI prints it).
    """
    unknown = [s for s in stages if s not in BENCHES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    if epochs < 1 or threads < 1:
        raise ValueError(f"epochs and threads must be >= 1, got {epochs} and {threads}")
    dataset = bench_dataset(users, items, interactions, seed)
    from ..data.device import resolve_device
    kernels = numerics_tag() if resolve_device(device).type == "cpu" else ""     # "auto" on a CPU machine too
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for stage in stages:
            kwargs = {"device": device} if stage == "evaluation" else \
                {"epochs": epochs, "threads": threads, "device": device, "seed": seed}
            if stage == "graph_rqvae":
                kwargs.update(schedule=recid_schedule, encoder=recid_encoder, batch_size=recid_batch_size,
                              rq_every=recid_rq_every)
            if breakdown and stage in PHASED:
                kwargs["breakdown"] = True
            out = BENCHES[stage](dataset, **kwargs)
            row = {"stage": stage, "train_s": out["train_s"], "setup_s": out["setup_s"], "eval_s": out["eval_s"],
                   "epochs": epochs if stage != "evaluation" else 0, "users": dataset.n_users,
                   "items": dataset.n_items, "train_interactions": int(dataset.train.nnz), "threads": threads,
                   "device": device, "kernels": kernels, "detail": out["detail"]}
            if breakdown:
                row["phases"] = out.get("phases", "")
            rows.append(row)
            if report is not None:
                report(row)
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows, columns=list(COLUMNS) + (["phases"] if breakdown else []))


def machine_line() -> str:
    """One line naming the machine the numbers come from."""
    load = f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else platform.platform()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{numerics_tag()}, {load}")


__all__ = ["BENCHES", "COLUMNS", "PAPER_SCALE", "STAGES", "bench_dataset", "bench_training", "machine_line"]
