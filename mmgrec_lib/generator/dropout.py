"""Dropout with a cheaper random source on CPU.

``torch.nn.Dropout`` on CPU draws one Bernoulli variate per element from the Mersenne Twister, about 10 ns
per element on the 2-core machines we target: in the generator's training step that was 18 % of the time
(README, "Where the time goes"). :class:`FastDropout` draws one 64-bit word per four elements from the same
generator and reads it as four 16-bit uniforms ``r``; an element is kept when ``r >= round(p * 2^16)``, so
its drop probability is ``p`` rounded to a multiple of ``2^-16`` (0.1 -> 0.100006), and the kept elements
are scaled by the inverse of the exact keep probability, so the expectation is unchanged.

Randomness comes from torch's global generator (or the one passed), so ``torch.manual_seed`` and
``torch.random.fork_rng`` control it exactly as they control ``nn.Dropout``; the draws differ from
``nn.Dropout``'s, so a model trained with it matches one trained with ``nn.Dropout`` in distribution, not bit
for bit. On other devices (CUDA) it calls ``F.dropout``, which is fast there.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16            # 16-bit uniforms
_WORD_LANES = 4              # 16-bit lanes per 64-bit draw


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """``shape`` mask of ``0`` (dropped, probability ``round(p * 2^16) / 2^16``) and ``1 / keep probability``."""
    n = 1
    for s in shape:
        n *= int(s)
    drop_levels = round(p * _LEVELS)
    if not 0 <= drop_levels < _LEVELS:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    words = torch.randint(-2**63, 2**63 - 1, (-(-n // _WORD_LANES),), dtype=torch.int64, device=device,
                          generator=generator)
    lanes = words.view(torch.int16)[:n].view(shape)                     # uniform on [-2^15, 2^15)
    keep = torch.empty(lanes.shape, dtype=dtype, device=lanes.device)
    torch.ge(lanes, drop_levels - _LEVELS // 2, out=keep)               # 1 / 0 in dtype: one pass, no bool tensor
    return keep.mul_(_LEVELS / (_LEVELS - drop_levels))


def fast_dropout(x: torch.Tensor, p: float, training: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with :func:`keep_mask`'s random source on CPU (``F.dropout`` elsewhere)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training)
    return x * keep_mask(x.shape, p, x.dtype, x.device, generator)


class FastDropout(nn.Module):
    """Drop-in for :class:`torch.nn.Dropout` (module attribute ``p``, active in training mode only)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


__all__ = ["FastDropout", "fast_dropout", "keep_mask"]
