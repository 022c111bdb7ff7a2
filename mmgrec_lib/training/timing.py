"""Wall-clock time per phase of a training step (forward, backward, optimiser step, ...), for benchmarks.

On the 2-core machines we target the torch profiler misattributed time between element-wise kernels (README,
"Where the time goes"), so ``mmgrec bench train --breakdown`` times whole phases with ``time.perf_counter``
instead: a trainer given a :class:`PhaseTimer` wraps each phase of its step in
``with timer("name"):``; without one it runs exactly as before (:func:`phase`).
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

import torch


class PhaseTimer:
    """Accumulates seconds per named phase and counts steps.

    Args:
        device: on a CUDA device every phase ends with a synchronisation, so its kernels are counted where they
            were launched (``None`` or CPU: no synchronisation).
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.seconds: dict[str, float] = {}                  # phase -> summed seconds, in first-seen order
        self.steps = 0
        self._cuda = device is not None and torch.device(device).type == "cuda"

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._cuda:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def step(self) -> None:
        """Count one training step (the phases' sums are divided by this in :meth:`per_step_ms`)."""
        self.steps += 1

    def per_step_ms(self) -> dict[str, float]:
        """Milliseconds per step of every phase (empty before the first step)."""
        return {k: 1e3 * v / self.steps for k, v in self.seconds.items()} if self.steps else {}

    def per_step_text(self) -> str:
        """``"phase 12.3, other 4.5"`` (milliseconds per step), or ``""`` before the first step."""
        return ", ".join(f"{k} {v:.1f}" for k, v in self.per_step_ms().items())

    def summary(self) -> str:
        """``"phase 12.3, other 4.5 ms per step (N steps)"``, or ``""`` before the first step."""
        text = self.per_step_text()
        return f"{text} ms per step ({self.steps} steps)" if text else ""


def phase(timer: PhaseTimer | None, name: str):
    """``timer(name)``, or a context that does nothing when ``timer`` is ``None``."""
    return timer(name) if timer is not None else contextlib.nullcontext()


__all__ = ["PhaseTimer", "phase"]
