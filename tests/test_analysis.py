"""The analyses notebook 03 calls (experiments.analysis): lists, beam widths, examples, the gap summary."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.evaluation import excluded_matrix
from mmgrec_lib.experiments import (BASELINE_NAMES, baseline_overrides, beam_width_table, example_recommendations,
                                    example_users, gap_summary, list_table, results_table, run_baselines,
                                    top_k_lists)
from mmgrec_lib.experiments.runs import ModelRun
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.generator.training import evaluate_generator, level_accuracy, train_generator
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.tokenizer.run import RecIDRun
from mmgrec_lib.training import LoopConfig


@pytest.fixture(scope="module")
def trained():
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    rng = np.random.default_rng(0)
    sem = rng.integers(0, 4, (ds.n_items, 2))
    table = RecIDTable(disambiguate(sem, ds.item_popularity()))
    g = torch.Generator().manual_seed(1)
    u, i = torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g)
    cfg = GeneratorConfig.from_dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=5, batch_size=64,
                          beam_width=20, val_ks=(10, 20), device="cpu")
    model, fit = train_generator(ds, table, u, i, cfg, LoopConfig(epochs=2, patience=0, progress=False),
                                 torch.Generator().manual_seed(7))
    mmgrec = ModelRun("mmgrec", model, fit, evaluate_generator(model, ds, "test", ks=(10, 20)), 1.0, None)
    loop = LoopConfig(epochs=2, patience=0, eval_every=1, progress=False)
    baselines = run_baselines(ds, ["mostpop", "mf"], loop=loop, overrides=baseline_overrides(["mostpop", "mf"], dim=8))
    recids = RecIDRun(u, i, torch.as_tensor(sem), table, {"val_recall@10": 0.1})
    return ds, mmgrec, baselines, recids


def test_baseline_settings_shared_with_notebook_00():
    assert BASELINE_NAMES == ("mostpop", "mf", "lightgcn", "vbpr")
    assert baseline_overrides(BASELINE_NAMES, 32, "cpu") == {m: {"dim": 32, "device": "cpu"}
                                                             for m in ("mf", "lightgcn", "vbpr")}


def test_top_k_lists_exclude_seen_items_for_generators_and_baselines(trained):
    ds, mmgrec, baselines, _ = trained
    lists = top_k_lists({"mmgrec": mmgrec, **baselines}, ds, k=5, beam_width=20, batch_size=7)
    users = np.unique(ds.test.nonzero()[0])
    seen = excluded_matrix(ds, "test").tolil().rows
    for name, l in lists.items():
        assert l.shape == (len(users), 5), name
        for u, row in zip(users, l.tolist()):
            assert not set(row) & set(seen[u]), name
    # the generator's lists are its beam search's, batching aside
    direct = mmgrec.model.recommend(torch.as_tensor(users), 5, 20, exclude=excluded_matrix(ds, "test"))[0]
    assert torch.equal(lists["mmgrec"], direct)
    diag = list_table(lists, ds)
    assert list(diag["model"]) == ["mmgrec", "mostpop", "mf"] and (diag["dataset"] == ds.name).all()
    assert diag.loc[diag["model"] == "mostpop", "overlap_between_users"].iloc[0] > 0.5


def test_beam_width_table_reaches_exact_at_full_width(trained):
    ds, mmgrec, _, _ = trained
    tab = beam_width_table(mmgrec.model, ds, widths=(10, ds.n_items), k=10, overlap_users=10, exact=True)
    assert list(tab["beam_width"]) == [10, ds.n_items, "exact"]
    full, exact = tab.iloc[1], tab.iloc[2]
    assert full["top10_overlap"] == pytest.approx(1.0)
    assert full["test_recall@10"] == pytest.approx(exact["test_recall@10"])
    assert (tab["inference_ms_per_user"] >= 0).all()


def test_example_recommendations_mark_test_hits(trained):
    ds, mmgrec, _, _ = trained
    users = example_users(ds, 2)
    assert users == sorted(users) and all(ds.test[u].nnz for u in users)
    ex = example_recommendations(mmgrec.model, ds, users, k=5, beam_width=20, history=3)
    assert set(ex["part"]) == {"history", "top-5"}
    top = ex[ex["part"] == "top-5"]
    for row in top.itertuples():
        assert row.hit == (row.item in set(ds.test[row.user].indices.tolist()))
        assert row.rec_id == tuple(mmgrec.model.codes[row.item].tolist())


def test_gap_summary_is_computed_from_the_tables(trained):
    ds, mmgrec, baselines, recids = trained
    table = results_table({"mmgrec": mmgrec, **baselines}, reference="mmgrec")
    lists = list_table(top_k_lists({"mmgrec": mmgrec, **baselines}, ds), ds)
    levels = level_accuracy(mmgrec.model, ds, "val", ks=(1, 10))
    beam = pd.DataFrame([{"beam_width": "exact", "test_recall@10": 0.5}])
    lines = gap_summary(table, lists, levels, mmgrec, baselines, recids, ds, beam)
    assert len(lines) == 5
    assert f"{table.loc[0, 'recall@10']:.4f}" in lines[0] and "0.5000" in lines[1]
    assert "L1" in lines[3] and "Graph RQ-VAE" in lines[4]
