"""Rec-IDs: item -> token tuple, token tuple -> item, and a prefix trie as dense tensors.

A Rec-ID is ``M`` tokens: ``M - 1`` semantic tokens from a quantiser and one disambiguation token
(paper eq. 11-12). Items whose semantic tokens coincide are ranked by training popularity (descending,
ties by item id) and the rank becomes the last token, so every Rec-ID is unique.

The trie is stored level by level as ``children[l]``: a ``(n_nodes_l, card_l)`` int64 tensor whose entry
``[node, token]`` is the node reached at level ``l + 1`` (or, at the last level, the item id), ``-1`` when
the token does not extend a valid Rec-ID. Constrained decoding keeps one node index per beam and reads
``children[l][node] >= 0`` as the "allowed next token" mask: no Python loop over users or beams.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils import atomic_save, load_checkpoint

DISAMBIGUATION_MODES = ("popularity", "random", "none")


def disambiguate(
    semantic: np.ndarray | torch.Tensor,
    popularity: np.ndarray | None = None,
    mode: str = "popularity",
    seed: int = 0,
) -> np.ndarray:
    """Append the collision token to semantic codes.

    Args:
        semantic: ``(n_items, M - 1)`` integer semantic tokens.
        popularity: ``(n_items,)`` training interaction counts (required for ``"popularity"``).
        mode: ``"popularity"`` (eq. 11-12: rank by popularity, ties by item id), ``"random"`` (TIGER: a
            seeded random order within each collision group) or ``"none"`` (return ``semantic`` unchanged).
        seed: seed of the random order for ``"random"``.

    Returns:
        ``(n_items, M)`` codes (``(n_items, M - 1)`` for ``"none"``), int64.
    """
    sem = np.asarray(semantic.cpu() if isinstance(semantic, torch.Tensor) else semantic).astype(np.int64)
    if sem.ndim != 2:
        raise ValueError(f"semantic codes must be (n_items, levels), got shape {sem.shape}")
    if mode not in DISAMBIGUATION_MODES:
        raise ValueError(f"unknown collision mode {mode!r}; expected one of {DISAMBIGUATION_MODES}")
    if mode == "none":
        return sem
    n = sem.shape[0]
    if mode == "popularity":
        if popularity is None or len(popularity) != n:
            raise ValueError(f"popularity mode needs one count per item ({n}), got "
                             f"{None if popularity is None else len(popularity)}")
        key = -np.asarray(popularity, dtype=np.int64)          # most popular first
    else:
        key = np.random.default_rng(seed).permutation(n)
    # sort by (semantic tokens..., key, item id); lexsort's last key is the primary one
    order = np.lexsort((np.arange(n), key, *sem.T[::-1]))
    s = sem[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (s[1:] != s[:-1]).any(axis=1)
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    return np.concatenate([sem, rank[:, None]], axis=1)


class RecIDTable:
    """Unique Rec-IDs for all items plus the prefix trie used for constrained decoding.

    Args:
        codes: ``(n_items, M)`` int tokens; rows must be unique and non-negative.
        cardinalities: vocabulary size per level (default: ``max + 1`` per column).
        config: the configuration of the run that produced the codes (saved alongside).
    """

    def __init__(self, codes: np.ndarray | torch.Tensor, cardinalities: list[int] | None = None,
                 config: dict[str, Any] | None = None) -> None:
        codes_t = torch.as_tensor(np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes),
                                  dtype=torch.long)
        if codes_t.ndim != 2 or codes_t.shape[0] == 0:
            raise ValueError(f"codes must be a non-empty (n_items, levels) matrix, got {tuple(codes_t.shape)}")
        if (codes_t < 0).any():
            raise ValueError("codes must be non-negative")
        n_unique = torch.unique(codes_t, dim=0).shape[0]
        if n_unique != codes_t.shape[0]:
            raise ValueError(f"Rec-IDs are not unique: {codes_t.shape[0] - n_unique} items collide; "
                             "append a collision token with disambiguate() first")
        maxes = (codes_t.max(0).values + 1).tolist()
        cards = list(cardinalities) if cardinalities is not None else maxes
        if len(cards) != codes_t.shape[1] or any(c < m for c, m in zip(cards, maxes)):
            raise ValueError(f"cardinalities {cards} do not cover the codes (need >= {maxes} per level)")
        self.codes = codes_t                                   # (I, M)
        self.cardinalities = [int(c) for c in cards]
        self.config = dict(config or {})
        self.children = self._build_trie()                     # list of (n_nodes_l, card_l)

    # ------------------------------------------------------------------ trie
    def _build_trie(self) -> list[torch.Tensor]:
        codes = self.codes.numpy()
        n_items, n_levels = codes.shape
        node = np.zeros(n_items, dtype=np.int64)               # node id of each item's prefix at level l
        n_nodes = 1
        children = []
        for level in range(n_levels):
            if level + 1 < n_levels:
                _, nxt = np.unique(codes[:, :level + 1], axis=0, return_inverse=True)
                nxt = nxt.reshape(-1)
            else:
                nxt = np.arange(n_items)                       # leaves are items
            table = np.full((n_nodes, self.cardinalities[level]), -1, dtype=np.int64)
            table[node, codes[:, level]] = nxt
            children.append(torch.from_numpy(table))
            node, n_nodes = nxt, int(nxt.max()) + 1
        return children

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    @property
    def n_levels(self) -> int:
        return self.codes.shape[1]

    def allowed(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """``(..., card_level)`` bool mask of tokens that extend the prefixes at ``nodes`` (level ``level``).

        A node ``-1`` (a dead prefix) allows nothing (without the guard it would index the last row).
        """
        mask = self.children[level].to(nodes.device)[nodes.clamp(min=0)] >= 0
        return mask & (nodes >= 0).unsqueeze(-1)

    def step(self, level: int, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next node (item id at the last level) for each (node, token); ``-1`` where invalid
        (dead node ``-1`` or token outside ``[0, card_level)``)."""
        card = self.cardinalities[level]
        ok = (nodes >= 0) & (tokens >= 0) & (tokens < card)
        nxt = self.children[level].to(nodes.device)[nodes.clamp(min=0), tokens.clamp(0, card - 1)]
        return torch.where(ok, nxt, torch.full_like(nxt, -1))

    def item_of(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` token rows -> ``(B,)`` item ids, ``-1`` for tuples that are not a valid Rec-ID."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        node = torch.zeros(codes.shape[0], dtype=torch.long, device=codes.device)
        if codes.ndim != 2 or codes.shape[1] != self.n_levels:
            raise ValueError(f"item_of expects (B, {self.n_levels}) token rows, got {tuple(codes.shape)}")
        for level in range(self.n_levels):
            node = self.step(level, node, codes[:, level])
        return node

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        return atomic_save({"codes": self.codes, "cardinalities": self.cardinalities, "config": self.config,
                            "format": "mmgrec.recid.v1"}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RecIDTable":
        state = load_checkpoint(path)
        if not isinstance(state, dict) or state.get("format") != "mmgrec.recid.v1":
            raise ValueError(f"{path} is not a Rec-ID table saved by RecIDTable.save")
        return cls(state["codes"], state["cardinalities"], state["config"])

    def __repr__(self) -> str:
        return f"RecIDTable(items={self.n_items}, levels={self.n_levels}, cardinalities={self.cardinalities})"
