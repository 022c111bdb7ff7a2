"""Experiment helpers: reused runs report the training time they really took."""
import math

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
