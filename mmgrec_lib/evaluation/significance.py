"""Paired significance tests over the per-user metrics of two :class:`EvalResult` on the same users."""
from __future__ import annotations

import numpy as np
from scipy import stats

from .metrics import EvalResult


def paired_test(a: EvalResult, b: EvalResult, metric: str = "recall@10") -> dict[str, float]:
    """Paired comparison of two models over the same users: paired t-test and Wilcoxon signed-rank.

    Returns the two means, the mean difference ``a - b`` and both two-sided p-values.
    """
    if a.split != b.split:
        raise ValueError(f"cannot pair results on different splits ({a.split} vs {b.split})")
    x, y = a.per_user[metric].align(b.per_user[metric], join="inner")
    if len(x) != len(a.per_user) or len(y) != len(b.per_user):
        raise ValueError("results cover different users; evaluate both on the same dataset and split")
    diff = (x - y).to_numpy()
    if np.allclose(diff, 0):
        p_t = p_w = 1.0
    else:
        p_t = float(stats.ttest_rel(x, y).pvalue)
        p_w = float(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
    return {"metric": metric, "mean_a": float(x.mean()), "mean_b": float(y.mean()),
            "diff": float(diff.mean()), "p_ttest": p_t, "p_wilcoxon": p_w, "users": int(len(x))}
