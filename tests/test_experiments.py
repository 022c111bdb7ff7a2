"""Experiment helpers: reused runs report the training time they really took."""
import dataclasses
import math

import pytest

import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.experiments import run_baselines, training_seconds
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
    from mmgrec_lib import experiments
    from mmgrec_lib.generator_training import GeneratorConfig
    from mmgrec_lib.training import LoopConfig

    seen = []

    def fake_run_generator(dataset, recid_run, config, loop, runs_dir=None, ks=(10, 20)):
        seen.append((config, loop))
        return config.max_len

    base = GeneratorConfig(device="cpu")
    monkeypatch.setattr(experiments, "run_generator", fake_run_generator)
    out = experiments.run_generator_variants(None, None, base, {"base": {}, "n20": {"max_len": 20, "epochs": 3}},
                                             LoopConfig(epochs=9, progress=False))
    assert out == {"base": 50, "n20": 20}
    assert seen[0] == (base, LoopConfig(epochs=9, progress=False))
    assert seen[1][0] == dataclasses.replace(base, max_len=20) and seen[1][1].epochs == 3
    with pytest.raises(TypeError, match="unknown parameter"):
        experiments.run_generator_variants(None, None, base, {"x": {"layers": 3}})
