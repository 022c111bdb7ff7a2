"""Seed runs recorded in a committed ledger with their per-user test results (experiments.recorded): exact
round trips, stand-ins equal to the runs they replace, nothing retrained, clear errors."""
from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pandas as pd
import pytest
import torch

from mmgrec_lib.evaluation import evaluate, result_from_hits
from mmgrec_lib.experiments.ladder import seed_runs, seed_table
from mmgrec_lib.experiments.ledger import RunLedger
from mmgrec_lib.experiments.overall import overall_runs
from mmgrec_lib.experiments.recorded import decode_hits, encode_hits, recall, recorded_run, run_facts
from mmgrec_lib.training.loop import LoopConfig

KWARGS = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}


@pytest.fixture
def synthetic(monkeypatch):
    """``load_dataset("synthetic", seed=s)`` at a tiny size, as the seed runs load it."""
    import mmgrec_lib.data as data
    real = data.load_dataset
    monkeypatch.setattr(data, "load_dataset", lambda name, seed=0, **kw: real(name, seed=seed, **{**KWARGS, **kw}))
    return lambda seed=0: real("synthetic", seed=seed, **KWARGS)


def _configs():
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    rc = GraphRQVAEConfig(dim=8, codebook_size=4, epochs=1, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4,
                          device="cpu")
    gc = GeneratorConfig.from_dict(dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu"))
    loop, bloop = LoopConfig(epochs=1, patience=0, progress=False), LoopConfig(epochs=2, patience=0, progress=False)
    return rc, gc, loop, bloop, {"mf": {"dim": 8, "batch_size": 64, "device": "cpu"}}


def _same(a, b) -> None:
    """Two seed -> {name -> run} results hold the same models and identical per-user test metrics and facts."""
    assert sorted(a) == sorted(b)
    for s in a:
        assert list(a[s]) == list(b[s])
        for name in a[s]:
            x, y = a[s][name], b[s][name]
            pd.testing.assert_frame_equal(x.test.per_user, y.test.per_user, check_exact=True)
            assert (x.fit.best_score, x.fit.best_epoch, len(x.fit.history)) == \
                   (y.fit.best_score, y.fit.best_epoch, len(y.fit.history)), (s, name)


# ---------------------------------------------------------------------- hit masks
def test_hit_masks_round_trip_exactly():
    g = torch.Generator().manual_seed(0)
    for k in (1, 10, 20, 32):
        hits = torch.rand(57, k, generator=g) < 0.3
        assert torch.equal(decode_hits(encode_hits(hits), 57, k), hits)
    assert decode_hits(encode_hits(torch.zeros(0, 20, dtype=torch.bool)), 0, 20).shape == (0, 20)


def test_hit_masks_reject_bad_input():
    with pytest.raises(ValueError, match="bool"):
        encode_hits(torch.zeros(3, 20))
    with pytest.raises(ValueError, match="K <= 32"):
        encode_hits(torch.zeros(3, 33, dtype=torch.bool))
    text = encode_hits(torch.ones(5, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match="expected 4"):
        decode_hits(text, 4, 20)
    with pytest.raises(ValueError, match="beyond 10"):
        decode_hits(text, 5, 10)
    with pytest.raises(ValueError, match="base64"):
        decode_hits("not base64 at all!", 5, 20)


def test_evaluate_keeps_hits_that_rebuild_its_per_user_metrics_bit_for_bit(synthetic):
    ds = synthetic()
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(ds.n_users, ds.n_items, generator=g)
    lists = torch.argsort(torch.rand(ds.n_users, ds.n_items, generator=g), dim=1)[:, :25]
    for source, split in ((scores, "test"), (lists, "val"), (scores, "val")):
        res = evaluate(source, ds, split, ks=(5, 20), batch_size=7)          # several batches
        hits = res.extra["hits"]
        assert hits.dtype == torch.bool and hits.shape == (len(res.per_user), 20)
        back = result_from_hits(ds, split, hits, (20, 5))
        pd.testing.assert_frame_equal(back.per_user, res.per_user, check_exact=True)
        assert back.ks == res.ks
    with pytest.raises(ValueError, match="bool"):
        result_from_hits(ds, "test", torch.zeros(3, 20, dtype=torch.bool), (10, 20))


# ---------------------------------------------------------------------- seed runs through a ledger
def test_seed_runs_stand_in_from_the_ledger_on_a_fresh_machine(synthetic, tmp_path):
    rc, gc, loop, bloop, overrides = _configs()
    ledger = tmp_path / "ledgers" / "seed_runs_synthetic.jsonl"
    first = seed_runs("synthetic", [0, 1], rc, gc, loop, bloop, overrides, runs_dir=tmp_path / "runs",
                      baselines=["mostpop", "mf"], ledger=ledger)
    book = RunLedger(ledger)
    assert len(book) == 6                                              # 2 seeds x (MMGRec, MostPop, MF)
    assert {r["model"] for r in book.rows()} == {"mmgrec", "mostpop", "mf"}
    assert all(r["test_users"] > 0 and r["ks"] == "10,20" for r in book.rows())
    fresh = tmp_path / "fresh_runs"                                    # a new machine: no checkpoints
    again = seed_runs("synthetic", [0, 1], rc, gc, loop, bloop, overrides, runs_dir=fresh,
                      baselines=["mostpop", "mf"], ledger=ledger)
    assert not fresh.exists() or not any(fresh.iterdir())             # nothing trained, not even Rec-IDs
    assert all(run.model is None for runs in again.values() for run in runs.values())
    _same(first, again)
    pd.testing.assert_frame_equal(seed_table(first, "mf"), seed_table(again, "mf"))
    assert RunLedger(ledger).rows() == book.rows()                     # stand-ins are not recorded again


def test_train_false_keeps_only_finished_or_recorded_runs(synthetic, tmp_path):
    rc, gc, loop, bloop, overrides = _configs()
    runs = tmp_path / "runs"
    seed_runs("synthetic", [0], rc, gc, loop, bloop, overrides, runs_dir=runs, baselines=["mf"])   # no ledger
    ledger = tmp_path / "seed_runs.jsonl"
    got = seed_runs("synthetic", [0, 1], rc, gc, loop, bloop, overrides, runs_dir=runs,
                    baselines=["mostpop", "mf"], ledger=ledger, train=False)
    assert list(got[0]) == ["mmgrec", "mostpop", "mf"] and list(got[1]) == ["mostpop"]   # MostPop: no training
    assert {r["model"] for r in RunLedger(ledger).rows()} == {"mmgrec", "mostpop", "mf"}  # seed 0's, recorded
    assert len(list(runs.glob("synthetic_mf_*.pt"))) == 1                                 # seed 1's MF: not trained
    with pytest.raises(ValueError, match="runs_dir"):
        seed_runs("synthetic", [0], rc, gc, loop, bloop, overrides, runs_dir=None, baselines=["mf"], ledger=ledger)


def test_parallel_overall_runs_record_each_task_and_skip_recorded_ones(synthetic, tmp_path):
    rc, gc, loop, bloop, overrides = _configs()
    ledger = tmp_path / "seed_runs.jsonl"
    with cf.ThreadPoolExecutor(1) as pool:
        per_seed, swept = overall_runs("synthetic", [0], rc, gc, loop, bloop, overrides, ["mostpop", "mf"],
                                       tmp_path / "runs", executor=pool, progress=False, ledger=ledger)
    assert list(swept["task"]) == ["mostpop seed 0", "mf seed 0", "mmgrec seed 0"]
    assert "test_hits" not in swept.columns
    book = RunLedger(ledger)
    assert sorted(book.get(k)["model"] for k in swept["run_key"]) == ["mf", "mmgrec", "mostpop"]
    with cf.ThreadPoolExecutor(1) as pool:                              # a fresh machine: nothing left to train
        again, none = overall_runs("synthetic", [0], rc, gc, loop, bloop, overrides, ["mostpop", "mf"],
                                   tmp_path / "fresh", executor=pool, progress=False, ledger=ledger)
    assert none is None
    _same(per_seed, again)
    assert list(again[0]) == ["mostpop", "mf", "mmgrec"]


def test_a_line_from_another_split_is_refused_with_the_ledger_named(synthetic, tmp_path):
    rc, gc, loop, bloop, overrides = _configs()
    ledger = tmp_path / "seed_runs.jsonl"
    runs = seed_runs("synthetic", [0], rc, gc, loop, bloop, overrides, runs_dir=tmp_path / "runs",
                     baselines=["mf"], ledger=ledger)
    facts = run_facts(runs[0]["mf"])
    other = synthetic(seed=1)
    if int(np.count_nonzero(np.diff(other.split("test").indptr))) == facts["test_users"]:
        with pytest.raises(ValueError, match="differs"):
            recorded_run(facts, other, tmp_path / "x.pt", where="ledger L, run x")
    else:
        with pytest.raises(ValueError, match="ledger L, run x.*test users"):
            recorded_run(facts, other, tmp_path / "x.pt", where="ledger L, run x")
    with pytest.raises(ValueError, match="lacks.*test_hits"):
        recorded_run({k: v for k, v in facts.items() if k != "test_hits"}, synthetic(), tmp_path / "x.pt")
    ckpt = runs[0]["mf"].checkpoint
    assert recall(RunLedger(ledger), ckpt, synthetic()) is None          # the checkpoint exists: read from it


def test_same_realisation_compares_best_epoch_and_test_means_only():
    from mmgrec_lib.experiments.recorded import same_realisation
    line = {"best_epoch": 3, "test_recall@10": 0.25, "test_ndcg@10": 0.3, "test_users": 5, "test_hits": "x",
            "test_coverage@10": 0.4}
    assert same_realisation(line, {"best_epoch": 3, "test_recall@10": 0.25, "test_ndcg@10": 0.3, "test_hits": "y"})
    assert same_realisation(line, {"best_epoch": 3, "test_recall@10": 0.25})        # a field one side lacks
    assert not same_realisation(line, {"best_epoch": 4, "test_recall@10": 0.25, "test_ndcg@10": 0.3})
    assert not same_realisation(line, {"best_epoch": 3, "test_recall@10": 0.26, "test_ndcg@10": 0.3})
    assert not same_realisation(None, {"best_epoch": 3})
