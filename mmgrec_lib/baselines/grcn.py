r"""GRCN: graph-refined convolutional network (Wei et al., ACM MM 2020, "Graph-Refined Convolutional Network
for Multimedia Recommendation with Implicit Feedback").

Implicit feedback holds false-positive edges (clicks on items a user turns out not to like). GRCN scores every
training edge :math:`(u, i)` by how well the item's content fits the user's preference in each modality and
down-weights or prunes the edges that fit badly before the graph convolutions.

**Graph refining layer.** Per modality :math:`m`, the item content is projected and normalised,
:math:`\mathbf{f}^m_i = \operatorname{norm}(\operatorname{LReLU}(\mathbf{W}_m \mathbf{x}^m_i + \mathbf{b}_m))`
(zero for items lacking the modality), and a free user preference :math:`\mathbf{p}^{m,(0)}_u =
\operatorname{norm}(\mathbf{P}^m_u)` is refined by :math:`T` routing iterations over the user's items
:math:`\mathcal{N}(u)`:

.. math::

    \alpha^{m,(t)}_{ui} = \frac{\exp(\mathbf{p}^{m,(t)\top}_u \mathbf{f}^m_i)}
        {\sum_{k \in \mathcal{N}(u)} \exp(\mathbf{p}^{m,(t)\top}_u \mathbf{f}^m_k)}, \qquad
    \mathbf{p}^{m,(t+1)}_u = \operatorname{norm}\Big(\mathbf{p}^{m,(t)}_u
        + \sum_{i \in \mathcal{N}(u)} \alpha^{m,(t)}_{ui}\, \mathbf{f}^m_i\Big).

The affinity of an edge in modality :math:`m` is the cosine :math:`s^m_{ui} = \mathbf{p}^{m,(T)\top}_u
\mathbf{f}^m_i` (both unit vectors); the edge weight combines the modalities and prunes negative affinities:

.. math::

    w_{ui} = \operatorname{ReLU}\big(\max_m s^m_{ui}\big) \ \ (\texttt{weight\_mode="max"}), \qquad
    w_{ui} = \operatorname{ReLU}\Big(\sum_m \pi_m s^m_{ui}\Big),\ \boldsymbol{\pi} = \operatorname{softmax}(
        \boldsymbol{\theta}) \ \ (\texttt{"softmax"},\ \text{learned } \boldsymbol{\theta}).

**Graph convolutions on the refined graph.** With :math:`W` the symmetric ``(U+I, U+I)`` matrix holding
:math:`w_{ui}` on both directions of every training edge and :math:`\hat{A} = D_W^{-1/2} W D_W^{-1/2}`
(GCN normalisation by the weighted degrees; differentiable in the weights), the ID embeddings and, per
modality, the content vectors :math:`\mathbf{x}^m = [\mathbf{p}^{m,(T)}; \mathbf{f}^m]` are propagated:

.. math::

    \mathbf{e} = \frac{1}{L+1}\sum_{l=0}^{L} \hat{A}^l \mathbf{E}^{(0)}, \qquad
    \mathbf{c}^m = \frac{1}{L+1}\sum_{l=0}^{L} \hat{A}^l \mathbf{x}^m, \qquad
    \mathbf{r}_v = [\,\mathbf{e}_v;\ \mathbf{c}^1_v;\ \dots;\ \mathbf{c}^M_v\,],

scored by :math:`\hat{y}_{ui} = \mathbf{r}_u^\top \mathbf{r}_{U+i}` and trained with BPR plus L2 on the batch's
ID embeddings and preferences:

.. math::

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \frac{\lambda}{B}\sum_{(u,i,j)} \Big(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_{U+i}\|^2
        + \|\mathbf{e}^{(0)}_{U+j}\|^2 + \sum_m \|\mathbf{P}^m_u\|^2\Big).

Optional edge dropout (``edge_dropout``, training only, 0 by default as in the reference code) zeroes the refined
weight of a random share of the edges at every step; it is reproducible: the mask is drawn inside
:func:`~mmgrec_lib.utils.seeded_rng` seeded per step from two buffers (a seed drawn from the ``fit`` generator
and a step counter, both in the ``state_dict`` the training loop checkpoints), as in
:class:`~mmgrec_lib.baselines.graphsage.GraphBPRRecommender`.

Simplifications against the paper / reference code: both convolutions are LightGCN-style (no weights or
activations; layer mean) with the symmetric GCN normalisation of the refined weights (the reference sums
unnormalised weighted messages over two layers for the IDs, and one dot-product attention layer for the
content); the paper's per-node modality confidence (the reference's ``confid`` mode) is replaced by the global
softmax weights of ``weight_mode="softmax"``; ID embeddings are not L2-normalised; edge dropout does not touch the
routing; items lacking a modality have a zero content vector there (affinity 0 in that modality).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.sparse import EdgePattern, bipartite_edge_index
from ..utils import check_fields, seeded_rng
from .base import (check_fraction, check_non_negative, check_positive, init_normal_, init_xavier_linear_,
                   next_step_seed, optional_tuple, register_step_seed, reset_step_seed)
from .mmgcn import MultimodalGraphRecommender, normalized_edge_values

WEIGHT_MODES = ("max", "softmax")


# ---------------------------------------------------------------------------------------------- shared helpers
def segment_softmax(logits: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Softmax of ``logits (E,)`` within the groups ``index (E,)`` (values in ``[0, n)``): ``(E,)``."""
    top = torch.full((n,), -torch.inf, dtype=logits.dtype, device=logits.device)
    top = top.scatter_reduce(0, index, logits.detach(), "amax", include_self=True)          # (n,) stabiliser
    ex = (logits - top[index]).exp()                                                        # (E,)
    den = torch.zeros(n, dtype=logits.dtype, device=logits.device).index_add(0, index, ex)  # (n,)
    return ex / den[index]


def route_preferences(pref: torch.Tensor, feats: torch.Tensor, pattern: EdgePattern, n_iter: int) -> torch.Tensor:
    r"""GRCN's routing: ``n_iter`` times :math:`\mathbf{p}_u \leftarrow \operatorname{norm}(\mathbf{p}_u +
    \sum_{i \in \mathcal{N}(u)} \operatorname{softmax}_i(\mathbf{p}_u^\top \mathbf{f}_i)\, \mathbf{f}_i)`.

    Args:
        pref: ``(U, C)`` unit user preferences.
        feats: ``(I, C)`` unit (or zero) item content vectors.
        pattern: the ``(U, I)`` training edges (:class:`~mmgrec_lib.data.sparse.EdgePattern`): the logits are a
            sampled product on it and the weighted sum a sparse product, so no ``(E, C)`` rows are gathered.
    """
    p = pref
    for _ in range(n_iter):
        alpha = segment_softmax(pattern.sddmm(p, feats), pattern.rows, p.shape[0])          # (E,) CSR order
        p = F.normalize(p + pattern.spmm(alpha, feats), dim=1)                             # (U, C)
    return p


# ---------------------------------------------------------------------------------------------- GRCN
@dataclass
class GRCNConfig:
    """GRCN hyper-parameters (defaults not tuned here; epochs live in ``LoopConfig``).

    Args:
        dim: width :math:`D` of the ID embeddings.
        content_dim: width :math:`C` of the user preferences and projected item content per modality
            (the representation has :math:`D + M C` columns).
        n_layers: graph convolution layers :math:`L` on the refined graph (``>= 1``).
        n_routing: routing iterations :math:`T` refining the user preferences (``>= 0``; reference: 3).
        weight_mode: how modality affinities make an edge weight: ``"max"`` (paper's pruning default) or
            ``"softmax"`` (learned softmax weights over modalities).
        edge_dropout: share in ``[0, 1)`` of edges whose refined weight is zeroed per training step.
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's ID embeddings and user preferences (per triple).
        batch_size: triples per step (each step refines and propagates the whole graph once).
        init_std: std of the normal initialisation of ID embeddings and preferences (projections: Xavier).
        negative_slope: slope of the leaky ReLU of the content projection.
        modalities: modalities to use (``None``: all of the dataset's), read by ``from_dataset``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    content_dim: int = 64
    n_layers: int = 2
    n_routing: int = 3
    weight_mode: str = "max"
    edge_dropout: float = 0.0
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    negative_slope: float = 0.01
    modalities: tuple[str, ...] | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("GRCNConfig", dim=self.dim, content_dim=self.content_dim, n_layers=self.n_layers,
                       lr=self.lr, batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("GRCNConfig", n_routing=self.n_routing, reg=self.reg, negative_slope=self.negative_slope)
        if self.weight_mode not in WEIGHT_MODES:
            raise ValueError(f"GRCNConfig: weight_mode must be one of {WEIGHT_MODES}, got {self.weight_mode!r}")
        check_fraction("GRCNConfig", edge_dropout=self.edge_dropout)
        self.modalities = optional_tuple(self.modalities)


class GRCN(MultimodalGraphRecommender):
    """GRCN recommender (see the module docstring).

    Args:
        n_users, n_items: sizes.
        config: :class:`GRCNConfig` (``None``: defaults); keyword overrides allowed.
        edge_index, item_features, feature_dims, feature_masks: see :class:`MultimodalGraphRecommender`;
            :meth:`from_dataset` passes them.

    Raises:
        ValueError: no item features (``from_dataset`` names the dataset), or bad config values.
    """

    config_class = GRCNConfig

    def __init__(self, n_users: int, n_items: int, config: GRCNConfig | None = None, **kwargs) -> None:
        super().__init__(n_users, n_items, config, **kwargs)
        c = self.config
        register_step_seed(self)
        self.id_emb = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, c.dim))        # (U+I, D)
        self.preference = torch.nn.Parameter(torch.empty(self.n_modalities, self.n_users, c.content_dim))  # (M, U, C)
        with seeded_rng():        # nn.Linear's own init draws from the global RNG: keep the caller's state
            self.proj = torch.nn.ModuleList([torch.nn.Linear(d, c.content_dim) for d in self.modality_dims])
        self.modality_logits = (torch.nn.Parameter(torch.zeros(self.n_modalities))             # (M,)
                                if c.weight_mode == "softmax" else None)
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_normal_(self.id_emb, self.config.init_std, generator)
        init_normal_(self.preference, self.config.init_std, generator)
        for layer in self.proj:
            init_xavier_linear_(layer, generator)
        if self.modality_logits is not None:
            with torch.no_grad():
                self.modality_logits.zero_()
        reset_step_seed(self, generator)
        self._emb_cache = None

    # ------------------------------------------------------------------ graph
    def sorted_bipartite(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(2, 2E)`` bipartite edges sorted by (row, col), and the permutation ``(2E,)`` that takes
        :func:`~mmgrec_lib.data.sparse.bipartite_edge_index` order (user->item edges, then item->user) to it."""
        key = ("bipartite_sorted", self.edge_index.device)
        if key not in self._adj_cache:
            n = self.n_users + self.n_items
            ei = bipartite_edge_index(self.edge_index, self.n_users)                           # (2, 2E)
            perm = torch.argsort(ei[0] * n + ei[1])                                            # (2E,)
            self._adj_cache[key] = (ei[:, perm].contiguous(), perm)
        return self._adj_cache[key]

    def bipartite_pattern(self) -> EdgePattern:
        """The sorted bipartite edges of :meth:`sorted_bipartite` as an ``(N, N)`` pattern (CSR order = their
        order; cached)."""
        key = ("bipartite_pattern", self.edge_index.device)
        if key not in self._adj_cache:
            ei, _ = self.sorted_bipartite()
            n = self.n_users + self.n_items
            self._adj_cache[key] = EdgePattern(ei[0], ei[1], (n, n))
        return self._adj_cache[key]

    def user_item_pattern(self) -> tuple[EdgePattern, torch.Tensor]:
        """The training edges as a ``(U, I)`` :class:`~mmgrec_lib.data.sparse.EdgePattern` and the permutation
        ``(E,)`` from its CSR order back to ``edge_index`` order (cached)."""
        key = ("user_item_pattern", self.edge_index.device)
        if key not in self._adj_cache:
            users, items = self.edge_index
            pattern = EdgePattern(users, items, (self.n_users, self.n_items))
            to_edges = torch.empty_like(pattern.order)
            to_edges[pattern.order] = torch.arange(pattern.nnz, device=pattern.order.device)
            self._adj_cache[key] = (pattern, to_edges)
        return self._adj_cache[key]

    def set_graph(self, edge_index: torch.Tensor) -> None:
        edge_index = torch.as_tensor(edge_index, dtype=torch.long)
        if edge_index.ndim == 2 and edge_index.shape[0] == 2 and edge_index.numel():   # drop repeated pairs
            edge_index = torch.unique(edge_index, dim=1)
        super().set_graph(edge_index)

    # ------------------------------------------------------------------ graph refining layer
    def content(self, m: int) -> torch.Tensor:
        """Normalised projected content of modality ``m``: ``(I, C)`` (zero rows for items lacking it)."""
        f = F.leaky_relu(self.proj[m](self.modality_block(m)), self.config.negative_slope)   # (I, C)
        return F.normalize(f, dim=1) * self.feature_masks[:, m, None]

    def refine(self) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The graph refining layer: routed preferences ``M x (U, C)``, item content ``M x (I, C)``, the
        per-modality affinities ``(E, M)`` and the pruned edge weights ``(E,)`` (order of ``edge_index``)."""
        self._require_graph()
        pattern, to_edges = self.user_item_pattern()
        prefs, feats, affinity = [], [], []
        for m in range(self.n_modalities):
            f = self.content(m)                                                                 # (I, C)
            p = route_preferences(F.normalize(self.preference[m], dim=1), f, pattern, self.config.n_routing)
            prefs.append(p)
            feats.append(f)
            affinity.append(pattern.sddmm(p, f)[to_edges])                                     # (E,) cosine
        s = torch.stack(affinity, 1)                                                            # (E, M)
        if self.config.weight_mode == "max":
            w = s.max(1).values                                                                 # (E,)
        else:
            w = s @ torch.softmax(self.modality_logits, 0)                                      # (E,)
        return prefs, feats, s, F.relu(w)

    def _propagate(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        prefs, feats, _, w = self.refine()                                                      # w: (E,)
        p = self.config.edge_dropout
        if train and p > 0:
            with seeded_rng(next_step_seed(self), w.device):
                w = w * (torch.rand(w.shape, device=w.device) >= p)                            # (E,)
        ei, perm = self.sorted_bipartite()                                                      # (2, 2E), (2E,)
        n = self.n_users + self.n_items
        values = normalized_edge_values(ei, torch.cat([w, w])[perm], n, "sym")                 # (2E,) CSR order
        graph = self.bipartite_pattern()

        def smooth(x: torch.Tensor) -> torch.Tensor:                                           # (N, *) -> (N, *)
            out = x
            for _ in range(self.config.n_layers):
                x = graph.spmm(values, x)
                out = out + x
            return out / (self.config.n_layers + 1)

        reps = [smooth(self.id_emb)]                                                            # (U+I, D)
        reps += [smooth(torch.cat([pm, fm])) for pm, fm in zip(prefs, feats)]                  # M x (U+I, C)
        rep = torch.cat(reps, 1)                                                                # (U+I, D + M C)
        return rep[:self.n_users], rep[self.n_users:]

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_rep, item_rep = self._propagate(train=True)                                       # (U, D'), (I, D')
        r_u = user_rep[users]                                                                  # (B, D')
        y = (r_u * (item_rep[pos] - item_rep[neg])).sum(-1)                                    # (B,) y_ui - y_uj
        e = self.id_emb
        reg = (e[users].square().sum() + e[pos + self.n_users].square().sum()
               + e[neg + self.n_users].square().sum() + self.preference[:, users].square().sum()) / len(users)
        return -F.logsigmoid(y).mean() + self.config.reg * reg
