"""External distillation teachers for the generator (not the paper's method).

The generator can distil a dot-product ranking into its loss (``TrainConfig.distill_weight``). By default the
teacher is its own first stage (the Graph RQ-VAE's ``h_u·h_i``). This module makes a trained baseline the
teacher instead, e.g. the tuned LightGCN, whose ranking is stronger than the first stage's:

* :func:`baseline_teacher`: train or load the baseline run (keyed, as :func:`~mmgrec_lib.experiments.runs.run_baselines`
  keeps it) and return its name (the checkpoint's, for ``TrainConfig.distill_teacher``) and its user and item
  vectors, checked to reproduce the model's own scores;
* :func:`teacher_vectors`: the ``(users, items)`` vectors of a trained factorised recommender.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from ..data import RecDataset
from ..training import LoopConfig
from .runs import run_baselines


def teacher_vectors(model, n_users: int, check_users: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(users (U, d), items (I, d))`` vectors whose dot products are ``model``'s scores. ``model`` needs
    ``embeddings()`` returning either the stacked ``(U + I, d)`` node vectors or a ``(users, items)`` pair.
    The first ``check_users`` users' scores are compared with ``model.score``: a model that ranks by anything
    but that dot product is refused."""
    if not callable(getattr(model, "embeddings", None)):
        raise ValueError(f"{type(model).__name__} has no embeddings(): it cannot be a dot-product teacher")
    model.eval()
    with torch.no_grad():
        emb = model.embeddings()
        users, items = emb if isinstance(emb, (tuple, list)) else (emb[:n_users], emb[n_users:])
        users, items = users.detach().float().cpu(), items.detach().float().cpu()
        probe = torch.arange(min(check_users, users.shape[0]))
        want = model.score(probe.to(next(model.parameters()).device)).float().cpu()     # (P, I)
    got = users[probe] @ items.T                                                          # (P, I)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise ValueError(f"{type(model).__name__}: its scores are not the dot products of its embeddings(), so "
                         "they cannot stand in for it as a teacher")
    return users, items


def baseline_teacher(dataset: RecDataset, model: str, config: Mapping[str, Any], loop: LoopConfig, seed: int,
                     runs_dir: str | Path) -> tuple[str, tuple[torch.Tensor, torch.Tensor]]:
    """The baseline ``model`` (config fields ``config``, trained under ``loop`` and ``seed``) as a distillation
    teacher: its run is loaded from ``runs_dir`` when finished there, else trained and saved (the same run key
    as notebooks 00, 04 and 10 use, so their runs serve). Returns the run's checkpoint name, which goes into
    ``TrainConfig.distill_teacher`` (and so into the generator's run key), and its ``(users, items)`` vectors
    (:func:`teacher_vectors`)."""
    loop = dataclasses.replace(loop, progress=False)
    run = run_baselines(dataset, [model], loop, seed=seed, overrides={model: dict(config)}, runs_dir=runs_dir,
                        ks=(10,))[model]
    return Path(run.checkpoint).stem, teacher_vectors(run.model, dataset.n_users)


__all__ = ["baseline_teacher", "teacher_vectors"]
