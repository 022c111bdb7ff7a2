"""Per-user metrics by group of users: which users a model wins or loses on.

A mean over users hides where a model stands: on TikTok the median user has two training items, so a model that
loses to MostPop overall may still win on the users with long histories. :func:`history_groups` buckets users by
the length of their training history; :func:`metric_by_group` averages each model's per-user metric within each
bucket, with the paired Wilcoxon p-value against a reference model in the same bucket.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..data.dataset import RecDataset
from .metrics import EvalResult

#: lower edges (inclusive) of the training-history buckets: 1-2, 3-5, 6-10, 11-50, 51+ items
HISTORY_EDGES = (1, 3, 6, 11, 51)


def _labels(edges: Sequence[int]) -> list[str]:
    out = []
    for lo, hi in zip(edges, list(edges[1:]) + [None]):
        out.append(f"{lo}+" if hi is None else (str(lo) if hi - 1 == lo else f"{lo}-{hi - 1}"))
    return out


def history_groups(dataset: RecDataset, edges: Sequence[int] = HISTORY_EDGES) -> pd.Series:
    """Every user's training-history bucket (index: user id; values: labels such as ``"3-5"``, ordered
    categorical). ``edges``: increasing lower edges (inclusive), the first >= 0; users with fewer training items
    than the first edge get no bucket (NaN)."""
    edges = [int(e) for e in edges]
    if not edges or edges[0] < 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"history_groups: edges must be increasing integers >= 0, got {list(edges)}")
    n_items = np.asarray(dataset.train.getnnz(axis=1)).ravel()                 # (U,) training items per user
    labels = _labels(edges)
    codes = np.searchsorted(np.asarray(edges), n_items, side="right") - 1     # (U,) bucket index, -1 below
    cats = pd.Categorical.from_codes(codes, categories=labels, ordered=True)
    return pd.Series(cats, index=pd.RangeIndex(dataset.n_users, name="user"), name="history")


def metric_by_group(results: Mapping[str, EvalResult], groups: pd.Series, metric: str = "recall@10",
                    reference: str | None = None) -> pd.DataFrame:
    """Mean ``metric`` of each model in each group of users, long format: one row per (group, model) with
    ``users`` (evaluated users in the group), ``share`` (their share of all evaluated users), ``mean`` and,
    with a ``reference`` model, ``diff`` (mean minus the reference's) and ``p_wilcoxon`` (paired over the group's
    users; 1.0 where every difference is 0, NaN for the reference itself). Every result must cover the same
    users (the same dataset and split)."""
    if not results:
        raise ValueError("metric_by_group: no results given")
    if reference is not None and reference not in results:
        raise ValueError(f"metric_by_group: reference {reference!r} is not among the results {sorted(results)}")
    first = next(iter(results.values()))
    users = first.per_user.index
    for name, res in results.items():
        if metric not in res.per_user:
            raise ValueError(f"metric_by_group: result {name!r} has no column {metric!r}; "
                             f"it has {list(res.per_user.columns)}")
        if res.split != first.split or not res.per_user.index.equals(users):
            raise ValueError(f"metric_by_group: result {name!r} covers other users or another split than "
                             f"{next(iter(results))!r}; evaluate every model on the same dataset and split")
    missing = users.difference(groups.index)
    if len(missing):
        raise ValueError(f"metric_by_group: {len(missing)} evaluated user(s) have no group, e.g. {list(missing[:3])}")
    group = groups.reindex(users)
    rows = []
    for label in group.cat.categories:
        members = users[(group == label).to_numpy()]
        if not len(members):
            continue
        ref = results[reference].per_user.loc[members, metric] if reference is not None else None
        for name, res in results.items():
            x = res.per_user.loc[members, metric]
            row = {"group": label, "model": name, "users": len(members), "share": len(members) / len(users),
                   "mean": float(x.mean())}
            if ref is not None:
                diff = (x - ref).to_numpy()
                row["diff"] = float(diff.mean())
                row["p_wilcoxon"] = (float("nan") if name == reference else 1.0 if np.allclose(diff, 0)
                                     else float(stats.wilcoxon(x, ref, zero_method="wilcox").pvalue))
            rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["HISTORY_EDGES", "history_groups", "metric_by_group"]
