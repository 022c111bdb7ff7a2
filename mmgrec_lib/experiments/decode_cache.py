"""Decoding results kept beside a generator's checkpoint, so that a notebook reusing a finished run does not
beam-search the same users again.

A finished run is reused by run key in many notebooks (03, 04, 05, 06, 09, 11), and each reuse decoded the test
users once for the metrics and once more for the lists; on TikTok that is most of a ladder rerun. The results of
one model's decoding depend only on the model and on the call's arguments, so they are kept in
``<checkpoint stem>.decode.pt`` under a key naming those arguments, and read back only while the checkpoint file
is the one they were computed from (same size and modification time; any retraining rewrites it). A stored
value is exactly what the computation returned, so tables do not change; a timing kept in it (``EvalResult.extra``)
is the one measured when it was computed, and ``extra["decode_cached"]`` says so.

:data:`DECODE_CACHE_VERSION` is part of every key: raise it when a change to decoding or evaluation changes
their results, so older entries are no longer read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from ..data.paths import atomic_write
from ..evaluation import EvalResult

#: part of every key; raise it when decoding or evaluation code changes what they return
DECODE_CACHE_VERSION = 1


def fingerprint(checkpoint: str | os.PathLike | None) -> list[int] | None:
    """``[size, mtime_ns]`` of ``checkpoint`` (``None`` without one): what a cached result was computed from."""
    if checkpoint is None:
        return None
    st = Path(checkpoint).stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


def cache_path(checkpoint: str | os.PathLike) -> Path:
    """``<checkpoint stem>.decode.pt`` beside the checkpoint."""
    p = Path(checkpoint)
    return p.with_name(f"{p.stem}.decode.pt")


def _read(checkpoint) -> dict:
    path = cache_path(checkpoint)
    if not path.is_file():
        return {}
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:                                           # torn by another writer, or an older format
        return {}
    if not isinstance(blob, dict) or blob.get("checkpoint") != fingerprint(checkpoint):
        return {}
    return dict(blob.get("entries", {}))


def cached(checkpoint: str | os.PathLike | None, key: str, compute: Callable[[], Any],
           encode: Callable[[Any], Any] = lambda v: v, decode: Callable[[Any], Any] = lambda v: v) -> Any:
    """``compute()``, or its stored value for ``key`` when ``checkpoint`` (a file) is unchanged since it was stored.

    Values are stored through ``encode`` (to tensors, numbers, strings, lists and dicts: what
    ``torch.load(weights_only=True)`` reads back) and returned through ``decode``. The key should name the
    device; the number of CPU threads is added to it here. Without a checkpoint file nothing is cached."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return compute()
    key = f"v{DECODE_CACHE_VERSION}|threads={torch.get_num_threads()}|{key}"   # float sums depend on the threads
    entries = _read(checkpoint)
    if key in entries:
        return decode(entries[key])
    value = compute()
    stamp = fingerprint(checkpoint)                             # the file the value was computed from
    entries = _read(checkpoint)                                 # another process may have added entries meanwhile
    entries[key] = encode(value)
    atomic_write(cache_path(checkpoint), lambda fh: torch.save({"checkpoint": stamp, "entries": entries}, fh))
    return value


def encode_result(res: EvalResult) -> dict:
    """An :class:`~mmgrec_lib.evaluation.EvalResult` as tensors and plain values."""
    extra = {k: v for k, v in res.extra.items() if isinstance(v, (int, float, str, bool, torch.Tensor))}
    dropped = sorted(set(res.extra) - set(extra))
    if dropped:
        raise TypeError(f"decode cache: EvalResult.extra holds values it cannot store: {dropped}")
    return {"users": torch.tensor(res.per_user.index.to_numpy()), "columns": list(res.per_user.columns),
            "values": torch.tensor(res.per_user.to_numpy()), "split": res.split, "ks": list(res.ks),
            "name": res.name, "extra": extra, "index_name": res.per_user.index.name or ""}


def decode_result(blob: dict) -> EvalResult:
    """The inverse of :func:`encode_result`, with ``extra["decode_cached"] = True``."""
    index = pd.Index(blob["users"].numpy(), name=blob["index_name"] or None)
    per_user = pd.DataFrame(blob["values"].numpy(), index=index, columns=blob["columns"])
    return EvalResult(per_user, blob["split"], tuple(int(k) for k in blob["ks"]), blob["name"],
                      {**blob["extra"], "decode_cached": True})


__all__ = ["DECODE_CACHE_VERSION", "cache_path", "cached", "decode_result", "encode_result", "fingerprint"]
