"""Vectorised BPR triple sampling: uniform negatives among each user's non-interacted items."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..data.sparse import csr_pairs


class BPRSampler:
    """Draws (user, positive, negative) triples from a training matrix.

    Every epoch visits each training interaction once in a random order (``epoch_triples``); negatives are
    uniform over items the user has not interacted with in training, drawn by rejection in whole-batch
    steps (membership is a ``searchsorted`` over the sorted ``user * n_items + item`` keys).

    Args:
        train: ``(n_users, n_items)`` CSR training matrix.
    """

    def __init__(self, train: sp.csr_matrix) -> None:
        self.n_users, self.n_items = train.shape
        self.users, self.items = csr_pairs(train)
        self.keys = torch.sort(self.users * self.n_items + self.items).values
        full = np.diff(train.indptr) >= self.n_items
        if full.any():
            raise ValueError(f"{int(full.sum())} users interacted with every item; no negative exists for them")

    def __len__(self) -> int:
        return self.users.numel()

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * self.n_items + items
        pos = torch.searchsorted(self.keys, keys).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == keys

    def negatives(self, users: torch.Tensor, generator: torch.Generator, max_rounds: int = 100) -> torch.Tensor:
        """One uniform non-interacted item per entry of ``users``."""
        neg = torch.randint(self.n_items, users.shape, generator=generator)
        for _ in range(max_rounds):
            bad = self.is_positive(users, neg)
            if not bad.any():
                return neg
            neg[bad] = torch.randint(self.n_items, (int(bad.sum()),), generator=generator)
        raise RuntimeError("negative sampling did not converge; are some users interacting with almost every item?")

    def epoch_triples(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All training interactions in random order, each with a fresh negative: three ``(E,)`` tensors."""
        perm = torch.randperm(len(self), generator=generator)
        u, i = self.users[perm], self.items[perm]
        return u, i, self.negatives(u, generator)
