r"""GAT (Veličković et al., 2018) on the user-item training graph, via PyG's
:class:`~torch_geometric.nn.conv.GATConv`.

Users are nodes ``0 .. U-1`` and items ``U .. U+I-1`` of an undirected bipartite graph (both edge
directions, plus a self-loop per node). Layer-0 embeddings :math:`\mathbf{h}^{(0)}_v` are learned; each layer
averages :math:`K` attention heads (the paper's output-layer form, so every layer stays :math:`D` wide):

.. math::

    \alpha^{k}_{vw} = \operatorname{softmax}_{w \in \mathcal{N}(v) \cup \{v\}}\Big(\mathrm{LeakyReLU}_{0.2}\big(
        \mathbf{a}^{k\top}\,[\mathbf{W}^{k}\mathbf{h}^{(l)}_v \,\|\, \mathbf{W}^{k}\mathbf{h}^{(l)}_w]\big)\Big),
    \qquad
    \mathbf{h}^{(l+1)}_v = \sigma_l\!\Big(\frac{1}{K}\sum_{k=1}^{K}\sum_{w \in \mathcal{N}(v) \cup \{v\}}
        \alpha^{k}_{vw}\,\mathbf{W}^{k}\mathbf{h}^{(l)}_w + \mathbf{b}^{(l)}\Big),

with :math:`\sigma_l = \mathrm{ELU}` between layers and the identity after the last. As in the paper, dropout
is applied to each layer's input (``dropout``) and to the normalised attention coefficients
(``attn_dropout``), during training only. Scores and loss:

.. math::

    \hat{y}_{ui} = \mathbf{h}^{(L)\top}_u \mathbf{h}^{(L)}_{U+i}, \qquad
    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
                  + \frac{\lambda}{B}\sum_{(u,i,j)} \left(\|\mathbf{h}^{(0)}_u\|^2 + \|\mathbf{h}^{(0)}_{U+i}\|^2
                  + \|\mathbf{h}^{(0)}_{U+j}\|^2\right).

The layers are PyG :class:`~torch_geometric.nn.conv.GATConv` modules (they hold the weights and define the
layer; ``GATConv(h, edge_index)`` gives the same output, tested), but :func:`gat_layer` evaluates them without
per-edge messages: the attention logits need only per-node scalars gathered on the edges, and the weighted sum
over neighbours is one sparse product over a fixed pattern holding every head as a block of columns
(:class:`~mmgrec_lib.data.sparse.EdgePattern`), whose backward pass is a sampled dense product. Edge-wise message
passing gathers an ``(E, K, D)`` tensor forward and backward, the dominant cost of a training step on CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch_geometric.nn.conv import GATConv
from torch_geometric.utils import softmax as segment_softmax

from ..data.sparse import EdgePattern, bipartite_edge_index
from ..utils import check_fields, seeded_rng
from .base import check_below_one, check_non_negative, check_positive, init_normal_
from .graphsage import GraphBPRRecommender, reset_conv_


@dataclass
class GATConfig:
    """GAT hyper-parameters (not tuned: sensible values; epochs live in ``LoopConfig``).

    Args:
        dim: embedding and layer width :math:`D`.
        n_layers: attention layers :math:`L` (``>= 1``); ELU between layers, none after the last.
        heads: attention heads :math:`K` per layer, averaged.
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's layer-0 embeddings (per triple).
        batch_size: triples per step (each step propagates over the whole graph once).
        init_std: std of the normal initialisation of the layer-0 embeddings (weights: Glorot).
        dropout: dropout on each layer's input (training only).
        attn_dropout: dropout on the attention coefficients (training only).
        negative_slope: LeakyReLU slope inside the attention (paper: 0.2).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    n_layers: int = 2
    heads: int = 2
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    dropout: float = 0.1
    attn_dropout: float = 0.1
    negative_slope: float = 0.2
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("GATConfig", dim=self.dim, n_layers=self.n_layers, heads=self.heads, lr=self.lr,
                       batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("GATConfig", reg=self.reg, dropout=self.dropout, attn_dropout=self.attn_dropout,
                           negative_slope=self.negative_slope)
        check_below_one("GATConfig", dropout=self.dropout, attn_dropout=self.attn_dropout)


class GATGraph:
    """What :func:`gat_layer` needs of a graph over ``n`` nodes with ``heads`` heads: the ``(2, E')`` (source,
    target) edges with one self-loop per node appended (GATConv's order: the given edges, then the loops
    ``0..n-1``), and the pattern ``(n, heads * n)`` whose entry ``(target, h * n + source)`` carries head ``h``'s
    attention weight of that edge (``perm``: edge-major ``(E' * heads,)`` values -> the pattern's CSR order)."""

    def __init__(self, edge_index: torch.Tensor, n: int, heads: int) -> None:
        loops = torch.arange(n, device=edge_index.device)
        keep = edge_index[0] != edge_index[1]                                    # GATConv drops existing loops
        self.edge_index = torch.cat([edge_index[:, keep], torch.stack([loops, loops])], 1)   # (2, E')
        src, dst = self.edge_index
        offsets = torch.arange(heads, device=src.device) * n                     # (K,)
        cols = (src[:, None] + offsets).flatten()                                # (E' K,) edge-major
        rows = dst[:, None].expand(-1, heads).flatten()                          # (E' K,)
        self.pattern = EdgePattern(rows, cols, (n, heads * n))
        self.perm = self.pattern.order                                            # edge-major -> CSR
        self.n, self.heads = n, heads


def gat_layer(conv: GATConv, x: torch.Tensor, graph: GATGraph) -> torch.Tensor:
    """``conv(x, graph.edge_index)`` for a ``GATConv(..., concat=False, add_self_loops=True)`` (heads averaged),
    computed with one sparse product instead of per-edge messages (same values up to float rounding; attention
    dropout draws the same mask as GATConv in training mode)."""
    n, k, d = x.shape[0], conv.heads, conv.out_channels
    h = conv.lin(x).view(n, k, d)                                                # (N, K, D)
    a_src = (h * conv.att_src).sum(-1)                                           # (N, K)
    a_dst = (h * conv.att_dst).sum(-1)                                           # (N, K)
    src, dst = graph.edge_index
    logits = F.leaky_relu(a_src[src] + a_dst[dst], conv.negative_slope)          # (E', K)
    alpha = segment_softmax(logits, dst, num_nodes=n)                            # (E', K) over each target
    alpha = F.dropout(alpha, conv.dropout, conv.training)
    values = (alpha / k).flatten()[graph.perm]                                   # (E' K,) CSR order
    out = graph.pattern.spmm(values, h.transpose(0, 1).reshape(k * n, d))        # (N, D) heads averaged
    return out + conv.bias if conv.bias is not None else out


class GAT(GraphBPRRecommender):
    """GAT recommender.

    Args:
        n_users, n_items: sizes.
        config: :class:`GATConfig` (``None``: defaults); keyword overrides allowed.
        edge_index: ``(2, E)`` long (user, item) training pairs, both 0-based; ``fit`` replaces it with the
            fitted dataset's training pairs. :meth:`from_dataset` passes ``dataset.train_edge_index()``.
    """

    config_class = GATConfig

    def __init__(self, n_users: int, n_items: int, config: GATConfig | None = None,
                 edge_index: torch.Tensor | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        c = self.config
        self.emb = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, c.dim))        # (U+I, D)
        with seeded_rng():        # PyG's own init draws from the global RNG: keep the caller's state
            self.convs = torch.nn.ModuleList(
                GATConv(c.dim, c.dim, heads=c.heads, concat=False, negative_slope=c.negative_slope,
                        dropout=c.attn_dropout, add_self_loops=True)
                for _ in range(c.n_layers))
        self._finish_init(edge_index)

    def _build_graph(self, edge_index: torch.Tensor) -> GATGraph:
        """The bipartite graph's ``(2, 2E)`` (source, target) node pairs plus self-loops, as a :class:`GATGraph`
        (a repeated (user, item) pair is one edge)."""
        pairs = torch.unique(edge_index, dim=1) if edge_index.shape[1] else edge_index
        return GATGraph(bipartite_edge_index(pairs, self.n_users), self.n_users + self.n_items, self.config.heads)

    def _dropout_rates(self) -> tuple[float, ...]:
        return (self.config.dropout, self.config.attn_dropout)

    def _reset_weights(self, generator: torch.Generator | None) -> None:
        init_normal_(self.emb, self.config.init_std, generator)
        for conv in self.convs:
            reset_conv_(conv, generator)       # W^k (H*D, D), a_src and a_dst (1, H, D): Glorot; bias: 0

    def propagate(self, graph: GATGraph) -> torch.Tensor:
        c = self.config
        h = self.emb                                                             # (U+I, D)
        for n, conv in enumerate(self.convs):
            h = F.dropout(h, c.dropout, self.training) if c.dropout > 0 else h
            h = gat_layer(conv, h, graph)                                        # (U+I, D) heads averaged
            if n < len(self.convs) - 1:
                h = F.elu(h)
        return h
