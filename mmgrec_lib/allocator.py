"""The memory allocator settings of the command-line entry points (``mmgrec reports``, ``mmgrec bench``).

By default glibc hands every block above a (dynamic) size threshold back to the system when it is freed, so
each training step pays page faults and kernel zero-fills again for its large intermediate tensors (a
LightGCN step at the paper size allocates several 14 MB arrays). :data:`MALLOC_ENV` keeps freed memory in the
process for reuse. Arithmetic is unchanged (bit-identical results); only the allocator's bookkeeping changes
(measured effect: README, "Where the time goes").

No torch import here: the command line imports this before it knows whether it needs torch.
"""
from __future__ import annotations

import os

#: glibc ``malloc`` settings as environment variables (read when a process starts): blocks up to 32 MiB come
#: from the heap, the heap is not trimmed below 1 GiB of free memory, and it grows in 256 MiB steps.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
              "MALLOC_TOP_PAD_": str(256 << 20)}
_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_TOP_PAD_": -2, "MALLOC_MMAP_THRESHOLD_": -3}   # M_* of malloc.h


def tune_malloc(env: dict[str, str] | None = None) -> bool:
    """Apply :data:`MALLOC_ENV` (or ``env``) to the processes this one starts (``os.environ``, where the caller
    has not set them: values already in the environment win) and to this process (glibc's ``mallopt``).
    Returns whether this process was tuned (``False`` without glibc, or with values ``mallopt`` cannot take:
    then only the environment is set)."""
    import ctypes
    import ctypes.util

    settings = {k: os.environ.get(k, v) for k, v in (env or MALLOC_ENV).items()}
    for k, v in settings.items():
        os.environ.setdefault(k, v)
    try:
        values = {k: int(v) for k, v in settings.items() if k in _MALLOPT}
    except ValueError:                                             # glibc reads (or ignores) the variable itself
        return False
    if any(not 0 <= v < 2 ** 31 for v in values.values()):         # mallopt takes an int
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(_MALLOPT[k], v) == 1 for k, v in values.items())


__all__ = ["MALLOC_ENV", "tune_malloc"]
