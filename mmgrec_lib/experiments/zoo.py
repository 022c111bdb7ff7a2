"""The baseline zoo against the paper's Table 2: does each model sit on the same side of LightGCN as there?

The paper's numbers (:data:`PAPER_TABLE2`, quoted from its Table 2: Recall@10 and NDCG@10 on its MovieLens,
TikTok and Kwai) come from other data (its MovieLens is MMGCN's, not ml100k; its TikTok is the full set, ours a
subset), so levels are not comparable; the *ordering* against a common reference is. :func:`paper_ordering`
puts each model's relative difference to the reference (LightGCN) beside the paper's and flags an
**inversion**: the two on opposite sides of the reference and more than ``tolerance`` apart. The issue asks that
a large inversion be investigated before it is reported; the table says which rows need it.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..baselines import BASELINES, reads_modalities
from ..data.dataset import RecDataset
from ..evaluation import evaluate
from ..training.loop import LoopConfig
from .ablations import PAPER_ABLATIONS, PAPER_DATASETS
from .runs import results_table, run_baselines

#: the paper's Table 2 (its numbers, on its datasets): model -> dataset -> (Recall@10, NDCG@10)
PAPER_TABLE2: dict[str, dict[str, tuple[float, float]]] = {
    "graphsage": {"MovieLens": (0.2129, 0.1388), "TikTok": (0.0778, 0.0476), "Kwai": (0.0424, 0.0344)},
    "ngcf": {"MovieLens": (0.2340, 0.1383), "TikTok": (0.0906, 0.0547), "Kwai": (0.0427, 0.0363)},
    "gat": {"MovieLens": (0.2342, 0.1589), "TikTok": (0.0945, 0.0575), "Kwai": (0.0441, 0.0369)},
    "lightgcn": {"MovieLens": (0.2381, 0.1592), "TikTok": (0.0988, 0.0603), "Kwai": (0.0502, 0.0411)},
    "vbpr": {"MovieLens": (0.1927, 0.1207), "TikTok": (0.0600, 0.0397), "Kwai": (0.0302, 0.0221)},
    "mmgcn": {"MovieLens": (0.2453, 0.1523), "TikTok": (0.0645, 0.0579), "Kwai": (0.0456, 0.0374)},
    "grcn": {"MovieLens": (0.2520, 0.1683), "TikTok": (0.0952, 0.0584), "Kwai": (0.0473, 0.0403)},
    "lattice": {"MovieLens": (0.2520, 0.1680), "TikTok": (0.0984, 0.0611), "Kwai": (0.0483, 0.0400)},
    "invrl": {"MovieLens": (0.2518, 0.1666), "TikTok": (0.1002, 0.0612), "Kwai": (0.0486, 0.0402)},
    "lightgt": {"MovieLens": (0.2650, 0.1771), "TikTok": (0.1213, 0.0751), "Kwai": (0.0546, 0.0441)},
    "mmgrec": PAPER_ABLATIONS["full"],                         # Table 2's MMGRec row is Tables 3-5's "Ours"
}
#: columns of :func:`paper_ordering`'s table
ORDER_COLUMNS = ["dataset", "model", "metric", "ours", "ours_vs_reference", "paper_dataset", "paper",
                 "paper_vs_reference", "verdict"]


def paper_number(model: str, dataset: str, metric: str) -> float:
    """The paper's Table 2 value of ``model`` for ``dataset`` (ours: ``ml100k`` / ``tiktok``, mapped by
    :data:`~mmgrec_lib.experiments.ablations.PAPER_DATASETS`) and ``metric`` (``recall@10`` / ``ndcg@10``);
    ``nan`` where the paper has none."""
    index = {"recall@10": 0, "ndcg@10": 1}
    if metric not in index:
        raise ValueError(f"the paper's Table 2 has recall@10 and ndcg@10, not {metric!r}")
    column = PAPER_DATASETS.get(dataset)
    pair = PAPER_TABLE2.get(model, {}).get(column) if column else None
    return math.nan if pair is None else pair[index[metric]]


def _verdict(ours: float, paper: float, tolerance: float) -> str:
    if math.isnan(paper):
        return "not in the paper's Table 2"
    if math.isnan(ours):
        return "no result"
    if abs(ours - paper) <= tolerance:
        return "agrees"
    if (ours > 0) == (paper > 0) or (abs(ours) <= tolerance and abs(paper) <= tolerance):
        return "same side, different margin"
    return "inversion"


def paper_ordering(results: pd.DataFrame | Mapping[str, Mapping[str, float]], dataset: str,
                   reference: str = "lightgcn", metrics: tuple[str, ...] = ("recall@10", "ndcg@10"),
                   tolerance: float = 0.10) -> pd.DataFrame:
    """Each model's relative difference to ``reference`` next to the paper's, with a verdict.

    Args:
        results: a table with a ``model`` column and the ``metrics`` (e.g. notebook 10's zoo), or
            ``{model: {metric: value}}``.
        dataset: ours (``ml100k``, ``tiktok``: the paper's MovieLens and TikTok columns).
        reference: the model both sides are measured against (must be in ``results`` and in the paper).
        tolerance: relative differences closer than this (0.10: ten per cent of the reference) agree.

    Returns:
        :data:`ORDER_COLUMNS`, one row per model (the reference left out) and metric: ``ours_vs_reference`` =
        ours / reference − 1, ``paper_vs_reference`` likewise from :data:`PAPER_TABLE2`, and ``verdict``:
        ``agrees`` (within ``tolerance``), ``same side, different margin``, ``inversion`` (opposite sides of
        the reference, more than ``tolerance`` apart), or ``not in the paper's Table 2``.
    """
    if not 0 <= tolerance < math.inf:
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
    if isinstance(results, pd.DataFrame):
        if "model" not in results:
            raise ValueError("paper_ordering: results needs a 'model' column")
        missing = [m for m in metrics if m not in results]
        if missing:
            raise ValueError(f"paper_ordering: results lacks the metric column(s) {missing}")
        values = {str(r["model"]): {m: float(r[m]) for m in metrics} for r in results.to_dict("records")}
    else:
        values = {str(k): {m: float(v[m]) for m in metrics} for k, v in results.items()}
    if reference not in values:
        raise ValueError(f"paper_ordering: the reference {reference!r} is not among the models {sorted(values)}")
    rows = []
    for metric in metrics:
        ref_ours, ref_paper = values[reference][metric], paper_number(reference, dataset, metric)
        if math.isnan(ref_paper):
            raise ValueError(f"paper_ordering: the paper's Table 2 has no {reference!r} on {dataset!r} "
                             f"(datasets with a paper column: {sorted(PAPER_DATASETS)})")
        for model, got in values.items():
            if model == reference:
                continue
            ours = got[metric] / ref_ours - 1 if ref_ours > 0 else math.nan
            paper = paper_number(model, dataset, metric)
            paper_rel = paper / ref_paper - 1
            rows.append({"dataset": dataset, "model": model, "metric": metric, "ours": got[metric],
                         "ours_vs_reference": ours, "paper_dataset": PAPER_DATASETS[dataset], "paper": paper,
                         "paper_vs_reference": paper_rel, "verdict": _verdict(ours, paper_rel, tolerance)})
    return pd.DataFrame(rows, columns=ORDER_COLUMNS)


def score_parts_table(model, dataset, split: str = "val", batch_size: int = 1024) -> pd.DataFrame:
    """What a model's ranking rests on: every part of its score (``model.score_parts()``, e.g.
    :meth:`~mmgrec_lib.baselines.lightgt.LightGT.score_parts`) ranked alone with full ranking on ``split``.

    Returns one row per part: ``part``, ``recall@10``, ``ndcg@10`` and the mean L2 norms of its user and item
    factors (``user_norm``, ``item_norm``: which factor dominates a dot product of a sum).
    """
    if not hasattr(model, "score_parts"):
        raise TypeError(f"{type(model).__name__} has no score_parts(): no parts to rank")
    rows = []
    for part, (users, items) in model.score_parts().items():
        res = evaluate(lambda b, u=users, i=items: u[b.to(u.device)] @ i.T, dataset, split=split, ks=(10,),
                       batch_size=batch_size)
        rows.append({"part": part, "recall@10": res["recall@10"], "ndcg@10": res["ndcg@10"],
                     "user_norm": float(users.norm(dim=1).mean()), "item_norm": float(items.norm(dim=1).mean())})
    return pd.DataFrame(rows)


def modality_ablation(dataset: RecDataset, model: str, config: Mapping[str, Any], loop: LoopConfig,
                      runs_dir: str | Path | None = None, seed: int = 0) -> pd.DataFrame:
    """A multimodal model at ``config`` reading all of the dataset's modalities, then retrained on each one alone
    (``modalities=(m,)``, everything else equal: loop, seed, split). Unlike :func:`score_parts_table`, which ranks
    the parts of one trained model, each row here is its own training, so it says whether the model would do
    better without a modality, not only what its sum is made of.

    Every run is a keyed run under ``runs_dir`` (:func:`~mmgrec_lib.experiments.runs.run_baselines`), so the
    all-modality row is the zoo's chosen run when ``config`` and ``loop`` are its.

    Returns:
        ``results_table``'s columns with ``model`` replaced by ``modalities`` (``"all (a+b)"`` or one name),
        ``val_recall@10`` (the best validation score) in front, p-values paired against the all-modality row.

    Raises:
        ValueError: ``model`` is unknown or has no ``modalities`` field, ``config`` sets ``modalities``, or the
            dataset has fewer than two modalities (nothing to take away).
    """
    if model not in BASELINES:
        raise ValueError(f"modality_ablation: unknown model {model!r}; expected one of {sorted(BASELINES)}")
    if not reads_modalities(model):
        raise ValueError(f"modality_ablation: {model} reads no modality features (its config has no `modalities`)")
    if config.get("modalities") is not None:
        raise ValueError(f"modality_ablation: config sets modalities={config['modalities']!r}; pass the "
                         f"all-modality config, the single-modality runs are derived from it")
    mods = list(dataset.modalities)
    if len(mods) < 2:
        raise ValueError(f"modality_ablation: dataset {dataset.name!r} has {len(mods)} modality "
                         f"({mods}); it needs two or more")
    variants = {f"all ({'+'.join(mods)})": dict(config), **{m: {**config, "modalities": (m,)} for m in mods}}
    runs = {}
    for label, cfg in variants.items():
        run = run_baselines(dataset, [model], loop=loop, seed=seed, overrides={model: cfg}, runs_dir=runs_dir)[model]
        runs[label] = dataclasses.replace(run, name=label)
    table = results_table(runs, reference=next(iter(variants)))
    table.insert(1, "val_recall@10", [runs[label].fit.best_score for label in table["model"]])
    return table.rename(columns={"model": "modalities"})


__all__ = ["ORDER_COLUMNS", "PAPER_TABLE2", "modality_ablation", "paper_number", "paper_ordering",
           "score_parts_table"]
