"""The paper's ablations (Tables 3-5) and its layer / head sweep (Fig. 4), as independent, keyed sweep tasks.

**Ablations** (notebook 05). Every variant changes one thing of the best MMGRec configuration (the "full"
model) and is defined as data (:data:`ABLATIONS`, one dict per variant, read by :meth:`Variant.from_dict`):

* ``method``: how the semantic tokens are assigned. ``"graph_rqvae"`` (MMGRec), ``"hkmeans"`` (hierarchical
  k-means on the same Graph RQ-VAE item representations, ``k`` = the codebook size) or ``"id_wo"`` (an RQ-VAE
  on the concatenated raw item features, no graph; the generator keeps the Graph RQ-VAE embeddings, so only the
  IDs change, as in notebook 02). Both come from :mod:`mmgrec_lib.tokenizer.alternatives` through
  :meth:`~mmgrec_lib.tokenizer.RecIDRun.with_codes`;
* ``collision``: the last token (``None``: the configuration's, popularity; ``"random"``: TIGER's random
  order within a collision group);
* ``recid``: :class:`~mmgrec_lib.tokenizer.GraphRQVAEConfig` fields; ``generator``:
  :class:`~mmgrec_lib.generator.GeneratorConfig` / :class:`~mmgrec_lib.training.LoopConfig` fields (e.g.
  ``{"attention": "none"}``, ``{"item_embedding": "learned"}``).

:func:`ablation_tasks` turns the variants into task specs (the format of
:func:`~mmgrec_lib.experiments.sweep.generator_task`, plus ``method`` and ``collision``) on the run keys of
:func:`~mmgrec_lib.experiments.runs.run_generator`, so the full model is the finished run of notebook 09's
chosen rung and every finished variant is reused. :func:`sweep_ablations` trains them through
:func:`~mmgrec_lib.experiments.sweep.run_sweep` (serially, in a local process pool or on a Dask cluster);
variants with identical settings (the full model appears once per table) train once. :func:`ablation_runs`
then loads the runs in the caller's process (test evaluated again, per user) and :func:`ablation_table` pairs
each variant with the full model over test users (two-sided Wilcoxon). Over several seeds,
:func:`seed_ablation_tasks` gives each seed its own tasks (split, Rec-ID and generator seed) and
:func:`ablation_seed_table` reports every variant's mean and std over the seeds, with p-values against the full
model of the same seed and the seeds on which it is below or above it.

**Layers and heads** (notebook 06). :func:`hyper_tasks` sweeps ``n_layers`` at a fixed head count or
``n_heads`` at a fixed depth, for MMGRec (:class:`~mmgrec_lib.generator.ModelConfig`) and a Transformer
baseline (LightGT, whose config has the same two fields) at the same settings; :func:`choose_value` picks the
best-validating value (the depth for the head sweep); :func:`hyper_table` writes one row per (sweep, value,
model).

Numbers quoted from the paper (:data:`PAPER_ABLATIONS`) are the paper's own, on its datasets; they are for
orientation only and are never mixed with measured values.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..data.dataset import RecDataset
from ..evaluation import paired_test
from ..training.loop import LoopConfig
from .runs import ModelRun, dataset_key, load_or_assign_recids, run_generator, run_key
from .sweep import _dataset, _recid_key, generator_spec, recid_task, run_sweep
from .tuning import baseline_spec

METHODS = ("graph_rqvae", "hkmeans", "id_wo")
COLLISIONS = (None, "popularity", "random")
TABLE_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
P_METRICS = ("recall@10", "ndcg@10")
ABLATION_COLUMNS = ["dataset", "table", "variant", "note", *TABLE_METRICS, *(f"p_{m}" for m in P_METRICS),
                    "paper_recall@10", "paper_ndcg@10"]
ABLATION_SEED_COLUMNS = ["dataset", "table", "variant", "note", "n_seeds",
                         *[c for m in TABLE_METRICS for c in (m, f"{m}_std")],
                         *[c for m in P_METRICS for c in (f"p_{m}_seeds", f"p_{m}_users_max")],
                         "seeds_below", "seeds_above", "ours"]
FULL_MODEL_ROW = "the full model"      # ``ours`` of the seed table's rows that are the full model's run
HYPER_COLUMNS = ["dataset", "sweep", "value", "fixed", "model", "recall@10", "ndcg@10", "best_val_recall@10"]
TABLE_TOPICS = {"3": "item representations", "4": "Rec-ID assignment", "5": "self-attention"}
HYPER_FIELDS = {"layers": "n_layers", "heads": "n_heads"}        # sweep -> the field in ModelConfig / LightGTConfig

#: The variants of the paper's Tables 3-5 (names fixed: the claims table reads them). A variant without changes
#: is the full model; it appears once per table ("full", "graph_rqvae", "relation") and trains once.
ABLATIONS: list[dict[str, Any]] = [
    {"name": "full", "table": "3", "note": "MMGRec (the best configuration)"},
    {"name": "id_wo", "table": "3", "method": "id_wo",
     "note": "ID w/o: Rec-IDs from an RQ-VAE on the concatenated raw features (no graph); same encoder inputs"},
    {"name": "emb_wo", "table": "3", "generator": {"item_embedding": "learned"},
     "note": "Emb w/o: a learned item table instead of the Graph RQ-VAE item representations"},
    {"name": "graph_rqvae", "table": "4", "note": "Graph RQ-VAE, popularity token (= full)"},
    {"name": "hkmeans", "table": "4", "method": "hkmeans",
     "note": "HK-Means on the Graph RQ-VAE item representations (k = codebook size), popularity token"},
    {"name": "random_collision", "table": "4", "collision": "random",
     "note": "Graph RQ-VAE, random last token (TIGER) instead of the popularity rank"},
    {"name": "no_pe", "table": "5", "generator": {"attention": "none"},
     "note": "w/o PE: standard self-attention, no positional encoding"},
    {"name": "sinusoidal_pe", "table": "5", "generator": {"attention": "sinusoidal"},
     "note": "Default PE: standard self-attention with sinusoidal positional encoding"},
    {"name": "relation", "table": "5", "note": "relation-aware self-attention (= full)"},
]

#: The paper's own numbers (Tables 3-5, Recall@10 and NDCG@10) on its datasets, quoted for orientation only.
#: Variant -> paper dataset -> (R@10, N@10); "full", "graph_rqvae" and "relation" are the paper's "Ours" row.
_PAPER_OURS = {"MovieLens": (0.2804, 0.1898), "TikTok": (0.1269, 0.0802), "Kwai": (0.0567, 0.0470)}
PAPER_ABLATIONS: dict[str, dict[str, tuple[float, float]]] = {
    "full": _PAPER_OURS, "graph_rqvae": _PAPER_OURS, "relation": _PAPER_OURS,
    "id_wo": {"MovieLens": (0.1934, 0.1238), "TikTok": (0.0811, 0.0516), "Kwai": (0.0417, 0.0361)},
    "emb_wo": {"MovieLens": (0.2780, 0.1890), "TikTok": (0.1206, 0.0792), "Kwai": (0.0553, 0.0460)},
    "hkmeans": {"MovieLens": (0.2520, 0.1683), "TikTok": (0.1137, 0.0742), "Kwai": (0.0469, 0.0402)},
    "random_collision": {"MovieLens": (0.2762, 0.1872), "TikTok": (0.1199, 0.0785), "Kwai": (0.0544, 0.0452)},
    "no_pe": {"MovieLens": (0.2696, 0.1850), "TikTok": (0.1152, 0.0765), "Kwai": (0.0517, 0.0427)},
    "sinusoidal_pe": {"MovieLens": (0.2732, 0.1853), "TikTok": (0.1180, 0.0778), "Kwai": (0.0545, 0.0441)},
}
#: Our dataset -> the paper's column quoted next to it. The paper's MovieLens is not ml100k (a different, larger
#: MovieLens), its TikTok is the dataset our ``tiktok`` loader reads; both are for orientation only.
PAPER_DATASETS = {"ml100k": "MovieLens", "tiktok": "TikTok"}
#: What the paper concludes from each variant (sections 5.2.1-5.2.3, paraphrased): every variant is below MMGRec.
PAPER_CLAIMS = {
    "id_wo": "raw multimodal features cannot be used directly for Rec-IDs: ID w/o is well below MMGRec",
    "emb_wo": "learned input embeddings are below the pre-trained item representations",
    "hkmeans": "Graph RQ-VAE beats HK-Means (HK-Means has more ID collisions)",
    "random_collision": "the popularity token beats a random last token (TIGER)",
    "no_pe": "without positional information the encoder is worst",
    "sinusoidal_pe": "relation-aware self-attention beats sinusoidal positional encoding",
}
#: What the paper concludes from its Fig. 4 (section 5.3, paraphrased).
PAPER_HYPER_CLAIMS = {
    "layers": "MMGRec beats LightGT at every depth and does well with few layers",
    "heads": "MMGRec beats LightGT at every head count; MMGRec levels off as heads grow, LightGT declines",
}


# ---------------------------------------------------------------------- variants as data
@dataclass
class Variant:
    """One ablation variant: its name, the paper table it belongs to, a note, and what it changes (see the
    module docstring)."""

    name: str
    table: str
    note: str = ""
    method: str = "graph_rqvae"
    collision: str | None = None
    recid: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Variant":
        """Build from a plain dict (notebook / YAML); unknown keys, a missing name or table, and unknown
        methods or collision modes raise."""
        from ..utils import check_unknown
        check_unknown(values, [f.name for f in dataclasses.fields(cls)], "ablation variant")
        for key in ("name", "table"):
            if key not in values:
                raise ValueError(f"ablation variant {dict(values)} has no {key}")
        variant = cls(**{**values, "table": str(values["table"])})
        if variant.method not in METHODS:
            raise ValueError(f"variant {variant.name!r}: unknown method {variant.method!r}; expected one of {METHODS}")
        if variant.collision not in COLLISIONS:
            raise ValueError(f"variant {variant.name!r}: unknown collision {variant.collision!r}; "
                             f"expected one of {COLLISIONS}")
        return variant


def select_variants(names: Sequence[str], definitions: Sequence[Mapping[str, Any]] = ABLATIONS) -> list[Variant]:
    """The variants named in ``names`` (in that order) from ``definitions``; unknown or repeated names raise."""
    known = {d["name"]: d for d in definitions}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; expected some of {list(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"ablation variant names must be unique, got {list(names)}")
    return [Variant.from_dict(known[n]) for n in names]


def variant_configs(recid_base, gen_base, loop: LoopConfig, variant: Variant) -> tuple:
    """``(recid_config, generator_config, loop)`` of ``variant``: its changes applied to the full model's
    configuration (every field name checked)."""
    from ..utils import check_unknown
    gen_fields = set(gen_base.fields())
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)} - {"checkpoint", "progress"}
    check_unknown(variant.recid, [f.name for f in dataclasses.fields(recid_base)], f"variant {variant.name!r} recid")
    check_unknown(variant.generator, sorted(gen_fields | loop_fields), f"variant {variant.name!r} generator")
    return (dataclasses.replace(recid_base, **variant.recid),
            gen_base.replace(**{k: v for k, v in variant.generator.items() if k in gen_fields}),
            dataclasses.replace(loop, **{k: v for k, v in variant.generator.items() if k not in gen_fields}))


def skip_reason(variant: Variant, dataset: RecDataset) -> str | None:
    """Why ``variant`` cannot run on ``dataset`` (``None`` when it can): "ID w/o" needs item features."""
    if variant.method == "id_wo" and not dataset.modalities:
        return f"{variant.name}: {dataset.name} has no item features (ID w/o quantises the raw features)"
    return None


def ablation_tasks(dataset: str, seed: int, recid_base, gen_base, loop: LoopConfig, variants: Sequence[Variant],
                   runs_dir, dataset_kwargs: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """One task spec per variant (by name), for :func:`ablation_task` / :func:`sweep_ablations`: a
    :func:`generator_spec` of the variant's configs plus its ``method`` and ``collision``."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"ablation variant names must be unique, got {names}")
    tasks = {}
    for v in variants:
        rc, gc, lp = variant_configs(recid_base, gen_base, loop, v)
        tasks[v.name] = {**generator_spec(dataset, seed, rc, gc, lp, runs_dir, dataset_kwargs),
                         "method": v.method, "collision": v.collision}
    return tasks


def _spec_key(spec: Mapping[str, Any]) -> str:
    """What identifies a task's run (identical specs train once)."""
    return json.dumps(spec, sort_keys=True, default=str)


# ---------------------------------------------------------------------- Rec-IDs of a variant
def derived_recid_path(runs_dir, dataset: RecDataset, config, method: str, collision: str | None) -> Path:
    """Where the Rec-IDs of ``method`` / ``collision`` derived from the Graph RQ-VAE run of ``config`` are saved."""
    cfg = {k: v for k, v in config.to_dict().items() if k != "device"}
    key = run_key(dataset_key(dataset), cfg, method, collision)
    return Path(runs_dir) / f"recid_{dataset.name}_{method}-{collision or 'base'}_L{config.codebook_size}_{key}.pt"


def derive_recids(run, dataset: RecDataset, config, method: str, collision: str | None):
    """Rec-IDs of ``method`` with the ``collision`` token, from the Graph RQ-VAE run ``run`` of ``config``: the
    embeddings stay ``run``'s, the codes change (``graph_rqvae`` with no collision change: ``run`` itself)."""
    from ..tokenizer.alternatives import assign_hkmeans, assign_id_without_graph
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if collision not in COLLISIONS:
        raise ValueError(f"unknown collision {collision!r}; expected one of {COLLISIONS}")
    if method == "graph_rqvae":
        if collision is None or collision == run.config.get("collision"):
            return run
        return run.with_codes(run.semantic, dataset.item_popularity(), collision, method="graph_rqvae",
                              recon_error=run.stats.get("recon_error"))
    if method == "hkmeans":
        return assign_hkmeans(run, dataset, collision=collision)
    cfg = config if collision is None else dataclasses.replace(config, collision=collision)
    return assign_id_without_graph(dataset, cfg, base_run=run)


def load_or_derive_recids(dataset: RecDataset, config, method: str = "graph_rqvae", collision: str | None = None,
                          runs_dir=None):
    """The Rec-ID run of a variant: the Graph RQ-VAE run of ``config`` (reused or trained,
    :func:`~mmgrec_lib.experiments.runs.load_or_assign_recids`), then, for another method or collision token,
    the derived run (loaded from ``runs_dir`` when saved there, else computed and saved).

    Returns ``(run, path, reused)``.
    """
    from ..tokenizer import RecIDRun
    base, path, reused = load_or_assign_recids(dataset, config, runs_dir=runs_dir, progress=False)
    if method == "graph_rqvae" and (collision is None or collision == base.config.get("collision")):
        return base, path, reused
    if runs_dir is None:
        return derive_recids(base, dataset, config, method, collision), None, False
    dpath = derived_recid_path(runs_dir, dataset, config, method, collision)
    if dpath.is_file():
        return RecIDRun.load(dpath), dpath, True
    run = derive_recids(base, dataset, config, method, collision)
    run.save(dpath)
    return run, dpath, False


# ---------------------------------------------------------------------- running the variants
def _variant_run(ds: RecDataset, spec: Mapping[str, Any], ks: tuple[int, ...] = (10, 20)):
    """Train (or reuse) the generator of one task spec on ``ds``; returns ``(ModelRun, recids, recid_path)``."""
    from ..generator import GeneratorConfig
    from ..tokenizer import GraphRQVAEConfig
    recids, path, _ = load_or_derive_recids(ds, GraphRQVAEConfig.from_dict(dict(spec.get("recid", {}))),
                                            spec.get("method", "graph_rqvae"), spec.get("collision"),
                                            runs_dir=spec["runs_dir"])
    loop = LoopConfig(**{"progress": False, **dict(spec.get("loop", {}))})
    run = run_generator(ds, recids, GeneratorConfig.from_dict(dict(spec.get("generator", {}))), loop,
                        runs_dir=spec["runs_dir"], ks=ks)
    return run, recids, path


def ablation_key(spec: Mapping[str, Any], dataset: RecDataset) -> str:
    """What a seed-run ledger knows a variant's run by without its Rec-IDs (``ablation_key`` of its line): the
    dataset (:func:`~mmgrec_lib.experiments.runs.dataset_key`), the task spec but its folder and devices, and the
    generator's ``TRAINING_VERSION``; the generator's settings without the fields added after runs existed while
    they hold their original defaults (``LATER_DEFAULTS``, as in its run key), so adding an option keeps the key.
    (The run's own key, its checkpoint's name, hashes the Rec-ID run's config, which for HK-Means or ID w/o exists
    only once those Rec-IDs are derived.)"""
    return ablation_keys(spec, dataset)[0]


def ablation_keys(spec: Mapping[str, Any], dataset: RecDataset) -> list[str]:
    """:func:`ablation_key` first, then the keys that lines recorded by older code give the same variant: until
    2026-12-05 the key hashed every generator field that existed when the line was written, later-added ones at
    their defaults included, so each older key keeps the later-added fields that existed then (in the order they
    were added: ``LATER_DEFAULTS``) and drops the newer ones (only while those hold their defaults)."""
    from ..generator.config import LATER_DEFAULTS
    from ..generator.training import TRAINING_VERSION

    def plain(part: Any) -> Any:
        return {k: plain(v) for k, v in part.items() if k != "device"} if isinstance(part, Mapping) else part

    def key(generator: Mapping[str, Any]) -> str:
        what = plain({**{k: v for k, v in spec.items() if k not in ("runs_dir", "ks")}, "generator": generator})
        return f"ablation_{dataset.name}_{run_key(dataset_key(dataset), what, TRAINING_VERSION)}"

    gen = dict(spec.get("generator", {}))
    at_default = {k for k, v in LATER_DEFAULTS.items() if k in gen and gen[k] == v}
    keys = [key({k: v for k, v in gen.items() if k not in at_default})]
    later = list(LATER_DEFAULTS)
    for start in range(len(later), 0, -1):               # the fields later[start:] did not exist yet
        newer = set(later[start:])
        if not (newer & set(gen)) - at_default:             # the newer fields all at their defaults
            older = key({k: v for k, v in gen.items() if k not in newer})
            if older not in keys:
                keys.append(older)
    return keys


#: what a seed-run ledger line of an ablation variant holds besides the recorded run's facts
ABLATION_FACTS = ("ablation_key", "variant", "unique_semantic_frac", "max_group_size")


def ablation_task(spec: dict) -> dict:
    """Train (or reuse) one variant (a spec of :func:`ablation_tasks`) and test it; returns its Rec-ID facts, its
    :func:`ablation_key`, ``checkpoint`` and ``run_key`` (the checkpoint's name) and the run's
    :func:`~mmgrec_lib.experiments.recorded.run_facts` (validation and test metrics, times, test hit masks), so the
    caller can record it in a ledger (a module-level function, so process pools can run it)."""
    from .recorded import run_facts
    ds = _dataset(spec)
    run, recids, path = _variant_run(ds, spec, tuple(spec.get("ks", (10, 20))))
    st = recids.stats
    return {"ablation_key": ablation_key(spec, ds), "recid_path": str(path),
            "unique_semantic_frac": st.get("unique_semantic_frac"), "max_group_size": st.get("max_group_size"),
            "checkpoint": str(run.checkpoint), "run_key": Path(run.checkpoint).stem, **run_facts(run)}


def _recorded_variant(book, spec: Mapping[str, Any], dataset: RecDataset) -> tuple[dict, Path] | None:
    """The line of ``book`` (a :class:`~mmgrec_lib.experiments.ledger.RunLedger` or ``None``) recording the run of
    ``spec`` and that run's checkpoint path, when the ledger has one and the checkpoint is missing (a fresh
    machine); else ``None`` (the run is trained or loaded)."""
    if book is None:
        return None
    keys = set(ablation_keys(spec, dataset))              # today's key and those of lines of older code
    for row in book.rows():
        if row.get("ablation_key") in keys:
            path = Path(spec["runs_dir"]) / f"{row['key']}.pt"
            return (None if path.exists() else (book.get(row["key"]), path))
    path = _own_run_path(spec, dataset)                   # a line another notebook recorded for the same run
    if path is not None and not path.exists() and path.stem in book:
        return book.get(path.stem), path
    return None


def _own_run_path(spec: Mapping[str, Any], dataset: RecDataset) -> Path | None:
    """The checkpoint path of a variant whose Rec-IDs are its Graph RQ-VAE run itself (no derived Rec-IDs, so
    the run key is known before anything trains: the full model, Emb w/o, the attention variants), as
    :func:`_variant_run` trains it; ``None`` for HK-Means, ID w/o or another collision token."""
    from ..generator import GeneratorConfig
    from ..tokenizer import GraphRQVAEConfig
    from .runs import generator_run_path
    recid = GraphRQVAEConfig.from_dict(dict(spec.get("recid", {})))
    if spec.get("method", "graph_rqvae") != "graph_rqvae" or spec.get("collision") not in (None, recid.collision):
        return None
    loop = LoopConfig(**{"progress": False, **dict(spec.get("loop", {}))})
    return generator_run_path(spec["runs_dir"], dataset, recid.to_dict(),
                              GeneratorConfig.from_dict(dict(spec.get("generator", {}))), loop)


def _pretrain_recids(specs: Sequence[Mapping[str, Any]], executor: Any, threads: int, progress: bool) -> None:
    """Train the distinct Graph RQ-VAE runs that ``specs`` need first (in parallel), so that tasks sharing one
    never train it twice side by side."""
    distinct: dict[str, Mapping[str, Any]] = {}
    for spec in specs:
        distinct.setdefault(_recid_key(dict(spec)), spec)
    if distinct:
        run_sweep(recid_task, {f"recid {i}": dict(s) for i, s in enumerate(distinct.values())}, executor, threads,
                  progress)


def sweep_ablations(tasks: Mapping[str, dict], executor: Any = "serial", threads: int = 1,
                    progress: bool = True, ledger=None) -> pd.DataFrame:
    """Train (or reuse) every variant of ``tasks`` through :func:`~mmgrec_lib.experiments.sweep.run_sweep`:
    the Graph RQ-VAE runs first, then one :func:`ablation_task` per distinct spec. One row per variant, in the
    order of ``tasks``; ``same_run_as`` names the first variant with identical settings (its run is shared);
    ``source``: ``run`` or ``ledger``.

    ``ledger``: a seed-run ledger path (:mod:`~mmgrec_lib.experiments.recorded`): a variant it records (by
    :func:`ablation_key`) whose checkpoint is missing is read from there (nothing trains for it, not even its
    Rec-IDs), and every variant that runs is recorded as it finishes, so notebook 05 can span sessions on fresh
    machines."""
    from .ledger import RunLedger
    from .recorded import FACT_FIELDS, same_realisation
    if not tasks:
        raise ValueError("sweep_ablations: no tasks")
    first: dict[str, str] = {}
    for name, spec in tasks.items():
        first.setdefault(_spec_key(spec), name)
    book = RunLedger(ledger) if ledger is not None else None
    by_name: dict[str, dict] = {}
    if book is not None:
        loaded: dict[str, RecDataset] = {}
        for name in first.values():
            spec = tasks[name]
            which = json.dumps([spec["dataset"], int(spec.get("seed", 0)), spec.get("dataset_kwargs", {})],
                               sort_keys=True)
            if which not in loaded:
                loaded[which] = _dataset(spec)
            found = _recorded_variant(book, spec, loaded[which])
            if found is not None:
                facts, path = found
                by_name[name] = {"task": name, "checkpoint": str(path), "run_key": path.stem, **facts,
                                 "source": "ledger"}

    def record(name: str, row: dict) -> None:
        if book is not None:
            book.record(row["run_key"], {k: v for k, v in row.items() if k in FACT_FIELDS or k.startswith("test_")})
            if same_realisation(book.get(row["run_key"]), row):   # not onto an older line of another path
                book.annotate(row["run_key"], {**{k: row.get(k) for k in ABLATION_FACTS}, "variant": name})

    todo = {name: tasks[name] for name in first.values() if name not in by_name}
    if todo:
        _pretrain_recids(list(todo.values()), executor, threads, progress)
        rows = run_sweep(ablation_task, todo, executor, threads, progress, on_result=record)
        by_name.update({r["task"]: {**r, "source": "run"} for r in rows.to_dict("records")})
    out = []
    for name, spec in tasks.items():
        shared = first[_spec_key(spec)]
        out.append({**by_name[shared], "task": name, "same_run_as": "" if shared == name else shared})
    out = pd.DataFrame(out)
    return out[["task", *[c for c in out.columns if c not in ("task", "test_hits")]]]


def ablation_runs(dataset: RecDataset, tasks: Mapping[str, dict], ks: tuple[int, ...] = (10, 20),
                  ledger=None) -> dict[str, ModelRun]:
    """Every variant's run in this process (reused by run key after :func:`sweep_ablations`; trained here
    otherwise) with its per-user test results. Variants with identical specs share one :class:`ModelRun`.
    ``ledger``: as in :func:`sweep_ablations`; a recorded variant whose checkpoint is missing stands in from its
    line (:func:`~mmgrec_lib.experiments.recorded.recorded_run`: its per-user test metrics, no model)."""
    from .ledger import RunLedger
    from .recorded import recorded_run
    book = RunLedger(ledger) if ledger is not None else None
    runs: dict[str, ModelRun] = {}
    by_key: dict[str, ModelRun] = {}
    for name, spec in tasks.items():
        key = _spec_key(spec)
        if key not in by_key:
            found = _recorded_variant(book, spec, dataset)
            if found is not None:
                facts, path = found
                by_key[key] = recorded_run(facts, dataset, path, where=f"run ledger {book.path}, run {path.stem}")
            else:
                by_key[key] = _variant_run(dataset, spec, ks)[0]
        runs[name] = by_key[key]
    return runs


def paper_numbers(variant: str, dataset: str) -> tuple[float, float]:
    """The paper's ``(R@10, N@10)`` for ``variant`` on the paper's column quoted for ``dataset``
    (:data:`PAPER_DATASETS`); ``(nan, nan)`` when the paper has none."""
    column = PAPER_DATASETS.get(dataset)
    return PAPER_ABLATIONS.get(variant, {}).get(column, (math.nan, math.nan))


def ablation_table(variants: Sequence[Variant], runs: Mapping[str, ModelRun], dataset: str,
                   reference: str = "full") -> pd.DataFrame:
    """One row per variant (the schema :data:`ABLATION_COLUMNS`): test Recall/NDCG@10 and @20, the two-sided
    Wilcoxon p of the per-user test Recall@10 / NDCG@10 against the run of ``reference`` (NaN on the rows that
    are that run), and the paper's numbers for the variant on the paper's column for ``dataset`` (NaN when the
    paper has none)."""
    if reference not in runs:
        raise ValueError(f"the reference variant {reference!r} has no run; runs: {list(runs)}")
    missing = [v.name for v in variants if v.name not in runs]
    if missing:
        raise ValueError(f"variants without a run: {missing}")
    ref = runs[reference]
    rows = []
    for v in variants:
        run = runs[v.name]
        means = run.test.mean()
        is_ref = run is ref
        row = {"dataset": dataset, "table": v.table, "variant": v.name, "note": v.note,
               **{m: means.get(m, math.nan) for m in TABLE_METRICS}}
        row.update({f"p_{m}": math.nan if is_ref else paired_test(ref.test, run.test, m)["p_wilcoxon"]
                    for m in P_METRICS})
        row["paper_recall@10"], row["paper_ndcg@10"] = paper_numbers(v.name, dataset)
        rows.append(row)
    return pd.DataFrame(rows, columns=ABLATION_COLUMNS)


def ablation_reading(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Each variant of :func:`ablation_table` (full-model rows left out) next to the paper's claim for it: the
    differences to the full model on test Recall@10 / NDCG@10, their p-values, and ``below_full``: the variant is
    below the full model on both metrics with at least one difference significant at ``alpha`` (what the paper
    claims for every variant)."""
    full = table[table["p_recall@10"].isna()]
    if full.empty:
        raise ValueError("the table has no full-model row (p-values NaN)")
    ref = full.iloc[0]
    rows = []
    for row in table[table["p_recall@10"].notna()].to_dict("records"):
        d = {m: row[m] - ref[m] for m in P_METRICS}
        below = all(v < 0 for v in d.values()) and min(row[f"p_{m}"] for m in P_METRICS) < alpha
        above = all(v > 0 for v in d.values()) and min(row[f"p_{m}"] for m in P_METRICS) < alpha
        rows.append({"table": row["table"], "variant": row["variant"],
                     "paper_claim": PAPER_CLAIMS.get(row["variant"], ""),
                     **{f"{m} - full": d[m] for m in P_METRICS}, **{f"p_{m}": row[f"p_{m}"] for m in P_METRICS},
                     "ours": ("below the full model" if below else "above the full model" if above
                              else f"mixed, or not significant at alpha {alpha:g}"),
                     "below_full": bool(below)})
    return pd.DataFrame(rows)


def ablation_plot(table: pd.DataFrame, dataset: str = "",
                  metrics: Sequence[str] = TABLE_METRICS):
    """One panel per paper table: the test metrics of its variants as grouped bars (one group per metric), the
    full model as a dashed reference line over each group. ``table``: :func:`ablation_table` (the full model: the
    rows whose p-values are NaN) or :func:`ablation_seed_table` (the rows ``ours`` calls the full model; the bars
    are means over the seeds with their std as error bars, and the full model's std as a grey band)."""
    import matplotlib.pyplot as plt
    import numpy as np

    over_seeds = "ours" in table.columns
    is_full = (table["ours"] == FULL_MODEL_ROW) if over_seeds else table[f"p_{P_METRICS[0]}"].isna()
    tables = list(dict.fromkeys(table["table"]))
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables), 3.8), layout="constrained", squeeze=False)
    x = np.arange(len(metrics))
    for ax, t in zip(axes[0], tables):
        in_t = table["table"] == t
        full, others = table[in_t & is_full], table[in_t & ~is_full]
        width = 0.8 / max(len(others), 1)
        for k, row in enumerate(others.to_dict("records")):
            err = [row[f"{m}_std"] for m in metrics] if over_seeds else None
            ax.bar(x - 0.4 + width * (k + 0.5), [row[m] for m in metrics], width, yerr=err, capsize=2,
                   label=row["variant"], color=f"C{k}")
        if len(full):
            ref = full.iloc[0]
            label = "full model" if ref["variant"] == "full" else f"{ref['variant']} (= full model)"
            ax.hlines([ref[m] for m in metrics], x - 0.45, x + 0.45, colors="k", linestyles="--", label=label)
            if over_seeds:
                for j, (xi, m) in enumerate(zip(x, metrics)):
                    ax.fill_between([xi - 0.45, xi + 0.45], ref[m] - ref[f"{m}_std"], ref[m] + ref[f"{m}_std"],
                                    color="0.5", alpha=0.25, linewidth=0, label="full model ± std" if j == 0 else None)
        ax.set_xticks(x, list(metrics))
        ax.set(xlabel="test metric", ylabel="test Recall@K / NDCG@K",
               title=f"Table {t}" + (f": {TABLE_TOPICS[t]}" if t in TABLE_TOPICS else ""))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False, fontsize=8, ncol=2)
    title = f"{dataset}: ablations against the full model" if dataset else "ablations against the full model"
    if over_seeds:
        title += f" (mean ± std over {int(table['n_seeds'].max())} seeds)"
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------- over several seeds
def seed_ablation_tasks(dataset: str, seeds: Sequence[int], recid_base, gen_base, loop: LoopConfig,
                        variants: Sequence[Variant], runs_dir,
                        dataset_kwargs: Mapping[str, Any] | None = None) -> dict[int, dict[str, dict]]:
    """Seed -> :func:`ablation_tasks` with that seed as the split's, the Graph RQ-VAE's and the generator's seed
    (``recid_base`` and ``gen_base`` otherwise unchanged; datasets with a fixed split, e.g. TikTok, vary the
    training only). The seed that built ``recid_base`` / ``gen_base`` gives the same tasks as
    :func:`ablation_tasks` on them, so its finished runs are reused."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seed_ablation_tasks: need distinct seeds, got {seeds}")
    return {s: ablation_tasks(dataset, s, dataclasses.replace(recid_base, seed=s), gen_base.replace(seed=s), loop,
                              variants, runs_dir, dataset_kwargs) for s in seeds}


def ablation_seed_table(variants: Sequence[Variant], per_seed: Mapping[int, Mapping[str, ModelRun]], dataset: str,
                        reference: str = "full") -> pd.DataFrame:
    """Tables 3-5 over several seeds: one row per variant (the schema :data:`ABLATION_SEED_COLUMNS`).

    ``per_seed``: seed -> {variant name -> run} (:func:`ablation_runs` of that seed's tasks), every seed holding
    every variant of ``variants`` and ``reference``. Per variant: ``n_seeds``, each test metric's mean over the
    seeds and sample std (``<metric>_std``, NaN with one seed); against the reference of the same seed
    (:func:`~mmgrec_lib.experiments.ladder.seed_table`), for Recall@10 and NDCG@10, ``p_<metric>_seeds`` (paired
    t-test of the per-seed means across seeds) and ``p_<metric>_users_max`` (the largest per-seed two-sided
    Wilcoxon p over test users: below 0.05 when every seed alone is significant); ``seeds_below`` /
    ``seeds_above``: the seeds on which the variant is below / above the reference on both metrics; ``ours``:
    the verdict in words. Rows whose run is the reference's on every seed (the full model once per table) have
    NaN p-values and counts."""
    from .ladder import seed_table
    seeds = sorted(int(s) for s in per_seed)
    if not seeds:
        raise ValueError("ablation_seed_table: no seeds")
    names = [v.name for v in variants]
    for s in seeds:
        missing = [n for n in dict.fromkeys([reference, *names]) if n not in per_seed[s]]
        if missing:
            raise ValueError(f"seed {s} has no run for {missing} (reference {reference!r})")
    ordered = {s: {n: per_seed[s][n] for n in dict.fromkeys([reference, *names])} for s in seeds}
    summary = seed_table(ordered, reference=reference, metrics=TABLE_METRICS).set_index("model")
    rows = []
    for v in variants:
        row: dict[str, Any] = {"dataset": dataset, "table": v.table, "variant": v.name, "note": v.note,
                               "n_seeds": len(seeds)}
        for m in TABLE_METRICS:
            row[m], row[f"{m}_std"] = summary.loc[v.name, f"{m}_mean"], summary.loc[v.name, f"{m}_std"]
        if all(ordered[s][v.name] is ordered[s][reference] for s in seeds):
            row.update({f"p_{m}_{k}": math.nan for m in P_METRICS for k in ("seeds", "users_max")})
            row.update({"seeds_below": math.nan, "seeds_above": math.nan, "ours": FULL_MODEL_ROW})
            rows.append(row)
            continue
        row.update({f"p_{m}_{k}": summary.loc[v.name, f"p_{m}_{k}"] for m in P_METRICS for k in ("seeds", "users_max")})
        diffs = [[ordered[s][v.name].test[m] - ordered[s][reference].test[m] for m in P_METRICS] for s in seeds]
        below = sum(all(d < 0 for d in ds) for ds in diffs)
        above = sum(all(d > 0 for d in ds) for ds in diffs)
        row.update({"seeds_below": below, "seeds_above": above,
                    "ours": ("below the full model on every seed" if below == len(seeds)
                             else "above the full model on every seed" if above == len(seeds)
                             else f"mixed: below on {below}, above on {above} of {len(seeds)} seeds")})
        rows.append(row)
    table = pd.DataFrame(rows, columns=ABLATION_SEED_COLUMNS)
    return table.astype({"seeds_below": "Int64", "seeds_above": "Int64"})   # counts; <NA> on the full model's rows


# ---------------------------------------------------------------------- layers and heads
def hyper_tasks(sweep: str, values: Sequence[int], fixed: int, mmgrec: Mapping[str, Any],
                baseline: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """Tasks of one sweep: ``"layers"`` (``n_layers`` = each value, ``n_heads`` = ``fixed``) or ``"heads"``
    (``n_heads`` = each value, ``n_layers`` = ``fixed``), for MMGRec (``mmgrec``: a :func:`generator_spec`) and,
    at the same settings, the baseline (``baseline``: a :func:`baseline_spec`, or ``None``). Every config is
    built once here, so a bad value (heads not dividing the width) fails before anything trains."""
    from ..baselines import BASELINES
    from ..generator import GeneratorConfig
    if sweep not in HYPER_FIELDS:
        raise ValueError(f"unknown sweep {sweep!r}; expected one of {list(HYPER_FIELDS)}")
    if not values or len(set(values)) != len(values):
        raise ValueError(f"sweep {sweep!r}: values must be non-empty and distinct, got {list(values)}")
    other = "heads" if sweep == "layers" else "layers"
    tasks = {}
    for v in values:
        settings = {HYPER_FIELDS[sweep]: int(v), HYPER_FIELDS[other]: int(fixed)}
        meta = {"sweep": sweep, "value": int(v), "fixed": int(fixed)}
        gen = {**dict(mmgrec["generator"]), **settings}
        GeneratorConfig.from_dict(gen)
        tasks[f"mmgrec {sweep}={v}"] = {**dict(mmgrec), "generator": gen, "model": "mmgrec", **meta}
        if baseline is not None:
            cfg = {**dict(baseline["config"]), **settings}
            BASELINES[baseline["model"]].config_class(**cfg)
            tasks[f"{baseline['model']} {sweep}={v}"] = {**dict(baseline), "config": cfg, **meta}
    return tasks


def hyper_task(spec: dict) -> dict:
    """One point of a sweep: MMGRec or the baseline trained (or loaded) and tested
    (:func:`~mmgrec_lib.experiments.overall.overall_task`); returns the point, its metrics and its run facts."""
    from .overall import overall_task
    return {"sweep": spec["sweep"], "value": spec["value"], "fixed": spec["fixed"], **overall_task(spec)}


def sweep_hyper(tasks: Mapping[str, dict], executor: Any = "serial", threads: int = 1,
                progress: bool = True, ledger=None) -> pd.DataFrame:
    """Run the tasks of :func:`hyper_tasks` (the Graph RQ-VAE runs of the MMGRec tasks first); one row per
    task, in order, with the validation (``val_recall@10``, the best epoch's) and test metrics, and ``source``
    (``run`` or ``ledger``).

    ``ledger``: a run-ledger path (:mod:`~mmgrec_lib.experiments.recorded`): a task whose checkpoint is missing
    but which the ledger records is read from there (nothing trains for it, not even its Rec-IDs), and every
    task that runs is recorded as it finishes, so a sweep spanning sessions on fresh machines goes on where it
    stopped."""
    from ..data import load_dataset
    from .ledger import RunLedger
    from .overall import task_checkpoint
    from .recorded import FACT_FIELDS
    if not tasks:
        raise ValueError("sweep_hyper: no tasks")
    book = RunLedger(ledger) if ledger is not None else None
    rows: dict[str, dict] = {}
    if book is not None:
        loaded: dict[str, RecDataset] = {}
        for name, spec in tasks.items():
            which = json.dumps([spec["dataset"], int(spec.get("seed", 0)), spec.get("dataset_kwargs", {})],
                               sort_keys=True)
            if which not in loaded:
                loaded[which] = load_dataset(spec["dataset"], seed=int(spec.get("seed", 0)),
                                             **dict(spec.get("dataset_kwargs", {})))
            path = task_checkpoint(spec, loaded[which])
            facts = None if path.exists() else book.get(path.stem)
            if facts is not None:
                rows[name] = {"sweep": spec["sweep"], "value": spec["value"], "fixed": spec["fixed"],
                              "seed": int(spec.get("seed", 0)), "checkpoint": str(path), "run_key": path.stem,
                              **facts, "source": "ledger"}

    def record(name: str, row: dict) -> None:
        if book is not None:
            book.record(row["run_key"], {k: v for k, v in row.items() if k in FACT_FIELDS or k.startswith("test_")})

    todo = {name: dict(spec) for name, spec in tasks.items() if name not in rows}
    if todo:
        _pretrain_recids([s for s in todo.values() if s["model"] == "mmgrec"], executor, threads, progress)
        swept = run_sweep(hyper_task, todo, executor, threads, progress, on_result=record)
        for row in swept.to_dict("records"):
            rows[row["task"]] = {**row, "source": "run"}
    out = pd.DataFrame([{**{k: v for k, v in rows[name].items() if k != "task"}, "task": name} for name in tasks])
    return out[["task", *[c for c in out.columns if c not in ("task", "test_hits")]]]


def choose_value(rows: pd.DataFrame, sweep: str, model: str = "mmgrec", score: str = "val_recall@10") -> int:
    """The value of ``sweep`` with the best ``score`` (validation) for ``model``; the first in the rows' order
    among ties (with ascending values: the smaller model)."""
    part = rows[(rows["sweep"] == sweep) & (rows["model"] == model)]
    if part.empty:
        raise ValueError(f"no {model} rows for sweep {sweep!r}")
    scores = pd.to_numeric(part[score], errors="coerce")
    if scores.isna().all():
        raise ValueError(f"{model} sweep {sweep!r}: no {score} to choose on")
    return int(part.loc[scores.idxmax(), "value"])


def hyper_table(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The rows of :func:`sweep_hyper` (one or more sweeps) in the schema :data:`HYPER_COLUMNS`: test Recall@10
    and NDCG@10, and the best validation Recall@10 of each (sweep, value, model)."""
    out = pd.DataFrame({"dataset": dataset, "sweep": rows["sweep"], "value": rows["value"].astype(int),
                        "fixed": rows["fixed"].astype(int), "model": rows["model"],
                        "recall@10": rows["test_recall@10"], "ndcg@10": rows["test_ndcg@10"],
                        "best_val_recall@10": rows["val_recall@10"]})
    return out[HYPER_COLUMNS].reset_index(drop=True)


def hyper_reading(table: pd.DataFrame, model: str = "mmgrec") -> pd.DataFrame:
    """Per sweep of :func:`hyper_table`: the value ``model`` validates best at, and against every other model
    (the baseline) at how many of the swept values ``model`` has the higher test Recall@10, next to the
    paper's claim (:data:`PAPER_HYPER_CLAIMS`)."""
    rows = []
    for sweep, part in table.groupby("sweep", sort=False):
        ours = part[part["model"] == model].set_index("value")
        best = int(ours["best_val_recall@10"].idxmax()) if len(ours) else None
        row = {"sweep": sweep, "values": ", ".join(str(v) for v in ours.index), "fixed": ", ".join(
               str(v) for v in sorted(set(ours["fixed"]))), f"{model}_best_val_value": best,
               "paper_claim": PAPER_HYPER_CLAIMS.get(sweep, "")}
        for other, theirs in part[part["model"] != model].groupby("model", sort=False):
            theirs = theirs.set_index("value")
            common = ours.index.intersection(theirs.index)
            wins = int((ours.loc[common, "recall@10"] > theirs.loc[common, "recall@10"]).sum())
            row[f"{model}_above_{other}"] = f"{wins} of {len(common)}"
        rows.append(row)
    return pd.DataFrame(rows)


def hyper_plot(table: pd.DataFrame, dataset: str = "", metric: str = "recall@10"):
    """The paper's Fig. 4: test ``metric`` against the number of layers (left) and of heads (right), one line
    per model; each panel's title gives the other setting's fixed value."""
    import matplotlib.pyplot as plt

    sweeps = [s for s in ("layers", "heads") if s in set(table["sweep"])]
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 3.8), layout="constrained", squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        part = table[table["sweep"] == sweep]
        for k, (model, rows) in enumerate(part.groupby("model", sort=False)):
            rows = rows.sort_values("value")
            ax.plot(rows["value"], rows[metric], marker="o", color=f"C{k}", label=model)
        values = sorted(set(part["value"]))
        if sweep == "heads":
            ax.set_xscale("log", base=2)
        ax.set_xticks(values, [str(v) for v in values])
        ax.minorticks_off()
        fixed = part.groupby("model", sort=False)["fixed"].first()
        other = "heads" if sweep == "layers" else "layers"
        title = (f"{other} = {fixed.iloc[0]}" if fixed.nunique() == 1
                 else f"{other}: " + ", ".join(f"{m} {f}" for m, f in fixed.items()))
        ax.set(xlabel=f"number of {sweep}", ylabel=f"test {metric}", title=title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(f"{dataset}: effect of layer and head numbers" if dataset else "effect of layer and head numbers")
    return fig


__all__ = ["ABLATIONS", "ABLATION_COLUMNS", "HYPER_COLUMNS", "PAPER_ABLATIONS", "PAPER_CLAIMS", "PAPER_DATASETS",
           "PAPER_HYPER_CLAIMS", "Variant", "ablation_keys", "ablation_plot", "ablation_reading", "ablation_runs",
           "ablation_table", "ablation_task", "ablation_tasks", "baseline_spec", "choose_value", "derive_recids",
           "derived_recid_path", "generator_spec", "hyper_plot", "hyper_reading", "hyper_table", "hyper_task",
           "hyper_tasks", "load_or_derive_recids", "paper_numbers", "select_variants", "skip_reason",
           "sweep_ablations", "sweep_hyper", "variant_configs"]
