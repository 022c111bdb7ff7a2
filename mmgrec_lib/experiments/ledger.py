"""A committed record of finished runs, so that a study outlives the machine that ran it.

Checkpoints under ``runs_dir`` are git-ignored and, on a fresh machine, gone. A long sweep (notebook 10's
grids: about two hundred trainings) cannot finish in one session, so each finished run's facts (validation
score, best epoch, test means, time) are also written to a small JSON-lines file under ``reports/ledgers/``
that is committed as the sweep goes. A later session finds a run there by the same run key its checkpoint
has (the checkpoint's file name: dataset, config, loop and seed hashed) and uses the recorded facts instead
of training it again. Only facts that a rerun would reproduce are recorded (training is bit-deterministic on
one CPU thread with the same seed, on one kind of machine); each line also says when, with which commit and on
which machine (CPU and torch version, :func:`machine_tag`) it was recorded: float rounding differs between CPU
kinds, so a rerun elsewhere may differ slightly (README, 'Across machines').

A run whose checkpoint exists is read from the checkpoint, not the ledger; the ledger only stands in for a
missing checkpoint. To retrain a run (e.g. after a change to the model's code), delete its line.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

from ..data.paths import atomic_write


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: numpy / torch scalars to Python, NaN to ``None``."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive ``flock`` on ``folder`` itself (no lock file to ignore), where the platform has one."""
    try:
        import fcntl
    except ImportError:                                        # not POSIX: re-read-then-write only
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                                           # releases the lock


#: the bookkeeping fields of a ledger line (besides the run's facts)
BOOKKEEPING = ("key", "recorded", "commit", "machine")


def machine_tag() -> str:
    """The machine a run ran on, as far as its float results depend on it: architecture, CPU model (name, family
    and model numbers, where ``/proc/cpuinfo`` has them), whether the CPU has AVX-512, torch's version, and whether
    the float kernels were pinned to AVX2 (:func:`~mmgrec_lib.numerics.numerics_tag`; lines recorded before
    2026-12-04 lack it and ran with the libraries' native choice)."""
    import importlib.metadata
    import platform

    from ..numerics import cpuinfo_fields, numerics_tag

    info = cpuinfo_fields(("model name", "cpu family", "model", "flags"))
    cpu = info.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in info and "model" in info:
        cpu += f" (family {info['cpu family']}, model {info['model']})"
    if "flags" in info:
        cpu += ", AVX-512" if "avx512f" in info["flags"].split() else ", no AVX-512"
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "absent"
    return f"{platform.machine()} {cpu}, torch {torch_version}, {numerics_tag()}"


def git_commit(folder: str | Path | None = None) -> str | None:
    """The commit checked out at ``folder`` (default: this package's repository), or ``None`` outside git."""
    where = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


class RunLedger:
    """Finished runs' facts by run key, in one JSON-lines file (one run per line, sorted by key).

    ``RunLedger(path)`` reads the file when it exists (a missing file is an empty ledger; a line that is not a
    JSON object with a ``key`` is an error naming the file and line). :meth:`record` rewrites the file
    atomically, so an interrupted writer never leaves a torn ledger.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"run ledger {self.path}: is a folder, expected a .jsonl file")
        self._rows: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"run ledger {self.path}, line {n}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                raise ValueError(f"run ledger {self.path}, line {n}: expected an object with a string 'key'")
            rows[row["key"]] = row
        return rows

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> dict[str, Any] | None:
        """The recorded facts of run ``key`` (without the bookkeeping fields), or ``None``."""
        row = self._rows.get(key)
        if row is None:
            return None
        return {k: v for k, v in row.items() if k not in BOOKKEEPING}

    def record(self, key: str, facts: Mapping[str, Any], commit: str | None = None, replace: bool = False) -> None:
        """Record run ``key``'s ``facts`` (flat scalars) and write the file: under a lock on its folder, re-read
        first, so that lines other processes record meanwhile are kept. A key already recorded keeps its line
        (its date, commit and seconds stay those of the run that produced it; a run read back from its checkpoint
        measures other seconds) unless ``replace``."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"run ledger {self.path}: key must be a non-empty string, got {key!r}")
        facts = {str(k): _plain(v) for k, v in facts.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _folder_lock(self.path.parent):                  # writers of this folder, one at a time
            rows = self._read()
            if key in rows and not replace:
                self._rows = rows
                return
            row = {"key": key, **facts, "recorded": datetime.date.today().isoformat(),
                   "commit": commit if commit is not None else git_commit(), "machine": machine_tag()}
            self._rows = {**rows, key: row}
            text = "".join(json.dumps(self._rows[k], sort_keys=True) + "\n" for k in sorted(self._rows))
            atomic_write(self.path, lambda fh: fh.write(text.encode()))

    def annotate(self, key: str, facts: Mapping[str, Any]) -> None:
        """Add to the line of run ``key`` the ``facts`` it lacks (flat scalars; none it has changes), e.g. notebook
        05's ``ablation_key`` on the line notebook 06 recorded for the same run. ``KeyError`` when ``key`` is not
        recorded."""
        facts = {str(k): _plain(v) for k, v in facts.items() if k not in BOOKKEEPING}
        with _folder_lock(self.path.parent):
            rows = self._read()
            if key not in rows:
                raise KeyError(f"run ledger {self.path}: no run {key!r} to annotate")
            self._rows = rows
            extra = {k: v for k, v in facts.items() if k not in rows[key]}
            if not extra:
                return
            self._rows = {**rows, key: {**rows[key], **extra}}
            text = "".join(json.dumps(self._rows[k], sort_keys=True) + "\n" for k in sorted(self._rows))
            atomic_write(self.path, lambda fh: fh.write(text.encode()))

    def rows(self) -> list[dict[str, Any]]:
        """Every recorded line (with its bookkeeping fields), in key order."""
        return [dict(self._rows[k]) for k in sorted(self._rows)]

    def summary(self) -> list[dict[str, Any]]:
        """One row per model (alphabetical, as the lines are keyed): grid points recorded and the best of them on
        ``val_recall@10``, finalists' continued runs recorded (``phase: final``) and the best of those so far (the
        chosen point once every finalist is in), the last date."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows():
            model = str(row.get("model", "?"))
            s = out.setdefault(model, {"model": model, "grid_points": 0, "best_point": None, "best_val": None,
                                       "finals": 0, "best_final": None, "best_final_val": None,
                                       "last_recorded": ""})
            val = row.get("val_recall@10")
            kind = ("finals", "best_final", "best_final_val") if row.get("phase") == "final" else \
                ("grid_points", "best_point", "best_val")
            s[kind[0]] += 1
            if val is not None and (s[kind[2]] is None or val > s[kind[2]]):
                s[kind[1]], s[kind[2]] = row.get("point"), val
            s["last_recorded"] = max(s["last_recorded"], str(row.get("recorded", "")))
        return list(out.values())


__all__ = ["RunLedger", "git_commit"]
