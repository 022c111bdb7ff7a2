"""Optimisers on PyTorch's multi-tensor (``foreach``) kernels.

On CPU PyTorch picks the per-parameter ("for-loop") implementation of Adam, AdamW and SGD: several passes over
every parameter, one kernel call each. The ``foreach`` implementation does the same arithmetic on all parameters
of a group at once, in fewer, larger calls; its results are bit-identical to the for-loop's (tested in
``tests/test_optim.py``, so a torch release that broke this would be caught), so recorded runs stay reproducible.
The ``fused`` kernels are faster still but round differently, so they are not used.
"""
from __future__ import annotations

from typing import Iterable

import torch

Params = Iterable[torch.Tensor] | Iterable[dict]


def adam(params: Params, lr: float, weight_decay: float = 0.0, decoupled: bool = False) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient) or, with ``decoupled``, ``AdamW``."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay, foreach=True)


def sgd(params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` with (heavy-ball) ``momentum`` and L2 ``weight_decay``."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)


__all__ = ["adam", "sgd"]
