"""What every tokenizer produces: a :class:`RecIDRun` (embeddings, semantic codes, the Rec-ID table and
statistics), and :func:`build_recids`, which turns semantic codes into unique Rec-IDs and their statistics.

Graph RQ-VAE, HK-Means and "ID w/o" all return a ``RecIDRun``; plots, widgets, experiments and the generator
read it without importing the tokenizer that made it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils import atomic_save, load_checkpoint
from .recid import RecIDTable, disambiguate
from .stats import recid_stats


@dataclass
class RecIDRun:
    """Everything Rec-ID assignment produces; the generator reads embeddings and the table from here.

    Attributes:
        user_emb: ``(n_users, D)`` float32 user representations :math:`\\mathbf{h}_u` (CPU).
        item_emb: ``(n_items, D)`` float32 item representations :math:`\\mathbf{h}_i` (eq. 13's inputs).
        semantic: ``(n_items, n_levels)`` int64 semantic tokens.
        table: the :class:`RecIDTable` (``None`` when ``collision == "none"``).
        stats: flat statistics row (:func:`mmgrec_lib.tokenizer.stats.recid_stats` plus training facts).
        history: one dict per epoch of every training phase (``phase`` key).
        config: the configuration as a dict.
        method: ``"graph_rqvae"``, ``"hkmeans"``, ``"id_wo_graph"``, ...
        model_state: ``state_dict`` of the model that produced the codes (may be ``None``).
    """

    user_emb: torch.Tensor
    item_emb: torch.Tensor
    semantic: torch.Tensor
    table: RecIDTable | None
    stats: dict[str, Any]
    history: list[dict] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    method: str = "graph_rqvae"
    model_state: dict[str, Any] | None = None

    FORMAT = "mmgrec.recidrun.v1"

    @property
    def codes(self) -> torch.Tensor:
        """``(n_items, M)`` Rec-IDs (semantic tokens plus collision token)."""
        if self.table is None:
            raise ValueError("this run has no Rec-ID table (collision='none'); use .semantic")
        return self.table.codes

    @property
    def n_items(self) -> int:
        return int(self.semantic.shape[0])

    def semantic_codebooks(self) -> torch.Tensor:
        """``(n_levels, L, d)`` float32 (CPU) the RQ-VAE codebooks behind the semantic tokens: row ``[l, k]`` is
        the codeword of token ``k`` at level ``l`` (what the generator's ``tie_output`` ties its head to).

        Only a run whose semantic codes its own RQ-VAE quantised, with that model's weights kept, has them:
        Graph RQ-VAE runs (``rqvae.quantizer.codebooks``) and "ID w/o" runs built without a ``base_run``
        (``quantizer.codebooks``). HK-Means runs, runs whose codes were swapped in by :meth:`with_codes` and
        runs saved without ``model_state`` have no codeword per token: ``ValueError``.
        """
        state = self.model_state or {}
        keys = [k for k in state if k == "quantizer.codebooks" or k.endswith(".quantizer.codebooks")]
        if self.method not in ("graph_rqvae", "id_wo_graph") or len(keys) != 1:
            raise ValueError(f"this Rec-ID run (method {self.method!r}) has no RQ-VAE codebooks behind its semantic "
                             "tokens (only Graph RQ-VAE and 'ID w/o' runs with their model_state do; HK-Means "
                             "codes and codes set with with_codes() have none): tie_output cannot be used with it")
        books = torch.as_tensor(state[keys[0]]).detach().float().cpu()
        sem = self.semantic
        if books.ndim != 3 or books.shape[0] != sem.shape[1] or (sem.numel() and int(sem.max()) >= books.shape[1]):
            raise ValueError(f"the run's codebooks {tuple(books.shape)} do not match its semantic codes "
                             f"{tuple(sem.shape)}")
        return books

    def with_codes(self, semantic: np.ndarray | torch.Tensor, popularity: np.ndarray | None,
                   collision: str | None = None, codebook_size: int | None = None, method: str = "custom",
                   recon_error: float | None = None, extra_stats: dict[str, Any] | None = None,
                   seed: int | None = None) -> "RecIDRun":
        """A new run with the same embeddings and other semantic codes (HK-Means, "ID w/o", ...), passed
        through the same disambiguation, table and statistics."""
        collision = collision or self.config.get("collision", "popularity")
        size = int(codebook_size or self.config.get("codebook_size") or (int(np.max(np.asarray(semantic))) + 1))
        seed = int(self.config.get("seed", 0) if seed is None else seed)
        carried = {k: self.stats[k] for k in ("dataset",) if k in self.stats}
        sem, table, stats = build_recids(semantic, popularity, collision, size, seed,
                                         {**self.config, "collision": collision, "method": method},
                                         recon_error, {**carried, "codebook_size": size, **(extra_stats or {})})
        return RecIDRun(self.user_emb, self.item_emb, sem, table, {"method": method, **stats},
                        history=[], config={**self.config, "collision": collision, "method": method},
                        method=method, model_state=None)

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic save (``torch.save`` to a temp file + rename)."""
        state = {
            "format": self.FORMAT, "user_emb": self.user_emb.cpu(), "item_emb": self.item_emb.cpu(),
            "semantic": self.semantic.cpu(), "stats": self.stats, "history": self.history,
            "config": self.config, "method": self.method, "model_state": self.model_state,
            "codes": None if self.table is None else self.table.codes,
            "cardinalities": None if self.table is None else self.table.cardinalities,
            "table_config": None if self.table is None else self.table.config,
        }
        return atomic_save(state, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RecIDRun":
        state = load_checkpoint(path)
        if not isinstance(state, dict) or state.get("format") != cls.FORMAT:
            raise ValueError(f"{path} is not a Rec-ID run saved by RecIDRun.save")
        table = None
        if state["codes"] is not None:
            table = RecIDTable(state["codes"], state["cardinalities"], state["table_config"])
        return cls(state["user_emb"], state["item_emb"], state["semantic"], table, state["stats"],
                   state["history"], state["config"], state["method"], state["model_state"])

    def __repr__(self) -> str:
        return (f"RecIDRun(method={self.method!r}, users={self.user_emb.shape[0]}, items={self.n_items}, "
                f"dim={self.item_emb.shape[1]}, levels={self.semantic.shape[1]}, table={self.table})")


def build_recids(semantic: np.ndarray | torch.Tensor, popularity: np.ndarray | None, collision: str,
                 codebook_size: int, seed: int = 0, config: dict[str, Any] | None = None,
                 recon_error: float | None = None, extra_stats: dict[str, Any] | None = None,
                 ) -> tuple[torch.Tensor, RecIDTable | None, dict[str, Any]]:
    """Semantic codes -> (semantic tensor, :class:`RecIDTable` or ``None`` for ``"none"``, stats row)."""
    sem = torch.as_tensor(np.asarray(semantic.cpu() if isinstance(semantic, torch.Tensor) else semantic),
                          dtype=torch.long)
    if sem.ndim != 2:
        raise ValueError(f"semantic codes must be (n_items, levels), got {tuple(sem.shape)}")
    if sem.numel() and (int(sem.min()) < 0 or int(sem.max()) >= codebook_size):
        raise ValueError(f"semantic codes must lie in [0, {codebook_size}), got [{int(sem.min())}, {int(sem.max())}]")
    table = None
    if collision != "none":
        codes = disambiguate(sem, popularity, collision, seed=seed)                # (I, M)
        cards = [codebook_size] * sem.shape[1] + [int(codes[:, -1].max()) + 1]
        table = RecIDTable(codes, cards, config)
    stats = recid_stats(sem, codebook_size, None if table is None else table.codes, recon_error,
                        {"collision": collision, **(extra_stats or {})})
    return sem, table, stats
