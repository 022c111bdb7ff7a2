"""Experiment orchestration used by the notebooks: train (or reuse) models and build result tables.

Checkpoints live under ``runs_dir`` with a name that hashes the dataset, the model config and the loop
settings, so a second notebook asking for the same baseline reuses the finished run (the generic loop
returns immediately from a finished checkpoint) instead of training it again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import torch

from ..baselines import BASELINES, Recommender
from ..data.dataset import RecDataset
from ..evaluation import EvalResult, evaluate, paired_test
from ..training.loop import FitResult, LoopConfig, extend_epochs, extend_patience


@dataclass
class ModelRun:
    """A trained model with its training history and test evaluation."""

    name: str
    model: object
    fit: FitResult
    test: EvalResult
    train_seconds: float
    checkpoint: Path | None = None


def run_key(*parts) -> str:
    """A short stable hash of JSON-serialisable parts (configs, loop settings, dataset description)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def loop_key(loop: LoopConfig) -> dict:
    """The loop settings that change a run's result (everything but the checkpoint path and progress bar)."""
    return {k: v for k, v in dataclasses.asdict(loop).items() if k not in ("checkpoint", "progress")}


def dataset_key(dataset: RecDataset) -> dict:
    """What identifies a dataset instance for caching: name, sizes, split sizes, the split seed (loaders record
    it in ``info["split"]["seed"]``) and, for folder datasets, the hash of the files read."""
    split = dataset.info.get("split") if isinstance(dataset.info.get("split"), dict) else {}
    key = {"name": dataset.name, "users": dataset.n_users, "items": dataset.n_items,
           "train": int(dataset.train.nnz), "val": int(dataset.val.nnz), "test": int(dataset.test.nnz),
           "seed": split.get("seed", dataset.info.get("seed")), "modalities": dataset.modalities}
    if dataset.info.get("content_sha256"):
        key["content_sha256"] = dataset.info["content_sha256"]
    return key


def training_seconds(result: FitResult, wall: float) -> float:
    """Training time of a run: this call's wall time for a fresh run; for a run (partly) loaded from its
    checkpoint, the sum of the checkpointed per-epoch times (``nan`` when an old checkpoint lacks them)."""
    if result.resumed_from == 0:
        return wall
    if not result.history or len(result.epoch_seconds) != len(result.history):
        return float("nan")
    return float(sum(result.epoch_seconds))


def run_baselines(
    dataset: RecDataset,
    models: Iterable[str] = ("mostpop", "mf", "lightgcn", "vbpr"),
    loop: LoopConfig | None = None,
    seed: int = 0,
    overrides: Mapping[str, Mapping] | None = None,
    runs_dir: str | Path | None = None,
    ks: tuple[int, ...] = (10, 20),
) -> dict[str, ModelRun]:
    """Train each baseline with early stopping on validation Recall@10, then evaluate it on test.

    Args:
        models: names from :data:`mmgrec_lib.baselines.BASELINES`.
        loop: epochs / patience / eval_every / progress (its ``checkpoint`` is set per model here).
        seed: seed of each model's ``torch.Generator`` (the same for every model).
        overrides: per-model config fields, e.g. ``{"mf": {"dim": 64, "lr": 1e-3}}``.
        runs_dir: folder for resumable checkpoints (``None``: no checkpoints, always retrain).
    """
    loop = loop or LoopConfig()
    overrides = overrides or {}
    unknown = sorted(set(models) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; expected some of {sorted(BASELINES)}")
    unknown = sorted(set(overrides) - set(models))
    if unknown:
        raise ValueError(f"overrides given for {unknown}, which are not among the models {list(models)}")
    runs: dict[str, ModelRun] = {}
    for name in models:
        model: Recommender = BASELINES[name].from_dataset(dataset, **dict(overrides.get(name, {})))
        ckpt = None if runs_dir is None else baseline_run_path(runs_dir, dataset, name, model.config, loop, seed)
        if ckpt is not None and loop.resume and not ckpt.exists():
            shorter = shorter_patience_run(runs_dir, dataset, name, model.config, loop, seed)
            if shorter is not None:
                extend_patience(shorter, ckpt)             # exact: continue the same run with more patience
        cfg = dataclasses.replace(loop, checkpoint=ckpt)
        start = time.perf_counter()
        result = model.fit(dataset, cfg, torch.Generator().manual_seed(seed))
        seconds = training_seconds(result, time.perf_counter() - start)
        model.eval()
        test = evaluate(model.score, dataset, "test", ks=ks, name=name)
        runs[name] = ModelRun(name, model, result, test, seconds, ckpt)
    return runs


def results_table(runs: Mapping[str, ModelRun], reference: str | None = None,
                  metric: str = "recall@10") -> pd.DataFrame:
    """One row per model: test metrics, best epoch, time, and paired p-values against ``reference``.

    ``reference`` defaults to the model with the best mean ``metric``; ``p_<metric>`` is the two-sided
    Wilcoxon signed-rank p-value of the per-user differences to it (blank for the reference itself).
    """
    if not runs:
        raise ValueError("no runs to tabulate")
    ref = reference or max(runs, key=lambda n: runs[n].test[metric])
    rows = []
    for name, run in runs.items():
        row = {"model": name, **run.test.mean(), "best_epoch": run.fit.best_epoch,
               "epochs_run": len(run.fit.history), "train_seconds": round(run.train_seconds, 1)}
        row["p_reference"] = ref
        for m in (metric, metric.replace("recall", "ndcg")):
            row[f"p_{m}"] = (float("nan") if name == ref
                             else paired_test(runs[ref].test, run.test, m)["p_wilcoxon"])
        rows.append(row)
    return pd.DataFrame(rows)


def shorter_patience_run(runs_dir: str | Path, dataset: RecDataset, name: str, config, loop: LoopConfig,
                         seed: int) -> Path | None:
    """The checkpoint of the same baseline run as ``baseline_run_path(runs_dir, dataset, name, config, loop,
    seed)`` but with the largest shorter patience (``1 .. loop.patience - 1``) that exists, or ``None``.
    :func:`~mmgrec_lib.training.loop.extend_patience` turns it into the start of the longer run, so a grid
    tuned with a short patience hands its chosen point to the full budget without retraining it."""
    if loop.patience <= 1:
        return None
    for p in range(loop.patience - 1, 0, -1):
        path = baseline_run_path(runs_dir, dataset, name, config, dataclasses.replace(loop, patience=p), seed)
        if path.is_file():
            return path
    return None


def baseline_run_path(runs_dir: str | Path, dataset: RecDataset, name: str, config, loop: LoopConfig,
                      seed: int) -> Path:
    """Where :func:`run_baselines` keeps the run of baseline ``name`` (its built ``config`` dataclass) on
    ``dataset`` under ``loop`` and ``seed``."""
    key = run_key(dataset_key(dataset), name, config_key(config), loop_key(loop), seed)
    return Path(runs_dir) / f"{dataset.name}_{name}_{key}.pt"


def baseline_checkpoint(dataset: RecDataset, model: str, config: Mapping[str, Any], loop: LoopConfig, seed: int,
                        runs_dir: str | Path) -> Path:
    """Where :func:`~mmgrec_lib.experiments.runs.run_baselines` keeps the run of ``model`` with config fields
    ``config`` on ``dataset`` under ``loop`` and ``seed`` (the same key, so nothing is trained here). The config
    object is built as the model builds it (``Recommender.__init__``: the config class with these fields),
    without building the model (LATTICE / FREEDOM would build their kNN graphs)."""
    if model not in BASELINES:
        raise ValueError(f"unknown baseline {model!r}; expected one of {sorted(BASELINES)}")
    return baseline_run_path(runs_dir, dataset, model, BASELINES[model].config_class(**dict(config)), loop, seed)


def finished_score(path: str | Path, loop: LoopConfig) -> float | None:
    """The best validation score of the finished training run checkpointed at ``path`` (``None`` when there is
    none, or when it would still train under ``loop``: neither stopped early nor at ``loop.epochs``)."""
    from ..utils import load_checkpoint
    path = Path(path)
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    if not (state.get("stopped_early") or int(state.get("epoch", 0)) >= loop.epochs):
        return None
    return float(state["best_score"])


def config_key(config) -> dict:
    """A baseline config's fields for its run key: ``dataclasses.asdict`` without the fields added after runs
    existed (the config class's ``LATER_DEFAULTS``) while they hold the value those runs had, so adding an
    option keeps earlier runs' keys."""
    later = getattr(type(config), "LATER_DEFAULTS", {})
    return {k: v for k, v in dataclasses.asdict(config).items() if not (k in later and v == later[k])}


def recid_run_path(runs_dir: str | Path, dataset: RecDataset, config) -> Path:
    """Where the Rec-ID run of ``dataset`` under ``config`` (a ``GraphRQVAEConfig``) is stored."""
    cfg = {k: v for k, v in config.to_dict().items() if k != "device"}
    return Path(runs_dir) / f"recid_{dataset.name}_L{config.codebook_size}_{run_key(dataset_key(dataset), cfg)}.pt"


def load_or_assign_recids(dataset: RecDataset, config, runs_dir: str | Path | None = None,
                          progress: bool = True, overwrite: bool = False):
    """The Graph RQ-VAE Rec-ID run for ``(dataset, config)``: loaded from ``runs_dir`` when an identical run
    was saved there (e.g. by notebook 01), otherwise trained (resumably) and saved.

    ``overwrite``: ignore what ``runs_dir`` holds for this run (the saved run and its training checkpoints,
    e.g. a damaged file) and train it afresh.

    Returns ``(run, path, reused)``.

    Raises:
        CheckpointError: (a ``ValueError``) a saved run or checkpoint that cannot be read; the message names
            the file and says to delete it or pass ``overwrite=True``.
    """
    from ..tokenizer import RecIDRun, assign_recids
    from ..tokenizer.graph_rqvae import _stage_checkpoint
    from ..utils import CheckpointError

    if runs_dir is None:
        return assign_recids(dataset, config, progress=progress), None, False
    path = recid_run_path(runs_dir, dataset, config)
    ckpt = path.with_suffix(".ckpt")
    if overwrite:
        for p in (path, ckpt, _stage_checkpoint(ckpt, "rq")):
            p.unlink(missing_ok=True)
    if path.is_file():
        try:
            return RecIDRun.load(path), path, True
        except ValueError as exc:
            raise CheckpointError(f"{exc}. Delete {path} to compute the Rec-IDs again, or call "
                                  f"load_or_assign_recids(..., overwrite=True)") from exc
    try:
        run = assign_recids(dataset, config, progress=progress, checkpoint=ckpt)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (or call load_or_assign_recids(..., overwrite=True))") from exc
    run.save(path)
    return run, path, False


def run_generator(dataset: RecDataset, recid_run, config, loop: LoopConfig | None = None,
                  runs_dir: str | Path | None = None, ks: tuple[int, ...] = (10, 20),
                  test_beam_width: int | None = None,
                  teacher: tuple[torch.Tensor, torch.Tensor] | None = None,
                  start_from: LoopConfig | None = None) -> ModelRun:
    """Train the MMGRec generator on a Rec-ID run (resumable checkpoint in ``runs_dir``) and test it.

    ``config`` is a :class:`~mmgrec_lib.generator.config.GeneratorConfig`; the test uses beam width
    ``test_beam_width`` (default ``config.train.beam_width``). ``run.test.extra`` holds inference timings.
    ``teacher``: an external distillation teacher's ``(user, item)`` vectors, for a ``config`` whose
    ``distill_teacher`` names it (not the paper's). Left out while ``distill_teacher`` is a teacher spec
    (:func:`~mmgrec_lib.experiments.teachers.teacher_spec`), the spec's baseline run is loaded from ``runs_dir``
    or trained there, with the generator's seed (:func:`baseline_teacher`).
    ``start_from``: a shorter budget of the same run (:func:`is_prefix_loop`; else ``ValueError``). When this
    run has no checkpoint yet and that one's run is finished in ``runs_dir``, this run continues from it
    (:func:`~mmgrec_lib.training.loop.extend_epochs`) instead of training its first epochs again: the same
    result (tested).
    """
    from ..generator.training import evaluate_generator, train_generator
    from .decode_cache import cached, decode_result, encode_result

    loop = loop or LoopConfig()
    if start_from is not None and not is_prefix_loop(start_from, loop, config.train.eval_every):
        raise ValueError(f"run_generator: start_from {loop_key(start_from)} is not a shorter budget of the loop "
                         f"{loop_key(loop)} ending on an epoch that loop validates (is_prefix_loop)")
    codebooks = recid_run.semantic_codebooks() if config.model.tie_output else None   # raises when it has none
    if teacher is None and config.train.distill_weight > 0 and config.train.distill_teacher:
        from .teachers import parse_teacher_spec
        model_name, fields, loop_fields = parse_teacher_spec(config.train.distill_teacher)
        teacher = baseline_teacher(dataset, model_name, fields, LoopConfig(**loop_fields), config.train.seed,
                                   runs_dir)
    ckpt = None if runs_dir is None else generator_run_path(runs_dir, dataset, recid_run.config, config, loop)
    if start_from is not None:
        if ckpt is not None and not ckpt.exists():
            prefix = generator_run_path(runs_dir, dataset, recid_run.config, config, start_from)
            if finished_score(prefix, start_from) is not None:
                extend_epochs(prefix, ckpt)        # exact: the longer run passes through the shorter run's states
    start = time.perf_counter()
    model, result = train_generator(dataset, recid_run.table, recid_run.user_emb, recid_run.item_emb, config,
                                    dataclasses.replace(loop, checkpoint=ckpt),
                                    torch.Generator().manual_seed(config.train.seed), codebooks=codebooks,
                                    teacher=teacher)
    seconds = training_seconds(result, time.perf_counter() - start)
    beam = test_beam_width or config.train.beam_width
    key = f"evaluate_generator|test|ks={','.join(map(str, sorted(ks)))}|beam={beam}|name=mmgrec|{model.device}"
    test = cached(ckpt, key, lambda: evaluate_generator(model, dataset, "test", ks=ks, beam_width=beam, name="mmgrec"),
                  encode_result, decode_result)          # a finished run reused: its test decoding, not again
    return ModelRun("mmgrec", model, result, test, seconds, ckpt)


def is_prefix_loop(short: LoopConfig, long: LoopConfig, eval_every: int | None = None) -> bool:
    """Whether a run under ``short`` is the start of the same run under ``long``: every setting equal but
    ``epochs`` (``short``'s smaller), and ``short``'s last epoch, which it always validates, is one that ``long``
    validates too (a multiple of the effective ``eval_every``: ``eval_every`` when given, as a generator config's
    ``train.eval_every`` overrides the loop's, else the loops'). Then ``short``'s finished checkpoint is a resume
    point of ``long`` (:func:`~mmgrec_lib.training.loop.extend_epochs`)."""
    a, b = loop_key(short), loop_key(long)
    if {k: v for k, v in a.items() if k != "epochs"} != {k: v for k, v in b.items() if k != "epochs"}:
        return False
    every = int(eval_every or long.eval_every)
    return 0 < short.epochs < long.epochs and short.epochs % every == 0


def baseline_teacher(dataset: RecDataset, model: str, config: Mapping[str, Any], loop: LoopConfig, seed: int,
                     runs_dir: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Baseline ``model`` (config fields ``config``, trained under ``loop`` and ``seed``) as a distillation
    teacher: its run is loaded from ``runs_dir`` when finished there, else trained and saved (the run key of
    :func:`run_baselines`, so notebooks 00, 04 and 10's runs serve); returns its ``(users, items)`` vectors
    (:func:`~mmgrec_lib.experiments.teachers.teacher_vectors`)."""
    from .teachers import teacher_vectors
    run = run_baselines(dataset, [model], dataclasses.replace(loop, progress=False), seed=seed,
                        overrides={model: dict(config)}, runs_dir=runs_dir, ks=(10,))[model]
    return teacher_vectors(run.model, dataset.n_users)


def generator_run_path(runs_dir: str | Path, dataset: RecDataset, recid_config: Mapping[str, Any], config,
                       loop: LoopConfig) -> Path:
    """Where :func:`run_generator` keeps the generator run of ``config`` (a
    :class:`~mmgrec_lib.generator.config.GeneratorConfig`) under ``loop`` on the Rec-ID run whose config dict is
    ``recid_config`` (``RecIDRun.config``; a Graph RQ-VAE run's is its ``GraphRQVAEConfig.to_dict()``)."""
    from ..generator.training import TRAINING_VERSION
    settings = {k: v for k, v in config.key_settings().items() if k != "inference_seed"}   # set from seed
    settings["training_version"] = TRAINING_VERSION        # runs of older training code are not reused
    key = run_key(dataset_key(dataset), dict(recid_config), settings, loop_key(loop))
    return Path(runs_dir) / f"generator_{dataset.name}_{key}.pt"


def run_generator_variants(dataset: RecDataset, recid_run, base, variants: Mapping[str, Mapping],
                           loop: LoopConfig | None = None, runs_dir: str | Path | None = None,
                           ks: tuple[int, ...] = (10, 20)) -> dict[str, ModelRun]:
    """Train (or reuse) one generator per variant of ``base`` and test each: what-was-tried studies.

    ``variants`` maps a name to the fields it changes: :class:`GeneratorConfig` fields and/or
    :class:`LoopConfig` fields (e.g. ``{"targets_per_input": 1, "epochs": 4}``); ``{}`` is ``base`` itself.
    Each run is checkpointed and reused exactly as :func:`run_generator` does.
    """
    return {name: run_generator(dataset, recid_run, config, vloop, runs_dir=runs_dir, ks=ks)
            for name, (config, vloop) in variant_configs(base, variants, loop or LoopConfig()).items()}


def variant_configs(base, variants: Mapping[str, Mapping], loop: LoopConfig) -> dict[str, tuple[Any, LoopConfig]]:
    """``name -> (generator config, loop)`` of each variant of :func:`run_generator_variants` (every field name
    checked first)."""
    from ..utils import check_unknown

    gen_fields = set(base.fields())
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)} - {"checkpoint"}
    for name, changes in variants.items():
        check_unknown(changes, sorted(gen_fields | loop_fields), f"generator variant {name!r}")
    return {name: (base.replace(**{k: v for k, v in changes.items() if k in gen_fields}),
                   dataclasses.replace(loop, **{k: v for k, v in changes.items() if k not in gen_fields}))
            for name, changes in variants.items()}


def study_variants(finetune_item_emb: bool, epochs: int) -> dict[str, dict[str, Any]]:
    """Notebook 03's what-was-tried variants of a generator configuration (``{}``: the base itself), each one
    setting changed: the paper's one target per input (a quarter of ``epochs``, validated every epoch: it costs
    several times more per epoch), N = 20, the paper's SGD, and the other choice of item-embedding fine-tuning."""
    return {"base": {},
            "one target per input (paper)": {"targets_per_input": 1, "epochs": max(1, epochs // 4), "eval_every": 1},
            "N = 20": {"max_len": 20},
            "SGD, lr 1e-3 (paper)": {"optimizer": "sgd", "lr": 1e-3},
            ("frozen item embeddings" if finetune_item_emb else "fine-tuned item embeddings"):
                {"finetune_item_emb": not finetune_item_emb}}


def codebook_size_sweep(dataset: RecDataset, recid_config, gen_config, sizes: Iterable[int],
                        loop: LoopConfig | None = None, runs_dir: str | Path | None = None,
                        ks: tuple[int, ...] = (10, 20)) -> tuple[pd.DataFrame, dict[int, ModelRun]]:
    """Choose the codebook size ``L`` on validation (the paper tunes it in {64, 128, 256}).

    For each ``L``: the Graph RQ-VAE run of ``recid_config`` with ``codebook_size = L`` (reused when saved,
    see :func:`load_or_assign_recids`), then the generator ``gen_config`` trained under ``loop`` on its
    Rec-IDs (reused like :func:`run_generator`). The selection criterion is the generator's best validation
    Recall@10 (what the Rec-IDs are for); the table also gives the Rec-ID facts, the graph's own validation
    Recall@10 (``h_u h_iᵀ``) and the test metrics, which play no part in the choice. ``chosen`` marks the
    selected ``L`` (the smallest among ties).
    """
    rows, runs = [], {}
    for L in sizes:
        rc = dataclasses.replace(recid_config, codebook_size=int(L))
        recids, _, _ = load_or_assign_recids(dataset, rc, runs_dir=runs_dir, progress=False)
        run = run_generator(dataset, recids, gen_config, loop, runs_dir=runs_dir, ks=ks)
        runs[int(L)] = run
        st = recids.stats
        rows.append({"codebook_size": int(L), "unique_semantic_frac": st.get("unique_semantic_frac"),
                     "max_group_size": st.get("max_group_size"), "graph_val_recall@10": st.get("val_recall@10"),
                     "generator_val_recall@10": run.fit.best_score, "generator_best_epoch": run.fit.best_epoch,
                     "test_recall@10": run.test.mean().get("recall@10"),
                     "test_ndcg@10": run.test.mean().get("ndcg@10")})
    if not rows:
        raise ValueError("no codebook sizes given")
    df = pd.DataFrame(rows).sort_values("codebook_size", kind="stable").reset_index(drop=True)
    best = df["generator_val_recall@10"].max()
    df["chosen"] = False
    df.loc[df.index[df["generator_val_recall@10"] == best][0], "chosen"] = True
    return df, runs
