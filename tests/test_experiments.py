"""Experiment helpers: reused runs report the training time they really took."""
import dataclasses
import math

import pytest

import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.experiments.runs import run_baselines, training_seconds
from mmgrec_lib.training import FitResult, LoopConfig


def test_reused_run_reports_original_training_time(tmp_path):
    ds = make_tiny_dataset()
    loop = LoopConfig(epochs=3, patience=0, progress=False)
    first = run_baselines(ds, ["mf"], loop=loop, runs_dir=tmp_path, overrides={"mf": {"device": "cpu"}})["mf"]
    again = run_baselines(ds, ["mf"], loop=loop, runs_dir=tmp_path, overrides={"mf": {"device": "cpu"}})["mf"]
    assert again.fit.resumed_from == 3 and len(again.fit.epoch_seconds) == 3
    assert again.train_seconds == sum(first.fit.epoch_seconds)
    assert again.test.mean() == first.test.mean()


def test_training_seconds_unknown_for_old_checkpoints():
    old = FitResult(history=[{"epoch": 1}], best_epoch=1, best_score=0.0, stopped_early=False, resumed_from=1)
    assert math.isnan(training_seconds(old, 0.1))
    fresh = FitResult(history=[{"epoch": 1}], best_epoch=1, best_score=0.0, stopped_early=False, resumed_from=0)
    assert training_seconds(fresh, 2.5) == 2.5


def test_generator_variants_change_config_and_loop_fields(monkeypatch):
    from mmgrec_lib.experiments import runs as experiments
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.training import LoopConfig

    seen = []

    def fake_run_generator(dataset, recid_run, config, loop, runs_dir=None, ks=(10, 20)):
        seen.append((config, loop))
        return config.model.max_len

    base = GeneratorConfig.from_dict(device="cpu")
    monkeypatch.setattr(experiments, "run_generator", fake_run_generator)
    out = experiments.run_generator_variants(None, None, base, {"base": {}, "n20": {"max_len": 20, "epochs": 3}},
                                             LoopConfig(epochs=9, progress=False))
    assert out == {"base": 50, "n20": 20}
    assert seen[0] == (base, LoopConfig(epochs=9, progress=False))
    assert seen[1][0] == base.replace(max_len=20) and seen[1][1].epochs == 3
    with pytest.raises(TypeError, match="unknown parameter"):
        experiments.run_generator_variants(None, None, base, {"x": {"layers": 3}})


def test_codebook_size_sweep_chooses_best_generator_validation_smallest_on_ties(monkeypatch):
    from types import SimpleNamespace

    from mmgrec_lib.experiments import runs as experiments
    from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAEConfig

    val = {16: 0.2, 32: 0.3, 64: 0.3}
    monkeypatch.setattr(experiments, "load_or_assign_recids", lambda ds, rc, runs_dir=None, progress=True: (
        SimpleNamespace(L=rc.codebook_size, stats={"unique_semantic_frac": rc.codebook_size / 100,
                                                   "val_recall@10": 0.1}), None, True))

    def fake_run_generator(dataset, recids, config, loop, runs_dir=None, ks=(10, 20)):
        test = SimpleNamespace(mean=lambda: {"recall@10": 1.0 - val[recids.L], "ndcg@10": 0.0})
        return SimpleNamespace(fit=SimpleNamespace(best_score=val[recids.L], best_epoch=1), test=test)

    monkeypatch.setattr(experiments, "run_generator", fake_run_generator)
    df, runs = experiments.codebook_size_sweep(None, GraphRQVAEConfig(), None, [64, 16, 32])
    assert df["codebook_size"].tolist() == [16, 32, 64] and sorted(runs) == [16, 32, 64]
    assert df["chosen"].tolist() == [False, True, False]         # best validation; the smaller of the tie
    assert df["test_recall@10"].tolist() == [0.8, 0.7, 0.7]      # reported, not used for the choice
    with pytest.raises(ValueError, match="no codebook sizes"):
        experiments.codebook_size_sweep(None, GraphRQVAEConfig(), None, [])
