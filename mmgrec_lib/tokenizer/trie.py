"""The prefix trie of valid Rec-IDs, level by level, as dense tensors (one implementation for the table, the
model and the decoder).

Level ``l`` is a ``(n_nodes_l, card_l)`` int64 table ``child_table(l)`` whose entry ``[node, token]`` is the node
reached at level ``l + 1`` (at the last level: the item id), ``-1`` when the token does not extend a valid
Rec-ID. Nodes of a level are numbered in lexicographic order of their prefixes; the root is node 0 of level 0.
Constrained decoding keeps one node per beam and reads ``child_table(l)[node] >= 0`` as the allowed next tokens.
Also kept: ``item_node(l)``, the node of each item's length-``l`` prefix, and ``items_below(l)``, the number of
items under each node of level ``l`` -- both depend only on the catalogue, so the decoder never recounts them --
and :meth:`children_of` ``(l)``, each child's parent node and its slot in the parent's candidate row, with which
the decoder maps a user's excluded items straight to the candidates they disable (cost O(history), not
O(candidates)).

Where a level is mostly empty (each node has at most half of ``card_l`` children, e.g. the third level of a
million-item catalogue over 256 codes: about 15 children per node), the level is also kept in a padded
sparse layout, :meth:`padded`: per node its children's tokens in increasing order and the nodes they reach,
``(n_nodes_l, C_l)`` int32 each with ``C_l`` the most children of any node (``-1`` pads). Beam search reads
that layout, so its candidates per beam are ``C_l`` instead of ``card_l`` and the rows it gathers are smaller.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn


class PrefixTrie(nn.Module):
    """Trie over ``codes`` ``(n_items, M)`` (non-negative rows; ``cardinalities[l] > codes[:, l]``). Rows must be
    unique to be decodable: ``n_duplicates`` counts the items whose Rec-ID another item already has.

    Buffers are non-persistent (rebuilt from the codes) and move with ``.to()``; :meth:`shared` gives another
    module over the same tensors, so a model can move its trie to a GPU without moving the table's.
    """

    def __init__(self, codes: torch.Tensor, cardinalities: Sequence[int]) -> None:
        super().__init__()
        codes = torch.as_tensor(codes, dtype=torch.long).cpu()
        self.cardinalities = [int(c) for c in cardinalities]
        self.n_items, self.n_levels = int(codes.shape[0]), int(codes.shape[1])
        self.register_buffer("codes", codes, persistent=False)                          # (I, M)
        c = codes.numpy()
        node = np.zeros(self.n_items, dtype=np.int64)        # node of each item's length-l prefix
        n_nodes = 1
        self.full_levels: list[bool] = []                    # levels whose every node has every token
        for level in range(self.n_levels):
            card = self.cardinalities[level]
            if level + 1 < self.n_levels:
                # the child prefix packed into one int64 key (< n_nodes * card <= I * card): one 1-D sort per level
                _, nxt = np.unique(node * card + c[:, level], return_inverse=True)
                nxt = nxt.reshape(-1).astype(np.int64)
            else:
                nxt = np.arange(self.n_items, dtype=np.int64)                           # leaves are items
                # items whose full Rec-IDs coincide would overwrite each other's leaf below
                self.n_duplicates = self.n_items - int(np.unique(node * card + c[:, level]).size)
            table = np.full((n_nodes, card), -1, dtype=np.int64)
            table[node, c[:, level]] = nxt
            self.register_buffer(f"children_{level}", torch.from_numpy(table), persistent=False)
            tokens, nexts, slot = _padded_rows(table)
            for name, t in (("tokens", tokens), ("nexts", nexts)):
                self.register_buffer(f"{name}_{level}", t, persistent=False)
            n_children = int(nxt.max()) + 1 if self.n_items else 0
            if level + 1 < self.n_levels:
                parent = np.zeros(n_children, dtype=np.int64)
                parent[nxt] = node                              # every child's node at this level
            else:
                parent = node                                   # leaves are items: item_node(level), no copy
            token = np.zeros(n_children, dtype=np.int64)
            token[nxt] = c[:, level]                            # its slot in the dense layout
            token = torch.from_numpy(token)
            self.register_buffer(f"parent_{level}", torch.from_numpy(parent), persistent=False)
            self.register_buffer(f"token_{level}", token, persistent=False)
            self.register_buffer(f"slot_{level}", token if slot is None else torch.from_numpy(slot), persistent=False)
            self.full_levels.append(bool((table >= 0).all()))
            self.register_buffer(f"item_node_{level}", torch.from_numpy(node), persistent=False)
            self.register_buffer(f"items_below_{level}",
                                 torch.from_numpy(np.bincount(node, minlength=n_nodes).astype(np.int64)),
                                 persistent=False)
            node, n_nodes = nxt, int(nxt.max()) + 1

    def shared(self) -> "PrefixTrie":
        """A new module holding the same tensors (no copy): moving it leaves this one where it is."""
        other = PrefixTrie.__new__(PrefixTrie)
        nn.Module.__init__(other)
        other.cardinalities, other.n_items, other.n_levels = list(self.cardinalities), self.n_items, self.n_levels
        other.n_duplicates, other.full_levels = self.n_duplicates, list(self.full_levels)
        for name, buf in self.named_buffers(remove_duplicate=False):   # slot_l may be token_l itself
            other.register_buffer(name, buf, persistent=False)
        return other

    # ------------------------------------------------------------------ tables
    def child_table(self, level: int) -> torch.Tensor:
        """``(n_nodes_level, card_level)`` next node (item id at the last level), ``-1`` where invalid."""
        return getattr(self, f"children_{level}")

    def padded(self, level: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(tokens, nexts)``, each ``(n_nodes_level, C)`` int32: each node's valid tokens (increasing, ``-1``
        pads) and the nodes (items at the last level) they lead to; ``None`` where the level is dense enough
        (some node has more than half of ``card_level`` children) to be read from :meth:`child_table`."""
        tokens = getattr(self, f"tokens_{level}")
        return None if tokens.shape[1] == 0 else (tokens, getattr(self, f"nexts_{level}"))

    def children_of(self, level: int, dense: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(parent, slot)``, each ``(n_children,)`` long: for every child of ``level`` (a node of ``level + 1``;
        an item at the last level) the node it hangs from and its position in that node's candidate row: its
        index in :meth:`padded`'s row where the level has that layout, else (or with ``dense``) its token, its
        column in :meth:`child_table`."""
        return getattr(self, f"parent_{level}"), getattr(self, f"token_{level}" if dense else f"slot_{level}")

    def full(self, level: int) -> bool:
        """Whether every node of ``level`` has all ``card_level`` children (no candidate is ever invalid)."""
        return self.full_levels[level]

    def item_node(self, level: int) -> torch.Tensor:
        """``(I,)`` node of each item's length-``level`` prefix (level 0: the root, node 0)."""
        return getattr(self, f"item_node_{level}")

    def items_below(self, level: int) -> torch.Tensor:
        """``(n_nodes_level,)`` number of items under each node of ``level``."""
        return getattr(self, f"items_below_{level}")

    # ------------------------------------------------------------------ walking
    def allowed(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """``(..., card_level)`` bool mask of tokens that extend the prefixes at ``nodes`` (level ``level``).

        A node ``-1`` (a dead prefix) allows nothing (without the guard it would index the last row).
        """
        mask = self.child_table(level).to(nodes.device)[nodes.clamp(min=0)] >= 0
        return mask & (nodes >= 0).unsqueeze(-1)

    def step(self, level: int, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next node (item id at the last level) for each (node, token); ``-1`` where invalid
        (dead node ``-1`` or token outside ``[0, card_level)``)."""
        card = self.cardinalities[level]
        ok = (nodes >= 0) & (tokens >= 0) & (tokens < card)
        nxt = self.child_table(level).to(nodes.device)[nodes.clamp(min=0), tokens.clamp(0, card - 1)]
        return torch.where(ok, nxt, torch.full_like(nxt, -1))

    def item_of(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` token rows -> ``(B,)`` item ids, ``-1`` for tuples that are not a valid Rec-ID."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.ndim != 2 or codes.shape[1] != self.n_levels:
            raise ValueError(f"item_of expects (B, {self.n_levels}) token rows, got {tuple(codes.shape)}")
        node = torch.zeros(codes.shape[0], dtype=torch.long, device=codes.device)
        for level in range(self.n_levels):
            node = self.step(level, node, codes[:, level])
        return node

    def extra_repr(self) -> str:
        sizes = [self.child_table(level).shape[0] for level in range(self.n_levels)]
        return f"items={self.n_items}, cardinalities={self.cardinalities}, nodes per level={sizes}"


def _padded_rows(table: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """A dense ``(n, card)`` child table -> padded ``(tokens, nexts)`` int32 tables ``(n, C)`` of each row's valid
    entries in token order, and each child's index in its row (``(n_children,)`` int64, indexed by the child);
    ``(n, 0)`` tensors and ``None`` when some row has more than ``card / 2`` valid entries."""
    n, card = table.shape
    valid = table >= 0
    counts = valid.sum(1)
    width = int(counts.max()) if n else 0
    if n == 0 or 2 * width > card or int(table.max()) >= 2**31:
        empty = torch.zeros((n, 0), dtype=torch.int32)
        return empty, empty.clone(), None
    rows, cols = np.nonzero(valid)                                       # row-major: tokens ascending per row
    pos = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
    tokens = np.full((n, width), -1, dtype=np.int32)
    nexts = np.full((n, width), -1, dtype=np.int32)
    tokens[rows, pos] = cols
    child = table[rows, cols]
    nexts[rows, pos] = child
    slot = np.zeros(int(child.max()) + 1, dtype=np.int64)
    slot[child] = pos
    return torch.from_numpy(tokens), torch.from_numpy(nexts), slot


__all__ = ["PrefixTrie"]
