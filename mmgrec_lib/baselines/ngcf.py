r"""NGCF, Neural Graph Collaborative Filtering (Wang et al., SIGIR 2019), on the user-item training graph.

Users are nodes ``0 .. U-1`` and items ``U .. U+I-1`` of an undirected bipartite graph (both edge
directions) with the symmetric normalised Laplacian :math:`\mathcal{L} = D^{-1/2} A D^{-1/2}` (no self-loops;
the identity adds them). Embedding propagation, the matrix form of the paper's eq. (7):

.. math::

    \mathbf{E}^{(l+1)} = \mathrm{LeakyReLU}\Big((\mathcal{L} + \mathbf{I})\,\mathbf{E}^{(l)}\mathbf{W}^{(l)}_1
        + \big((\mathcal{L}\mathbf{E}^{(l)}) \odot \mathbf{E}^{(l)}\big)\,\mathbf{W}^{(l)}_2\Big),

i.e. per node (eq. 3-4) the self message :math:`\mathbf{W}_1\mathbf{e}_u` plus, from every neighbour :math:`i`,
:math:`p_{ui}\big(\mathbf{W}_1\mathbf{e}_i + \mathbf{W}_2(\mathbf{e}_i \odot \mathbf{e}_u)\big)` with
:math:`p_{ui} = 1/\sqrt{|\mathcal{N}_u||\mathcal{N}_i|}`. Message dropout (section 2.4.2) is applied to each
layer's output :math:`\mathbf{E}^{(l+1)}` during training (as in the authors' code; node dropout is not
implemented). The final representation concatenates all layers (eq. 9), and scores are inner products (eq. 10):

.. math::

    \mathbf{e}^*_v = \mathbf{e}^{(0)}_v \,\|\, \mathbf{e}^{(1)}_v \,\|\, \cdots \,\|\, \mathbf{e}^{(L)}_v, \qquad
    \hat{y}_{ui} = \mathbf{e}^{*\top}_u \mathbf{e}^*_{U+i},

trained with BPR (eq. 11) and L2 on the batch's layer-0 embeddings:

.. math::

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
                  + \frac{\lambda}{B}\sum_{(u,i,j)} \left(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_{U+i}\|^2
                  + \|\mathbf{e}^{(0)}_{U+j}\|^2\right).

The bi-interaction layer is :class:`NGCFConv`, a PyG ``MessagePassing`` layer; with the cached sparse
:math:`\mathcal{L}` its neighbour sum is one :func:`~mmgrec_lib.data.sparse.constant_spmm`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch_geometric.nn.conv import MessagePassing

from ..data.sparse import constant_spmm, symmetric_adjacency
from ..utils import check_fields, seeded_rng
from .base import check_below_one, check_non_negative, check_positive, init_normal_, init_xavier_uniform_
from .graphsage import GraphBPRRecommender


class NGCFConv(MessagePassing):
    r"""One NGCF embedding-propagation layer,
    :math:`\mathrm{LeakyReLU}\big((\mathcal{L}+\mathbf{I})\mathbf{E}\mathbf{W}_1
    + ((\mathcal{L}\mathbf{E}) \odot \mathbf{E})\mathbf{W}_2\big)` (no biases, as in eq. 3 and 7).

    ``forward(x (N, D_in), edge_index, edge_weight=None) -> (N, D_out)``: ``edge_index`` is either a
    pre-normalised symmetric sparse ``(N, N)`` adjacency :math:`\mathcal{L}` (the fast path, through
    :func:`~mmgrec_lib.data.sparse.constant_spmm`) or ``(2, E)`` (source, target) pairs with ``edge_weight``
    :math:`p_{ui}` (``(E,)``).
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2) -> None:
        super().__init__(aggr="add")
        self.lin1 = torch.nn.Linear(in_channels, out_channels, bias=False)     # W1 (as weight.T)
        self.lin2 = torch.nn.Linear(in_channels, out_channels, bias=False)     # W2 (as weight.T)
        self.negative_slope = float(negative_slope)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        side = self.propagate(edge_index, x=x, edge_weight=edge_weight)         # (N, D_in)  L E
        return F.leaky_relu(self.lin1(side + x) + self.lin2(side * x), self.negative_slope)   # (N, D_out)

    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor | None) -> torch.Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return constant_spmm(adj_t, x)                  # symmetric: the backward reuses L (no transpose)


@dataclass
class NGCFConfig:
    """NGCF hyper-parameters (not tuned here; layers, slope and dropout as in the paper; epochs live in
    ``LoopConfig``).

    Args:
        dim: embedding and layer width :math:`D` (final representation: :math:`(L+1)D`).
        n_layers: propagation layers :math:`L` (``>= 1``).
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's layer-0 embeddings (per triple).
        batch_size: triples per step (each step propagates over the whole graph once).
        init_std: std of the normal initialisation of the layer-0 embeddings (weights: Glorot).
        dropout: message dropout on each layer's output (training only).
        negative_slope: LeakyReLU slope.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    n_layers: int = 3
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    dropout: float = 0.1
    negative_slope: float = 0.2
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("NGCFConfig", dim=self.dim, n_layers=self.n_layers, lr=self.lr,
                       batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("NGCFConfig", reg=self.reg, dropout=self.dropout, negative_slope=self.negative_slope)
        check_below_one("NGCFConfig", dropout=self.dropout)


class NGCF(GraphBPRRecommender):
    """NGCF recommender.

    Args:
        n_users, n_items: sizes.
        config: :class:`NGCFConfig` (``None``: defaults); keyword overrides allowed.
        edge_index: ``(2, E)`` long (user, item) training pairs, both 0-based; ``fit`` replaces it with the
            fitted dataset's training pairs. :meth:`from_dataset` passes ``dataset.train_edge_index()``.
    """

    config_class = NGCFConfig

    def __init__(self, n_users: int, n_items: int, config: NGCFConfig | None = None,
                 edge_index: torch.Tensor | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        c = self.config
        self.emb = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, c.dim))        # (U+I, D)
        with seeded_rng():        # torch's own init draws from the global RNG: keep the caller's state
            self.convs = torch.nn.ModuleList(NGCFConv(c.dim, c.dim, c.negative_slope) for _ in range(c.n_layers))
        self._finish_init(edge_index)

    def _build_graph(self, edge_index: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathcal{L} = D^{-1/2} A D^{-1/2}` ``(U+I, U+I)`` as a sparse CSR tensor."""
        return symmetric_adjacency(edge_index, self.n_users, self.n_items)

    def _reset_weights(self, generator: torch.Generator | None) -> None:
        init_normal_(self.emb, self.config.init_std, generator)
        for conv in self.convs:
            init_xavier_uniform_(conv.lin1.weight, generator)
            init_xavier_uniform_(conv.lin2.weight, generator)

    def propagate(self, adj: torch.Tensor) -> torch.Tensor:
        c = self.config
        h = self.emb                                                             # (U+I, D)
        layers = [h]
        for conv in self.convs:
            h = conv(h, adj)                                                     # (U+I, D)
            h = F.dropout(h, c.dropout, self.training) if c.dropout > 0 else h  # message dropout
            layers.append(h)
        return torch.cat(layers, dim=1)                                          # (U+I, (L+1) D)
