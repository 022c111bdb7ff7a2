r"""MostPop: rank items by training popularity, the same list for every user.

.. math::

    \hat{y}_{ui} = |\{v : (v, i) \in \mathcal{D}_\text{train}\}|
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.dataset import RecDataset
from ..training.loop import FitResult, LoopConfig
from ..utils import check_fields
from .base import Recommender


@dataclass
class MostPopConfig:
    """MostPop has nothing to tune.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)


class MostPop(Recommender):
    """Popularity baseline; ``fit`` only counts training interactions per item (no epochs, no randomness).

    Args:
        n_users, n_items: sizes.
        config: :class:`MostPopConfig`.
        popularity: optional ``(n_items,)`` counts (used by :meth:`load`).
    """

    config_class = MostPopConfig

    def __init__(self, n_users: int, n_items: int, config: MostPopConfig | None = None,
                 popularity: torch.Tensor | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        self.register_buffer("popularity", torch.zeros(self.n_items))              # (I,)
        if popularity is not None:
            self.popularity.copy_(torch.as_tensor(popularity, dtype=torch.float32))
        self._place()

    def fit(self, dataset: RecDataset, loop: LoopConfig | None = None,
            generator: torch.Generator | None = None) -> FitResult:
        """Count training popularity, then report validation ``recall@10`` as a one-row history."""
        self._check_dataset(dataset)
        counts = torch.from_numpy(dataset.item_popularity()).float()
        self.popularity.copy_(counts.to(self.device))
        metrics = self._validate(dataset)
        monitor = (loop or LoopConfig()).monitor
        return FitResult(history=[{"epoch": 0, **metrics}], best_epoch=0, best_score=metrics.get(monitor, float("nan")),
                         stopped_early=False, resumed_from=0)

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        users = self._check_users(users)
        # a broadcast view, not a copy: evaluation masks it out of place (an in-place write raises)
        return self.popularity.unsqueeze(0).expand(len(users), -1)                # (B, I)
