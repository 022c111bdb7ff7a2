"""Independent runs of a study in parallel, through the standard executor interface (``concurrent.futures``).

:func:`run_sweep` calls one module-level function per task, each in its own process with its own thread budget:

* ``executor=None``: a local :class:`~concurrent.futures.ProcessPoolExecutor` sized to the machine
  (``cpu_count // threads`` workers, or ``$MMGREC_WORKERS``: :func:`local_workers`; ``spawn`` start method: no
  state inherited from the caller);
* ``executor="serial"``: in this process, one task after the other (the reference the parallel runs equal);
* any :class:`concurrent.futures.Executor`;
* a ``dask.distributed.Client`` (a cluster address or a ``LocalCluster``): its ``get_executor()`` is used,
  so a sweep fans out over a cluster unchanged.

Runs stay keyed, resumable and reused: the task functions here train through
:func:`~mmgrec_lib.experiments.runs.load_or_assign_recids` and
:func:`~mmgrec_lib.experiments.runs.run_generator` with a ``runs_dir``, single-threaded, so a result does not
depend on which worker ran it (training is bit-deterministic on one CPU thread). :func:`sweep_generators`
trains the distinct Rec-ID runs its tasks need and starts each generator as soon as its own Rec-ID run is there
(:func:`run_after`), so two generators on the same Rec-IDs never train those Rec-IDs twice.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from typing import Any, Callable, Iterable, Mapping

import pandas as pd


# ---------------------------------------------------------------------- the executor interface
def _call(fn: Callable[[dict], dict], spec: dict, threads: int) -> dict:
    """Run one task with ``threads`` intra-op threads (restored afterwards when run in the caller's process)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        out = fn(spec)
    finally:
        torch.set_num_threads(before)
    return {**out, "task_seconds": time.perf_counter() - t0, "worker_pid": os.getpid()}


#: environment variable with the number of local workers a sweep may start (``mmgrec reports`` sets it to the CPUs
#: per notebook running at once, so that datasets run side by side do not oversubscribe the machine)
WORKERS_ENV = "MMGREC_WORKERS"


def local_workers(threads: int = 1) -> int:
    """Workers of a local process pool: ``$MMGREC_WORKERS`` when set and not empty (a positive integer), else the
    CPUs divided by ``threads``."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{WORKERS_ENV}={value!r}: expected a positive integer (local workers per sweep)")
        return int(value)
    return max(1, (os.cpu_count() or 1) // threads)


def notebook_executor(name: str) -> str | None:
    """A notebook's ``EXECUTOR`` parameter as :func:`run_sweep`'s ``executor``: ``"local"`` -> ``None`` (a local
    process pool), ``"serial"`` -> ``"serial"``; anything else is an error naming the parameter."""
    if name not in ("local", "serial"):
        raise ValueError(f"EXECUTOR must be 'local' or 'serial', got {name!r}")
    return None if name == "local" else "serial"


def _executor(executor: Any, threads: int) -> tuple[cf.Executor | None, bool]:
    """``(executor, owned)``: the executor to submit to (``None``: serial) and whether we must shut it down."""
    if executor == "serial":
        return None, False
    if executor is None:
        workers = local_workers(threads)
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")), True
    if hasattr(executor, "get_executor") and hasattr(executor, "scheduler_info"):      # dask.distributed.Client
        return executor.get_executor(pure=False), False
    if isinstance(executor, cf.Executor):
        return executor, False
    raise TypeError(f"executor must be None (local process pool), 'serial', a concurrent.futures.Executor or a "
                    f"dask.distributed.Client, got {type(executor).__name__}")


def run_sweep(fn: Callable[[dict], dict], tasks: Mapping[str, dict], executor: Any = None, threads: int = 1,
              progress: bool = True, on_result: Callable[[str, dict], None] | None = None) -> pd.DataFrame:
    """Run ``fn(spec)`` for every ``name -> spec`` of ``tasks``; one row per task, in the order of ``tasks``.

    ``fn`` must be a module-level function (it is pickled to the workers) returning a flat dict of picklable
    values. ``threads``: torch threads per task. ``progress``: one line per finished task and a summary.
    A task that raises stops the sweep with its name in the message (finished tasks keep their saved runs).
    ``on_result(name, row)``: called in this process as each task finishes (e.g. to record it in a
    :class:`~mmgrec_lib.experiments.ledger.RunLedger` before the sweep ends).
    """
    if not tasks:
        raise ValueError("run_sweep: no tasks")
    t0 = time.perf_counter()
    results = run_after({name: (fn, spec, ()) for name, spec in tasks.items()}, executor, threads, progress,
                        on_result)
    table = pd.DataFrame([{"task": name, **results[name]} for name in tasks])
    if progress:
        how = "serial" if executor == "serial" else "local pool" if executor is None else type(executor).__name__
        print(f"sweep: {len(tasks)} task(s) in {time.perf_counter() - t0:.0f}s ({how}, {threads} thread(s) each)",
              file=sys.stderr, flush=True)
    return table


def run_after(jobs: Mapping[str, tuple[Callable[[dict], dict], dict, Iterable[str]]], executor: Any = None,
              threads: int = 1, progress: bool = True,
              on_result: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Run every job ``name -> (fn, spec, needs)`` as :func:`run_sweep` runs a task (its ``executor``,
    ``threads``, ``progress`` and ``on_result``), each as soon as the jobs it ``needs`` (names of earlier jobs)
    have finished; ready jobs start in the order of ``jobs``. Returns ``name -> row`` (with ``task_seconds`` and
    ``worker_pid``). A job that raises stops the rest, with its name in the message (finished jobs keep their
    saved runs). Serially (``executor="serial"``) the jobs run in order."""
    names = list(jobs)
    for name, (fn, _, needs) in jobs.items():
        if not callable(fn):
            raise TypeError(f"job {name!r}: fn must be callable, got {type(fn).__name__}")
        unknown = [n for n in needs if n not in names[:names.index(name)]]
        if unknown:
            raise ValueError(f"job {name!r} needs {unknown}, which are not earlier jobs")
    if int(threads) < 1:
        raise ValueError(f"sweep: threads must be >= 1, got {threads}")
    pool, owned = _executor(executor, int(threads))
    results: dict[str, dict] = {}

    def report(name: str, row: dict) -> None:
        results[name] = row
        if on_result is not None:
            on_result(name, row)
        if progress:
            print(f"[{len(results)}/{len(jobs)}] {name}: done in {row['task_seconds']:.0f}s", file=sys.stderr,
                  flush=True)

    try:
        if pool is None:
            for name, (fn, spec, _) in jobs.items():
                report(name, _call(fn, dict(spec), int(threads)))
            return results
        running: dict[cf.Future, str] = {}
        waiting = list(names)
        while waiting or running:
            for name in [n for n in waiting if all(d in results for d in jobs[n][2])]:
                fn, spec, _ = jobs[name]
                running[pool.submit(_call, fn, dict(spec), int(threads))] = name
                waiting.remove(name)
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                try:
                    row = fut.result()
                except Exception as exc:
                    for other in running:
                        other.cancel()
                    raise RuntimeError(f"sweep task {name!r} failed: {exc}") from exc
                report(name, row)
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


# ---------------------------------------------------------------------- generator sweeps
def _dataset(spec: dict):
    from ..data import load_dataset
    return load_dataset(spec["dataset"], seed=int(spec.get("seed", 0)), **dict(spec.get("dataset_kwargs", {})))


def recid_task(spec: dict) -> dict:
    """Train (or reuse) one Graph RQ-VAE run. ``spec``: ``dataset``, ``seed``, ``dataset_kwargs``, ``recid``
    (:class:`~mmgrec_lib.tokenizer.GraphRQVAEConfig` fields), ``runs_dir``. Returns its facts."""
    from ..tokenizer import GraphRQVAEConfig
    from .runs import load_or_assign_recids
    ds = _dataset(spec)
    run, path, reused = load_or_assign_recids(ds, GraphRQVAEConfig.from_dict(dict(spec.get("recid", {}))),
                                              runs_dir=spec["runs_dir"], progress=False)
    st = run.stats
    return {"recid_path": str(path), "recid_reused": reused, "recid_val_recall@10": st.get("val_recall@10"),
            "unique_semantic_frac": st.get("unique_semantic_frac"), "max_group_size": st.get("max_group_size")}


def generator_task(spec: dict) -> dict:
    """Train (or reuse) one generator on its Rec-ID run and test it. ``spec``: as :func:`recid_task` plus
    ``generator`` (:class:`~mmgrec_lib.generator.GeneratorConfig` fields) and ``loop``
    (:class:`~mmgrec_lib.training.LoopConfig` fields), optionally ``prefix_loop``: a shorter budget of the same run
    (:func:`~mmgrec_lib.experiments.runs.is_prefix_loop`), trained and tested first, from whose checkpoint this run
    continues. Returns validation / test metrics and times (of the run under ``loop``)."""
    from ..generator import GeneratorConfig
    from ..tokenizer import GraphRQVAEConfig
    from ..training import LoopConfig
    from .runs import load_or_assign_recids, run_generator
    ds = _dataset(spec)
    recids, _, _ = load_or_assign_recids(ds, GraphRQVAEConfig.from_dict(dict(spec.get("recid", {}))),
                                         runs_dir=spec["runs_dir"], progress=False)
    loop = LoopConfig(**{"progress": False, **dict(spec.get("loop", {}))})
    config = GeneratorConfig.from_dict(dict(spec.get("generator", {})))
    ks = tuple(spec.get("ks", (10, 20)))
    start_from = None
    if spec.get("prefix_loop") is not None:            # a shorter budget of this run, trained (and tested) first
        start_from = LoopConfig(**{"progress": False, **dict(spec["prefix_loop"])})
        run_generator(ds, recids, config, start_from, runs_dir=spec["runs_dir"], ks=ks)
    run = run_generator(ds, recids, config, loop, runs_dir=spec["runs_dir"], ks=ks, start_from=start_from)
    return {"checkpoint": str(run.checkpoint), "val_recall@10": run.fit.best_score, "best_epoch": run.fit.best_epoch,
            "epochs_run": len(run.fit.history), **{f"test_{k}": v for k, v in run.test.mean().items()},
            "train_seconds": run.train_seconds}


def generator_spec(dataset: str, seed: int, recid_config, gen_config, loop, runs_dir,
                   dataset_kwargs: Mapping[str, Any] | None = None) -> dict:
    """A :func:`generator_task` for the run that ``run_generator(load_dataset(dataset, seed=seed,
    **dataset_kwargs), <Rec-IDs of recid_config>, gen_config, loop, runs_dir=runs_dir)`` trains (same run key),
    so a notebook can train its runs in parallel first and then reuse them one by one."""
    from .runs import loop_key
    return {"dataset": dataset, "seed": int(seed), "dataset_kwargs": dict(dataset_kwargs or {}),
            "recid": recid_config.to_dict(), "generator": gen_config.flat(), "loop": loop_key(loop),
            "runs_dir": str(runs_dir)}


def generator_study_tasks(dataset: str, seed: int, recid_config, gen_config, loop, runs_dir,
                          variants: Mapping[str, Mapping] | None = None, study_loop=None,
                          sizes: Iterable[int] = (), sweep_config=None) -> dict[str, dict]:
    """Every generator run of notebook 03 as a :func:`~mmgrec_lib.experiments.sweep.sweep_generators` task (same
    run keys as its serial calls): the main run (``recid_config``, ``gen_config``, ``loop``), the ``variants`` of
    :func:`~mmgrec_lib.experiments.runs.run_generator_variants` under ``study_loop``, and
    :func:`~mmgrec_lib.experiments.runs.codebook_size_sweep`'s run per codebook size in ``sizes``
    (``sweep_config`` under ``study_loop``). Tasks that would train the same run appear once, and a study task that
    is the main run under a shorter budget (the ``base`` variant, when the two loops validate alike) is trained by
    the main task on its way (``prefix_loop``; :func:`~mmgrec_lib.experiments.runs.is_prefix_loop`)."""
    from .runs import variant_configs

    study_loop = study_loop or loop
    tasks: dict[str, dict] = {"main": generator_spec(dataset, seed, recid_config, gen_config, loop, runs_dir)}
    for name, (config, vloop) in variant_configs(gen_config, variants or {}, study_loop).items():
        tasks[f"study: {name}"] = generator_spec(dataset, seed, recid_config, config, vloop, runs_dir)
    for size in sizes:
        rc = dataclasses.replace(recid_config, codebook_size=int(size))
        tasks[f"L = {int(size)}"] = generator_spec(dataset, seed, rc, sweep_config or gen_config, study_loop, runs_dir)
    distinct: dict[str, str] = {}
    for name, spec in tasks.items():
        distinct.setdefault(json.dumps(spec, sort_keys=True, default=str), name)
    tasks = {name: tasks[name] for name in distinct.values()}
    return _chain_prefix_runs(tasks, gen_config, loop)


def _chain_prefix_runs(tasks: dict[str, dict], gen_config, loop) -> dict[str, dict]:
    """Fold a study task that is the main run under a shorter budget (the ``base`` variant:
    :func:`~mmgrec_lib.experiments.runs.is_prefix_loop`) into the main task, which then trains it first and
    continues from its checkpoint (``prefix_loop``): the same two runs, the shorter one's epochs trained once."""
    from ..training import LoopConfig
    from .runs import is_prefix_loop
    main = tasks.get("main")
    if main is None:
        return tasks
    for name, spec in tasks.items():
        if name == "main" or spec["generator"] != main["generator"] or spec["recid"] != main["recid"]:
            continue
        short = LoopConfig(**spec["loop"])
        if is_prefix_loop(short, loop, gen_config.train.eval_every):
            chained = {n: s for n, s in tasks.items() if n != name}
            chained["main"] = {**main, "prefix_loop": spec["loop"]}
            return chained
    return tasks


def _recid_key(spec: dict) -> str:
    """What identifies a task's Rec-ID run (tasks sharing it share one Rec-ID training)."""
    return repr([(k, spec.get(k)) for k in ("dataset", "seed", "dataset_kwargs", "recid", "runs_dir")])


def sweep_generators(tasks: Mapping[str, dict], executor: Any = None, threads: int = 1,
                     progress: bool = True) -> pd.DataFrame:
    """Generator runs in parallel (see :func:`generator_task` for a task's fields): the distinct Rec-ID runs they
    need, each generator as soon as its own Rec-ID run is there (:func:`run_after`; ready generators start in the
    order of ``tasks``), so two generators on the same Rec-IDs never train those Rec-IDs twice. One row per task,
    in the order of ``tasks``, with its Rec-ID facts."""
    if not tasks:
        raise ValueError("sweep_generators: no tasks")
    for name, spec in tasks.items():
        missing = {"dataset", "runs_dir"} - set(spec)
        if missing:
            raise ValueError(f"sweep task {name!r} lacks {sorted(missing)}")
    recid_names: dict[str, str] = {}
    jobs: dict[str, tuple] = {}
    for spec in tasks.values():
        key = _recid_key(spec)
        if key not in recid_names:
            recid_names[key] = f"recid {len(recid_names)}"
            jobs[recid_names[key]] = (recid_task, spec, ())
    jobs.update({name: (generator_task, spec, (recid_names[_recid_key(spec)],)) for name, spec in tasks.items()})
    t0 = time.perf_counter()
    results = run_after(jobs, executor, threads, progress)
    if progress:
        print(f"sweep: {len(tasks)} generator(s) on {len(recid_names)} Rec-ID run(s) in "
              f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    facts = []
    for spec in tasks.values():
        row = results[recid_names[_recid_key(spec)]]
        facts.append({k: v for k, v in row.items() if k not in ("task_seconds", "worker_pid")})
    gen_rows = pd.DataFrame([{"task": name, **results[name]} for name in tasks])
    return pd.concat([gen_rows, pd.DataFrame(facts)], axis=1)


__all__ = ["WORKERS_ENV", "generator_spec", "generator_study_tasks", "generator_task", "local_workers", "recid_task",
           "run_after", "run_sweep", "sweep_generators"]
