"""Analyses of a trained generator that the notebooks call: the test top-k lists of several models and how
personal they are, beam width against exact scoring, example users, and the facts behind the gap to the
baselines. The notebooks keep parameters, calls, plots and narrative."""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.dataset import RecDataset
from ..evaluation import evaluate, excluded_matrix, list_diagnostics
from ..generator.decoding import beam_exact_overlap, exact_scores
from ..generator.model import MMGRecGenerator
from ..generator.training import evaluate_generator
from ..tokenizer.graph_rqvae import GraphRQVAE
from .runs import ModelRun

#: notebook 00's baselines, compared with MMGRec in notebook 03 (the same list, so 03 reuses 00's runs)
BASELINE_NAMES = ("mostpop", "mf", "lightgcn", "vbpr")


def baseline_overrides(names: Sequence[str], dim: int = 64, device: str = "cpu") -> dict[str, dict]:
    """Per-model config fields shared by notebooks 00 and 03 (MostPop has no embedding)."""
    return {m: {"dim": dim, "device": device} for m in names if m != "mostpop"}


def test_users(dataset: RecDataset) -> torch.Tensor:
    """``(U_test,)`` users with at least one test item, ascending."""
    return split_users(dataset, "test")


def split_users(dataset: RecDataset, split: str) -> torch.Tensor:
    """``(U_split,)`` users with at least one item in ``split`` (``"val"`` or ``"test"``), ascending."""
    return torch.from_numpy(np.unique(dataset.split(split).nonzero()[0]))


def split_lists(model, dataset: RecDataset, split: str = "test", k: int = 10, beam_width: int = 20,
                batch_size: int = 1024) -> torch.Tensor:
    """``model``'s top-``k`` lists ``(U_split, k)`` for the users of ``split``, with the items that split excludes
    (training items; validation items too when testing) left out. Generators (``recommend`` returning
    ``(items, scores)``) decode with ``beam_width`` beams."""
    users, seen = split_users(dataset, split), excluded_matrix(dataset, split)
    chunks = []
    for batch in users.split(batch_size):
        if isinstance(model, MMGRecGenerator):                              # constrained beam search
            chunks.append(model.recommend(batch, k, beam_width, exclude=seen)[0])
        else:
            chunks.append(model.recommend(batch, k, exclude=seen))
    return torch.cat(chunks) if chunks else torch.empty(0, k, dtype=torch.long)


def top_k_lists(runs: Mapping[str, ModelRun], dataset: RecDataset, k: int = 10, beam_width: int = 20,
                batch_size: int = 1024) -> dict[str, torch.Tensor]:
    """Each model's test top-``k`` lists ``(U_test, k)`` (training and validation items excluded). Generators
    (``recommend`` returning ``(items, scores)``) decode with ``beam_width`` beams; a generator run with a
    checkpoint file keeps its lists beside it (:mod:`~mmgrec_lib.experiments.decode_cache`), so reusing the run
    does not decode them again."""
    from .decode_cache import cached

    def lists(run: ModelRun) -> torch.Tensor:
        compute = lambda: split_lists(run.model, dataset, "test", k, beam_width, batch_size)   # noqa: E731
        if not isinstance(run.model, MMGRecGenerator):
            return compute()
        key = f"split_lists|test|k={k}|beam={beam_width}|batch={batch_size}|{run.model.device}"
        return cached(run.checkpoint, key, compute)
    return {name: lists(run) for name, run in runs.items()}


def list_table(lists: Mapping[str, torch.Tensor], dataset: RecDataset, popular: int = 50) -> pd.DataFrame:
    """One row per model: :func:`~mmgrec_lib.evaluation.list_diagnostics` of its lists."""
    return pd.DataFrame([{"dataset": dataset.name, "model": n, **list_diagnostics(l, dataset, popular)}
                         for n, l in lists.items()])


def beam_width_table(model, dataset: RecDataset, widths: Sequence[int] = (10, 20, 40), k: int = 10,
                     overlap_users: int = 200, exact: bool = True) -> pd.DataFrame:
    """Per beam width: top-``k`` overlap with exact scoring on the first ``overlap_users`` users, test
    Recall/NDCG@k and inference time per user; with ``exact``, one more row ranking every Rec-ID exactly."""
    users = torch.arange(min(overlap_users, dataset.n_users))
    rows = []
    for width in widths:
        res = evaluate_generator(model, dataset, "test", ks=(k,), beam_width=width)
        rows.append({"K": k, "beam_width": width, f"top{k}_overlap": beam_exact_overlap(model, users, k, width),
                     f"test_recall@{k}": res[f"recall@{k}"], f"test_ndcg@{k}": res[f"ndcg@{k}"],
                     "inference_ms_per_user": res.extra["inference_s_per_user"] * 1e3})
    if exact:
        t0 = time.perf_counter()
        res = evaluate(lambda u: exact_scores(model, u), dataset, "test", ks=(k,), batch_size=128)
        rows.append({"K": k, "beam_width": "exact", f"top{k}_overlap": 1.0, f"test_recall@{k}": res[f"recall@{k}"],
                     f"test_ndcg@{k}": res[f"ndcg@{k}"],
                     "inference_ms_per_user": (time.perf_counter() - t0) / max(len(res.per_user), 1) * 1e3})
    return pd.DataFrame(rows)


def example_users(dataset: RecDataset, n: int = 3) -> list[int]:
    """The first ``n`` users (by id) with at least one test item."""
    return test_users(dataset)[:n].tolist()


def example_recommendations(model, dataset: RecDataset, users: Sequence[int], k: int = 10, beam_width: int = 20,
                            history: int = 8) -> pd.DataFrame:
    """For each user: the first ``history`` training items and the top-``k`` recommendations, one row per
    item (``user``, ``part`` = history | top-k, ``rank``, ``item``, ``title``, ``hit``, ``rec_id``)."""
    recs, _ = model.recommend(torch.tensor(list(users)), k, beam_width, exclude=excluded_matrix(dataset, "test"))
    codes = model.codes.cpu()
    rows = []
    for u, items in zip(users, recs.tolist()):
        held_out = set(dataset.test[u].indices.tolist())
        for rank, i in enumerate(dataset.train[u].indices[:history].tolist(), 1):
            rows.append({"user": u, "part": "history", "rank": rank, "item": i, "title": dataset.title(i),
                         "hit": False, "rec_id": tuple(codes[i].tolist())})
        for rank, i in enumerate(items, 1):
            if i >= 0:
                rows.append({"user": u, "part": f"top-{k}", "rank": rank, "item": i, "title": dataset.title(i),
                             "hit": i in held_out, "rec_id": tuple(codes[i].tolist())})
    return pd.DataFrame(rows)


def gap_summary(table: pd.DataFrame, lists: pd.DataFrame, levels: pd.DataFrame, mmgrec: ModelRun,
                baselines: Mapping[str, ModelRun], recids, dataset: RecDataset,
                beam_table: pd.DataFrame | None = None) -> list[str]:
    """The facts behind MMGRec's gap to the baselines, as sentences computed from the tables: test metrics and
    p-values, exact scoring vs beam, popular share of the lists, per-level token accuracy, and the Graph
    RQ-VAE representations MMGRec reads ranked by dot product (validation as stored by the Rec-ID run)."""
    base_rows = table[table["model"] != "mmgrec"]
    best = base_rows.loc[base_rows["recall@10"].idxmax()]
    pop_row = table[table["model"] == "mostpop"].iloc[0]
    me = table[table["model"] == "mmgrec"].iloc[0]
    share = lists.set_index("model")["popular_share"]
    out = [f"MMGRec test Recall@10 {me['recall@10']:.4f}, NDCG@10 {me['ndcg@10']:.4f}; best baseline "
           f"{best['model']} {best['recall@10']:.4f} (paired Wilcoxon p = {best['p_recall@10']:.2g}); "
           f"MostPop {pop_row['recall@10']:.4f} (p = {pop_row['p_recall@10']:.2g})"]
    if beam_table is not None and (beam_table["beam_width"] == "exact").any():
        exact = beam_table[beam_table["beam_width"] == "exact"].iloc[0]
        out.append(f"exact scoring of every Rec-ID: test Recall@10 {exact['test_recall@10']:.4f} "
                   f"(beam search: {mmgrec.test['recall@10']:.4f})")
    out.append("list slots on the 50 most popular items: "
               + ", ".join(f"{m} {share[m]:.0%}" for m in share.index))
    out.append("teacher-forced top-1 accuracy per level: "
               + ", ".join(f"L{r.level} {r.top1_acc:.0%}" for r in levels.itertuples()))
    graph_test = evaluate(lambda u: GraphRQVAE.score(recids.user_emb, recids.item_emb, u), dataset, "test", ks=(10,))
    out.append(f"Graph RQ-VAE representations ranked by dot product: validation Recall@10 "
               f"{recids.stats['val_recall@10']:.4f}, test {graph_test['recall@10']:.4f} (MMGRec: validation "
               f"{mmgrec.fit.best_score:.4f}, test {mmgrec.test['recall@10']:.4f}; {best['model']}: validation "
               f"{baselines[best['model']].fit.best_score:.4f})")
    return out


__all__ = ["BASELINE_NAMES", "baseline_overrides", "beam_width_table", "example_recommendations", "example_users",
           "gap_summary", "list_table", "split_lists", "split_users", "test_users", "top_k_lists"]
