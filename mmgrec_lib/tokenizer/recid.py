"""Rec-IDs: item -> token tuple, token tuple -> item, and the prefix trie (:mod:`.trie`).

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
from .trie import PrefixTrie

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
        maxes = (codes_t.max(0).values + 1).tolist()
        cards = list(cardinalities) if cardinalities is not None else maxes
        if len(cards) != codes_t.shape[1] or any(c < m for c, m in zip(cards, maxes)):
            raise ValueError(f"cardinalities {cards} do not cover the codes (need >= {maxes} per level)")
        self.codes = codes_t                                   # (I, M)
        self.cardinalities = [int(c) for c in cards]
        self.config = dict(config or {})
        self.trie = PrefixTrie(codes_t, self.cardinalities)                    # one 1-D sort per level
        if self.trie.n_duplicates:
            raise ValueError(f"Rec-IDs are not unique: {self.trie.n_duplicates} items collide; "
                             "append a collision token with disambiguate() first")

    @property
    def children(self) -> list[torch.Tensor]:
        """The trie's per-level tables (see :class:`~mmgrec_lib.tokenizer.trie.PrefixTrie`)."""
        return [self.trie.child_table(level) for level in range(self.n_levels)]

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    @property
    def n_levels(self) -> int:
        return self.codes.shape[1]

    def allowed(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """See :meth:`PrefixTrie.allowed`."""
        return self.trie.allowed(level, nodes)

    def step(self, level: int, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """See :meth:`PrefixTrie.step`."""
        return self.trie.step(level, nodes, tokens)

    def item_of(self, codes: torch.Tensor) -> torch.Tensor:
        """See :meth:`PrefixTrie.item_of`."""
        return self.trie.item_of(codes)

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
