"""Per-user metrics by training-history bucket (mmgrec_lib.evaluation.groups)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmgrec_lib.data.dataset import RecDataset
from mmgrec_lib.evaluation import EvalResult
from mmgrec_lib.evaluation.groups import history_groups, metric_by_group


def _dataset() -> RecDataset:
    """5 users with 1, 2, 4, 12 and 0 training items over 20 items."""
    counts = [1, 2, 4, 12, 0]
    users = np.concatenate([np.full(c, u) for u, c in enumerate(counts)]).astype(np.int64)
    items = np.concatenate([np.arange(c) for c in counts]).astype(np.int64)
    test = (np.arange(5, dtype=np.int64), np.full(5, 19, dtype=np.int64))
    return RecDataset.from_splits("hist", 5, 20, train=(users, items),
                                 val=(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)), test=test)


def _result(values, users=(0, 1, 2, 3), split="test") -> EvalResult:
    return EvalResult(pd.DataFrame({"recall@10": values}, index=pd.Index(list(users), name="user")), split, (10,))


def test_history_groups_bucket_users_by_their_training_items():
    groups = history_groups(_dataset(), edges=(1, 3, 11))
    assert list(groups.cat.categories) == ["1-2", "3-10", "11+"]
    assert groups.iloc[:4].tolist() == ["1-2", "1-2", "3-10", "11+"]
    assert pd.isna(groups.iloc[4])                                   # no training item: below the first edge
    assert history_groups(_dataset(), edges=(0, 2)).cat.categories.tolist() == ["0-1", "2+"]
    assert history_groups(_dataset(), edges=(1, 2)).iloc[0] == "1"
    with pytest.raises(ValueError, match="increasing"):
        history_groups(_dataset(), edges=(3, 3))


def test_metric_by_group_means_differences_and_p_values():
    groups = history_groups(_dataset(), edges=(1, 3, 11))
    results = {"pop": _result([1.0, 0.0, 0.0, 0.0]), "model": _result([0.0, 1.0, 1.0, 1.0])}
    table = metric_by_group(results, groups, reference="pop")
    assert table["group"].tolist() == ["1-2", "1-2", "3-10", "3-10", "11+", "11+"]
    row = table.set_index(["group", "model"])
    assert row.loc[("1-2", "model"), "mean"] == 0.5 and row.loc[("1-2", "pop"), "mean"] == 0.5
    assert row.loc[("1-2", "model"), "diff"] == 0.0 and row.loc[("3-10", "model"), "diff"] == 1.0
    assert row.loc[("1-2", "model"), "users"] == 2 and row.loc[("11+", "model"), "share"] == 0.25
    assert np.isnan(row.loc[("1-2", "pop"), "p_wilcoxon"])           # the reference against itself
    assert 0.0 < row.loc[("1-2", "model"), "p_wilcoxon"] <= 1.0
    # the group means, weighted by their users, give back each model's overall mean
    for name, res in results.items():
        part = table[table["model"] == name]
        assert np.isclose((part["mean"] * part["users"]).sum() / part["users"].sum(), res["recall@10"])
    assert "diff" not in metric_by_group(results, groups).columns


def test_metric_by_group_rejects_mismatched_results():
    groups = history_groups(_dataset(), edges=(1, 3))
    good = _result([0.0, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="reference 'nope'"):
        metric_by_group({"a": good}, groups, reference="nope")
    with pytest.raises(ValueError, match="other users or another split"):
        metric_by_group({"a": good, "b": _result([0.0, 1.0, 0.0], users=(0, 1, 2))}, groups)
    with pytest.raises(ValueError, match="other users or another split"):
        metric_by_group({"a": good, "b": _result([0.0, 1.0, 0.0, 1.0], split="val")}, groups)
    with pytest.raises(ValueError, match="no column 'ndcg@10'"):
        metric_by_group({"a": good}, groups, metric="ndcg@10")
    with pytest.raises(ValueError, match="have no group"):
        metric_by_group({"a": good}, groups.iloc[:2])


def test_metric_by_group_lines_draw_one_line_per_model_over_the_groups():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmgrec_lib.reporting import plots

    groups = history_groups(_dataset(), edges=(1, 3, 11))
    table = metric_by_group({"pop": _result([1.0, 0.0, 0.0, 0.0]), "model": _result([0.0, 1.0, 1.0, 1.0])},
                            groups, reference="pop")
    fig = plots.metric_by_group_lines(table, reference="pop", dataset="hist")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["pop", "model"]
    assert ax.get_lines()[0].get_linestyle() == "--"                     # the reference, dashed
    assert list(ax.get_lines()[1].get_ydata()) == [0.5, 1.0, 1.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1-2\n(50% of users)", "3-10\n(25% of users)",
                                                            "11+\n(25% of users)"]
    assert ax.get_title().startswith("hist:") and "Recall@K" in ax.get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        plots.metric_by_group_lines(table.iloc[:0])
