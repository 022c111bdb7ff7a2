r"""Not the paper's method: re-ranking the generator's beam with a dense dot product (a generative + dense hybrid).

Constrained beam search returns ``W`` candidate items per user with their summed log-probabilities
:math:`\ell_{ui}`. The hybrid re-orders these candidates (it never adds an item the beam did not find) by

.. math::

    s_{ui} = (1 - w)\, z_u(\ell_{ui}) + w\, z_u(\mathbf{h}_u \mathbf{h}_i^\top),

where :math:`z_u` standardises over the user's candidates and :math:`\mathbf{h}_u, \mathbf{h}_i` are the
Graph RQ-VAE representations the Rec-IDs were made from. ``w = 0`` is the generator's own order; ``w = 1``
ranks the beam's candidates by the dot product alone. ``w`` is chosen on validation (:func:`hybrid_sweep`).
Cost: one ``(B, W)`` dot product per batch on top of beam search (nothing of size batch x catalogue).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from ..data.dataset import RecDataset
from ..evaluation import EvalResult, evaluate, excluded_matrix


def _standardise(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-row z-score over the valid entries ``(B, W)``; invalid entries become ``-inf``."""
    n = valid.sum(1, keepdim=True).clamp(min=1)
    xv = torch.where(valid, x, torch.zeros_like(x))
    mean = xv.sum(1, keepdim=True) / n
    var = (torch.where(valid, x - mean, torch.zeros_like(x)) ** 2).sum(1, keepdim=True) / n
    z = (x - mean) / var.sqrt().clamp(min=1e-6)
    return z.masked_fill(~valid, float("-inf"))


@torch.no_grad()
def hybrid_rank(model, user_repr: torch.Tensor, item_repr: torch.Tensor, users: torch.Tensor, k: int,
                beam: int, weights: Sequence[float], exclude=None) -> dict[float, torch.Tensor]:
    """Top-``k`` lists ``(B, k)`` per weight ``w`` from one beam search of width ``beam`` (``-1`` pads)."""
    if beam < k:
        raise ValueError(f"beam ({beam}) must be >= k ({k})")
    if user_repr.shape[0] != model.n_users or item_repr.shape[0] != model.n_items:
        raise ValueError(f"representations are {tuple(user_repr.shape)} / {tuple(item_repr.shape)}; the model has "
                         f"{model.n_users} users and {model.n_items} items")
    items, logp = model.recommend(users, beam, beam, exclude=exclude)                 # (B, W), (B, W)
    items, logp = items.cpu(), logp.cpu().float()
    valid = items >= 0
    hu = user_repr[users.cpu()]                                                        # (B, D)
    hi = item_repr[items.clamp(min=0)]                                                 # (B, W, D)
    dot = torch.einsum("bd,bwd->bw", hu, hi)                                           # (B, W)
    zl, zd = _standardise(logp, valid), _standardise(dot, valid)
    out = {}
    for w in weights:
        score = torch.where(valid, (1 - w) * zl.masked_fill(~valid, 0) + w * zd.masked_fill(~valid, 0),
                            torch.full_like(zl, float("-inf")))
        order = score.argsort(dim=1, descending=True, stable=True)[:, :k]             # (B, k)
        out[float(w)] = items.gather(1, order)
    return out


def hybrid_evaluate(model, user_repr: torch.Tensor, item_repr: torch.Tensor, dataset: RecDataset, split: str,
                    weights: Sequence[float], ks: Sequence[int] = (10, 20), beam: int = 40,
                    batch_size: int = 256) -> dict[float, EvalResult]:
    """Full-ranking metrics of the hybrid lists for every weight (one beam search per batch)."""
    ks = tuple(sorted(int(k) for k in ks))
    exclude = excluded_matrix(dataset, split)
    target = dataset.split(split)
    users = torch.nonzero(torch.as_tensor((target.indptr[1:] - target.indptr[:-1]) > 0)).reshape(-1)
    parts: dict[float, list[torch.Tensor]] = {float(w): [] for w in weights}
    was_training = model.training
    model.eval()
    try:
        for batch in users.split(batch_size):
            for w, lists in hybrid_rank(model, user_repr, item_repr, batch, ks[-1], beam, weights, exclude).items():
                parts[w].append(lists)
    finally:
        model.train(was_training)
    out = {}
    for w, chunks in parts.items():
        lists = torch.full((dataset.n_users, ks[-1]), -1, dtype=torch.long)
        lists[users] = torch.cat(chunks)
        out[w] = evaluate(lists, dataset, split, ks, name=f"hybrid w={w:g}")
        out[w].extra["lists"] = lists[users]                                            # (U_split, K)
    return out


def hybrid_sweep(model, user_repr: torch.Tensor, item_repr: torch.Tensor, dataset: RecDataset,
                 weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), beam: int = 40,
                 ks: Sequence[int] = (10, 20)) -> tuple[pd.DataFrame, float, EvalResult]:
    """Choose ``w`` on validation Recall@10 (the smallest among ties), then test it once.

    Returns the validation table (one row per ``w``, ``chosen`` marked), the chosen ``w`` and its test result.
    """
    val = hybrid_evaluate(model, user_repr, item_repr, dataset, "val", weights, ks, beam)
    table = pd.DataFrame([{"weight": w, **{f"val_{m}": v for m, v in r.mean().items()}} for w, r in val.items()])
    best = table["val_recall@10"].max()
    chosen = float(table.loc[table["val_recall@10"] == best, "weight"].min())
    table["chosen"] = table["weight"] == chosen
    test = hybrid_evaluate(model, user_repr, item_repr, dataset, "test", [chosen], ks, beam)[chosen]
    return table, chosen, test


__all__ = ["hybrid_evaluate", "hybrid_rank", "hybrid_sweep"]
