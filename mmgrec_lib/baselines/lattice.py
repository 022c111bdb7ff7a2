r"""LATTICE: latent item-item structures mined from modality features (Zhang et al., ACM MM 2021).

**Item-item graphs.** For modality :math:`m` with item features :math:`\mathbf{f}^m_i`, the kNN graph of a
matrix of item vectors :math:`\mathbf{X}` keeps, for every item, its :math:`k` most cosine-similar items
(itself included, as in the reference code), then adds the reverse edges (symmetrisation) and normalises:

.. math::

    s_{ij} = \frac{\mathbf{x}_i^\top \mathbf{x}_j}{\|\mathbf{x}_i\|\,\|\mathbf{x}_j\|}, \quad
    S_{ij} = \max(s_{ij}, 0)\,[\,j \in \operatorname{kNN}(i) \lor i \in \operatorname{kNN}(j)\,], \quad
    \hat{S} = D^{-1/2} S D^{-1/2},\ D = \operatorname{diag}(S\mathbf{1}).

The *original* graph :math:`\hat{S}^m_\text{orig}` is built once from the raw features and frozen; the
*learned* graph :math:`\hat{S}^m` is built from projected features :math:`\mathbf{W}_m \mathbf{f}^m_i + \mathbf{b}_m`
at the first training step of every epoch, as in the reference code (gradients flow through the kept similarities
into :math:`\mathbf{W}_m` at that step; the neighbour sets themselves are a hard top-k), and reused, as a
constant, by the epoch's other steps (``rebuild_every_step=True``: rebuilt, with gradients, at every step).
Inference builds it from the current projection. They are mixed by :math:`\lambda` (``lambda_coeff``) and combined over
modalities with learned weights :math:`\boldsymbol{\alpha} = \operatorname{softmax}(\boldsymbol{\omega})`:

.. math::

    A = \sum_m \alpha_m \big((1-\lambda)\,\hat{S}^m + \lambda\,\hat{S}^m_\text{orig}\big), \qquad
    \mathbf{H} = A^{L_\text{item}}\,\mathbf{E}_\text{item}.

**Backbone.** LightGCN on the user-item training graph (:math:`\tilde{A} = D^{-1/2} A D^{-1/2}`) gives
:math:`\bar{\mathbf{E}} = \frac{1}{L+1}\sum_{l=0}^{L} \tilde{A}^l [\mathbf{E}_\text{user}; \mathbf{E}_\text{item}]`;
the item-item part is added, row-normalised, to the items:

.. math::

    \mathbf{r}_u = \bar{\mathbf{e}}_u, \quad \mathbf{r}_i = \bar{\mathbf{e}}_{U+i}
        + \frac{\mathbf{h}_i}{\|\mathbf{h}_i\|}, \quad \hat{y}_{ui} = \mathbf{r}_u^\top \mathbf{r}_i,

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \frac{\lambda_\text{reg}}{B}\sum_{(u,i,j)}
          \left(\|\mathbf{e}_u\|^2 + \|\mathbf{e}_i\|^2 + \|\mathbf{e}_j\|^2\right)

(L2 on the batch's layer-0 embeddings, as in our LightGCN).

Differences from the reference code: the kNN graphs are symmetrised before the symmetric normalisation (the
reference normalises the one-directional top-k matrix by its row sums), similarities are clipped at 0, each
modality's mix is normalised separately as in the paper (the reference normalises the weighted sum of learned
graphs), and the raw features are fixed
(the reference fine-tunes them). Items lacking a modality have no edges in that modality's graphs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.sparse import EdgePattern, constant_spmm
from ..utils import check_fields
from .base import check_non_negative, check_positive, init_normal_, init_xavier_linear_, optional_tuple
from .mmgcn import MultimodalGraphRecommender, lightgcn_propagate, normalized_edge_values, to_csr

#: rows of a cosine-similarity chunk are chosen so that one chunk holds at most this many entries (64 MiB)
CHUNK_ENTRIES = 2 ** 24


# ---------------------------------------------------------------------------------------------- kNN graphs
@torch.no_grad()
def knn_edges(x: torch.Tensor, k: int, mask: torch.Tensor | None = None,
              chunk_size: int | None = None) -> torch.Tensor:
    """Directed kNN edges by cosine similarity: row ``i`` -> its ``k`` most similar rows of ``x``.

    The similarity matrix is computed ``chunk_size`` rows at a time (default: ``CHUNK_ENTRIES // N`` rows),
    so memory is ``O(chunk_size x N)``. A row is its own nearest neighbour and counts as one of the ``k``.

    Args:
        x: ``(N, F)`` item vectors.
        k: neighbours per row; clipped to the number of rows available.
        mask: ``(N,)`` bool, rows that take part (items having the modality): other rows neither have nor are
            neighbours. ``None``: all.
        chunk_size: rows per chunk.

    Returns:
        ``(2, N' * k)`` long (row, neighbour) pairs, grouped by row in increasing row order, where ``N'`` is
        the number of rows taking part.
    """
    n = x.shape[0]
    mask = torch.ones(n, dtype=torch.bool, device=x.device) if mask is None else mask.to(x.device).bool()
    rows = torch.nonzero(mask).flatten()                                                      # (N',)
    k = min(int(k), len(rows))
    if k <= 0:
        return torch.zeros(2, 0, dtype=torch.long, device=x.device)
    xn = F.normalize(x.float(), dim=1)                                                        # (N, F)
    step = int(chunk_size) if chunk_size else max(1, CHUNK_ENTRIES // max(n, 1))
    cols = []
    for start in range(0, len(rows), step):
        sim = xn[rows[start:start + step]] @ xn.T                                             # (C, N)
        sim.masked_fill_(~mask, -torch.inf)
        cols.append(torch.topk(sim, k, dim=1).indices)                                        # (C, k)
    cols = torch.cat(cols)                                                                    # (N', k)
    return torch.stack([rows.repeat_interleave(k), cols.flatten()])                           # (2, N'k)


def symmetrize_edges(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """The union of ``(2, E)`` edges and their reverses, without duplicates, sorted by (row, col): ``(2, E')``."""
    row, col = edge_index
    keys = torch.unique(torch.cat([row * n + col, col * n + row]))                            # sorted
    return torch.stack([keys // n, keys % n])


def cosine_edge_values(x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """``max(cos(x_i, x_j), 0)`` for every edge ``(i, j)``: ``(E,)``, differentiable in ``x``."""
    xn = F.normalize(x, dim=1)
    return (xn[edge_index[0]] * xn[edge_index[1]]).sum(-1).clamp_min(0.0)


def knn_graph(x: torch.Tensor, k: int, mask: torch.Tensor | None = None, weighted: bool = True,
              chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Symmetrised, symmetric-normalised kNN graph :math:`D^{-1/2} S D^{-1/2}` of the rows of ``x``.

    Args:
        x, k, mask, chunk_size: see :func:`knn_edges`.
        weighted: edge weights ``max(cos, 0)`` (LATTICE) or ones (FREEDOM).

    Returns:
        ``edge_index (2, E')`` sorted by (row, col), and the normalised values ``(E',)`` (a symmetric matrix).
    """
    n = x.shape[0]
    ei = symmetrize_edges(knn_edges(x, k, mask, chunk_size), n)                               # (2, E')
    values = cosine_edge_values(x.float(), ei) if weighted else None
    return ei, normalized_edge_values(ei, values, n, "sym")


def edge_spmm(edge_index: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A @ x`` for the ``(N, N)`` matrix with sorted, duplicate-free ``edge_index`` and ``values``, differentiable
    in both (:class:`~mmgrec_lib.data.sparse.EdgePattern`; the values are in its CSR order, the edges' order)."""
    n = x.shape[0]
    return EdgePattern(edge_index[0], edge_index[1], (n, n)).spmm(values, x)


# ---------------------------------------------------------------------------------------------- LATTICE
@dataclass
class LATTICEConfig:
    """LATTICE hyper-parameters (defaults not tuned here; epochs live in ``LoopConfig``).

    Args:
        dim: embedding size :math:`D`.
        feat_dim: width of the projected features the learned graphs are built from.
        n_layers: LightGCN layers :math:`L` on the user-item graph.
        n_item_layers: item-item graph layers :math:`L_\\text{item}` (the paper: 1).
        knn_k: neighbours kept per item (itself included) before symmetrisation.
        lambda_coeff: :math:`\\lambda` in ``[0, 1]``, the weight of the frozen original graphs (paper: 0.9).
        lr: Adam learning rate.
        reg: :math:`\\lambda_\\text{reg}`, L2 on the batch's layer-0 embeddings (per triple).
        batch_size: triples per step.
        init_std: std of the normal initialisation of the embeddings (projections: Xavier).
        rebuild_every_step: rebuild the learned graphs (with gradients) at every training step instead of at the
            first step of each epoch (the reference code's schedule; the other steps use them as constants).
        modalities: modalities to use (``None``: all of the dataset's), read by ``from_dataset``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    feat_dim: int = 64
    n_layers: int = 2
    n_item_layers: int = 1
    knn_k: int = 10
    lambda_coeff: float = 0.9
    lr: float = 1e-3
    reg: float = 1e-3
    batch_size: int = 2048
    init_std: float = 0.1
    rebuild_every_step: bool = False
    modalities: tuple[str, ...] | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("LATTICEConfig", dim=self.dim, feat_dim=self.feat_dim, knn_k=self.knn_k, lr=self.lr,
                       batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("LATTICEConfig", n_layers=self.n_layers, n_item_layers=self.n_item_layers, reg=self.reg)
        if not 0.0 <= self.lambda_coeff <= 1.0:
            raise ValueError(f"LATTICEConfig: lambda_coeff must be in [0, 1], got {self.lambda_coeff}")
        self.modalities = optional_tuple(self.modalities)


class LATTICE(MultimodalGraphRecommender):
    """LATTICE recommender with a LightGCN backbone (see the module docstring).

    Args:
        n_users, n_items: sizes.
        config: :class:`LATTICEConfig` (``None``: defaults); keyword overrides allowed.
        edge_index, item_features, feature_dims, feature_masks: see :class:`MultimodalGraphRecommender`;
            :meth:`from_dataset` passes them. The frozen original graphs are rebuilt from ``item_features``
            on ``config.device`` (so :meth:`load` needs nothing more).

    Raises:
        ValueError: no item features (``from_dataset`` names the dataset), or bad config values.
    """

    config_class = LATTICEConfig

    def __init__(self, n_users: int, n_items: int, config: LATTICEConfig | None = None, **kwargs) -> None:
        super().__init__(n_users, n_items, config, **kwargs)
        c = self.config
        self.user_emb = torch.nn.Parameter(torch.empty(self.n_users, c.dim))                   # (U, D)
        self.item_emb = torch.nn.Parameter(torch.empty(self.n_items, c.dim))                   # (I, D)
        self.proj = torch.nn.ModuleList([torch.nn.Linear(d, c.feat_dim) for d in self.modality_dims])  # d_m -> D'
        self.modal_logits = torch.nn.Parameter(torch.zeros(self.n_modalities))                 # (M,) omega
        self._epoch_graphs: list[torch.Tensor] | None = None    # M x learned CSR (constant) for the epoch's steps
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()
        for m in range(self.n_modalities):            # frozen original graphs, built on the model's device
            ei, w = knn_graph(self.modality_block(m), c.knn_k, self.feature_masks[:, m], weighted=True)
            self.register_buffer(f"orig_edge_index_{m}", ei, persistent=False)                # (2, E_m)
            self.register_buffer(f"orig_values_{m}", w, persistent=False)                     # (E_m,)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_normal_(self.user_emb, self.config.init_std, generator)
        init_normal_(self.item_emb, self.config.init_std, generator)
        for layer in self.proj:
            init_xavier_linear_(layer, generator)
        with torch.no_grad():
            self.modal_logits.zero_()
        self._epoch_graphs = None

    def start_epoch(self, generator: torch.Generator) -> None:
        """The learned graphs are rebuilt at the epoch's first step (see the module docstring)."""
        self._epoch_graphs = None

    def finish_fit(self) -> None:
        self._epoch_graphs = None

    def original_graph(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen normalised graph of modality ``m``: ``edge_index (2, E_m)``, ``values (E_m,)``."""
        return getattr(self, f"orig_edge_index_{m}"), getattr(self, f"orig_values_{m}")

    def _original_csr(self, m: int) -> torch.Tensor:
        key = ("orig", m, self.item_emb.device)
        if key not in self._adj_cache:
            ei, w = self.original_graph(m)
            self._adj_cache[key] = to_csr(ei, w, self.n_items)
        return self._adj_cache[key]

    def learned_graph(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned normalised graph of modality ``m`` from the current projection: ``(2, E)``, ``(E,)``
        (the values carry gradients into the projection)."""
        z = self.proj[m](self.modality_block(m))                                               # (I, D')
        ei = symmetrize_edges(knn_edges(z.detach(), self.config.knn_k, self.feature_masks[:, m]), self.n_items)
        return ei, normalized_edge_values(ei, cosine_edge_values(z, ei), self.n_items, "sym")

    def modality_weights(self) -> torch.Tensor:
        """:math:`\\alpha = \\operatorname{softmax}(\\omega)`: ``(M,)``."""
        return torch.softmax(self.modal_logits, 0)

    def _propagate(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._require_graph()
        lam, alpha = self.config.lambda_coeff, self.modality_weights()                         # (M,)
        learned, fixed = [], None                                      # with gradients / constant CSR matrices
        if lam < 1:
            if train and not self.config.rebuild_every_step and self._epoch_graphs is not None:
                fixed = self._epoch_graphs                             # built at this epoch's first step
            else:
                learned = [self.learned_graph(m) for m in range(self.n_modalities)]
                if train and not self.config.rebuild_every_step:
                    self._epoch_graphs = [to_csr(ei, v.detach(), self.n_items) for ei, v in learned]
        h = self.item_emb                                                                      # (I, D)
        for _ in range(self.config.n_item_layers):
            out = torch.zeros_like(h)
            for m in range(self.n_modalities):
                mixed = lam * constant_spmm(self._original_csr(m), h)                          # (I, D)
                if fixed is not None:
                    mixed = mixed + (1 - lam) * constant_spmm(fixed[m], h)                     # symmetric
                elif lam < 1:
                    mixed = mixed + (1 - lam) * edge_spmm(*learned[m], h)
                out = out + alpha[m] * mixed
            h = out
        emb = lightgcn_propagate(self.adjacency("sym"), torch.cat([self.user_emb, self.item_emb]),
                                 self.config.n_layers)                                         # (U+I, D)
        return emb[:self.n_users], emb[self.n_users:] + F.normalize(h, dim=1)

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_rep, item_rep = self._propagate(train=True)                                       # (U, D), (I, D)
        r_u, r_i, r_j = user_rep[users], item_rep[pos], item_rep[neg]                           # (B, D) each
        y_ui, y_uj = (r_u * r_i).sum(-1), (r_u * r_j).sum(-1)                                  # (B,)
        reg = (self.user_emb[users].square().sum() + self.item_emb[pos].square().sum()
               + self.item_emb[neg].square().sum()) / len(users)
        return -F.logsigmoid(y_ui - y_uj).mean() + self.config.reg * reg
