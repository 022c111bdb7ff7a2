"""Tuning a baseline per dataset on validation: a small grid, every point a keyed run, run in parallel.

:func:`tune_baseline` expands a grid of config fields (``{"lr": [1e-3, 5e-3], "reg": [1e-4, 1e-3]}``) into one
:func:`baseline_task` per point and runs them through :func:`~mmgrec_lib.experiments.sweep.run_sweep` (a local
process pool, serially, or a Dask client). Each point trains with early stopping on validation Recall@10
(:func:`~mmgrec_lib.experiments.runs.run_baselines`, so a point equal to a notebook's run is reused); the point
with the best validation Recall@10 is chosen (ties: the first in grid order). Test metrics are in the table for
the record only; they play no part in the choice.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import pandas as pd

from .sweep import _dataset, run_sweep


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last field varies fastest)."""
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not len(values):
            raise ValueError(f"grid field {name!r} must be a non-empty list of values, got {values!r}")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def baseline_task(spec: dict) -> dict:
    """Train (or reuse) one baseline at one grid point. ``spec``: ``dataset``, ``seed``, ``dataset_kwargs``,
    ``model`` (a :data:`~mmgrec_lib.baselines.BASELINES` name), ``config`` (its fields), ``loop``
    (:class:`~mmgrec_lib.training.LoopConfig` fields), ``runs_dir``."""
    from ..training import LoopConfig
    from .runs import run_baselines
    ds = _dataset(spec)
    loop = LoopConfig(**{"progress": False, **dict(spec.get("loop", {}))})
    name = spec["model"]
    run = run_baselines(ds, [name], loop=loop, seed=int(spec.get("seed", 0)),
                        overrides={name: dict(spec.get("config", {}))}, runs_dir=spec["runs_dir"])[name]
    return {"val_recall@10": run.fit.best_score, "best_epoch": run.fit.best_epoch, "epochs_run": len(run.fit.history),
            **{f"test_{k}": v for k, v in run.test.mean().items()}, "train_seconds": run.train_seconds,
            "checkpoint": str(run.checkpoint)}


def baseline_spec(dataset: str, seed: int, model: str, config: Mapping[str, Any], loop, runs_dir,
                  dataset_kwargs: Mapping[str, Any] | None = None) -> dict:
    """A :func:`baseline_task` for the run that ``run_baselines(load_dataset(dataset, seed=seed), [model],
    loop=loop, seed=seed, overrides={model: config}, runs_dir=runs_dir)`` trains (same run key); ``loop``: a
    :class:`~mmgrec_lib.training.LoopConfig` or its fields."""
    from .runs import loop_key
    return {"dataset": dataset, "seed": int(seed), "dataset_kwargs": dict(dataset_kwargs or {}), "model": model,
            "config": dict(config), "loop": loop_key(loop) if not isinstance(loop, Mapping) else dict(loop),
            "runs_dir": str(runs_dir)}


def tune_baseline(dataset: str, model: str, grid: Mapping[str, Sequence[Any]], loop: Mapping[str, Any],
                  runs_dir, base: Mapping[str, Any] | None = None, seed: int = 0,
                  dataset_kwargs: Mapping[str, Any] | None = None, executor: Any = None, threads: int = 1,
                  progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the grid for ``model`` on ``dataset`` and choose on validation Recall@10.

    ``base``: config fields shared by every point (e.g. ``{"dim": 64, "device": "cpu"}``).
    Returns the table (one row per point: its fields, validation and test metrics, ``chosen``) and the chosen
    config fields (``base`` plus the chosen point).
    """
    from ..baselines import BASELINES
    if model not in BASELINES:
        raise ValueError(f"unknown baseline {model!r}; expected one of {sorted(BASELINES)}")
    fields = set(BASELINES[model].config_class.__dataclass_fields__)
    unknown = sorted((set(grid) | set(base or {})) - fields)
    if unknown:
        raise ValueError(f"{model}: unknown config field(s) {unknown}; known: {sorted(fields)}")
    points = grid_points(grid)
    tasks = {f"{model} " + ", ".join(f"{k}={v}" for k, v in p.items()):
             baseline_spec(dataset, seed, model, {**dict(base or {}), **p}, loop, runs_dir, dataset_kwargs)
             for p in points}
    table = run_sweep(baseline_task, tasks, executor, threads, progress)
    table = pd.concat([pd.DataFrame(points), table.drop(columns=["task", "worker_pid"])], axis=1)
    table.insert(0, "model", model)
    best = int(table["val_recall@10"].idxmax())                              # first among ties
    table["chosen"] = table.index == best
    return table, {**dict(base or {}), **points[best]}


__all__ = ["baseline_spec", "baseline_task", "grid_points", "tune_baseline"]
