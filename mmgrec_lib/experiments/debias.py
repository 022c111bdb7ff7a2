r"""Not the paper's method: popularity-corrected decoding, its weight chosen on validation.

The trained generator is decoded with :class:`~mmgrec_lib.generator.prior.PopularityPrior` at each weight
:math:`\beta` of a grid (``0`` is the paper's decoding), on validation; the weight with the best validation
Recall@10 (the smallest among ties) is read once on test. No training: one beam search per weight and user.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..data.dataset import RecDataset
from ..data.paths import atomic_write
from .decode_cache import fingerprint
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
                cache: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None
                ) -> tuple[pd.DataFrame, float, EvalResult | None]:
    """Choose ``beta`` on validation Recall@10 (the smallest among ties), then test it once.

    Returns the validation table (one row per weight: validation metrics and top-10 list coverage, ``chosen``
    marked), the chosen weight and its test result (``None`` with ``test=False``: validation only).

    ``cache``: a JSON file keeping the validation rows of this model, so that a rerun decodes only the weights
    it has not seen (keyed by weight, beam, ks and alpha). With ``checkpoint`` (the model's checkpoint file), the
    cache is used only while that file is unchanged (size and modification time); the test split never is
    cached."""
    if not weights:
        raise ValueError("prior_sweep: no weights")
    stored = _read_cache(cache, checkpoint)
    rows, new = [], False
    for w in weights:
        key = f"w={float(w)!r}|beam={int(beam)}|ks={','.join(str(int(k)) for k in ks)}|alpha={float(alpha)!r}"
        if key not in stored:
            r = prior_evaluate(model, dataset, "val", float(w), ks, beam, alpha)
            stored[key] = {"weight": float(w), **{f"val_{m}": float(v) for m, v in r.mean().items()},
                           "val_coverage@10": float(r.extra["coverage@10"])}
            new = True
        rows.append(stored[key])
    if new and cache is not None:
        _write_cache(cache, checkpoint, stored)
    table = pd.DataFrame(rows)
    best = table["val_recall@10"].max()
    chosen = float(table.loc[table["val_recall@10"] == best, "weight"].min())
    table["chosen"] = table["weight"] == chosen
    return table, chosen, prior_evaluate(model, dataset, "test", chosen, ks, beam, alpha) if test else None


def _read_cache(cache, checkpoint) -> dict:
    """The cached validation rows of ``cache`` (empty when absent, unreadable or made for another checkpoint)."""
    if cache is None or not Path(cache).is_file():
        return {}
    try:
        blob = json.loads(Path(cache).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(blob, dict) or blob.get("checkpoint") != fingerprint(checkpoint):
        return {}
    return dict(blob.get("rows", {}))


def _write_cache(cache, checkpoint, rows: dict) -> None:
    blob = json.dumps({"checkpoint": fingerprint(checkpoint), "rows": rows}, indent=1).encode()
    atomic_write(cache, lambda fh: fh.write(blob))


__all__ = ["prior_evaluate", "prior_sweep"]
