"""The overall comparison (the paper's Table 2): every baseline and MMGRec over several split seeds.

What notebook 04 calls, in order:

1. :func:`chosen_overrides`: each baseline's settings. Notebook 10 tunes every baseline on validation with
   :func:`~mmgrec_lib.experiments.tuning.tune_baseline` (one keyed run per grid point under ``runs_dir``; no
   table of its own is read back). When every grid point of a model has a *finished* run there, the point with
   the best validation Recall@10 is taken (first in grid order among ties, as ``tune_baseline`` chooses);
   otherwise the library defaults (with the shared ``base`` fields, e.g. ``dim``), and the returned source says
   which.
2. :func:`applicable_baselines`: drops the models that cannot run on the dataset (modality features missing).
3. :func:`overall_runs`: MMGRec and the baselines for every seed, keyed and reused exactly as
   :func:`~mmgrec_lib.experiments.ladder.seed_runs` (notebook 09) keys them, optionally trained first in
   parallel through :func:`~mmgrec_lib.experiments.sweep.run_sweep` (:func:`overall_tasks`, :func:`overall_task`).
4. :func:`seed_run_table`, :func:`overall_table`, :func:`gain_table`: the per-seed runs, mean ± std over seeds
   with the strongest baseline per metric, and MMGRec's improvement over it with p-values (paired Wilcoxon over
   test users within each seed, the largest over seeds; paired t-test of the per-seed means across seeds).
5. :func:`marked_markdown`: the table for Markdown, the strongest baseline underlined and the best value of each
   metric in bold (the paper's convention).

Column schemas (shared with notebooks 05 and 06): :data:`OVERALL_COLUMNS`, :data:`GAIN_COLUMNS`.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..baselines import BASELINES
from ..data.dataset import RecDataset
from ..training.loop import LoopConfig
from .runs import ModelRun, baseline_checkpoint, finished_score, loop_key

#: the metrics of Table 2 (the paper reports the @10 pair; @20 is added here)
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
#: columns of ``overall_<dataset>`` (one row per model, MMGRec last)
OVERALL_COLUMNS = ["dataset", "model", "n_seeds", *[c for m in METRICS for c in (m, f"{m}_std")], "strongest"]
#: columns of ``overall_gain_<dataset>`` (one row per metric)
GAIN_COLUMNS = ["dataset", "metric", "strongest_baseline", "baseline_mean", "mmgrec_mean", "improvement_pct",
                "p_users_max", "p_seeds", "n_seeds"]


# ---------------------------------------------------------------------- the split
def split_note(dataset: RecDataset) -> str:
    """What changing the seed changes for ``dataset``: a fixed (given) split, generated data, or a new split."""
    split = dataset.info.get("split") if isinstance(dataset.info.get("split"), dict) else {}
    if split.get("seed", dataset.info.get("seed")) is None:
        return "the split is fixed (given with the data): the seeds vary the training only"
    if dataset.info.get("source") == "make_synthetic":
        return "generated data: each seed generates its own data and per-user random 80/10/10 split"
    return "each seed draws its own per-user random 80/10/10 split and trains every model again"


# ---------------------------------------------------------------------- baseline settings
def config_base(model: str, base: Mapping[str, Mapping[str, Any]], device: str = "cpu") -> dict[str, Any]:
    """The fields every setting of ``model`` shares, as notebook 10 builds them: ``device`` (not for MostPop,
    whose runs in notebooks 00 and 10 keep its own default) and ``base[model]``."""
    fields = dict(base.get(model, {}))
    return fields if model == "mostpop" else {"device": device, **fields}


def chosen_overrides(dataset: RecDataset, models: Sequence[str], grids: Mapping[str, Mapping[str, Sequence]],
                     base: Mapping[str, Mapping[str, Any]], loop: LoopConfig, runs_dir: str | Path | None,
                     seed: int = 0, device: str = "cpu", ledger: str | Path | None = None,
                     search: str | Mapping[str, str] = "grid", top: int = 1,
                     final_loop: LoopConfig | None = None) -> tuple[dict[str, dict], dict[str, str]]:
    """Each model's config fields: notebook 10's choice on validation where its grid runs exist, else defaults.

    ``dataset``: loaded with the tuning seed ``seed`` (notebook 10's ``SEED``); ``grids``, ``base``, ``loop``,
    ``device``: notebook 10's ``GRIDS``, ``BASE``, loop and ``DEVICE`` (grids of models not in ``models`` are
    ignored). A model whose grid has a finished run (:func:`finished_score`) at every point gets the point with
    the best validation Recall@10 (the first among ties, as :func:`~mmgrec_lib.experiments.tune_baseline`);
    otherwise, and for a model without a grid, the library defaults plus :func:`config_base`. ``ledger``: notebook
    10's run ledger (:class:`~mmgrec_lib.experiments.ledger.RunLedger`); a point without a finished checkpoint
    counts as finished when the ledger records it (its recorded validation Recall@10), as notebook 10 reads it.
    ``search``: notebook 10's search (``grid`` or ``staged``, :func:`~mmgrec_lib.experiments.tuning.tune_baseline`),
    one for all models or per model (a mapping; models left out: ``grid``): which points its grid trains, and so
    which must be finished. ``top`` / ``final_loop``: notebook 10's ``FINAL_TOP`` and its chosen points' loop: with
    ``top > 1`` the ``top`` best grid points (:func:`~mmgrec_lib.experiments.tuning.finalists`) must also have
    finished their runs under ``final_loop`` (checkpoint or ledger), and the best of those on validation is chosen,
    as :func:`~mmgrec_lib.experiments.tuning.continue_finalists` chooses.

    Returns ``(overrides, sources)``: model -> config fields, and model -> a short note on where they come from.
    """
    from .ledger import RunLedger
    from .tuning import SEARCHES, choose_point, finalists, stage_points, walk_search
    if top > 1 and final_loop is None:
        raise ValueError("chosen_overrides: top > 1 needs final_loop (the loop the finalists continue under)")
    searches = dict(search) if isinstance(search, Mapping) else {m: search for m in models}
    bad = {m: s for m, s in searches.items() if s not in SEARCHES}
    if bad:
        raise ValueError(f"search must be one of {SEARCHES}, got {bad}")
    book = RunLedger(ledger) if ledger is not None else None
    if book is not None and runs_dir is None:
        raise ValueError("chosen_overrides: a ledger needs runs_dir (the run keys are checkpoint names)")

    def score(path: Path, under: LoopConfig = loop) -> float | None:
        found = finished_score(path, under)
        if found is None and book is not None:
            facts = book.get(path.stem)
            found = None if facts is None or facts.get("val_recall@10") is None else float(facts["val_recall@10"])
        return found

    overrides, sources = {}, {}
    for m in models:
        if m not in BASELINES:
            raise ValueError(f"unknown baseline {m!r}; expected one of {sorted(BASELINES)}")
        shared = config_base(m, base, device)
        grid = dict(grids.get(m, {}))
        if not grid:
            overrides[m], sources[m] = shared, "library defaults (no grid)"
            continue

        def scores_of(points: list[dict]) -> list[float | None]:                    # finished runs' scores
            if runs_dir is None:
                return [None] * len(points)
            return [score(baseline_checkpoint(dataset, m, {**shared, **p}, loop, seed, runs_dir)) for p in points]

        staged = searches.get(m, "grid") == "staged"
        points, scores = walk_search(grid, searches.get(m, "grid"), lambda pts, stage: scores_of(pts))
        done = sum(s is not None for s in scores)
        if done < len(points):
            what = "runs" if not staged or len(points) > len(stage_points(grid)) else "stage-1 runs"
            overrides[m] = shared
            sources[m] = f"library defaults (notebook 10's grid: {done} of {len(points)} {what} finished)"
            continue
        best = choose_point(scores)                                                # first among ties
        finals = ""
        if top > 1:
            tops = finalists(scores, top)
            final = [score(baseline_checkpoint(dataset, m, {**shared, **points[i]}, final_loop, seed, runs_dir),
                           final_loop) for i in tops]
            if any(f is None for f in final):
                overrides[m] = shared
                sources[m] = (f"library defaults (notebook 10's finals: {sum(f is not None for f in final)} of "
                              f"{len(tops)} continued runs finished)")
                continue
            best, finals = tops[choose_point(final)], f", best of {len(tops)} continued"
        overrides[m] = {**shared, **points[best]}
        sources[m] = (f"tuned on validation (notebook 10, {len(points)} points{', staged' if staged else ''}{finals}): "
                      + ", ".join(f"{k}={v}" for k, v in points[best].items()))
    return overrides, sources


def applicable_baselines(dataset: RecDataset, models: Sequence[str],
                         overrides: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """The models of ``models`` that can be built on ``dataset`` with their ``overrides`` (in order), and the
    reason for each one left out (a model that needs modality features on a dataset without them)."""
    kept, skipped = [], {}
    for m in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                         # e.g. VBPR without features reduces to MF
            try:
                BASELINES[m].from_dataset(dataset, **dict(overrides.get(m, {})))
            except ValueError as exc:
                if "modality features" not in str(exc):
                    raise
                skipped[m] = str(exc)
                continue
        kept.append(m)
    return kept, skipped


# ---------------------------------------------------------------------- the runs
def overall_tasks(dataset: str, seeds: Sequence[int], recid_config, gen_config, loop: LoopConfig,
                  baseline_loop: LoopConfig, overrides: Mapping[str, Mapping[str, Any]], models: Sequence[str],
                  runs_dir: str | Path) -> dict[str, dict]:
    """Every run of :func:`overall_runs` as a :func:`~mmgrec_lib.experiments.sweep.run_sweep` task for
    :func:`overall_task`: each baseline per seed, then MMGRec per seed (the Rec-ID run included), under the run
    keys of :func:`~mmgrec_lib.experiments.ladder.seed_runs` (the seed replaces the configs' seeds). The
    baselines come first: they stay valid when MMGRec's configuration or code changes (a new run key), so an
    interrupted study keeps the runs least likely to be superseded."""
    tasks = {}
    common = {s: {"dataset": dataset, "seed": int(s), "dataset_kwargs": {}, "runs_dir": str(runs_dir)} for s in seeds}
    for s in seeds:
        for m in models:
            tasks[f"{m} seed {s}"] = {**common[s], "kind": "baseline", "model": m,
                                      "config": dict(overrides.get(m, {})), "loop": loop_key(baseline_loop)}
    for s in seeds:
        tasks[f"mmgrec seed {s}"] = {**common[s], "kind": "mmgrec", "model": "mmgrec",
                                     "recid": dataclasses.replace(recid_config, seed=int(s)).to_dict(),
                                     "generator": gen_config.replace(seed=int(s)).flat(), "loop": loop_key(loop)}
    return tasks


def task_kind(spec: Mapping[str, Any]) -> str:
    """``"mmgrec"`` or ``"baseline"``: a task's ``kind``, or, for the sweeps' specs without one
    (:func:`~mmgrec_lib.experiments.sweep.generator_spec` / :func:`~mmgrec_lib.experiments.tuning.baseline_spec`
    with a ``model``), from its model."""
    kind = spec.get("kind") or ("mmgrec" if spec.get("model") == "mmgrec" else "baseline")
    if kind not in ("mmgrec", "baseline"):
        raise ValueError(f"task kind must be 'mmgrec' or 'baseline', got {kind!r}")
    return kind


def overall_task(spec: dict) -> dict:
    """One task of :func:`overall_tasks` (module level, so a process pool or a Dask cluster can run it): the run
    trained (or loaded from its finished checkpoint) and tested. Returns ``model``, ``seed``, ``checkpoint``,
    ``run_key`` (the checkpoint's name) and the run's :func:`~mmgrec_lib.experiments.recorded.run_facts` (its
    test hit masks included, so the caller can record it in a ledger as it finishes)."""
    from ..generator import GeneratorConfig
    from ..tokenizer import GraphRQVAEConfig
    from .recorded import run_facts
    from .runs import load_or_assign_recids, run_baselines, run_generator
    from .sweep import _dataset
    ds = _dataset(spec)
    loop = LoopConfig(**{"progress": False, **dict(spec.get("loop", {}))})
    seed, name = int(spec["seed"]), spec["model"]
    if task_kind(spec) == "mmgrec":
        recids, _, _ = load_or_assign_recids(ds, GraphRQVAEConfig.from_dict(dict(spec["recid"])),
                                             runs_dir=spec["runs_dir"], progress=False)
        run = run_generator(ds, recids, GeneratorConfig.from_dict(dict(spec["generator"])), loop,
                            runs_dir=spec["runs_dir"])
    else:
        run = run_baselines(ds, [name], loop=loop, seed=seed, overrides={name: dict(spec.get("config", {}))},
                            runs_dir=spec["runs_dir"])[name]
    return {"model": name, "seed": seed, "checkpoint": str(run.checkpoint), "run_key": Path(run.checkpoint).stem,
            **run_facts(run)}


def task_checkpoint(spec: dict, dataset: RecDataset | None = None) -> Path:
    """Where the run of an :func:`overall_tasks` task is checkpointed (its run key), without training anything;
    ``dataset``: the task's dataset when already loaded (``load_dataset(spec["dataset"], seed=spec["seed"])``)."""
    from ..generator import GeneratorConfig
    from ..tokenizer import GraphRQVAEConfig
    from .runs import generator_run_path
    from .sweep import _dataset
    ds = dataset if dataset is not None else _dataset(spec)
    loop = LoopConfig(**{"progress": False, **dict(spec.get("loop", {}))})
    if task_kind(spec) == "mmgrec":
        return generator_run_path(spec["runs_dir"], ds, GraphRQVAEConfig.from_dict(dict(spec["recid"])).to_dict(),
                                  GeneratorConfig.from_dict(dict(spec["generator"])), loop)
    return baseline_checkpoint(ds, spec["model"], dict(spec.get("config", {})), loop, int(spec["seed"]),
                               spec["runs_dir"])


def overall_runs(dataset: str, seeds: Sequence[int], recid_config, gen_config, loop: LoopConfig,
                 baseline_loop: LoopConfig, overrides: Mapping[str, Mapping[str, Any]], models: Sequence[str],
                 runs_dir: str | Path | None, executor: Any = "serial", threads: int = 1, progress: bool = True,
                 ledger: str | Path | None = None) -> tuple[dict[int, dict[str, ModelRun]], pd.DataFrame | None]:
    """MMGRec and ``models`` for every seed: seed -> {baseline..., "mmgrec"} (MMGRec last).

    The runs are :func:`~mmgrec_lib.experiments.ladder.seed_runs`' (keyed, resumable, reused: notebook 09's
    seed runs and notebooks 00 / 03 / 10's seed-0 runs with the same settings are loaded, not retrained).
    ``executor`` other than ``"serial"`` (``None``: a local process pool; an Executor; a Dask client) first
    trains every missing run in parallel (:func:`overall_tasks`, ``threads`` torch threads each), then loads
    them; that needs ``runs_dir``. ``ledger``: a run-ledger path (:mod:`~mmgrec_lib.experiments.recorded`):
    runs it records whose checkpoints are missing are not trained again but stand in from it, and each run is
    recorded there as it finishes (in the parallel case, as its task returns). Returns the runs and the
    sweep's table (``None`` when serial or when nothing was left to train).
    """
    from .ladder import seed_runs
    from .ledger import RunLedger
    from .recorded import FACT_FIELDS
    from .sweep import run_sweep
    swept = None
    if ledger is not None and runs_dir is None:
        raise ValueError("overall_runs: a ledger needs runs_dir (its runs are keyed by their checkpoints' names)")
    if executor != "serial":
        if runs_dir is None:
            raise ValueError("overall_runs: a parallel executor needs a runs_dir (the workers hand runs over there)")
        tasks = overall_tasks(dataset, seeds, recid_config, gen_config, loop, baseline_loop, overrides, models,
                              runs_dir)
        book = RunLedger(ledger) if ledger is not None else None
        if book is not None:                                   # recorded runs without a checkpoint: not trained
            from ..data import load_dataset
            loaded = {int(s): load_dataset(dataset, seed=int(s)) for s in seeds}
            paths = {name: task_checkpoint(spec, loaded[int(spec["seed"])]) for name, spec in tasks.items()}
            tasks = {name: spec for name, spec in tasks.items()
                     if paths[name].exists() or paths[name].stem not in book}

        def record(name: str, row: dict) -> None:
            if book is not None:
                book.record(row["run_key"], {k: v for k, v in row.items() if k in FACT_FIELDS or k.startswith("test_")})

        if tasks:
            swept = run_sweep(overall_task, tasks, executor, threads, progress, on_result=record)
            swept = swept.drop(columns=["test_hits"])                 # kept in the ledger; long text
    per_seed = seed_runs(dataset, seeds, recid_config, gen_config, loop, baseline_loop,
                         {m: dict(overrides.get(m, {})) for m in models}, runs_dir=runs_dir, baselines=list(models),
                         ledger=ledger)
    ordered = {s: {**{m: runs[m] for m in models}, "mmgrec": runs["mmgrec"]} for s, runs in per_seed.items()}
    return ordered, swept


# ---------------------------------------------------------------------- the tables
def seed_run_table(per_seed: Mapping[int, Mapping[str, ModelRun]], dataset: str,
                   metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One row per (seed, model): test metrics, best validation Recall@10, best epoch, epochs run, training
    seconds (what the means of :func:`overall_table` are taken over)."""
    rows = []
    for s in sorted(per_seed):
        for name, run in per_seed[s].items():
            rows.append({"dataset": dataset, "seed": int(s), "model": name, **{m: run.test[m] for m in metrics},
                         "val_recall@10": run.fit.best_score, "best_epoch": run.fit.best_epoch,
                         "epochs_run": len(run.fit.history), "train_seconds": run.train_seconds})
    return pd.DataFrame(rows)


def _summary(per_seed: Mapping[int, Mapping[str, ModelRun]], metrics: Sequence[str], reference: str) -> pd.DataFrame:
    """:func:`~mmgrec_lib.experiments.ladder.seed_table` against ``reference`` (MMGRec), checked."""
    from .ladder import seed_table
    if not per_seed:
        raise ValueError("no seeds")
    names = list(per_seed[min(per_seed)])
    if reference not in names or len(names) < 2:
        raise ValueError(f"need {reference!r} and at least one baseline; got models {names}")
    return seed_table(per_seed, reference=reference, metrics=metrics)


def strongest_baselines(table: pd.DataFrame, metrics: Sequence[str] = METRICS,
                        reference: str = "mmgrec") -> dict[str, str]:
    """Metric -> the baseline (every row but ``reference``) with the highest mean; the first row among ties."""
    base = table[table["model"] != reference]
    if base.empty:
        raise ValueError("no baseline rows")
    out = {}
    for m in metrics:
        vals = pd.to_numeric(base[m], errors="coerce")
        if vals.isna().all():
            raise ValueError(f"no baseline has a value for {m}")
        out[m] = str(base.loc[vals.idxmax(), "model"])                       # idxmax: the first maximum
    return out


def overall_table(per_seed: Mapping[int, Mapping[str, ModelRun]], dataset: str, metrics: Sequence[str] = METRICS,
                  reference: str = "mmgrec") -> pd.DataFrame:
    """Table 2: one row per model (in ``per_seed``'s order, so MMGRec last when :func:`overall_runs` built it):
    ``dataset, model, n_seeds``, each metric's mean over seeds and its sample std (``<metric>_std``, NaN with one
    seed), and ``strongest``: the metrics (comma-separated) for which the row is the strongest baseline."""
    summary = _summary(per_seed, metrics, reference)
    table = pd.DataFrame({"dataset": dataset, "model": summary["model"], "n_seeds": summary["seeds"].astype(int)})
    for m in metrics:
        table[m], table[f"{m}_std"] = summary[f"{m}_mean"], summary[f"{m}_std"]
    strongest = strongest_baselines(table, metrics, reference)
    table["strongest"] = [",".join(m for m in metrics if strongest[m] == name) for name in table["model"]]
    return table


def improvement_pct(new: float, old: float) -> float:
    """``100 * (new - old) / old``: the relative gain of ``new`` over ``old`` in percent (NaN when ``old`` is 0)."""
    return float("nan") if old == 0 or math.isnan(old) else 100.0 * (new - old) / old


def gain_table(per_seed: Mapping[int, Mapping[str, ModelRun]], dataset: str, metrics: Sequence[str] = METRICS,
               reference: str = "mmgrec") -> pd.DataFrame:
    """One row per metric: the strongest baseline (highest mean over seeds), its mean and MMGRec's,
    ``improvement_pct`` (:func:`improvement_pct`), ``p_users_max`` (the largest over seeds of the two-sided
    paired Wilcoxon p over test users, MMGRec against that baseline within the seed), ``p_seeds`` (two-sided
    paired t-test of the per-seed means across seeds; NaN with fewer than 2 seeds) and ``n_seeds``."""
    summary = _summary(per_seed, metrics, reference).set_index("model")
    means = summary.reset_index().rename(columns={f"{m}_mean": m for m in metrics})
    strongest = strongest_baselines(means, metrics, reference)
    rows = []
    for m in metrics:
        b = strongest[m]
        base_mean, ours = float(summary.loc[b, f"{m}_mean"]), float(summary.loc[reference, f"{m}_mean"])
        rows.append({"dataset": dataset, "metric": m, "strongest_baseline": b, "baseline_mean": base_mean,
                     "mmgrec_mean": ours, "improvement_pct": improvement_pct(ours, base_mean),
                     "p_users_max": float(summary.loc[b, f"p_{m}_users_max"]),
                     "p_seeds": float(summary.loc[b, f"p_{m}_seeds"]), "n_seeds": int(summary.loc[b, "seeds"])})
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def marked_markdown(table: pd.DataFrame, metrics: Sequence[str] = METRICS, reference: str = "mmgrec",
                    floatfmt: str = ".4f") -> pd.DataFrame:
    """:func:`overall_table` as strings for Markdown: in each metric column the strongest baseline's mean is
    underlined (``<u>…</u>``, the paper's marking) and the best mean of all rows is bold (``**…**``); the other
    numbers are formatted with ``floatfmt``. Same columns as ``table``."""
    strongest = strongest_baselines(table, metrics, reference)
    out = table.copy().astype(object)
    for col in table.columns:
        if col in metrics or col.endswith("_std"):
            out[col] = [format(v, floatfmt) if isinstance(v, float) and not math.isnan(v) else
                        ("nan" if isinstance(v, float) else str(v)) for v in table[col]]
    for m in metrics:
        vals = pd.to_numeric(table[m], errors="coerce")
        best = vals.max()
        for i in table.index:
            text = out.at[i, m]
            if table.at[i, "model"] == strongest[m]:
                text = f"<u>{text}</u>"
            if vals[i] == best:
                text = f"**{text}**"
            out.at[i, m] = text
    return out


def gain_sentences(gain: pd.DataFrame) -> list[str]:
    """One sentence per row of :func:`gain_table`, computed from it (for a notebook's reading)."""
    out = []
    for r in gain.itertuples(index=False):
        word = "above" if r.improvement_pct > 0 else "below" if r.improvement_pct < 0 else "level with"
        out.append(f"{r.metric}: MMGRec {r.mmgrec_mean:.4f} is {abs(r.improvement_pct):.1f}% {word} the strongest "
                   f"baseline {r.strongest_baseline} ({r.baseline_mean:.4f}) over {r.n_seeds} seed(s); paired "
                   f"Wilcoxon over users p <= {r.p_users_max:.2g} in every seed, paired t-test across seeds "
                   f"p = {r.p_seeds:.2g}")
    return out


def settings_note(sources: Mapping[str, str], skipped: Mapping[str, str] | None = None) -> str:
    """One line for a caption: which baselines run with notebook 10's tuned settings, which with the library
    defaults, and which were left out."""
    tuned = [m for m, s in sources.items() if s.startswith("tuned")]
    default = [m for m, s in sources.items() if not s.startswith("tuned")]
    parts = []
    if tuned:
        parts.append("tuned on validation by notebook 10 (its chosen grid point): " + ", ".join(tuned))
    if default:
        parts.append("library defaults (notebook 10's tuning runs not found or no grid): " + ", ".join(default))
    if skipped:
        parts.append("left out (no modality features): " + ", ".join(skipped))
    return "Baseline settings: " + "; ".join(parts) + "."


__all__ = ["GAIN_COLUMNS", "METRICS", "OVERALL_COLUMNS", "applicable_baselines", "baseline_checkpoint",
           "chosen_overrides", "config_base", "finished_score", "gain_sentences", "gain_table", "improvement_pct",
           "marked_markdown", "overall_runs", "overall_table", "overall_task", "overall_tasks", "seed_run_table",
           "task_checkpoint", "task_kind",
           "settings_note", "split_note", "strongest_baselines"]
