"""Small shared helpers (the ground floor): devices, seeds, atomic checkpoints, id and parameter checks.
No global state. Dataset and cache paths live in :mod:`mmgrec_lib.data.paths`."""
from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.paths import atomic_write


@contextlib.contextmanager
def seeded_rng(seed: int | None = None, device: str | torch.device | None = None):
    """Run the block on a private copy of torch's global RNG (CPU, plus ``device``'s when it is a GPU), seeded
    with ``seed`` when given; the caller's RNG state is restored on exit. For code that draws from the global
    RNG (``nn.init``, dropout) without touching global state."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        fork = torch.random.fork_rng(devices=[idx], device_type="cuda")
    else:
        fork = torch.random.fork_rng(devices=[])
    with fork:
        if seed is not None:
            torch.manual_seed(int(seed))
        yield


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU ``torch.Generator`` seeded with ``seed``.

    Prefer passing the returned generator (or ``numpy.random.default_rng(seed)``) explicitly; global
    seeding is only a safety net for library code that draws from the global RNG (e.g. ``nn.init``).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`~mmgrec_lib.data.paths.atomic_write`: never a torn file."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


class CheckpointError(ValueError):
    """A checkpoint or saved run that exists but cannot be used (damaged, or not what the reader expects)."""


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save`, with a clear error when missing or unreadable (the
    ``ValueError`` names the file and says that deleting it makes the run retrain)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:   # torch raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); the file is "
                              f"damaged (a full disk, a copy cut short): delete it and the run that wrote it "
                              f"retrains from scratch") from exc


def check_fields(config: Any) -> None:
    """Check every field of a config dataclass against its annotation, naming the class, the field, the value
    and the expected type (``TypeError``). Understands ``int``, ``float`` (ints accepted and converted),
    ``bool``, ``str``, ``Path``, ``X | None``, ``tuple[int, ...]`` (lists accepted and converted to tuples);
    other annotations are not checked. ``bool`` is not accepted where an ``int`` is meant."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints.get(f.name)
        ok, converted = _check_type(value, hint)
        if not ok:
            raise TypeError(f"{type(config).__name__}: {f.name} = {value!r} ({type(value).__name__}); "
                            f"expected {_type_name(hint)}")
        if converted is not value:
            object.__setattr__(config, f.name, converted)


def _check_type(value, hint) -> tuple[bool, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, value
        for a in args:
            if a is not type(None):
                ok, conv = _check_type(value, a)
                if ok:
                    return True, conv
        return False, value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (tuple, list)):
            return False, value
        items = [_check_type(v, args[0]) for v in value]
        return all(ok for ok, _ in items), tuple(conv for _, conv in items)
    if hint is bool:
        return isinstance(value, (bool, np.bool_)), bool(value) if isinstance(value, np.bool_) else value
    if hint is int:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        return ok, int(value) if ok and not isinstance(value, int) else value
    if hint is float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        return ok, float(value) if ok and not isinstance(value, float) else value
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value                                     # annotations this checker does not know


def _type_name(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is not None:
        return str(hint)
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))


def check_unknown(kwargs: dict, allowed, where: str) -> None:
    """Raise ``TypeError`` naming unknown parameter names (for configs built from notebooks/YAML)."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{where}: unknown parameter(s) {unknown}; known: {sorted(allowed)}")


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module):
    """Run the block with ``module`` in eval mode (no dropout, no codebook maintenance), then restore its
    previous train/eval mode, also when the block raises."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def check_ids(ids, n: int, what: str, where: str = "") -> torch.Tensor:
    """Integer ids in ``[0, n)`` -> a long tensor of the same shape; a ``ValueError`` naming how many ids are
    out of range (and a few of them) otherwise. ``what``: ``"user"`` or ``"item"``; ``where`` prefixes the
    message (e.g. the model's name)."""
    ids = torch.as_tensor(ids)
    prefix = f"{where}: " if where else ""
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"{prefix}{what} ids must be integers, got dtype {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
        bad = ids[(ids < 0) | (ids >= n)]
        raise ValueError(f"{prefix}{what} ids must be in [0, {n}): {bad.numel()} out of range [0, {n}) "
                         f"(e.g. {bad[:3].tolist()})")
    return ids.long()
