r"""LightGCN (He et al., 2020) on the user-item training graph, via PyG's
:class:`torch_geometric.nn.models.LightGCN`.

Users are nodes ``0 .. U-1`` and items ``U .. U+I-1`` of an undirected bipartite graph (both edge
directions) with the symmetric normalisation :math:`\tilde{A} = D^{-1/2} A D^{-1/2}`:

.. math::

    \mathbf{E}^{(l+1)} = \tilde{A}\,\mathbf{E}^{(l)}, \qquad
    \mathbf{e} = \frac{1}{L+1}\sum_{l=0}^{L} \mathbf{E}^{(l)}, \qquad
    \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_{U+i},

trained with BPR and L2 on the batch's layer-0 embeddings (PyG's ``recommendation_loss``):

.. math::

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
                  + \frac{\lambda}{B}\sum_{(u,i,j)} \left(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_{U+i}\|^2
                  + \|\mathbf{e}^{(0)}_{U+j}\|^2\right).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.nn.conv import LGConv
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from ..data.dataset import RecDataset
from ..data.sparse import constant_spmm, row_spmm, symmetric_adjacency
from ..utils import check_fields
from .base import (BPRRecommender, check_edge_index, check_non_negative, check_positive, init_normal_,
                   require_graph)


class SymmetricLGConv(LGConv):
    """PyG's :class:`~torch_geometric.nn.conv.LGConv` for a pre-normalised symmetric sparse adjacency."""

    def message_and_aggregate(self, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return constant_spmm(adj_t, x)                  # symmetric: the backward reuses A (no transpose)


@dataclass
class LightGCNConfig:
    """LightGCN hyper-parameters (defaults tuned on ml100k, 80/10/10 split; epochs live in ``LoopConfig``).

    Args:
        dim: embedding size :math:`D`.
        n_layers: propagation layers :math:`L` (final embedding = mean of layers ``0..L``).
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's layer-0 embeddings (per triple).
        batch_size: triples per step (each step propagates over the whole graph once).
        init_std: std of the normal initialisation of the layer-0 embeddings.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    n_layers: int = 2          # n_layers, lr, reg: chosen on ml100k validation (README, "How the defaults
    lr: float = 5e-3           # were chosen")
    reg: float = 1e-3
    batch_size: int = 2048
    init_std: float = 0.1
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("LightGCNConfig", dim=self.dim, lr=self.lr, batch_size=self.batch_size,
                       init_std=self.init_std)
        check_non_negative("LightGCNConfig", n_layers=self.n_layers, reg=self.reg)


class LightGCN(BPRRecommender):
    """LightGCN recommender.

    Args:
        n_users, n_items: sizes.
        config: :class:`LightGCNConfig` (``None``: defaults); keyword overrides allowed.
        edge_index: ``(2, E)`` long (user, item) training pairs, both 0-based; ``fit`` replaces it with the
            fitted dataset's training pairs. :meth:`from_dataset` passes ``dataset.train_edge_index()``.
    """

    config_class = LightGCNConfig

    def __init__(self, n_users: int, n_items: int, config: LightGCNConfig | None = None,
                 edge_index: torch.Tensor | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        c = self.config
        # normalize=False: the symmetric normalisation is applied once, to the cached sparse adjacency, whose
        # symmetry the layers exploit in the backward pass
        self.gnn = PyGLightGCN(self.n_users + self.n_items, c.dim, c.n_layers, normalize=False)
        self.gnn.convs = torch.nn.ModuleList([SymmetricLGConv(normalize=False) for _ in range(c.n_layers)])
        self._adj_cache: tuple | None = None     # (device, sparse normalised adjacency)
        self._emb_cache: tuple | None = None     # (weights key, propagated embeddings) for inference
        self.register_buffer("edge_index", torch.zeros(2, 0, dtype=torch.long), persistent=False)  # (2, E)
        if edge_index is not None:
            self.set_graph(edge_index)
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    @classmethod
    def from_dataset(cls, dataset: RecDataset, config: LightGCNConfig | None = None, **overrides) -> "LightGCN":
        return cls(dataset.n_users, dataset.n_items, config, edge_index=dataset.train_edge_index(), **overrides)

    def _init_tensors(self) -> dict[str, torch.Tensor]:
        return {"edge_index": self.edge_index}

    # ------------------------------------------------------------------ graph
    def set_graph(self, edge_index: torch.Tensor) -> None:
        """Use ``(2, E)`` (user, item) pairs as the propagation graph."""
        edge_index = check_edge_index(edge_index, self.n_users, self.n_items)
        self.edge_index = edge_index.to(self.edge_index.device, copy=True)
        self._adj_cache = self._emb_cache = None

    def prepare(self, dataset: RecDataset) -> None:
        self.set_graph(dataset.train_edge_index())

    def adjacency(self) -> torch.Tensor:
        r"""The normalised ``(U+I, U+I)`` adjacency :math:`D^{-1/2} A D^{-1/2}` as a sparse CSR tensor (cached)."""
        key = self.edge_index.device                  # rebuilt after set_graph() or a move to another device
        if self._adj_cache is None or self._adj_cache[0] != key:
            self._adj_cache = (key, symmetric_adjacency(self.edge_index, self.n_users, self.n_items))
        return self._adj_cache[1]

    def embeddings(self) -> torch.Tensor:
        """Propagated node embeddings ``(U+I, D)``; cached at inference until the weights change."""
        if torch.is_grad_enabled() and self.gnn.embedding.weight.requires_grad:
            return self.gnn.get_embedding(self.adjacency())
        w = self.gnn.embedding.weight
        key = (w._version, w.data_ptr())              # bumped by optimizer steps and load_state_dict
        if self._emb_cache is None or self._emb_cache[0] != key:
            with torch.no_grad():
                self._emb_cache = (key, self.gnn.get_embedding(self.adjacency()))
        return self._emb_cache[1]

    # ------------------------------------------------------------------ model
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_normal_(self.gnn.embedding.weight, self.config.init_std, generator)

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        users = self._check_users(users)
        require_graph(self)
        emb = self.embeddings()                                                  # (U+I, D)
        return emb[users] @ emb[self.n_users:].T                                 # (B, I)

    def node_embeddings(self, nodes: torch.Tensor) -> torch.Tensor:
        """Rows ``nodes`` (``(n,)`` distinct long) of :meth:`embeddings`, differentiable: every layer but the last
        propagates over the whole graph, the last only into ``nodes`` (:func:`row_spmm`; the layer mean needs no
        other row of it). Same values and gradients, bit for bit, as PyG's full ``get_embedding`` followed by
        ``[nodes]`` (tested), at about one graph product less per training step in each direction."""
        adj, gnn = self.adjacency(), self.gnn
        x = gnn.embedding.weight                                                 # (U+I, D) layer 0
        out = x[nodes] * gnn.alpha[0]                                            # (n, D)
        for n, conv in enumerate(gnn.convs):
            if n + 1 < len(gnn.convs):
                x = conv(x, adj)                                                 # (U+I, D) layer n + 1
                out = out + x[nodes] * gnn.alpha[n + 1]
            else:
                out = out + row_spmm(adj, nodes, x) * gnn.alpha[n + 1]          # (n, D) last layer, rows only
        return out

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        nodes, inv = torch.unique(torch.cat([users, pos + self.n_users, neg + self.n_users]), return_inverse=True)
        emb = self.node_embeddings(nodes)                                        # (n, D) the batch's nodes only
        B = users.shape[0]
        e_u, e_i, e_j = emb[inv[:B]], emb[inv[B:2 * B]], emb[inv[2 * B:]]       # (B, D) each
        y_ui, y_uj = (e_u * e_i).sum(-1), (e_u * e_j).sum(-1)                   # (B,)
        node_id = torch.cat([users, pos + self.n_users, neg + self.n_users])    # (3B,)
        return self.gnn.recommendation_loss(y_ui, y_uj, node_id=node_id, lambda_reg=self.config.reg)
