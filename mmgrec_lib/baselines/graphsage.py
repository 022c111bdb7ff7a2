r"""GraphSAGE (Hamilton et al., 2017) on the user-item training graph, via PyG's
:class:`~torch_geometric.nn.conv.SAGEConv` with the mean aggregator.

Users are nodes ``0 .. U-1`` and items ``U .. U+I-1`` of an undirected bipartite graph (both edge
directions). Layer-0 embeddings :math:`\mathbf{h}^{(0)}_v` are learned; each layer concatenates a node with the
mean of its neighbours (Algorithm 1 of the paper, written as two weight matrices, which is the same map):

.. math::

    \mathbf{h}^{(l+1)}_v = \sigma_l\!\Big(\mathbf{W}^{(l)}_1 \mathbf{h}^{(l)}_v
        + \mathbf{W}^{(l)}_2 \frac{1}{|\mathcal{N}(v)|}\sum_{w \in \mathcal{N}(v)} \mathbf{h}^{(l)}_w
        + \mathbf{b}^{(l)}\Big),
    \qquad \sigma_l = \mathrm{ReLU} \text{ for } l < L-1,\ \text{identity for the last layer},

optionally followed by :math:`\mathbf{h}_v \leftarrow \mathbf{h}_v / \|\mathbf{h}_v\|_2` (the paper's line 7,
``normalize``; off by default: dot products of unit vectors bound the BPR margin). The neighbour mean is one
product with the row-normalised adjacency :math:`D^{-1}A` (cached once per graph). Scores and loss:

.. math::

    \hat{y}_{ui} = \mathbf{h}^{(L)\top}_u \mathbf{h}^{(L)}_{U+i}, \qquad
    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
                  + \frac{\lambda}{B}\sum_{(u,i,j)} \left(\|\mathbf{h}^{(0)}_u\|^2 + \|\mathbf{h}^{(0)}_{U+i}\|^2
                  + \|\mathbf{h}^{(0)}_{U+j}\|^2\right).

This module also holds :class:`GraphBPRRecommender`, the graph plumbing shared with :mod:`.gat` and
:mod:`.ngcf` (training graph, caches, save/load, the loss, reproducible dropout).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..data.dataset import RecDataset
from ..tokenizer.graph_rqvae import MeanSAGEConv, mean_adjacency
from ..utils import check_fields, eval_mode, seeded_rng
from .base import (BPRRecommender, check_below_one, check_edge_index, check_non_negative, check_positive,
                   init_normal_, init_xavier_uniform_, next_step_seed, register_step_seed, require_graph,
                   reset_step_seed, weights_key)

DROPOUT_SEED_BUFFERS = ("dropout_seed", "dropout_step")   # the per-step seed buffers (state_dict names)


def reset_conv_(conv: torch.nn.Module, generator: torch.Generator | None) -> None:
    """Re-draw every weight of a PyG layer from ``generator`` (Glorot), biases to zero."""
    for name, p in conv.named_parameters():
        if name.rsplit(".", 1)[-1] == "bias":
            with torch.no_grad():
                p.zero_()
        else:
            init_xavier_uniform_(p, generator)


class GraphBPRRecommender(BPRRecommender):
    """A BPR recommender whose representations come from a GNN over the user-item training graph.

    Subclasses build their layers in ``__init__`` after ``super().__init__`` and end it with
    :meth:`_finish_init`; they implement :meth:`_reset_weights` (every draw from the generator),
    :meth:`_build_graph` (the propagation structure on a device) and :meth:`propagate`. Provided here:
    the training graph (:meth:`set_graph`, saved with the model), the cached graph structure, the cached
    inference embeddings, :meth:`score` and the BPR + L2 :meth:`bpr_loss` (L2 on the batch's layer-0
    embeddings ``self.emb``).

    Dropout draws from torch's global RNG during training only, inside :func:`~mmgrec_lib.utils.seeded_rng`
    seeded per step from two buffers (a seed drawn from the ``fit`` generator and a step counter). The buffers
    are in the ``state_dict``, which the training loop checkpoints, so a resumed run is exact and the
    caller's global RNG state is left as it was.
    """

    emb: torch.nn.Parameter           # (U+I, D) layer-0 embeddings; set by subclasses

    def __init__(self, n_users: int, n_items: int, config: Any = None, **overrides: Any) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        self._graph_cache: tuple | None = None   # (device, propagation structure)
        self._emb_cache: tuple | None = None     # (weights key, propagated embeddings) for inference
        self.register_buffer("edge_index", torch.zeros(2, 0, dtype=torch.long), persistent=False)  # (2, E)
        register_step_seed(self, DROPOUT_SEED_BUFFERS)

    def _finish_init(self, edge_index: torch.Tensor | None) -> None:
        if edge_index is not None:
            self.set_graph(edge_index)
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    @classmethod
    def from_dataset(cls, dataset: RecDataset, config: Any = None, **overrides: Any) -> "GraphBPRRecommender":
        return cls(dataset.n_users, dataset.n_items, config, edge_index=dataset.train_edge_index(), **overrides)

    def _init_tensors(self) -> dict[str, torch.Tensor]:
        return {"edge_index": self.edge_index}

    # ------------------------------------------------------------------ graph
    def set_graph(self, edge_index: torch.Tensor) -> None:
        """Use ``(2, E)`` (user, item) pairs as the propagation graph."""
        edge_index = check_edge_index(edge_index, self.n_users, self.n_items)
        self.edge_index = edge_index.to(self.edge_index.device, copy=True)
        self._graph_cache = self._emb_cache = None

    def prepare(self, dataset: RecDataset) -> None:
        self.set_graph(dataset.train_edge_index())

    def graph(self) -> Any:
        """The propagation structure of :meth:`_build_graph` on the model's device (cached)."""
        key = self.edge_index.device                  # rebuilt after set_graph() or a move to another device
        if self._graph_cache is None or self._graph_cache[0] != key:
            require_graph(self)
            self._graph_cache = (key, self._build_graph(self.edge_index))
        return self._graph_cache[1]

    def _build_graph(self, edge_index: torch.Tensor) -> Any:
        """``(2, E)`` (user, item) pairs -> what :meth:`propagate` takes (an adjacency or an edge index)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ model
    def _reset_weights(self, generator: torch.Generator | None) -> None:
        raise NotImplementedError

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self._reset_weights(generator)
        reset_step_seed(self, generator, DROPOUT_SEED_BUFFERS)
        self._emb_cache = None

    def propagate(self, graph: Any) -> torch.Tensor:
        """Final node representations ``(U+I, D')`` from ``self.emb``; dropout only when ``self.training``."""
        raise NotImplementedError

    def _dropout_rates(self) -> tuple[float, ...]:
        return (float(getattr(self.config, "dropout", 0.0)),)

    @contextlib.contextmanager
    def _dropout_rng(self):
        """During training with dropout: a private global RNG seeded from ``(dropout_seed, dropout_step)``."""
        if not (self.training and any(p > 0 for p in self._dropout_rates())):
            yield
            return
        with seeded_rng(next_step_seed(self, DROPOUT_SEED_BUFFERS), self.dropout_step.device):
            yield

    def embeddings(self) -> torch.Tensor:
        """Final node representations ``(U+I, D')``; with gradients off, computed in eval mode and cached until
        the weights change."""
        if torch.is_grad_enabled():
            with self._dropout_rng():
                return self.propagate(self.graph())
        key = weights_key(self)
        if self._emb_cache is None or self._emb_cache[0] != key:
            graph = self.graph()
            with eval_mode(self):
                self._emb_cache = (key, self.propagate(graph))
        return self._emb_cache[1]

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        users = self._check_users(users)
        emb = self.embeddings()                                                  # (U+I, D')
        return emb[users] @ emb[self.n_users:].T                                 # (B, I)

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        with self._dropout_rng():
            emb = self.propagate(self.graph())                                   # (U+I, D')
        pos, neg = pos + self.n_users, neg + self.n_users
        e_u, e_i, e_j = emb[users], emb[pos], emb[neg]                           # (B, D') each
        y_ui, y_uj = (e_u * e_i).sum(-1), (e_u * e_j).sum(-1)                   # (B,)
        e0 = self.emb[torch.cat([users, pos, neg])]                              # (3B, D) layer 0
        reg = e0.square().sum() / len(users)
        return -F.logsigmoid(y_ui - y_uj).mean() + self.config.reg * reg


@dataclass
class GraphSAGEConfig:
    """GraphSAGE hyper-parameters (not tuned: sensible values; epochs live in ``LoopConfig``).

    Args:
        dim: embedding and layer width :math:`D`.
        n_layers: SAGE layers :math:`L` (``>= 1``); ReLU between layers, none after the last.
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's layer-0 embeddings (per triple).
        batch_size: triples per step (each step propagates over the whole graph once).
        init_std: std of the normal initialisation of the layer-0 embeddings (weights: Glorot).
        dropout: dropout on each layer's input (training only).
        normalize: L2-normalise every layer's output (the paper's Algorithm 1, line 7).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    n_layers: int = 2
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    dropout: float = 0.0
    normalize: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("GraphSAGEConfig", dim=self.dim, n_layers=self.n_layers, lr=self.lr,
                       batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("GraphSAGEConfig", reg=self.reg, dropout=self.dropout)
        check_below_one("GraphSAGEConfig", dropout=self.dropout)


class GraphSAGE(GraphBPRRecommender):
    """GraphSAGE recommender (mean aggregator).

    Args:
        n_users, n_items: sizes.
        config: :class:`GraphSAGEConfig` (``None``: defaults); keyword overrides allowed.
        edge_index: ``(2, E)`` long (user, item) training pairs, both 0-based; ``fit`` replaces it with the
            fitted dataset's training pairs. :meth:`from_dataset` passes ``dataset.train_edge_index()``.
    """

    config_class = GraphSAGEConfig

    def __init__(self, n_users: int, n_items: int, config: GraphSAGEConfig | None = None,
                 edge_index: torch.Tensor | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        c = self.config
        self.emb = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, c.dim))        # (U+I, D)
        # lin_r = W1 (root), lin_l = W2 (+ bias) on the neighbour mean; "sum" over 1/deg-weighted edges = mean
        with seeded_rng():        # PyG's own init draws from the global RNG: keep the caller's state
            self.convs = torch.nn.ModuleList(MeanSAGEConv(c.dim, c.dim, aggr="sum", root_weight=True)
                                             for _ in range(c.n_layers))
        self._finish_init(edge_index)

    def _build_graph(self, edge_index: torch.Tensor) -> torch.Tensor:
        r"""Row-normalised :math:`D^{-1}A` ``(U+I, U+I)`` as a sparse CSR tensor (rows: targets)."""
        return mean_adjacency(edge_index, self.n_users, self.n_items)

    def _reset_weights(self, generator: torch.Generator | None) -> None:
        init_normal_(self.emb, self.config.init_std, generator)
        for conv in self.convs:
            reset_conv_(conv, generator)

    def propagate(self, adj: torch.Tensor) -> torch.Tensor:
        c = self.config
        h = self.emb                                                             # (U+I, D)
        for n, conv in enumerate(self.convs):
            h = F.dropout(h, c.dropout, self.training) if c.dropout > 0 else h
            h = conv(h, adj)                                                     # (U+I, D)
            if n < len(self.convs) - 1:
                h = F.relu(h)
            if c.normalize:
                h = F.normalize(h, dim=-1)
        return h
