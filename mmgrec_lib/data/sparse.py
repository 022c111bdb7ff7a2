"""Small sparse-matrix helpers shared by every stage: CSR rows as (user, item) pairs, as bool masks, and the
user-item bipartite graph as one homogeneous graph."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def csr_pairs(mat: sp.spmatrix) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-zeros of a ``(n_users, n_items)`` matrix as ``users (E,)``, ``items (E,)`` long tensors, in
    (user, item) order (CSR order, so equal matrices give equal pairs)."""
    csr = sp.csr_matrix(mat)
    users = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return torch.from_numpy(users), torch.from_numpy(csr.indices.astype(np.int64))


def rows_mask(mat: sp.spmatrix, rows, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(len(rows), n_cols)`` bool mask of the non-zeros of ``mat[rows]``. Dense: for scoring models that
    already hold a ``(B, n_items)`` score matrix, never for decoding."""
    sub = sp.csr_matrix(mat)[np.asarray(rows)].tocoo()
    out = torch.zeros(sub.shape, dtype=torch.bool, device=device)
    out[torch.from_numpy(sub.row.astype(np.int64)).to(device), torch.from_numpy(sub.col.astype(np.int64)).to(device)] = True
    return out


class PairSet:
    """The non-zeros of a ``(n_rows, n_cols)`` sparse matrix as a sorted set of ``row * n_cols + col`` keys, for
    membership tests of ``(B, K)`` candidate lists without a dense ``(B, n_cols)`` mask."""

    def __init__(self, mat: sp.spmatrix) -> None:
        rows, cols = csr_pairs(mat)
        self.n_cols = int(mat.shape[1])
        self.keys = torch.sort(rows * self.n_cols + cols).values                   # (E,) ascending
        self.counts = torch.from_numpy(np.diff(sp.csr_matrix(mat).indptr).astype(np.int64))   # (n_rows,)

    def contains(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``rows (B,)``, ``cols (B, K)`` -> ``(B, K)`` bool: is ``(rows[b], cols[b, k])`` a non-zero?"""
        if self.keys.numel() == 0:
            return torch.zeros(cols.shape, dtype=torch.bool, device=cols.device)
        keys = self.keys.to(cols.device)
        q = rows.to(cols.device).long()[:, None] * self.n_cols + cols.long()       # (B, K)
        pos = torch.searchsorted(keys, q).clamp(max=keys.numel() - 1)
        return keys[pos] == q


def bipartite_edge_index(edge_index: torch.Tensor, n_users: int) -> torch.Tensor:
    """(user, item) pairs ``(2, E)`` -> the undirected bipartite graph as ``(2, 2E)`` (source, target) edges over
    nodes ``0..U-1`` (users) and ``U..U+I-1`` (items): first every user -> item edge, then item -> user."""
    users, items = edge_index[0].long(), edge_index[1].long() + n_users
    return torch.stack([torch.cat([users, items]), torch.cat([items, users])])
