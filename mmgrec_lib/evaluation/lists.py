"""Beyond-accuracy facts of top-k lists: coverage, popularity share, overlap between users (knows no model)."""
from __future__ import annotations

import numpy as np
import torch

from ..data.dataset import RecDataset


def list_diagnostics(lists: torch.Tensor | np.ndarray, dataset: RecDataset, popular: int = 50) -> dict[str, float]:
    """Beyond-accuracy facts of top-k lists ``(B, k)`` (``-1`` = empty slot): how personal are they?

    Returns:
        ``coverage``: distinct recommended items / ``n_items``;
        ``popular_share``: share of filled slots holding one of the ``popular`` most popular training items
        (ties by item id);
        ``mean_pop_rank``: mean popularity rank (0 = most popular) of the recommended items;
        ``overlap_between_users``: mean share of a list's items found in another user's list (random pairs
        of distinct users, fixed seed); 1 means everyone gets the same list.
    """
    lists = torch.as_tensor(np.asarray(lists), dtype=torch.long).cpu()
    if lists.dim() != 2:
        raise ValueError(f"lists must be (users, k), got shape {tuple(lists.shape)}")
    if lists.numel() and int(lists.max()) >= dataset.n_items:
        raise ValueError(f"lists hold item id {int(lists.max())} but {dataset.name} has {dataset.n_items} items")
    pop = torch.from_numpy(dataset.item_popularity())
    order = torch.from_numpy(np.lexsort((np.arange(dataset.n_items), -pop.numpy())))   # most popular first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(dataset.n_items)                                       # (I,) 0 = most popular
    filled = lists >= 0
    items = lists[filled]
    B = lists.shape[0]
    if B > 1:
        g = torch.Generator().manual_seed(0)
        a = torch.randint(0, B, (min(2000, B * (B - 1)),), generator=g)
        b = (a + torch.randint(1, B, a.shape, generator=g)) % B                          # b != a
        same = (lists[a][:, :, None] == lists[b][:, None, :]) & filled[a][:, :, None]   # (P, k, k)
        overlap = float((same.any(2).sum(1).double() / filled[a].sum(1).clamp(min=1)).mean())
    else:
        overlap = float("nan")
    return {"coverage": float(items.unique().numel() / dataset.n_items),
            "popular_share": float((rank[items] < popular).double().mean()) if items.numel() else float("nan"),
            "mean_pop_rank": float(rank[items].double().mean()) if items.numel() else float("nan"),
            "overlap_between_users": overlap}
