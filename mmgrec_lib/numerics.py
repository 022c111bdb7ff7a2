"""Portable CPU numerics: the libraries' AVX2 code paths on every x86-64 CPU with AVX2, so that machines of
different vector widths take the same kernels (it does not make every machine agree: see below).

torch picks its element-wise and reduction kernels (ATen's ``DispatchStub``) by the widest vector instruction set
the CPU has, and MKL (matrix products) and oneDNN pick their code paths the same way. AVX-512 kernels add up in
another order than AVX2 kernels, so a training run on an AVX-512 machine drifts from the same run, same seed, on an
AVX2 machine, and after a few thousand optimiser steps it has taken another path. The seed-run ledgers show it: the
same run key retrained on the project's two kinds of machine (AMD EPYC family 25 without AVX-512, family 26 with)
gave ml100k test R@10 0.2470 and 0.2437.

:data:`PORTABLE_ENV` pins all three libraries to their AVX2 code paths, which every x86-64 CPU of the last ten years
has: ``ATEN_CPU_CAPABILITY=avx2`` (torch's kernels), ``MKL_CBWR=AVX2`` (MKL's conditional numerical
reproducibility branch) and ``ONEDNN_MAX_CPU_ISA=AVX2``. On an AVX2 machine this is what the libraries choose anyway
(bit-identical results); on an AVX-512 machine it trades the wider kernels for the AVX2 ones. That alone does
not reproduce another machine's runs: on 2026-12-05 an Intel Xeon with AVX-512, pinned here, retrained a TikTok
run key at the ledger line's own commit and got another validation curve than the AMD EPYC (AVX2) that recorded
it (identical runs on the Intel machine at that commit and at the current code; libraries that size their blocks
by the cache, or take vendor-specific paths, are the likely rest). The thread count matters as well: the
notebooks train with one thread per run.

The variables are read when a library first needs them (ATen at its first kernel dispatch, MKL at its first call),
so :func:`portable_numerics` must run before the process computes anything with torch; the command-line entry
points call it first thing, and the processes they start (notebook kernels, sweep workers) inherit it. In
JupyterLab, export the variables before starting it (``mmgrec env`` prints them). ``MMGREC_NATIVE_ISA=1`` opts out
(the libraries' own choice: faster on AVX-512, not comparable across machines).

No torch import here: the command line imports this before torch.
"""
from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping

#: the libraries' settings that pin them to AVX2 code paths (environment variables, read at their first use)
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
#: set to 1 (or true / yes) to leave the libraries' own choice of instruction set
OPT_OUT_ENV = "MMGREC_NATIVE_ISA"


def cpuinfo_fields(keys: tuple[str, ...], cpuinfo: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first value of each of ``keys`` in ``cpuinfo`` (Linux; e.g. ``model name``, ``flags``); keys the file
    lacks, or all of them when it cannot be read, are left out."""
    info: dict[str, str] = {}
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in keys and key not in info:
                    info[key] = value.strip()
    except OSError:
        pass
    return info


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags from ``cpuinfo`` (Linux), or ``None`` when the file cannot be read."""
    flags = cpuinfo_fields(("flags",), cpuinfo).get("flags")
    return None if flags is None else set(flags.split())


def has_avx2(machine: str | None = None, flags: set[str] | None = None) -> bool:
    """Whether this machine is x86-64 with AVX2 (``machine`` and ``flags`` override what it reports)."""
    arch = (machine if machine is not None else platform.machine()).lower()
    if arch not in ("x86_64", "amd64"):
        return False
    have = flags if flags is not None else cpu_flags()
    return bool(have) and "avx2" in have


def portable_numerics(environ: MutableMapping[str, str] | None = None, machine: str | None = None,
                      flags: set[str] | None = None) -> dict[str, str]:
    """Pin torch, MKL and oneDNN to AVX2 code paths in ``environ`` (default ``os.environ``): each variable of
    :data:`PORTABLE_ENV` the caller has not set gets its value. Nothing is set on a CPU that is not x86-64, on
    one without AVX2 (or whose flags cannot be read: ``/proc/cpuinfo``), or when ``MMGREC_NATIVE_ISA`` is true.
    ``machine`` and ``flags`` override what this machine reports (for tests). Returns the variables set."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT_ENV, "").strip().lower() in ("1", "true", "yes"):
        return {}
    if not has_avx2(machine, flags):
        return {}
    added = {k: v for k, v in PORTABLE_ENV.items() if k not in env}
    env.update(added)
    return added


def numerics_tag(environ: MutableMapping[str, str] | None = None) -> str:
    """How this process's float kernels were chosen, for a run's record: ``AVX2 kernels`` when
    :data:`PORTABLE_ENV` is in force, else ``native kernels``."""
    env = os.environ if environ is None else environ
    pinned = all(env.get(k, "").lower() == v.lower() for k, v in PORTABLE_ENV.items())
    return "AVX2 kernels" if pinned else "native kernels"


__all__ = ["OPT_OUT_ENV", "PORTABLE_ENV", "cpu_flags", "cpuinfo_fields", "has_avx2", "numerics_tag",
           "portable_numerics"]
