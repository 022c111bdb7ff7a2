r"""FREEDOM: a frozen item-item graph and a denoised user-item graph (Zhou & Shen, ACM MM 2023).

**Frozen item-item graph.** Built once from the raw modality features and never updated: per modality the
binary kNN graph (each item's :math:`k` most cosine-similar items, itself included, as in the reference code),
symmetrised and normalised, then a weighted sum over modalities (weights :math:`\beta_m`, ``modality_weights``;
default uniform):

.. math::

    S^m_{ij} = [\,j \in \operatorname{kNN}_m(i) \lor i \in \operatorname{kNN}_m(j)\,], \quad
    \hat{S} = \sum_m \beta_m\, D_m^{-1/2} S^m D_m^{-1/2}, \qquad
    \mathbf{H} = \hat{S}^{L_\text{item}}\,\mathbf{E}_\text{item}.

**Degree-sensitive edge pruning.** At the start of every training epoch, :math:`\max(1, \lfloor (1-p) E \rfloor)` of
the :math:`E` training edges are kept (:math:`p` = ``edge_dropout``), drawn without replacement with probability
proportional to :math:`1/\sqrt{d_u d_i}` (edges between high-degree nodes are dropped more often), from the
epoch's generator; the kept graph :math:`A'` is renormalised, :math:`\tilde{A}' = D'^{-1/2} A' D'^{-1/2}`.
Inference uses the full training graph :math:`\tilde{A}`.

**Model.** LightGCN on the (pruned) user-item graph plus the item-item part:

.. math::

    \bar{\mathbf{E}} = \frac{1}{L+1}\sum_{l=0}^{L} (\tilde{A}')^l [\mathbf{E}_\text{user}; \mathbf{E}_\text{item}],
    \quad \mathbf{r}_u = \bar{\mathbf{e}}_u, \quad \mathbf{r}_i = \bar{\mathbf{e}}_{U+i} + \mathbf{h}_i,
    \quad \hat{y}_{ui} = \mathbf{r}_u^\top \mathbf{r}_i,

trained with BPR on the representations plus the modality projection BPR terms of the paper
(:math:`\mathbf{g}^m_i = \mathbf{W}_m \mathbf{f}^m_i + \mathbf{b}_m`, weight :math:`\lambda`, ``mm_loss_weight``)
and an optional L2 on the batch's layer-0 embeddings (:math:`\lambda_\text{reg}`, ``reg``, not in the paper):

.. math::

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \Big(\ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \lambda \sum_m \ln\sigma\big(\mathbf{r}_u^\top \mathbf{g}^m_i - \mathbf{r}_u^\top \mathbf{g}^m_j\big)\Big)
        + \frac{\lambda_\text{reg}}{B}\sum_{(u,i,j)}
          \left(\|\mathbf{e}_u\|^2 + \|\mathbf{e}_i\|^2 + \|\mathbf{e}_j\|^2\right).

Differences from the reference code: the kNN graphs are symmetrised before the symmetric normalisation (the
reference normalises the one-directional top-k matrix by its row sums), the raw features are fixed (the
reference fine-tunes them, which only moves the projection terms), and items lacking a modality have no
edges in that modality's graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.sparse import constant_spmm
from ..utils import check_fields
from .base import (check_fraction, check_non_negative, check_positive, init_normal_, init_xavier_linear_,
                   optional_tuple)
from .lattice import knn_graph
from .mmgcn import MultimodalGraphRecommender, bipartite_adjacency, lightgcn_propagate, to_csr


@dataclass
class FREEDOMConfig:
    """FREEDOM hyper-parameters (defaults not tuned here; epochs live in ``LoopConfig``).

    Args:
        dim: embedding size :math:`D` (also the width of the modality projections).
        n_layers: LightGCN layers :math:`L` on the user-item graph (paper: 2).
        n_item_layers: item-item graph layers :math:`L_\\text{item}` (paper: 1).
        knn_k: neighbours kept per item (itself included) before symmetrisation (paper: 10).
        edge_dropout: share :math:`p` in ``[0, 1)`` of training edges pruned each epoch (paper: 0.8 or 0.9).
        mm_loss_weight: :math:`\\lambda`, weight of the modality projection BPR terms.
        modality_weights: :math:`\\beta_m`, one per used modality (normalised to sum 1); ``None``: uniform.
        lr: Adam learning rate.
        reg: :math:`\\lambda_\\text{reg}`, L2 on the batch's layer-0 embeddings (per triple; 0 in the paper).
        batch_size: triples per step.
        init_std: std of the normal initialisation of the embeddings (projections: Xavier).
        modalities: modalities to use (``None``: all of the dataset's), read by ``from_dataset``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    n_layers: int = 2
    n_item_layers: int = 1
    knn_k: int = 10
    edge_dropout: float = 0.8
    mm_loss_weight: float = 1e-3
    modality_weights: tuple[float, ...] | None = None
    lr: float = 1e-3
    reg: float = 0.0
    batch_size: int = 2048
    init_std: float = 0.1
    modalities: tuple[str, ...] | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("FREEDOMConfig", dim=self.dim, knn_k=self.knn_k, lr=self.lr, batch_size=self.batch_size,
                       init_std=self.init_std)
        check_non_negative("FREEDOMConfig", n_layers=self.n_layers, n_item_layers=self.n_item_layers,
                           mm_loss_weight=self.mm_loss_weight, reg=self.reg)
        check_fraction("FREEDOMConfig", edge_dropout=self.edge_dropout)
        if self.modality_weights is not None:
            self.modality_weights = tuple(self.modality_weights)
            if not self.modality_weights or min(self.modality_weights) < 0 or sum(self.modality_weights) <= 0:
                raise ValueError(f"FREEDOMConfig: modality_weights must be >= 0 with a positive sum, "
                                 f"got {self.modality_weights}")
        self.modalities = optional_tuple(self.modalities)


class FREEDOM(MultimodalGraphRecommender):
    """FREEDOM recommender (see the module docstring).

    Args:
        n_users, n_items: sizes.
        config: :class:`FREEDOMConfig` (``None``: defaults); keyword overrides allowed.
        edge_index, item_features, feature_dims, feature_masks: see :class:`MultimodalGraphRecommender`;
            :meth:`from_dataset` passes them. The frozen item-item graph is rebuilt from ``item_features`` on
            ``config.device`` (so :meth:`load` needs nothing more).

    Raises:
        ValueError: no item features (``from_dataset`` names the dataset), ``modality_weights`` not matching
            the modalities, or bad config values.
    """

    config_class = FREEDOMConfig

    def __init__(self, n_users: int, n_items: int, config: FREEDOMConfig | None = None, **kwargs) -> None:
        super().__init__(n_users, n_items, config, **kwargs)
        c = self.config
        if c.modality_weights is not None and len(c.modality_weights) != self.n_modalities:
            raise ValueError(f"FREEDOM: modality_weights has {len(c.modality_weights)} entries for "
                             f"{self.n_modalities} modalities (order of config.modalities / the dataset's)")
        self.user_emb = torch.nn.Parameter(torch.empty(self.n_users, c.dim))                   # (U, D)
        self.item_emb = torch.nn.Parameter(torch.empty(self.n_items, c.dim))                   # (I, D)
        self.proj = torch.nn.ModuleList([torch.nn.Linear(d, c.dim) for d in self.modality_dims])  # d_m -> D
        self._train_adj: torch.Tensor | None = None      # this epoch's pruned graph (set by fit)
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()
        ei, w = self.build_item_graph()
        self.register_buffer("item_edge_index", ei, persistent=False)                          # (2, E_item)
        self.register_buffer("item_values", w, persistent=False)                               # (E_item,)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_normal_(self.user_emb, self.config.init_std, generator)
        init_normal_(self.item_emb, self.config.init_std, generator)
        for layer in self.proj:
            init_xavier_linear_(layer, generator)

    # ------------------------------------------------------------------ graphs
    def build_item_graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen item-item graph :math:`\\hat{S}`: ``edge_index (2, E)`` sorted, ``values (E,)`` (symmetric)."""
        beta = torch.tensor(self.config.modality_weights or [1.0] * self.n_modalities, dtype=torch.float32)
        beta = beta / beta.sum()                                                               # (M,)
        edges, values = [], []
        for m in range(self.n_modalities):
            ei, w = knn_graph(self.modality_block(m), self.config.knn_k, self.feature_masks[:, m], weighted=False)
            edges.append(ei)
            values.append(float(beta[m]) * w)
        coo = torch.sparse_coo_tensor(torch.cat(edges, 1), torch.cat(values), (self.n_items, self.n_items),
                                      check_invariants=False).coalesce()
        return coo.indices(), coo.values()

    def item_adjacency(self) -> torch.Tensor:
        key = ("item", self.item_emb.device)
        if key not in self._adj_cache:
            self._adj_cache[key] = to_csr(self.item_edge_index, self.item_values, self.n_items)
        return self._adj_cache[key]

    def pruned_adjacency(self, generator: torch.Generator) -> torch.Tensor:
        """A degree-sensitively pruned, renormalised user-item adjacency (CSR, symmetric) drawn from ``generator``."""
        self._require_graph()
        p = self.config.edge_dropout
        if p == 0:
            return self.adjacency("sym")
        users, items = self.edge_index.cpu()                                                   # (E,) each
        d_u = torch.bincount(users, minlength=self.n_users).float()
        d_i = torch.bincount(items, minlength=self.n_items).float()
        prob = (d_u[users] * d_i[items]).rsqrt()                                               # (E,)
        n_keep = max(1, int(len(users) * (1.0 - p)))
        keep = torch.multinomial(prob, n_keep, replacement=False, generator=generator)         # (E',)
        kept = torch.stack([users[keep], items[keep]]).to(self.edge_index.device)              # (2, E')
        return bipartite_adjacency(kept, self.n_users, self.n_items, "sym")

    def set_graph(self, edge_index: torch.Tensor) -> None:
        super().set_graph(edge_index)
        self._train_adj = None

    # ------------------------------------------------------------------ model
    def _propagate(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._require_graph()
        adj = self._train_adj if train and self._train_adj is not None else self.adjacency("sym")
        h = self.item_emb                                                                      # (I, D)
        for _ in range(self.config.n_item_layers):
            h = constant_spmm(self.item_adjacency(), h)                                        # (I, D)
        emb = lightgcn_propagate(adj, torch.cat([self.user_emb, self.item_emb]), self.config.n_layers)  # (U+I, D)
        return emb[:self.n_users], emb[self.n_users:] + h

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_rep, item_rep = self._propagate(train=True)                                       # (U, D), (I, D)
        r_u = user_rep[users]                                                                  # (B, D)
        loss = -F.logsigmoid((r_u * (item_rep[pos] - item_rep[neg])).sum(-1)).mean()
        if self.config.mm_loss_weight > 0:
            items = torch.cat([pos, neg])                                                      # (2B,)
            for m, proj in enumerate(self.proj):
                g_i, g_j = proj(self.modality_block(m)[items]).split(len(users))               # (B, D) each
                loss = loss - self.config.mm_loss_weight * F.logsigmoid((r_u * (g_i - g_j)).sum(-1)).mean()
        if self.config.reg > 0:
            reg = (self.user_emb[users].square().sum() + self.item_emb[pos].square().sum()
                   + self.item_emb[neg].square().sum()) / len(users)
            loss = loss + self.config.reg * reg
        return loss

    def start_epoch(self, generator: torch.Generator) -> None:
        """A freshly pruned user-item graph at the start of every epoch, drawn from the epoch's generator before
        its triples (so an interrupted run resumes exactly)."""
        self._train_adj = self.pruned_adjacency(generator)

    def finish_fit(self) -> None:
        self._train_adj = None
