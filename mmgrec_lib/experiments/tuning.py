"""Tuning a baseline per dataset on validation: a small grid, every point a keyed run, run in parallel.

:func:`tune_baseline` expands a grid of config fields (``{"lr": [1e-3, 5e-3], "reg": [1e-4, 1e-3]}``) into one
:func:`baseline_task` per point and runs them through :func:`~mmgrec_lib.experiments.sweep.run_sweep` (a local
process pool, serially, or a Dask client). Each point trains with early stopping on validation Recall@10
(:func:`~mmgrec_lib.experiments.runs.run_baselines`, so a point equal to a notebook's run is reused); the point
with the best validation Recall@10 is chosen (ties: the first in grid order). Test metrics are in the table for
the record only; they play no part in the choice. ``search="staged"`` trains a subset instead of every
combination: learning rate x L2 first, then the other fields one at a time at the best of those
(:func:`stage_points`).

With a ``ledger`` (a :class:`~mmgrec_lib.experiments.ledger.RunLedger` file, committed), every finished point's
facts are recorded as it finishes, and a point whose checkpoint is missing (a fresh machine) but whose run key
is in the ledger is not retrained: its row comes from the ledger (``source`` says which). A grid too long for
one session thus continues where the last one stopped.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from .ledger import RunLedger
from .sweep import _dataset, run_sweep

#: the facts of a grid point that a ledger records (what a rerun of the point reproduces)
LEDGER_FIELDS = ("val_recall@10", "best_epoch", "epochs_run", "train_seconds")


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last field varies fastest)."""
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not len(values):
            raise ValueError(f"grid field {name!r} must be a non-empty list of values, got {values!r}")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


#: how :func:`tune_baseline` walks a grid: every combination, or learning rate x L2 first and then the other fields
SEARCHES = ("grid", "staged")
#: the fields a staged search crosses in its first stage (when the grid has them)
PRIMARY_FIELDS = ("lr", "reg")


def stage_points(grid: Mapping[str, Sequence[Any]], best: Mapping[str, Any] | None = None,
                 primary: Sequence[str] = PRIMARY_FIELDS) -> list[dict[str, Any]]:
    """The points of one stage of a staged search over ``grid``.

    ``best=None``: stage 1, every combination of the ``primary`` fields' values (learning rate x L2) with each
    other field at its *first* listed value. Otherwise stage 2: ``best`` (stage 1's choice) with one other field
    changed to each of its other values, field by field (a coordinate step; interactions between the other
    fields are not searched). A grid with only primary fields has no stage 2. Both in grid order.
    """
    grid_points(grid)                                                     # every field a non-empty list
    first = {k: v[0] for k, v in grid.items() if k not in primary}
    if best is None:
        crossed = grid_points({k: v for k, v in grid.items() if k in primary}) or [{}]
        return [{k: p[k] if k in p else first[k] for k in grid} for p in crossed]
    missing = sorted(set(grid) - set(best))
    if missing:
        raise ValueError(f"stage_points: best lacks the grid field(s) {missing}")
    return [{**{k: best[k] for k in grid}, name: value}
            for name, values in grid.items() if name not in primary for value in values[1:]]


def search_points(grid: Mapping[str, Sequence[Any]], search: str) -> int:
    """How many points ``search`` trains over ``grid`` (the product of the lists, or the staged count)."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    if search == "grid":
        return len(grid_points(grid))
    return len(stage_points(grid)) + sum(len(v) - 1 for k, v in grid.items() if k not in PRIMARY_FIELDS)


def choose_point(scores: Sequence[float | None]) -> int:
    """The index of the best score, the first among ties (a missing or NaN score ranks last)."""
    if not len(scores):
        raise ValueError("choose_point: no scores")
    return finalists(scores, 1)[0]


def finalists(scores: Sequence[float | None], top: int) -> list[int]:
    """The indices of the ``top`` best scores, best first (the first among ties; a missing or NaN score ranks
    last): the grid points whose runs :func:`continue_finalists` gives the full patience. ``finalists(s, 1)[0]``
    is :func:`choose_point` ``(s)``, which calls it."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"finalists: top must be an integer >= 1, got {top!r}")
    if not len(scores):
        raise ValueError("finalists: no scores")

    def rank(i: int) -> tuple[float, int]:
        s = scores[i]
        return (float("inf") if s is None or s != s else -float(s), i)          # ascending: best first

    return sorted(range(len(scores)), key=rank)[:top]


def walk_search(grid: Mapping[str, Sequence[Any]], search: str,
                evaluate: Callable[[list[dict[str, Any]], int], Sequence[float | None]]
                ) -> tuple[list[dict[str, Any]], list[float | None]]:
    """The points ``search`` visits over ``grid`` and their scores: ``evaluate(points, stage)`` scores a stage's
    points (stage 0: a full grid; 1 and 2: :func:`stage_points`; ``None``: not available). Stage 2 follows only
    when every stage-1 score is known; its points depend on stage 1's choice (:func:`choose_point`)."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    if search == "grid":
        points = grid_points(grid)
        return points, list(evaluate(points, 0))
    points = stage_points(grid)
    scores = list(evaluate(points, 1))
    if all(s is not None for s in scores):
        second = stage_points(grid, points[choose_point(scores)])
        if second:
            points, scores = points + second, scores + list(evaluate(second, 2))
    return points, scores


def _ledger_facts(row: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a grid point's row that a ledger keeps (:data:`LEDGER_FIELDS` and the test means)."""
    return {k: v for k, v in row.items() if k in LEDGER_FIELDS or k.startswith("test_")}


def _run_facts(run) -> dict[str, Any]:
    """A trained or loaded baseline run's facts (a :class:`~mmgrec_lib.experiments.runs.ModelRun`): validation
    Recall@10, best epoch, epochs run, test means, training seconds."""
    return {"val_recall@10": run.fit.best_score, "best_epoch": run.fit.best_epoch, "epochs_run": len(run.fit.history),
            **{f"test_{k}": v for k, v in run.test.mean().items()}, "train_seconds": run.train_seconds}


def baseline_task(spec: dict) -> dict:
    """Train (or reuse) one baseline at one grid point. ``spec``: ``dataset``, ``seed``, ``dataset_kwargs``,
    ``model`` (a :data:`~mmgrec_lib.baselines.BASELINES` name), ``config`` (its fields), ``loop``
    (:class:`~mmgrec_lib.training.LoopConfig` fields), ``runs_dir``, optionally ``ledger`` (a
    :class:`~mmgrec_lib.experiments.ledger.RunLedger` path: used when the point's checkpoint is missing).
    Returns its facts, ``run_key`` (the checkpoint's name) and ``source`` (``run`` or ``ledger``)."""
    from ..training import LoopConfig
    from .runs import baseline_checkpoint, run_baselines
    ds = _dataset(spec)
    loop = LoopConfig(**{"progress": False, **dict(spec.get("loop", {}))})
    name, seed, config = spec["model"], int(spec.get("seed", 0)), dict(spec.get("config", {}))
    if spec.get("ledger"):
        path = baseline_checkpoint(ds, name, config, loop, seed, spec["runs_dir"])
        facts = None if path.exists() else RunLedger(spec["ledger"]).get(path.stem)
        if facts is not None:
            return {**_ledger_facts(facts), "checkpoint": str(path), "run_key": path.stem, "source": "ledger"}
    run = run_baselines(ds, [name], loop=loop, seed=seed, overrides={name: config}, runs_dir=spec["runs_dir"])[name]
    return {**_run_facts(run), "checkpoint": str(run.checkpoint), "run_key": Path(run.checkpoint).stem, "source": "run"}


def baseline_spec(dataset: str, seed: int, model: str, config: Mapping[str, Any], loop, runs_dir,
                  dataset_kwargs: Mapping[str, Any] | None = None, ledger=None) -> dict:
    """A :func:`baseline_task` for the run that ``run_baselines(load_dataset(dataset, seed=seed), [model],
    loop=loop, seed=seed, overrides={model: config}, runs_dir=runs_dir)`` trains (same run key); ``loop``: a
    :class:`~mmgrec_lib.training.LoopConfig` or its fields; ``ledger``: a run-ledger path or ``None``."""
    from .runs import loop_key
    spec = {"dataset": dataset, "seed": int(seed), "dataset_kwargs": dict(dataset_kwargs or {}), "model": model,
            "config": dict(config), "loop": loop_key(loop) if not isinstance(loop, Mapping) else dict(loop),
            "runs_dir": str(runs_dir)}
    if ledger is not None:
        spec["ledger"] = str(ledger)
    return spec


def tune_baseline(dataset: str, model: str, grid: Mapping[str, Sequence[Any]], loop: Mapping[str, Any],
                  runs_dir, base: Mapping[str, Any] | None = None, seed: int = 0,
                  dataset_kwargs: Mapping[str, Any] | None = None, executor: Any = None, threads: int = 1,
                  progress: bool = True, ledger=None, search: str = "grid") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the grid for ``model`` on ``dataset`` and choose on validation Recall@10.

    ``search``: ``"grid"``, every combination of the lists; ``"staged"``, learning rate x L2 first (the other
    fields at their first listed value), then each other field's other values at the best of those, the best
    of all points chosen (:func:`stage_points`; fewer runs, interactions between the other fields unsearched).

    ``base``: config fields shared by every point (e.g. ``{"dim": 64, "device": "cpu"}``).
    ``ledger``: path of a :class:`~mmgrec_lib.experiments.ledger.RunLedger` (JSON lines) where each trained point
    is recorded as it finishes and from which points without a checkpoint are read instead of retrained.
    Returns the table (one row per point: its fields, validation and test metrics, ``source``, ``chosen``) and the
    chosen config fields (``base`` plus the chosen point).
    """
    from ..baselines import config_fields
    fields = config_fields(model)                                      # unknown model: ValueError
    unknown = sorted((set(grid) | set(base or {})) - fields)
    if unknown:
        raise ValueError(f"{model}: unknown config field(s) {unknown}; known: {sorted(fields)}")
    if search not in SEARCHES:                                         # before anything trains
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    book = RunLedger(ledger) if ledger is not None else None            # reads (and checks) the file up front

    def name(p: dict) -> str:
        return (f"{model} " + ", ".join(f"{k}={v}" for k, v in p.items())).strip()

    def record(task: str, row: dict) -> None:
        if book is not None and row.get("source") == "run":
            book.record(row["run_key"], {"model": model, "point": task, **_ledger_facts(row)})

    def sweep(points: list[dict], stage: int) -> pd.DataFrame:
        tasks = {name(p): baseline_spec(dataset, seed, model, {**dict(base or {}), **p}, loop, runs_dir,
                                        dataset_kwargs, ledger) for p in points}
        table = run_sweep(baseline_task, tasks, executor, threads, progress, on_result=record)
        table = pd.concat([pd.DataFrame(points), table.drop(columns=["task", "worker_pid", "run_key"],
                                                             errors="ignore")], axis=1)
        if search == "staged":
            table.insert(len(points[0]), "stage", stage)
        return table

    tables: list[pd.DataFrame] = []

    def evaluate(points: list[dict], stage: int) -> list[float]:
        tables.append(sweep(points, stage))
        return list(tables[-1]["val_recall@10"])

    points, _ = walk_search(grid, search, evaluate)
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "model", model)
    best = choose_point(list(table["val_recall@10"]))                   # first among ties
    table["chosen"] = table.index == best
    return table, {**dict(base or {}), **points[best]}


def continue_finalists(dataset, model: str, configs: Sequence[Mapping[str, Any]], loop, runs_dir, seed: int = 0,
                       ledger=None, names: Sequence[str] | None = None) -> tuple[pd.DataFrame, int]:
    """Give each finalist of a grid (``configs``: full config fields, best grid point first, see
    :func:`finalists`) the full budget ``loop`` (:class:`~mmgrec_lib.training.LoopConfig`): its grid run continued
    from its checkpoint (:func:`~mmgrec_lib.experiments.runs.run_baselines`, the same run as one trained with that
    patience from the start), and choose the one with the best validation Recall@10 after that (the better grid
    point among ties). A grid's short patience stops slow learners (a low learning rate) early; this gives the
    best few points the budget the chosen one gets, before one is chosen.

    ``dataset``: a :class:`~mmgrec_lib.data.dataset.RecDataset`. ``ledger``: a run-ledger path where each continued
    run is recorded (``phase: final``); a finalist whose checkpoint is missing but whose run key is recorded is read
    from it, not retrained (the chosen one is then trained by the caller's ``run_baselines``, which needs the model).
    ``names``: the finalists' grid-table names (default ``"0"``, ``"1"``, ...).

    Returns a table (``point``, ``final_val_recall@10``, ``final_best_epoch``, ``final_epochs_run``,
    ``final_source``: ``run`` or ``ledger``, ``final_run_key``) and the index of the chosen finalist."""
    from .runs import baseline_checkpoint, run_baselines
    if not len(configs):
        raise ValueError(f"continue_finalists: no finalists for {model}")
    names = [str(i) for i in range(len(configs))] if names is None else list(names)
    if len(names) != len(configs):
        raise ValueError(f"continue_finalists: {len(names)} names for {len(configs)} finalists")
    book = RunLedger(ledger) if ledger is not None else None
    rows = []
    for name, config in zip(names, configs):
        path = baseline_checkpoint(dataset, model, dict(config), loop, seed, runs_dir)
        facts = book.get(path.stem) if book is not None and not path.exists() else None
        source = "ledger" if facts is not None else "run"
        if facts is None:
            run = run_baselines(dataset, [model], loop=loop, seed=seed, overrides={model: dict(config)},
                                runs_dir=runs_dir)[model]
            facts = _run_facts(run)
            if book is not None:
                book.record(path.stem, {"model": model, "point": name, "phase": "final", **facts})
        rows.append({"point": name, **{f"final_{k}": facts.get(k) for k in ("val_recall@10", "best_epoch", "epochs_run")},
                     "final_source": source, "final_run_key": path.stem})
    table = pd.DataFrame(rows)
    return table, choose_point(list(table["final_val_recall@10"]))


__all__ = ["LEDGER_FIELDS", "PRIMARY_FIELDS", "SEARCHES", "baseline_spec", "baseline_task", "choose_point",
           "continue_finalists", "finalists", "grid_points", "search_points", "stage_points", "tune_baseline",
           "walk_search"]
