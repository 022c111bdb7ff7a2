r"""Not the paper's method: popularity-corrected decoding, its weight chosen on validation.

The trained generator is decoded with :class:`~mmgrec_lib.generator.prior.PopularityPrior` at each weight
:math:`\beta` of a grid (``0`` is the paper's decoding), on validation; the weight with the best validation
Recall@10 (the smallest among ties) is read once on test. No training: one beam search per weight and user.
"""
from __future__ import annotations

import os
from typing import Sequence

import pandas as pd

from ..data.dataset import RecDataset
from .decode_cache import cached
from ..evaluation import EvalResult, list_diagnostics
from ..generator.prior import PopularityPrior
from ..generator.training import evaluate_generator


def prior_evaluate(model, dataset: RecDataset, split: str, weight: float, ks: Sequence[int] = (10, 20),
                   beam: int = 20, alpha: float = 1.0, batch_size: int = 256) -> EvalResult:
    """Full-ranking metrics of ``model`` decoded with the popularity prior of weight ``weight`` (training
    popularity of ``dataset``; :func:`~mmgrec_lib.generator.training.evaluate_generator`). ``extra["lists"]``
    keeps the ``(U_split, max(ks))`` lists and ``extra["coverage@10"]`` the share of items in the top-10 lists."""
    prior = PopularityPrior(model.trie, dataset.item_popularity(), weight, alpha)
    res = evaluate_generator(model, dataset, split, ks, beam, batch_size, name=f"MMGRec, prior beta={weight:g}",
                             prior=prior, keep_lists=True)
    res.extra.update(prior_weight=float(weight),
                     **{"coverage@10": list_diagnostics(res.extra["lists"][:, :10], dataset)["coverage"]})
    return res


def prior_sweep(model, dataset: RecDataset, weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                beam: int = 20, ks: Sequence[int] = (10, 20), alpha: float = 1.0, test: bool = True,
                checkpoint: str | os.PathLike | None = None) -> tuple[pd.DataFrame, float, EvalResult | None]:
    """Choose ``beta`` on validation Recall@10 (the smallest among ties), then test it once.

    Returns the validation table (one row per weight: validation metrics and top-10 list coverage, ``chosen``
    marked), the chosen weight and its test result (``None`` with ``test=False``: validation only).

    ``checkpoint``: the model's checkpoint file. Each weight's validation row is then kept beside it
    (:func:`~mmgrec_lib.experiments.decode_cache.cached`, keyed by weight, beam, ks, alpha and device) while that
    file is unchanged, so a rerun decodes only the weights it has not seen; the test split never is cached."""
    if not weights:
        raise ValueError("prior_sweep: no weights")
    ks_key = ",".join(str(int(k)) for k in ks)

    def val_row(w: float) -> dict:
        r = prior_evaluate(model, dataset, "val", w, ks, beam, alpha)
        return {"weight": w, **{f"val_{m}": float(v) for m, v in r.mean().items()},
                "val_coverage@10": float(r.extra["coverage@10"])}

    rows = [cached(checkpoint, f"prior_sweep|val|w={float(w)!r}|beam={int(beam)}|ks={ks_key}|alpha={float(alpha)!r}"
                               f"|{model.device}", lambda w=float(w): val_row(w))
            for w in weights]
    table = pd.DataFrame(rows)
    best = table["val_recall@10"].max()
    chosen = float(table.loc[table["val_recall@10"] == best, "weight"].min())
    table["chosen"] = table["weight"] == chosen
    return table, chosen, prior_evaluate(model, dataset, "test", chosen, ks, beam, alpha) if test else None


__all__ = ["prior_evaluate", "prior_sweep"]
