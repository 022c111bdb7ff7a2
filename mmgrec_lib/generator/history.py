"""Each user's interacted items as CSR buffers: the generator's encoder input and the items it never
recommends. Shared by the model (:meth:`MMGRecGenerator.encoder_inputs`) and the decoder (exclusions)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..data.sparse import pair_positions


class UserHistory(nn.Module):
    """``indptr (U + 1,)`` and ``indices (nnz,)`` of a ``(n_users, n_items)`` matrix, sorted within each row.

    Non-persistent buffers (rebuilt from the dataset); they move with ``.to()``.
    """

    def __init__(self, history: sp.spmatrix) -> None:
        super().__init__()
        self.n_users, self.n_items = history.shape
        self.register_buffer("indptr", torch.zeros(self.n_users + 1, dtype=torch.long), persistent=False)
        self.register_buffer("indices", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("keys", torch.zeros(0, dtype=torch.long), persistent=False)   # user * I + item
        self.replace(history)

    def replace(self, history: sp.spmatrix) -> None:
        """Swap in other interactions of the same shape (e.g. train + val for a final test run)."""
        history = sp.csr_matrix(history)
        if history.shape != (self.n_users, self.n_items):
            raise ValueError(f"history has shape {history.shape}; expected ({self.n_users}, {self.n_items})")
        history.sort_indices()
        dev = self.indptr.device
        self.indptr = torch.from_numpy(history.indptr.astype(np.int64)).to(dev)
        self.indices = torch.from_numpy(history.indices.astype(np.int64)).to(dev)
        rows = torch.repeat_interleave(torch.arange(self.n_users, device=dev), self.indptr.diff())
        self.keys = rows * self.n_items + self.indices                             # (nnz,) ascending

    def counts(self, users: torch.Tensor) -> torch.Tensor:
        """``(B,)`` number of items of each user."""
        return self.indptr[users + 1] - self.indptr[users]

    def padded(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ids ``(B, L)`` (``L`` = the longest row, at least 1) and a ``(B, L)`` mask of real entries;
        padding entries hold an arbitrary valid index."""
        start, count = self.indptr[users], self.counts(users)                          # (B,), (B,)
        L = max(1, int(count.max())) if users.numel() else 1
        col = torch.arange(L, device=users.device)
        valid = col[None, :] < count[:, None]                                          # (B, L)
        if not self.indices.numel():
            return torch.zeros(users.shape[0], L, dtype=torch.long, device=users.device), valid
        idx = (start[:, None] + col).clamp(max=self.indices.numel() - 1)
        return self.indices[idx], valid

    def positions(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Column of each item in its user's row of :meth:`padded`: ``users (B,)``, ``items (B, T)`` ->
        ``(B, T)`` long, ``-1`` where the user has no such item (or ``items`` is negative). Cost O(B T log nnz)."""
        pos = pair_positions(self.keys, self.n_items, users, items)                    # (B, T) index in CSR
        return torch.where(pos >= 0, pos - self.indptr[users][:, None], -1)

    def pairs(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's items as (row in batch, item) pairs ``(E,)``, ``(E,)``: cost O(items of these users)."""
        start, count = self.indptr[users], self.counts(users)                          # (B,)
        rows = torch.repeat_interleave(torch.arange(users.shape[0], device=users.device), count)   # (E,)
        pos = torch.arange(rows.numel(), device=users.device) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        return rows, self.indices[start[rows] + pos]


__all__ = ["UserHistory"]
