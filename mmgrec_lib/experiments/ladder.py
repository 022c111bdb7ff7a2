"""The accuracy ladder: the paper-faithful MMGRec first, then one row per lever added on top of the previous row.

Each rung names the Graph RQ-VAE fields (:class:`~mmgrec_lib.tokenizer.GraphRQVAEConfig`) and the generator
fields (:class:`~mmgrec_lib.generator.GeneratorConfig` or :class:`~mmgrec_lib.training.LoopConfig`) it
changes. By default the ladder is a forward selection on validation: a rung's changes are applied to the
configuration kept so far and kept only if they validate at least as well (:func:`run_ladder`, ``greedy``);
otherwise every rung builds on the one above. Every run is keyed and reused exactly like :func:`~mmgrec_lib.experiments.runs.run_generator` (a rung whose configuration equals an
earlier notebook's run loads that run).

The table reports, per rung, what choosing it is based on (validation: the Rec-ID representation's own
dot-product Recall@10 and the generator's best validation Recall@10) and what it costs and buys on test (read
once per configuration): Recall/NDCG@10, Recall@20, list coverage, training time, and the paired Wilcoxon
p-value of the per-user test NDCG@10 and Recall@10 against the previous rung.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..data.dataset import RecDataset
from ..evaluation import list_diagnostics, paired_test
from ..training.loop import LoopConfig
from .analysis import top_k_lists
from .runs import ModelRun, load_or_assign_recids, run_generator


EXTRA_ROWS = ("hybrid_rerank", "prior_decoding")   # optional rows on a trained rung: never a rung to choose


def chosen_rung(table: pd.DataFrame, reference: str = "lightgcn") -> str:
    """The rung a ladder table chooses: the trained rung with the best validation Recall@10 (the first among ties),
    leaving out the ``reference`` baseline row and the optional rows of :data:`EXTRA_ROWS`."""
    rungs = table[~table["rung"].isin([reference, *EXTRA_ROWS])].reset_index(drop=True)
    if rungs.empty or rungs["val_recall@10"].isna().all():
        raise ValueError("chosen_rung: the ladder table has no trained rung with a validation Recall@10")
    return str(rungs.loc[rungs["val_recall@10"].idxmax(), "rung"])


@dataclass
class Rung:
    """One row of the ladder: a name, the Graph RQ-VAE fields and the generator / loop fields it changes, a
    one-line note (what the lever is; whether it is the paper's) and, optionally, ``base``: the name of an earlier
    rung whose configuration it builds on (instead of the row above, or the configuration kept so far); such a
    rung never becomes the base of the rungs below it. (Not ``on``: YAML 1.1 reads that key as ``True``.)"""

    name: str
    recid: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    base: str = ""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Rung":
        from ..utils import check_unknown
        check_unknown(values, [f.name for f in dataclasses.fields(cls)], "ladder rung")
        if "name" not in values:
            raise ValueError(f"ladder rung {dict(values)} has no name")
        return cls(**values)


def ladder_bases(codebook_size: int, recid_epochs: int, recid_rq_epochs: int, finetune_item_emb: bool, epochs: int,
                 patience: int, eval_every: int, targets_per_input: int = 8, seed: int = 0, device: str = "cpu"):
    """The ``(recid_base, gen_base, loop)`` that the ladder's rungs change (notebook 09's parameters of the same
    names; every other field at its default), so scripts that train a rung get the ladder's run keys."""
    from ..generator import GeneratorConfig, ModelConfig, TrainConfig
    from ..tokenizer import GraphRQVAEConfig
    recid_base = GraphRQVAEConfig(codebook_size=codebook_size, epochs=recid_epochs, rq_epochs=recid_rq_epochs,
                                  seed=seed, device=device)
    gen_base = GeneratorConfig(model=ModelConfig(finetune_item_emb=finetune_item_emb),
                               train=TrainConfig(targets_per_input=targets_per_input, seed=seed, device=device))
    return recid_base, gen_base, LoopConfig(epochs=epochs, patience=patience, eval_every=eval_every,
                                            monitor="recall@10")


def rung_configs(recid_base, gen_base, loop: LoopConfig, rungs: Sequence[Rung]):
    """The cumulative ``(recid_config, generator_config, loop)`` of every rung, in order (checks every field
    name before anything trains)."""
    from ..utils import check_unknown
    gen_fields = set(gen_base.fields())
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)} - {"checkpoint", "progress"}
    recid_fields = [f.name for f in dataclasses.fields(recid_base)]
    names = [r.name for r in rungs]
    if len(set(names)) != len(names):
        raise ValueError(f"ladder rung names must be unique, got {names}")
    out, config, by_name = [], (recid_base, gen_base, loop), {}
    for rung in rungs:
        check_unknown(rung.recid, recid_fields, f"rung {rung.name!r} recid")
        check_unknown(rung.generator, sorted(gen_fields | loop_fields), f"rung {rung.name!r} generator")
        if rung.base and rung.base not in by_name:
            raise ValueError(f"rung {rung.name!r} builds on {rung.base!r}, which is not an earlier rung "
                             f"(earlier: {list(by_name)})")
        own = _apply(by_name[rung.base] if rung.base else config, rung, gen_fields)
        if not rung.base:
            config = own
        by_name[rung.name] = own
        out.append(own)
    return out


def with_budget(rung: Rung, budget: Mapping[str, Any]) -> list[Rung]:
    """The rungs that configure the MMGRec of notebooks 03, 04 and 11: ``[rung]`` (notebook 09's chosen rung) and,
    when ``budget`` is not empty, a rung on top of it named ``"<rung>+budget"`` that holds the training budget's
    generator and loop fields (not the paper's; issue 10: a bounded training, e.g. ``{"lr_schedule": "cosine",
    "schedule_epochs": 28, "epochs": 28, "user_sample_cap": 64}``). ``rung_configs(..., with_budget(rung,
    budget))[-1]`` is the configuration they train; :func:`rung_configs` checks the budget's field names as it
    checks a rung's. The ladder itself trains every rung without a budget, so the rung it chose on validation is
    compared at the full budget."""
    if not isinstance(budget, Mapping):
        raise TypeError(f"the training budget must be a mapping of generator / loop fields, got "
                        f"{type(budget).__name__}: {budget!r}")
    if not budget:
        return [rung]
    return [rung, Rung(name=f"{rung.name}+budget", generator=dict(budget),
                       note=f"training budget on {rung.name}: {dict(budget)}")]


def built_chain(rungs: Sequence[Rung], table: pd.DataFrame, name: str) -> list[Rung]:
    """The rungs whose changes rung ``name`` was trained with, as a ladder ``table`` records it: its ``built_on``
    column followed back to the first rung (in a greedy ladder a rung goes on top of the rungs *kept* above it,
    which only the run knows), each without ``base``, so ``rung_configs(..., built_chain(...))[-1]`` is the
    configuration the rung was trained with. Raises ``KeyError`` for a name the table or ``rungs`` lacks."""
    by_name = {r.name: r for r in rungs}
    built_on = dict(zip(table["rung"], table["built_on"].fillna("")))
    if name not in built_on:
        raise KeyError(f"built_chain: rung {name!r} is not in the ladder table")
    chain = [name]
    while built_on.get(chain[0]):
        chain.insert(0, built_on[chain[0]])
    missing = [n for n in chain if n not in by_name]
    if missing:
        raise KeyError(f"built_chain: rungs {missing} of the table are not in the given ladder")
    return [dataclasses.replace(by_name[n], base="") for n in chain]


#: notebook 09's parameters that :func:`ladder_bases` takes, in its argument order
LADDER_BASE_PARAMS = ("CODEBOOK_SIZE", "RECID_EPOCHS", "RECID_RQ_EPOCHS", "FINETUNE_ITEM_EMB", "EPOCHS", "PATIENCE",
                      "EVAL_EVERY")


def profile_bases(profile: Mapping[str, Any]):
    """:func:`ladder_bases` from one entry of notebook 09's YAML profile (its parameters
    :data:`LADDER_BASE_PARAMS`; the others are ignored): what a script that trains a rung outside the notebook
    starts from."""
    missing = [k for k in LADDER_BASE_PARAMS if k not in profile]
    if missing:
        raise KeyError(f"ladder profile lacks the parameter(s) {missing} (needs {list(LADDER_BASE_PARAMS)})")
    return ladder_bases(*(profile[k] for k in LADDER_BASE_PARAMS))


def profile_rung_config(profile: Mapping[str, Any], name: str, table: pd.DataFrame):
    """The ``(recid_config, generator_config, loop)`` rung ``name`` of a notebook-09 profile entry (its base
    parameters and ``LADDER``) was trained with, as the ladder ``table`` records it (:func:`built_chain`), so a
    script retraining a committed rung gets its run keys."""
    chain = built_chain([Rung.from_dict(r) for r in profile["LADDER"]], table, name)
    return rung_configs(*profile_bases(profile), chain)[-1]


def settled_rungs(rungs: Sequence[Rung], greedy: bool = True) -> list[str]:
    """The names of the rungs whose configuration is known before any rung is trained: every rung of a cumulative
    ladder (``greedy=False``); in a greedy one, the rungs that no keep decision can change. The first rung is
    always kept, so the first rung, the next rung without ``base`` (applied to the first) and every rung whose
    ``base`` chain ends in a settled rung are settled; a later rung without ``base`` goes on top of whatever the
    rungs before it kept, which is known only once they have validated."""
    settled: set[str] = set()
    free = 0                                        # rungs without base so far: the first two are settled
    for rung in rungs:
        if (rung.base in settled) if rung.base else (not greedy or free < 2):
            settled.add(rung.name)
        free += not rung.base
    return [r.name for r in rungs if r.name in settled]


def ladder_tasks(dataset: str, seed: int, recid_base, gen_base, loop: LoopConfig, rungs: Sequence[Rung],
                 runs_dir, dataset_kwargs: Mapping[str, Any] | None = None, greedy: bool = False) -> dict[str, dict]:
    """The rungs as :func:`~mmgrec_lib.experiments.sweep.sweep_generators` tasks under the run keys of
    :func:`run_ladder`, so a ladder's runs can be trained in parallel first and the notebook then reuses them.
    ``greedy=False``: every rung (the cumulative path); ``greedy=True``: only the :func:`settled_rungs` of a
    greedy ladder (the others depend on which rungs validate well enough to be kept)."""
    from .sweep import generator_spec
    settled = set(settled_rungs(rungs, greedy))
    return {rung.name: generator_spec(dataset, seed, rc, gc, lp, runs_dir, dataset_kwargs)
            for rung, (rc, gc, lp) in zip(rungs, rung_configs(recid_base, gen_base, loop, rungs))
            if rung.name in settled}


def _apply(config: tuple, rung: Rung, gen_fields: set[str]) -> tuple:
    rc, gc, lp = config
    return (dataclasses.replace(rc, **rung.recid),
            gc.replace(**{k: v for k, v in rung.generator.items() if k in gen_fields}),
            dataclasses.replace(lp, **{k: v for k, v in rung.generator.items() if k not in gen_fields}))


def run_ladder(dataset: RecDataset, recid_base, gen_base, loop: LoopConfig, rungs: Sequence[Rung],
               runs_dir=None, ks: tuple[int, ...] = (10, 20), reference: ModelRun | None = None,
               reference_name: str = "lightgcn", greedy: bool = True
               ) -> tuple[pd.DataFrame, dict[str, ModelRun], dict[str, tuple]]:
    """Train (or reuse) every rung and tabulate it (see the module docstring).

    ``greedy`` (default): a rung's changes are applied to the configuration *kept* so far, and kept for the
    rungs below only when its validation Recall@10 is at least the best so far (forward selection on
    validation; the first rung is the base and always kept). ``greedy=False``: every rung builds on the rung
    above (plain cumulative ladder). Columns ``built_on`` and ``kept`` say which; ``p_*_vs_base`` pairs each
    rung with the run it was built on.

    ``reference``: a baseline run (e.g. LightGCN) whose test metrics and list coverage close the table as
    its last row, paired with the rung of best validation Recall@10.
    Returns the table, the generator runs by rung name and each rung's ``(recid, generator, loop)`` configs.
    """
    rung_configs(recid_base, gen_base, loop, rungs)                     # every field checked before training
    gen_fields = set(gen_base.fields())
    rows, runs, configs = [], {}, {}
    base, base_name, base_run, best = (recid_base, gen_base, loop), None, None, float("-inf")
    for n, rung in enumerate(rungs):               # not greedy: every rung is kept, so the base is the rung above
        on = (configs[rung.base], rung.base, runs[rung.base]) if rung.base else (base, base_name, base_run)
        rc, gc, lp = config = _apply(on[0], rung, gen_fields)
        recids, _, _ = load_or_assign_recids(dataset, rc, runs_dir=runs_dir, progress=False)
        run = run_generator(dataset, recids, gc, lp, runs_dir=runs_dir, ks=ks)
        runs[rung.name], configs[rung.name] = run, config
        st = recids.stats
        lists = top_k_lists({rung.name: run}, dataset, k=10, beam_width=gc.train.beam_width)[rung.name]
        keep = not rung.base and (n == 0 or not greedy or run.fit.best_score >= best)
        row = {"rung": rung.name, "note": rung.note, "built_on": on[1] or "", "kept": keep,
               "recid_val_recall@10": st.get("val_recall@10"), "unique_semantic_frac": st.get("unique_semantic_frac"),
               "max_group_size": st.get("max_group_size"),
               "val_recall@10": run.fit.best_score, "best_epoch": run.fit.best_epoch,
               **{f"test_{k}": v for k, v in run.test.mean().items()},
               "coverage@10": list_diagnostics(lists, dataset)["coverage"],
               "recid_seconds": st.get("total_sec"), "generator_seconds": run.train_seconds}
        row.update(_paired(run, on[2]))
        rows.append(row)
        if keep:
            base, base_name, base_run, best = config, rung.name, run, max(best, run.fit.best_score)
    chosen = max(runs, key=lambda name: runs[name].fit.best_score) if runs else None   # first among ties
    if reference is not None:
        lists = top_k_lists({reference_name: reference}, dataset, k=10)[reference_name]
        row = {"rung": reference_name, "note": f"baseline (reference; p against {chosen}, the best validation rung)",
               "built_on": "", "kept": False,
               **{f"test_{k}": v for k, v in reference.test.mean().items()},
               "coverage@10": list_diagnostics(lists, dataset)["coverage"],
               "generator_seconds": reference.train_seconds, "best_epoch": reference.fit.best_epoch,
               "val_recall@10": reference.fit.best_score}
        row.update(_paired(reference, runs.get(chosen)))
        rows.append(row)
    return pd.DataFrame(rows), runs, configs


def hybrid_rung(dataset: RecDataset, run: ModelRun, recids, weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                beam: int = 40, ks: tuple[int, ...] = (10, 20)) -> tuple[dict, pd.DataFrame]:
    """The optional, not-the-paper's row: ``run``'s beam re-ranked with the Graph RQ-VAE dot product
    (:mod:`~mmgrec_lib.experiments.hybrid`), the weight chosen on validation. Returns the ladder row (paired p
    against ``run``) and the validation table of the weights."""
    from .hybrid import hybrid_sweep
    model = run.model
    table, w, test = hybrid_sweep(model, recids.user_emb, recids.item_emb, dataset, weights, beam, ks)
    test.name = "hybrid"
    lists = _kept_lists(test, dataset)
    row = {"rung": "hybrid_rerank", "note": f"not the paper's: beam {beam} re-ranked with h_u h_i (w = {w:g}, "
                                            f"chosen on validation)",
           "val_recall@10": float(table.loc[table["chosen"], "val_recall@10"].iloc[0]),
           **{f"test_{k}": v for k, v in test.mean().items()},
           "coverage@10": list_diagnostics(lists, dataset)["coverage"] if lists is not None else float("nan"),
           "generator_seconds": run.train_seconds}
    row.update({"built_on": "", "kept": False})
    row.update({f"p_{m}_vs_base": paired_test(run.test, test, m)["p_wilcoxon"] for m in ("ndcg@10", "recall@10")})
    return row, table


def prior_rung(dataset: RecDataset, runs: Mapping[str, ModelRun],
               weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), beam: int = 20,
               ks: tuple[int, ...] = (10, 20), min_coverage: float = 0.0) -> tuple[dict, pd.DataFrame]:
    """The optional, not-the-paper's row: a trained rung decoded with the popularity prior
    (:mod:`~mmgrec_lib.experiments.debias`). Every rung of ``runs`` is decoded at every weight on validation
    (no training: one beam search per rung, weight and user; cached beside each run's checkpoint, so a rerun
    decodes only what is new). The choice rule, declared before test is read: among the (rung, weight) pairs
    whose validation top-10 list coverage is at least ``min_coverage`` (a share of the catalogue; 0: every
    pair), the best validation Recall@10 (first rung, smallest weight among ties); when no pair reaches
    ``min_coverage``, the best of all pairs, and the note says so. That pair is read once on test.

    Returns the ladder row (paired p against that rung's own decoding) and the validation table (one row per
    rung and weight; ``meets_coverage`` and ``chosen`` marked)."""
    from .debias import prior_evaluate, prior_sweep
    if not runs:
        raise ValueError("prior_rung: no rung runs")
    if not 0.0 <= float(min_coverage) <= 1.0:
        raise ValueError(f"prior_rung: min_coverage must be a share of the catalogue in [0, 1], got {min_coverage}")
    tables = []
    for name, run in runs.items():
        ckpt = run.checkpoint if run.checkpoint is not None and Path(run.checkpoint).is_file() else None
        t, _, _ = prior_sweep(run.model, dataset, weights, beam, ks, test=False, checkpoint=ckpt)
        t.insert(0, "rung", name)
        tables.append(t)
    table = pd.concat(tables, ignore_index=True).drop(columns="chosen")
    table["meets_coverage"] = table["val_coverage@10"] >= float(min_coverage)
    pool = table[table["meets_coverage"]] if table["meets_coverage"].any() else table
    best = pool["val_recall@10"].max()
    pick = pool.index[pool["val_recall@10"] == best][0]          # rungs in ladder order, weights ascending
    name, w = str(table.loc[pick, "rung"]), float(table.loc[pick, "weight"])
    table["chosen"] = table.index == pick
    run = runs[name]
    test = prior_evaluate(run.model, dataset, "test", w, ks, beam)
    if min_coverage <= 0:
        rule = "rung and beta chosen on validation"
    elif table["meets_coverage"].any():
        rule = f"rung and beta chosen on validation among pairs with coverage@10 >= {min_coverage:.4f}"
    else:
        rule = f"no pair reached validation coverage@10 {min_coverage:.4f}: the best of all pairs on validation"
    row = {"rung": "prior_decoding",
           "note": f"not the paper's: rung {name} decoded with -beta log pop(i) (beta = {w:g}; {rule}; beam {beam})",
           "built_on": name, "kept": False, "val_recall@10": float(best),
           **{f"test_{k}": v for k, v in test.mean().items()},
           "coverage@10": test.extra["coverage@10"], "generator_seconds": run.train_seconds}
    row.update({f"p_{m}_vs_base": paired_test(run.test, test, m)["p_wilcoxon"] for m in ("ndcg@10", "recall@10")})
    return row, table


def validation_coverage(model, dataset: RecDataset, k: int = 10, beam: int = 20, batch_size: int = 1024) -> float:
    """The share of the catalogue in ``model``'s top-``k`` validation lists (users with a validation item; their
    training items excluded), e.g. the reference baseline's, to set :func:`prior_rung`'s ``min_coverage``."""
    from ..evaluation import list_diagnostics
    from .analysis import split_lists
    return list_diagnostics(split_lists(model, dataset, "val", k, beam, batch_size), dataset)["coverage"]


def _kept_lists(result, dataset: RecDataset):
    """The top-10 lists behind an :class:`~mmgrec_lib.evaluation.EvalResult` when it kept them (``extra["lists"]``)."""
    lists = result.extra.get("lists")
    return None if lists is None else lists[:, :10]


def seed_runs(dataset: str, seeds: Sequence[int], recid_config, gen_config, loop: LoopConfig,
              baseline_loop: LoopConfig, baseline_overrides: Mapping[str, Any] | None = None, runs_dir=None,
              baselines: Sequence[str] = ("lightgcn",), ks: tuple[int, ...] = (10, 20), ledger=None,
              train: bool = True) -> dict[int, dict[str, ModelRun]]:
    """MMGRec under one configuration and the ``baselines`` for every split seed: the dataset, the Rec-ID run,
    the generator and the baselines all take the seed (datasets with a fixed split, e.g. TikTok, keep it:
    there the seed varies the training only). Runs are keyed and reused. Returns seed -> {name -> run}.

    ``ledger``: a run-ledger path (:mod:`~mmgrec_lib.experiments.recorded`; needs ``runs_dir``): a run whose
    checkpoint is missing but which the ledger records is its recorded stand-in (nothing is trained, not even
    its Rec-IDs), and every run trained or loaded here is recorded as it finishes. ``train=False``: runs that are
    neither recorded nor finished on disk (:func:`~mmgrec_lib.experiments.overall.finished_score`) are left out
    of the result instead of trained (e.g. to record what an interrupted study has finished)."""
    from ..data import load_dataset
    from .ledger import RunLedger
    from .recorded import recall, remember
    from .runs import baseline_checkpoint, finished_score, generator_run_path, run_baselines
    if ledger is not None and runs_dir is None:
        raise ValueError("seed_runs: a ledger needs runs_dir (its runs are keyed by their checkpoints' names)")
    if not train and runs_dir is None:
        raise ValueError("seed_runs: train=False needs runs_dir (where finished runs are found)")
    book = RunLedger(ledger) if ledger is not None else None
    overrides = {n: dict((baseline_overrides or {}).get(n, {})) for n in baselines}
    out: dict[int, dict[str, ModelRun]] = {}
    for seed in seeds:
        ds = load_dataset(dataset, seed=int(seed))
        rc, gc = dataclasses.replace(recid_config, seed=int(seed)), gen_config.replace(seed=int(seed))
        runs: dict[str, ModelRun] = {}
        path = None if runs_dir is None else generator_run_path(runs_dir, ds, rc.to_dict(), gc, loop)
        found = None if path is None else recall(book, path, ds)
        if found is None and (train or finished_score(path, loop) is not None):
            recids, _, _ = load_or_assign_recids(ds, rc, runs_dir=runs_dir, progress=False)
            found = run_generator(ds, recids, gc, loop, runs_dir=runs_dir, ks=ks)
            remember(book, found)
        if found is not None:
            runs["mmgrec"] = found
        for name in baselines:
            path = None if runs_dir is None else baseline_checkpoint(ds, name, overrides[name], baseline_loop,
                                                                     int(seed), runs_dir)
            found = None if path is None else recall(book, path, ds)
            if found is None and (train or name == "mostpop"                  # MostPop: nothing to train
                                  or finished_score(path, baseline_loop) is not None):
                found = run_baselines(ds, [name], loop=baseline_loop, seed=int(seed), overrides={name: overrides[name]},
                                      runs_dir=runs_dir, ks=ks)[name]
                remember(book, found)
            if found is not None:
                runs[name] = found
        out[int(seed)] = runs
    return out


def seed_table(per_seed: Mapping[int, Mapping[str, ModelRun]], reference: str = "lightgcn",
               metrics: Sequence[str] = ("recall@10", "ndcg@10", "recall@20", "ndcg@20"),
               extras: Sequence[str] = ()) -> pd.DataFrame:
    """Mean ± std over seeds of each model's test metrics, with p-values against ``reference``.

    ``per_seed``: seed -> {model name -> run}, every seed holding the same models (and ``reference``). Per model
    and metric: ``<metric>_mean``, ``<metric>_std`` (sample std over seeds), ``p_<metric>_seeds`` (paired t-test
    of the per-seed means against the reference's, across seeds; needs at least 2 seeds) and
    ``p_<metric>_users_max`` (the largest per-seed paired Wilcoxon p over users: below 0.05 means every seed
    alone is significant).

    ``extras``: per-run numbers kept in ``run.test.extra`` (e.g. ``"coverage@10"``, set by
    :func:`~mmgrec_lib.experiments.teacher_study.teacher_study`): ``<name>_mean`` and ``<name>_std`` over the seeds
    whose run has the number (missing or NaN: not known, e.g. a ledger stand-in recorded without it) and
    ``<name>_seeds``, how many those are; no p-values.
    """
    from scipy import stats
    seeds = sorted(per_seed)
    if not seeds:
        raise ValueError("seed_table: no seeds")
    names = list(per_seed[seeds[0]])
    for s in seeds:
        if list(per_seed[s]) != names:
            raise ValueError(f"seed {s} has models {list(per_seed[s])}; seed {seeds[0]} has {names}")
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not among the models {names}")
    rows = []
    for name in names:
        row: dict[str, Any] = {"model": name, "seeds": len(seeds)}
        for m in metrics:
            vals = [per_seed[s][name].test[m] for s in seeds]
            ref = [per_seed[s][reference].test[m] for s in seeds]
            row[f"{m}_mean"] = float(pd.Series(vals).mean())
            row[f"{m}_std"] = float(pd.Series(vals).std()) if len(vals) > 1 else float("nan")
            if name == reference:
                row[f"p_{m}_seeds"] = row[f"p_{m}_users_max"] = float("nan")
                continue
            row[f"p_{m}_seeds"] = (float(stats.ttest_rel(vals, ref).pvalue) if len(seeds) > 1 and vals != ref
                                   else float("nan"))
            row[f"p_{m}_users_max"] = max(paired_test(per_seed[s][reference].test, per_seed[s][name].test, m)
                                          ["p_wilcoxon"] for s in seeds)
        for e in extras:
            vals = pd.Series([float(per_seed[s][name].test.extra.get(e, float("nan"))) for s in seeds]).dropna()
            row[f"{e}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{e}_std"] = float(vals.std()) if len(vals) > 1 else float("nan")
            row[f"{e}_seeds"] = int(len(vals))
        rows.append(row)
    return pd.DataFrame(rows)


def _paired(run: ModelRun, prev: ModelRun | None) -> dict[str, float]:
    """Paired Wilcoxon p of the per-user test metrics against the run it was built on (NaN for the first)."""
    if prev is None:
        return {"p_ndcg@10_vs_base": float("nan"), "p_recall@10_vs_base": float("nan")}
    return {f"p_{m}_vs_base": paired_test(prev.test, run.test, m)["p_wilcoxon"] for m in ("ndcg@10", "recall@10")}


__all__ = ["EXTRA_ROWS", "LADDER_BASE_PARAMS", "Rung", "built_chain", "profile_bases", "profile_rung_config", "chosen_rung", "ladder_bases", "hybrid_rung", "prior_rung", "validation_coverage", "ladder_tasks", "settled_rungs", "seed_runs", "seed_table", "rung_configs", "run_ladder"]
