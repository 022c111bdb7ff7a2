r"""Not the paper's method: MMGRec distilled from an external teacher, and the generative + dense hybrid on top,
over split seeds (notebook 11).

Three configurations per seed, each against the teacher baseline itself (e.g. the tuned LightGCN):

* ``mmgrec``: MMGRec's best configuration of the time (notebook 04's rung), as a reference;
* ``mmgrec_teacher``: the same generator distilled from the teacher's ranking instead of its own first stage
  (``TrainConfig.distill_teacher``, :mod:`~mmgrec_lib.experiments.teachers`); the teacher run is the reference
  baseline's run of the same seed;
* ``hybrid``: ``mmgrec_teacher``'s beam re-ranked with the teacher's dot product
  (:mod:`~mmgrec_lib.experiments.hybrid`): per user, :math:`s_{ui} = (1-w)\,z(\ell_{ui}) + w\,z(\mathbf{t}_u
  \mathbf{t}_i^\top)` over the beam's candidates, with the beam width and ``w`` chosen on validation
  (:func:`hybrid_run`). The hybrid never adds an item the beam did not find; ``w = 1`` is the teacher's order
  of the beam's candidates.

Every run is keyed and recorded in the seed-run ledger (:mod:`~mmgrec_lib.experiments.recorded`), the hybrid
too (its test hit masks and chosen beam and weight under ``<generator run key>_hybrid_<key>``), so the study
spans sessions on fresh machines. Each run's test top-10 list coverage (the share of the catalogue recommended;
:func:`~mmgrec_lib.experiments.recorded.list_coverage`) is kept in ``run.test.extra["coverage@10"]`` and added to
its ledger line. :func:`~mmgrec_lib.experiments.ladder.seed_table` (``extras=("coverage@10",)``) then gives mean ±
std over seeds with p-values against the teacher.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..data.dataset import RecDataset
from ..training.loop import LoopConfig
from .runs import ModelRun, run_key

#: the models of a teacher study per seed, in table order (the teacher baseline follows under its own name)
STUDY_MODELS = ("mmgrec", "mmgrec_teacher", "hybrid")


def teacher_generator_config(gen_config, teacher: str, teacher_config: Mapping[str, Any], teacher_loop: LoopConfig,
                             weight: float, temperature: float):
    """``gen_config`` distilled (``weight``, ``temperature``) from baseline ``teacher`` with config fields
    ``teacher_config`` trained under ``teacher_loop`` (the reference baseline's run of the generator's seed)."""
    from .teachers import TEACHER_LOOP_FIELDS
    if not weight > 0:
        raise ValueError(f"teacher study: the distillation weight must be > 0, got {weight}")
    loop = {f: getattr(teacher_loop, f) for f in TEACHER_LOOP_FIELDS}
    return gen_config.replace(distill_weight=float(weight), distill_temperature=float(temperature),
                              distill_teacher={"model": teacher, "config": dict(teacher_config), "loop": loop})


def hybrid_path(run: ModelRun, beams: Sequence[int], weights: Sequence[float]) -> Path:
    """The run key of :func:`hybrid_run` on ``run`` (no file is written there: it names the ledger line)."""
    if run.checkpoint is None:
        raise ValueError(f"run {run.name!r} has no checkpoint path, so its hybrid has no run key")
    key = run_key("teacher", sorted(int(b) for b in beams), sorted(float(w) for w in weights))
    path = Path(run.checkpoint)
    return path.with_name(f"{path.stem}_hybrid_{key}.pt")


def _check_choices(beams: Sequence[int], weights: Sequence[float], ks: Sequence[int]) -> None:
    if not beams or any(int(b) < max(ks) for b in beams):
        raise ValueError(f"hybrid: beams must be non-empty and each >= the largest k ({max(ks)}), got {list(beams)}")
    if not weights or any(not 0.0 <= float(w) <= 1.0 for w in weights):
        raise ValueError(f"hybrid: weights must be non-empty and within [0, 1], got {list(weights)}")


def hybrid_run(dataset: RecDataset, run: ModelRun, beams: Sequence[int] = (20, 40, 80),
               weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), ks: tuple[int, ...] = (10, 20),
               ledger=None) -> tuple[ModelRun, pd.DataFrame | None]:
    """``run``'s beam (a generator distilled from an external teacher) re-ranked with the teacher's vectors, the
    ``(beam, w)`` pair with the best validation Recall@10 chosen (ties: the smaller beam, then the smaller ``w``)
    and read once on test.

    Returns a :class:`ModelRun` named ``"hybrid"`` (``model`` ``None``; ``fit`` is ``run``'s with the hybrid's
    validation score; ``checkpoint``: :func:`hybrid_path`) and the validation table (one row per pair, the chosen
    one marked), or ``None`` when ``ledger`` (a seed-run ledger path) already records the hybrid: then it stands
    in from there. A hybrid computed here is recorded there, with ``hybrid_beam`` and ``hybrid_weight``."""
    from .hybrid import hybrid_evaluate
    from .ledger import RunLedger
    from .recorded import recall, run_facts
    _check_choices(beams, weights, ks)
    book = RunLedger(ledger) if ledger is not None else None
    path = hybrid_path(run, beams, weights)
    found = recall(book, path, dataset)
    if found is not None:
        return found, None
    model = run.model
    if model is None or "teacher_items" not in getattr(model, "_buffers", {}):
        raise ValueError(f"hybrid of {Path(run.checkpoint).name}: needs the trained generator with its teacher "
                         "vectors (a run distilled from an external teacher, loaded or trained, not a ledger stand-in)")
    users, items = model.teacher_users.cpu(), model.teacher_items.cpu()
    rows = []
    for beam in sorted(int(b) for b in beams):
        for w, result in hybrid_evaluate(model, users, items, dataset, "val", weights, ks, beam).items():
            rows.append({"beam": beam, "weight": w, **{f"val_{m}": v for m, v in result.mean().items()}})
    table = pd.DataFrame(rows)
    best = table["val_recall@10"].max()
    pick = table[table["val_recall@10"] == best].sort_values(["beam", "weight"]).iloc[0]
    beam, w = int(pick["beam"]), float(pick["weight"])
    table["chosen"] = (table["beam"] == beam) & (table["weight"] == w)
    test = hybrid_evaluate(model, users, items, dataset, "test", [w], ks, beam)[w]
    test.name = "hybrid"
    fit = dataclasses.replace(run.fit, best_score=float(best))
    hybrid = ModelRun("hybrid", None, fit, test, run.train_seconds, path)
    if book is not None:
        book.record(path.stem, {**run_facts(hybrid), "hybrid_beam": beam, "hybrid_weight": w,
                                "hybrid_of": Path(run.checkpoint).stem})
    return hybrid, table


def teacher_study(dataset: str, seeds: Sequence[int], recid_config, gen_config, loop: LoopConfig,
                  baseline_loop: LoopConfig, teacher: str, teacher_config: Mapping[str, Any], weight: float,
                  temperature: float, beams: Sequence[int] = (20, 40, 80),
                  weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), runs_dir=None, ledger=None,
                  ks: tuple[int, ...] = (10, 20), coverage: bool = True
                  ) -> tuple[dict[int, dict[str, ModelRun]], pd.DataFrame]:
    """Every seed's runs (see the module docstring): seed -> {``mmgrec``, ``mmgrec_teacher``, ``hybrid``,
    ``teacher``} (keyed and reused as :func:`~mmgrec_lib.experiments.ladder.seed_runs` does, recorded in
    ``ledger``), and one row per seed with the hybrid's chosen beam and weight and its validation Recall@10.

    A distilled run read back from the ledger whose hybrid the ledger lacks (a study interrupted between the two)
    is trained again for its model. ``coverage``: put each run's test top-10 list coverage in
    ``run.test.extra["coverage@10"]`` (from the ledger, else computed from the model and recorded; NaN for a ledger
    stand-in recorded without it)."""
    from ..data import load_dataset
    from .ladder import seed_runs
    from .ledger import RunLedger
    from .runs import load_or_assign_recids, run_generator
    from .teachers import teacher_spec
    if not seeds:
        raise ValueError("teacher_study: no seeds")
    if ledger is not None and runs_dir is None:
        raise ValueError("teacher_study: a ledger needs runs_dir (its runs are keyed by their checkpoints' names)")
    _check_choices(beams, weights, ks)
    teacher_spec(teacher, teacher_config)                               # an unknown teacher or field raises here
    distilled_config = teacher_generator_config(gen_config, teacher, teacher_config, baseline_loop, weight,
                                                temperature)
    base = seed_runs(dataset, seeds, recid_config, gen_config, loop, baseline_loop, {teacher: teacher_config},
                     runs_dir, baselines=(teacher,), ks=ks, ledger=ledger)
    distilled = seed_runs(dataset, seeds, recid_config, distilled_config, loop, baseline_loop, None, runs_dir,
                          baselines=(), ks=ks, ledger=ledger)
    book = RunLedger(ledger) if ledger is not None else None
    per_seed: dict[int, dict[str, ModelRun]] = {}
    chosen = []
    for seed in seeds:
        seed = int(seed)
        ds = load_dataset(dataset, seed=seed)
        run = distilled[seed]["mmgrec"]
        if run.model is None and (book is None or hybrid_path(run, beams, weights).stem not in book):
            rc = dataclasses.replace(recid_config, seed=seed)                # the stand-in's model: train it again
            recids, _, _ = load_or_assign_recids(ds, rc, runs_dir=runs_dir, progress=False)
            run = run_generator(ds, recids, distilled_config.replace(seed=seed), loop, runs_dir=runs_dir, ks=ks)
        hybrid, table = hybrid_run(ds, run, beams, weights, ks, ledger)
        if table is not None:
            pick = table[table["chosen"]].iloc[0]
            beam, w = int(pick["beam"]), float(pick["weight"])
        else:
            facts = RunLedger(ledger).get(Path(hybrid.checkpoint).stem)
            beam, w = int(facts["hybrid_beam"]), float(facts["hybrid_weight"])
        chosen.append({"seed": seed, "hybrid_beam": beam, "hybrid_weight": w,
                       "val_recall@10": hybrid.fit.best_score,
                       "mmgrec_teacher_val_recall@10": distilled[seed]["mmgrec"].fit.best_score})
        per_seed[seed] = {"mmgrec": base[seed]["mmgrec"], "mmgrec_teacher": distilled[seed]["mmgrec"],
                          "hybrid": hybrid, teacher: base[seed][teacher]}
        if coverage:
            _add_coverage(per_seed[seed], ds, run, book, beam, w, ks, gen_config.train.beam_width)
    return per_seed, pd.DataFrame(chosen)


def _add_coverage(runs: dict[str, ModelRun], dataset: RecDataset, distilled: ModelRun, book, beam: int, w: float,
                  ks: tuple[int, ...], beam_width: int) -> None:
    """``run.test.extra["coverage@10"]`` for every run of one seed (:func:`~.recorded.list_coverage`). The hybrid's
    lists come from its own test pass when it ran here, else from the distilled generator ``distilled`` (when its
    model is at hand) with the recorded beam and weight."""
    from .hybrid import hybrid_evaluate
    from .recorded import list_coverage
    for name, run in runs.items():
        lists = None
        if name == "hybrid" and "lists" not in run.test.extra and distilled.model is not None:
            known = book.get(Path(run.checkpoint).stem) if book is not None else None
            if known is None or known.get("test_coverage@10") is None:
                model = distilled.model
                lists = hybrid_evaluate(model, model.teacher_users.cpu(), model.teacher_items.cpu(), dataset, "test",
                                        [w], ks, beam)[w].extra["lists"]
        run.test.extra["coverage@10"] = list_coverage(run, dataset, book, 10, beam_width, lists)


__all__ = ["STUDY_MODELS", "hybrid_path", "hybrid_run", "teacher_generator_config", "teacher_study"]
