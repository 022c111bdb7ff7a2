"""Optimisers on PyTorch's multi-tensor (``foreach``) kernels, and Adam's fused CPU kernel where it is exact.

On CPU PyTorch picks the per-parameter ("for-loop") implementation of Adam, AdamW and SGD: several passes over
every parameter, one kernel call each. The ``foreach`` implementation does the same arithmetic on all parameters
of a group at once, in fewer, larger calls; its results are bit-identical to the for-loop's (tested in
``tests/test_optim.py``, so a torch release that broke this would be caught), so recorded runs stay reproducible.

Adam's ``fused`` CPU kernel makes one pass over each parameter instead of about seven. Its vectorised loop does
the ``foreach`` arithmetic in the same order, bit for bit, with two conditions:

* its scalar loop, which takes the last ``numel % vector width`` elements of each thread's share, rounds
  differently. Each thread's share is a whole number of 64-byte cache lines (16 float32), so a float32 parameter
  whose size is a multiple of 16 never reaches it, with AVX2 (8 floats per vector) or AVX-512 (16) kernels, on any
  number of threads;
* ``foreach`` takes the square root of ``exp_avg_sq`` with ``torch.sqrt``, which MKL's vector maths library
  computes: correctly rounded (as the fused kernel's) on MKL's AVX2 branch, which the entry points pin
  (:mod:`mmgrec_lib.numerics`), but not on its AVX-512 branch (``MMGREC_NATIVE_ISA=1`` on an AVX-512 machine).
  :func:`sqrt_is_exact` checks this once per process.

:func:`adam` therefore steps the parameters that meet both with the fused kernel and the rest (sizes such as 3 or
101, every parameter off the CPU, all of them where the square root is not exact) with ``foreach``: the same
results bit for bit as ``foreach`` alone (tested), with less memory traffic (measured: README, "Where the time
goes"). The optimiser's param groups and ``state_dict`` are those of ``torch.optim.Adam``, so checkpoints load
either way. The fused kernel does not bump a parameter's version counter as ``foreach``'s in-place operations do;
the optimiser bumps it (caches of propagated embeddings key on it: ``baselines.base.weights_key``).
"""
from __future__ import annotations

import functools
from typing import Iterable

import torch

Params = Iterable[torch.Tensor] | Iterable[dict]

#: float32 elements per fused-kernel work unit (one 64-byte cache line); sizes that are multiples of it are exact
FUSED_UNIT = 16


@functools.cache
def sqrt_is_exact() -> bool:
    """Whether ``torch.sqrt`` of a float32 CPU tensor is correctly rounded in this process (checked on 65,536
    values against the square root in double precision): true with MKL pinned to its AVX2 branch."""
    x = torch.linspace(1e-12, 1e-2, 1 << 16)
    return torch.equal(x.sqrt(), x.double().sqrt().float())


def fused_exact(p: torch.Tensor) -> bool:
    """Whether Adam's fused CPU kernel steps ``p`` exactly as ``foreach`` does: a contiguous float32 CPU tensor
    whose size is a multiple of :data:`FUSED_UNIT`, in a process whose ``torch.sqrt`` is exact (see the module
    docstring)."""
    return (p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() and p.numel() > 0
            and p.numel() % FUSED_UNIT == 0 and sqrt_is_exact())


class _FusedWhereExact:
    """Mixin for ``torch.optim.Adam`` / ``AdamW``: each ``step`` runs every param group as two, the parameters
    :func:`fused_exact` accepts on the fused kernel and the others on ``foreach``, with the group's settings as they
    are at that step (a scheduler's learning rate included). ``param_groups`` and ``state`` stay the plain ones."""

    def step(self, closure=None):
        groups = self.param_groups
        split = []
        for group in groups:
            exact, rest = [], []
            for p in group["params"]:
                (exact if fused_exact(p) else rest).append(p)
            if exact:
                split.append({**group, "params": exact, "fused": True, "foreach": False})
            if rest:
                split.append({**group, "params": rest})
        stepped = [p for group in split if group.get("fused") for p in group["params"] if p.grad is not None]
        self.param_groups = split
        try:
            loss = super().step(closure)
        finally:
            self.param_groups = groups
        # the fused kernel writes through raw pointers: bump the version counters foreach's in-place ops bump, which
        # caches of propagated embeddings key on (and autograd's check of tensors saved for backward)
        torch.autograd.graph.increment_version(stepped)
        return loss


class Adam(_FusedWhereExact, torch.optim.Adam):
    """``torch.optim.Adam`` on the fused CPU kernel where that is exact, ``foreach`` elsewhere."""


class AdamW(_FusedWhereExact, torch.optim.AdamW):
    """``torch.optim.AdamW`` on the fused CPU kernel where that is exact, ``foreach`` elsewhere."""


def adam(params: Params, lr: float, weight_decay: float = 0.0, decoupled: bool = False) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient) or, with ``decoupled``, ``AdamW``; results
    bit for bit those of their ``foreach`` implementation (see the module docstring)."""
    cls = AdamW if decoupled else Adam
    return cls(params, lr=lr, weight_decay=weight_decay, foreach=True)


def sgd(params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` with (heavy-ball) ``momentum`` and L2 ``weight_decay``."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)


__all__ = ["FUSED_UNIT", "Adam", "AdamW", "adam", "fused_exact", "sgd", "sqrt_is_exact"]
