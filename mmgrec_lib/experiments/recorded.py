"""Finished runs with their per-user test results in a committed ledger: multi-seed studies outlive the machine.

Notebook 04 trains every baseline and MMGRec for three split seeds, about a day of one-core training per
dataset: more than one session, and a new session may start on a fresh machine without ``runs/``. Notebook
10's :class:`~mmgrec_lib.experiments.ledger.RunLedger` lines keep a run's means, but the paired tests of the
overall comparison need every test user's metrics. A line written here keeps them exactly and compactly as
each test user's *hit mask* (bit ``r`` set when rank ``r`` of the user's top-``K`` list is one of the user's
test items): with the dataset's held-out counts, :func:`~mmgrec_lib.evaluation.result_from_hits` gives back
the per-user metrics of :func:`~mmgrec_lib.evaluation.evaluate` bit for bit. That is 4 bytes per test user
before compression (ml100k: about 2 kB per run).

* :func:`run_facts`: the line for a finished :class:`~mmgrec_lib.experiments.runs.ModelRun`;
* :func:`recorded_run`: a stand-in ``ModelRun`` from a line (no model: ``model`` is ``None``), checked against
  the dataset (its test users and the recorded means must match, else a ``ValueError`` names the run);
* :func:`recall` / :func:`remember`: look a run up by its checkpoint's name / record it, as
  :func:`~mmgrec_lib.experiments.ladder.seed_runs` does when given a ledger;
* :func:`list_coverage`: the share of the catalogue in a run's test top-``k`` lists, added to the run's line the
  first time it is computed from the model, so that a fresh machine reads it back.

A run whose checkpoint exists is always read from its checkpoint; the ledger stands in only for a missing one.
"""
from __future__ import annotations

import base64
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..data.dataset import RecDataset
from ..evaluation import result_from_hits
from ..training.loop import FitResult
from .ledger import RunLedger
from .runs import ModelRun

#: the fields of a recorded seed run (besides the ledger's ``key``, ``recorded``, ``commit`` and ``machine``)
FACT_FIELDS = ("model", "val_recall@10", "best_epoch", "epochs_run", "stopped_early", "train_seconds", "test_users",
               "ks", "test_hits")
#: a hit mask is one 32-bit word per user
MAX_K = 32


def encode_hits(hits: torch.Tensor) -> str:
    """``(U, K)`` bool hit masks (``K <= 32``) -> text: little-endian ``uint32`` words (bit ``r`` = rank ``r``),
    zlib-compressed, base64."""
    hits = torch.as_tensor(hits)
    if hits.dtype != torch.bool or hits.dim() != 2 or hits.shape[1] > MAX_K:
        raise ValueError(f"hits must be a bool (users, K) matrix with K <= {MAX_K}; got {hits.dtype} "
                         f"{tuple(hits.shape)}")
    weights = np.left_shift(np.uint64(1), np.arange(hits.shape[1], dtype=np.uint64))          # (K,)
    words = (hits.numpy().astype(np.uint64) * weights).sum(1).astype("<u4")                   # (U,)
    return base64.b64encode(zlib.compress(words.tobytes(), 9)).decode("ascii")


def decode_hits(text: str, n_users: int, k: int) -> torch.Tensor:
    """The inverse of :func:`encode_hits`: ``(n_users, k)`` bool."""
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"hit masks are not base64 of zlib data ({exc})") from None
    words = np.frombuffer(raw, dtype="<u4")
    if words.size != n_users:
        raise ValueError(f"hit masks hold {words.size} users, expected {n_users}")
    bits = (words[:, None].astype(np.uint64) >> np.arange(k, dtype=np.uint64)) & np.uint64(1)  # (U, k)
    if words.size and int(words.max()) >> k:
        raise ValueError(f"hit masks set ranks beyond {k}")
    return torch.from_numpy(bits.astype(bool))


def run_facts(run: ModelRun) -> dict[str, Any]:
    """The ledger line of a finished run: its validation score, best epoch, epochs run, whether it stopped early,
    training seconds, the test means (``test_<metric>``), and the test hit masks (``test_users``, ``ks``,
    ``test_hits``)."""
    hits = run.test.extra.get("hits")
    if hits is None:
        raise ValueError(f"run {run.name!r}: its test result has no hit masks (evaluate() keeps them in "
                         "extra['hits']; a result built otherwise cannot be recorded)")
    return {"model": run.name, "val_recall@10": run.fit.best_score, "best_epoch": run.fit.best_epoch,
            "epochs_run": len(run.fit.history), "stopped_early": bool(run.fit.stopped_early),
            "train_seconds": run.train_seconds, **{f"test_{k}": v for k, v in run.test.mean().items()},
            "test_users": int(hits.shape[0]), "ks": ",".join(str(k) for k in run.test.ks),
            "test_hits": encode_hits(hits)}


def recorded_run(facts: Mapping[str, Any], dataset: RecDataset, checkpoint: str | Path,
                 where: str = "run ledger") -> ModelRun:
    """A :class:`ModelRun` standing in for the finished run that ``facts`` (:func:`run_facts`, as read back from a
    ledger) records: its test result rebuilt on ``dataset`` and checked against the recorded means; ``fit`` has
    the recorded best epoch and score and one history row per epoch run (``resumed_from``: all of them, as for
    a run loaded from its checkpoint); ``model`` is ``None``. ``where`` names the ledger and key in errors."""
    missing = [f for f in FACT_FIELDS if facts.get(f) is None]
    if missing:
        raise ValueError(f"{where}: the line lacks {missing}, so it cannot stand in for the run (delete the line to "
                         "train the run again)")
    try:
        ks = tuple(int(k) for k in str(facts["ks"]).split(","))
    except ValueError:
        raise ValueError(f"{where}: ks {facts['ks']!r} is not a comma-separated list of cut-offs") from None
    n_users = int(np.count_nonzero(np.diff(dataset.split("test").indptr)))
    if int(facts["test_users"]) != n_users:
        raise ValueError(f"{where}: recorded for {facts['test_users']} test users, but {dataset.name} has "
                         f"{n_users}: not the same split (delete the line to train the run again)")
    try:
        hits = decode_hits(str(facts["test_hits"]), n_users, max(ks))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    test = result_from_hits(dataset, "test", hits, ks, name=str(facts["model"]))
    for metric, value in test.mean().items():
        want = facts.get(f"test_{metric}")
        if want is None or abs(value - float(want)) > 1e-9:
            raise ValueError(f"{where}: the hit masks give test {metric} {value:.6f} but the line records {want}: "
                             f"the split of {dataset.name} differs from the recorded run's")
    epochs = int(facts["epochs_run"])
    fit = FitResult(history=[{"epoch": e} for e in range(1, epochs + 1)], best_epoch=int(facts["best_epoch"]),
                    best_score=float(facts["val_recall@10"]), stopped_early=bool(facts["stopped_early"]),
                    resumed_from=epochs)
    return ModelRun(str(facts["model"]), None, fit, test, float(facts["train_seconds"]), Path(checkpoint))


def recall(book: RunLedger | None, checkpoint: str | Path, dataset: RecDataset) -> ModelRun | None:
    """The recorded stand-in for the run checkpointed at ``checkpoint`` when that file is missing and ``book``
    records it (by the file's stem), else ``None`` (the caller trains or loads the run)."""
    path = Path(checkpoint)
    if book is None or path.exists():
        return None
    facts = book.get(path.stem)
    if facts is None:
        return None
    return recorded_run(facts, dataset, path, where=f"run ledger {book.path}, run {path.stem}")


def same_realisation(line: Mapping[str, Any] | None, facts: Mapping[str, Any], tol: float = 1e-9) -> bool:
    """Whether the ledger ``line`` records the run whose :func:`run_facts` are ``facts``: the same best epoch and the
    same test means (``test_<metric>@<k>``, within ``tol``; a field either side lacks is not compared). The same run
    key trained again on another machine (or with other threads) can take another path, and a fact computed from
    that run (its list coverage, its Rec-ID statistics) must not be written onto the older line."""
    if line is None:
        return False
    if None not in (line.get("best_epoch"), facts.get("best_epoch")) and \
            int(line["best_epoch"]) != int(facts["best_epoch"]):
        return False
    for field, value in facts.items():
        known = line.get(field)
        if field.startswith("test_") and "@" in field and None not in (known, value) and \
                abs(float(known) - float(value)) > tol:
            return False
    return True


def records_run(facts: Mapping[str, Any] | None, run: ModelRun, tol: float = 1e-9) -> bool:
    """Whether the ledger line ``facts`` records this very ``run`` (:func:`same_realisation` with the run's best
    epoch and test means). A ledger stand-in (no model) is the line itself."""
    if facts is None:
        return False
    if run.model is None:
        return True
    return same_realisation(facts, {"best_epoch": run.fit.best_epoch,
                                    **{f"test_{m}": v for m, v in run.test.mean().items()}}, tol)


def remember(book: RunLedger | None, run: ModelRun) -> None:
    """Record the finished ``run`` in ``book`` under its checkpoint's name (a key already there keeps its line).

    Policy when the key was retrained and took another path (:func:`same_realisation` false; seen across CPU
    instruction sets before the entry points pinned them, :mod:`mmgrec_lib.numerics`): the first line stays. The
    tables committed from it (notebooks 04 and 06 read the ledger) stay reproducible on a fresh machine, and facts
    computed from the newer run are not written onto it (:func:`records_run`). A table built from the retrained
    checkpoint reports that run's own numbers."""
    if book is None or run.model is None:                  # nothing to do, or a stand-in read from the ledger
        return
    if run.checkpoint is None:
        raise ValueError(f"run {run.name!r} has no checkpoint path, so it has no run key to record it under")
    book.record(Path(run.checkpoint).stem, run_facts(run))


def list_coverage(run: ModelRun, dataset: RecDataset, book: RunLedger | None = None, k: int = 10,
                  beam_width: int = 20, lists: torch.Tensor | None = None) -> float:
    """The share of ``dataset``'s items in ``run``'s test top-``k`` lists (training and validation items excluded;
    :func:`~mmgrec_lib.evaluation.list_diagnostics`' ``coverage``), or NaN when it cannot be known.

    Looked up first in ``book`` (field ``test_coverage@<k>`` of the line keyed by the run's checkpoint name); else
    computed from ``lists`` (``(U_test, >= k)``), from the lists the run's test result keeps
    (``test.extra["lists"]``, e.g. a hybrid's), or from its model (generators decode with ``beam_width`` beams),
    and then added to the run's line when ``book`` records it. A ledger stand-in (no model) whose line lacks the
    field gives NaN. A line that records another realisation of the run's key (:func:`records_run` is false: the
    run was trained again elsewhere and took another path) is neither read nor written: the coverage is the
    model's, and the line keeps what it recorded."""
    from ..evaluation import list_diagnostics
    from .analysis import split_lists
    if k < 1:
        raise ValueError(f"list_coverage: k must be >= 1, got {k}")
    field = f"test_coverage@{k}"
    key = Path(run.checkpoint).stem if run.checkpoint is not None else None
    facts = book.get(key) if book is not None and key is not None else None
    if facts is not None and not records_run(facts, run):
        facts = None                                       # another realisation of this key: leave its line alone
    if facts is not None and facts.get(field) is not None:
        return float(facts[field])
    if lists is None:
        lists = run.test.extra.get("lists")
    if lists is None and run.model is not None:
        lists = split_lists(run.model, dataset, "test", k, beam_width)
    if lists is None:
        return float("nan")
    lists = torch.as_tensor(lists)
    if lists.dim() != 2 or lists.shape[1] < k:
        raise ValueError(f"list_coverage of {run.name!r}: lists must be (users, >= {k}), got {tuple(lists.shape)}")
    coverage = list_diagnostics(lists[:, :k], dataset)["coverage"]
    if facts is not None:
        book.annotate(key, {field: coverage})
    return coverage


def is_seed_run_ledger(book: RunLedger) -> bool:
    """Whether ``book`` holds recorded seed runs (lines with test hit masks) rather than grid points."""
    rows = book.rows()
    return bool(rows) and all("test_hits" in r for r in rows)


def seed_run_summary(book: RunLedger) -> list[dict[str, Any]]:
    """One row per model of a seed-run ledger (in the order models first appear by key): ``runs`` recorded, the mean
    test Recall@10 / NDCG@10 over them, their training seconds summed, the commits they were recorded with and the
    last date. A model with runs of several configurations (e.g. MMGRec before and after a code change) counts them
    all; the run keys tell them apart. Notebook 05's ablation variants count apart, as ``model (variant)``."""
    out: dict[str, dict[str, Any]] = {}
    for row in book.rows():
        model = str(row.get("model", "?")) + (f" ({row['variant']})" if row.get("variant") else "")
        s = out.setdefault(model, {"model": model, "runs": 0, "recall@10": [], "ndcg@10": [], "train_seconds": 0.0,
                                   "commits": [], "last_recorded": ""})
        s["runs"] += 1
        for m in ("recall@10", "ndcg@10"):
            if row.get(f"test_{m}") is not None:
                s[m].append(float(row[f"test_{m}"]))
        s["train_seconds"] += float(row.get("train_seconds") or 0.0)
        if row.get("commit") and row["commit"] not in s["commits"]:
            s["commits"].append(row["commit"])
        s["last_recorded"] = max(s["last_recorded"], str(row.get("recorded", "")))
    for s in out.values():
        for m in ("recall@10", "ndcg@10"):
            s[m] = float(np.mean(s[m])) if s[m] else None
    return list(out.values())


__all__ = ["FACT_FIELDS", "decode_hits", "encode_hits", "is_seed_run_ledger", "list_coverage", "recall", "recorded_run", "records_run", "remember", "same_realisation",
           "run_facts", "seed_run_summary"]
