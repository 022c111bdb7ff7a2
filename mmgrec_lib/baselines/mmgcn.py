r"""MMGCN: multi-modal graph convolution network (Wei et al., ACM MM 2019).

One graph convolution network per modality :math:`m` runs on the user-item training graph. Its layer-0
node vectors are a free user preference :math:`\mathbf{p}^m_u` and the item's projected content
:math:`\mathbf{W}^m_0 \mathbf{f}^m_i + \mathbf{b}^m_0` (zero for items lacking the modality), row-normalised:
:math:`\mathbf{x}^{m,(0)} = \operatorname{norm}([\mathbf{P}^m;\ \mathbf{F}^m \mathbf{W}^{m\top}_0 + \mathbf{b}^m_0])`.
Each layer :math:`l` aggregates the neighbours (mean over the graph, :math:`\bar{A} = D^{-1}A`) and combines
the result with the node's own message and its ID embedding :math:`\mathbf{e}_v` (shared by all modalities):

.. math::

    \mathbf{h}^{m,(l)} &= \operatorname{LReLU}\!\big(\bar{A}\,\mathbf{x}^{m,(l)} \mathbf{W}^{m,l}_\text{agg}\big)
        && \text{(aggregation)}\\
    \hat{\mathbf{x}}^{m,(l)} &= \operatorname{LReLU}\!\big(\mathbf{x}^{m,(l)} \mathbf{W}^{m,l}_\text{own}
        + \mathbf{b}^{m,l}_\text{own}\big) + \mathbf{e} && \text{(own message + ID)}\\
    \mathbf{x}^{m,(l+1)} &= \operatorname{LReLU}\!\big(\mathbf{h}^{m,(l)} \mathbf{W}^{m,l}_\text{comb}
        + \mathbf{b}^{m,l}_\text{comb} + \hat{\mathbf{x}}^{m,(l)}\big) && \text{(combination, "add" mode)}

and a node's representation sums the modalities, :math:`\mathbf{r}_v = \sum_m \mathbf{x}^{m,(L)}_v`, scored
by :math:`\hat{y}_{ui} = \mathbf{r}_u^\top \mathbf{r}_{U+i}` and trained with BPR plus L2 on the batch's ID
embeddings and preferences:

.. math::

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \frac{\lambda}{B}\sum_{(u,i,j)} \Big(\|\mathbf{e}_u\|^2 + \|\mathbf{e}_{U+i}\|^2 + \|\mathbf{e}_{U+j}\|^2
        + \sum_m \|\mathbf{p}^m_u\|^2\Big).

Simplifications against the paper / reference code: every layer has width :math:`D` (the reference projects
the visual features to 256 first), the number of layers is a setting (the reference hard-codes 3), and the
modalities are summed as in the paper (the MMRec reference averages them).

This module also holds what the multimodal graph baselines (MMGCN, LATTICE, FREEDOM) share: item features
per modality (:func:`modality_features`), the training graph, normalised bipartite adjacencies and the
inference embedding cache (:class:`MultimodalGraphRecommender`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import RecDataset
from ..data.sparse import bipartite_edge_index, constant_spmm
from ..utils import check_fields
from .base import (BPRRecommender, check_edge_index, check_non_negative, check_positive, init_normal_,
                   init_xavier_linear_, optional_tuple, require_graph, weights_key)


# ---------------------------------------------------------------------------------------------- shared helpers
def modality_features(dataset: RecDataset, modalities: tuple[str, ...] | list[str] | None = None,
                      where: str = "model") -> dict[str, torch.Tensor]:
    """Item features of the chosen modalities, as the constructor tensors of a multimodal graph model.

    Each modality is scaled so that its present rows have mean L2 norm 1 (rows of items lacking it stay zero),
    like VBPR's :func:`~mmgrec_lib.baselines.vbpr.content_features`, but the modalities are kept apart.

    Returns:
        ``{"item_features": (I, sum d_m) float32, "feature_dims": (M,) long, "feature_masks": (I, M) bool}``.

    Raises:
        ValueError: the dataset has no modality features (naming the dataset), an unknown or empty selection,
            or a modality with zero columns or no item having it.
    """
    if not dataset.modalities:
        raise ValueError(f"{where} needs item modality features, but dataset {dataset.name!r} has none "
                         f"(dataset.features is empty); use a dataset with visual/textual/acoustic features, or a "
                         f"model without content (MF, LightGCN) on {dataset.name!r}")
    mods = list(dataset.modalities if modalities is None else modalities)
    if not mods:
        raise ValueError(f"{where}: modalities=() selects no modality; it needs at least one of {dataset.modalities}")
    unknown = sorted(set(mods) - set(dataset.modalities))
    if unknown:
        raise ValueError(f"{where}: dataset {dataset.name!r} has no modality {unknown}; it has {dataset.modalities}")
    blocks, masks = [], []
    for m in mods:
        f = torch.from_numpy(np.asarray(dataset.features[m], dtype=np.float32))          # (I, d_m)
        mask = torch.from_numpy(np.asarray(dataset.feature_masks[m], dtype=bool))          # (I,)
        if f.ndim != 2 or f.shape[1] == 0 or not mask.any():
            raise ValueError(f"{where}: modality {m!r} of dataset {dataset.name!r} is empty "
                             f"(shape {tuple(f.shape)}, {int(mask.sum())} items have it)")
        f = f * mask[:, None]
        norms = f.norm(dim=1)[mask]
        scale = norms.mean() if norms.mean() > 0 else torch.tensor(1.0)
        blocks.append(f / scale)
        masks.append(mask)
    return {"item_features": torch.cat(blocks, 1).float(),                                  # (I, F)
            "feature_dims": torch.tensor([b.shape[1] for b in blocks], dtype=torch.long),   # (M,)
            "feature_masks": torch.stack(masks, 1)}                                         # (I, M)


def to_csr(edge_index: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """``(2, E)`` (row, col) pairs with ``(E,)`` values -> a sparse CSR ``(n, n)`` (duplicates summed)."""
    with warnings.catch_warnings():       # "sparse CSR support is in beta": spmm with CSR is the fast path
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_coo_tensor(edge_index, values, (n, n), check_invariants=False).coalesce().to_sparse_csr()


def normalized_edge_values(edge_index: torch.Tensor, values: torch.Tensor | None, n: int,
                           mode: str = "sym") -> torch.Tensor:
    r"""Values of :math:`D^{-1/2} A D^{-1/2}` (``mode="sym"``) or :math:`D^{-1} A` (``"mean"``) on the edges
    ``(2, E)`` of an ``(n, n)`` matrix ``A`` (weights ``values``, ones when ``None``); :math:`D` holds the row
    sums, and rows summing to zero stay zero. Differentiable in ``values``."""
    row, col = edge_index
    w = torch.ones(row.shape, device=row.device) if values is None else values                  # (E,)
    deg = torch.zeros(n, dtype=w.dtype, device=w.device).index_add(0, row, w)                   # (n,)
    if mode == "sym":
        inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
        return inv[row] * w * inv[col]
    if mode == "mean":
        inv = torch.where(deg > 0, 1.0 / deg.clamp_min(1e-12), torch.zeros_like(deg))
        return inv[row] * w
    raise ValueError(f"mode must be 'sym' or 'mean', got {mode!r}")


def bipartite_adjacency(edge_index: torch.Tensor, n_users: int, n_items: int, mode: str = "sym") -> torch.Tensor:
    """The ``(U+I, U+I)`` user-item graph of ``(2, E)`` (user, item) pairs (both directions, no self-loops),
    normalised by :func:`normalized_edge_values`, as a sparse CSR tensor."""
    n = n_users + n_items
    ei = bipartite_edge_index(edge_index, n_users)                                             # (2, 2E)
    return to_csr(ei, normalized_edge_values(ei, None, n, mode), n)


def lightgcn_propagate(adj: torch.Tensor, emb: torch.Tensor, n_layers: int) -> torch.Tensor:
    r"""LightGCN layer mean :math:`\frac{1}{L+1}\sum_{l=0}^{L} \tilde{A}^l \mathbf{E}` for a symmetric ``adj``."""
    out, x = emb, emb
    for _ in range(n_layers):
        x = constant_spmm(adj, x)                                                               # (N, D)
        out = out + x
    return out / (n_layers + 1)


class MultimodalGraphRecommender(BPRRecommender):
    """Common ground of MMGCN, LATTICE and FREEDOM: item features per modality, the training graph, cached
    normalised adjacencies and the inference embedding cache.

    Subclasses create their parameters after calling this ``__init__``, then call ``reset_parameters`` and
    ``_place``, and implement :meth:`_propagate` (final user and item representations).

    Args:
        n_users, n_items: sizes.
        config: the model's config dataclass; keyword overrides allowed.
        edge_index: ``(2, E)`` long (user, item) training pairs; ``fit`` replaces it with the fitted dataset's.
        item_features: ``(n_items, sum d_m)`` float, the modalities side by side (:func:`modality_features`).
        feature_dims: ``(M,)`` widths ``d_m`` of the modality blocks of ``item_features``.
        feature_masks: ``(n_items, M)`` bool, ``True`` where the item has the modality (default: all).
    """

    def __init__(self, n_users: int, n_items: int, config=None, edge_index: torch.Tensor | None = None,
                 item_features: torch.Tensor | None = None, feature_dims: torch.Tensor | None = None,
                 feature_masks: torch.Tensor | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        name = type(self).__name__
        if item_features is None:
            raise ValueError(f"{name} needs item modality features (item_features is None); build it with "
                             f"{name}.from_dataset(dataset) on a dataset that has modality features")
        feats = torch.as_tensor(item_features).float()
        if feats.ndim != 2 or feats.shape[0] != self.n_items or feats.shape[1] == 0:
            raise ValueError(f"{name}: item_features must be ({self.n_items}, F) with F > 0, got {tuple(feats.shape)}")
        if not torch.isfinite(feats).all():
            raise ValueError(f"{name}: item_features contain NaN or inf")
        dims = [int(d) for d in torch.as_tensor([feats.shape[1]] if feature_dims is None else feature_dims).tolist()]
        if not dims or min(dims) <= 0 or sum(dims) != feats.shape[1]:
            raise ValueError(f"{name}: feature_dims {dims} must be positive and sum to the {feats.shape[1]} "
                             f"columns of item_features")
        masks = (torch.ones(self.n_items, len(dims), dtype=torch.bool) if feature_masks is None
                 else torch.as_tensor(feature_masks).bool())
        if masks.shape != (self.n_items, len(dims)):
            raise ValueError(f"{name}: feature_masks must be ({self.n_items}, {len(dims)}), got {tuple(masks.shape)}")
        self.modality_dims = dims
        self.register_buffer("item_features", feats.clone(), persistent=False)          # (I, F)
        self.register_buffer("feature_masks", masks.clone(), persistent=False)          # (I, M)
        self.register_buffer("edge_index", torch.zeros(2, 0, dtype=torch.long), persistent=False)  # (2, E)
        self._adj_cache: dict = {}               # (kind, device) -> sparse adjacency
        self._emb_cache: tuple | None = None     # (weights key, (user reps, item reps)) for inference
        if edge_index is not None:
            self.set_graph(edge_index)

    @property
    def n_modalities(self) -> int:
        return len(self.modality_dims)

    @classmethod
    def from_dataset(cls, dataset: RecDataset, config=None, **overrides) -> "MultimodalGraphRecommender":
        """Build the model for ``dataset``: its training pairs and the features of ``config.modalities``.

        Raises:
            ValueError: the dataset has no modality features (the model needs them).
        """
        mods = overrides.get("modalities", config.modalities if config is not None else None)
        return cls(dataset.n_users, dataset.n_items, config, edge_index=dataset.train_edge_index(),
                   **modality_features(dataset, mods, cls.__name__), **overrides)

    def _init_tensors(self) -> dict[str, torch.Tensor]:
        return {"edge_index": self.edge_index, "item_features": self.item_features,
                "feature_dims": torch.tensor(self.modality_dims, dtype=torch.long), "feature_masks": self.feature_masks}

    def modality_block(self, m: int) -> torch.Tensor:
        """Features of modality ``m``: ``(I, d_m)``."""
        start = sum(self.modality_dims[:m])
        return self.item_features[:, start:start + self.modality_dims[m]]

    # ------------------------------------------------------------------ graph
    def set_graph(self, edge_index: torch.Tensor) -> None:
        """Use ``(2, E)`` (user, item) pairs as the training graph."""
        edge_index = check_edge_index(edge_index, self.n_users, self.n_items)
        self.edge_index = edge_index.to(self.edge_index.device, copy=True)
        self._adj_cache, self._emb_cache = {}, None

    def prepare(self, dataset: RecDataset) -> None:
        self.set_graph(dataset.train_edge_index())

    def adjacency(self, mode: str = "sym") -> torch.Tensor:
        """The normalised user-item adjacency (:func:`bipartite_adjacency`), cached per device."""
        key = (mode, self.edge_index.device)
        if key not in self._adj_cache:
            self._adj_cache[key] = bipartite_adjacency(self.edge_index, self.n_users, self.n_items, mode)
        return self._adj_cache[key]

    def _require_graph(self) -> None:
        require_graph(self)

    # ------------------------------------------------------------------ representations
    def _propagate(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user ``(U, D)`` and item ``(I, D)`` representations (``train``: the training-time graph)."""
        raise NotImplementedError

    def _weights_key(self) -> tuple:
        return weights_key(self)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference representations ``(U, D)``, ``(I, D)``, cached until the weights or the graph change."""
        key = self._weights_key()
        if self._emb_cache is None or self._emb_cache[0] != key:
            with torch.no_grad():
                self._emb_cache = (key, self._propagate(train=False))
        return self._emb_cache[1]

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        users = self._check_users(users)
        self._require_graph()
        user_rep, item_rep = self.embeddings()                                  # (U, D), (I, D)
        return user_rep[users] @ item_rep.T                                     # (B, I)


# ---------------------------------------------------------------------------------------------- MMGCN
@dataclass
class MMGCNConfig:
    """MMGCN hyper-parameters (defaults not tuned here; epochs live in ``LoopConfig``).

    Args:
        dim: width :math:`D` of every layer, the ID embeddings and the preferences.
        n_layers: graph layers :math:`L` per modality (the reference uses 3).
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's ID embeddings and user preferences (per triple).
        batch_size: triples per step (each step propagates every modality's graph once).
        init_std: std of the normal initialisation of ID embeddings and preferences (weights: Xavier).
        negative_slope: slope of the leaky ReLUs.
        modalities: modalities to use (``None``: all of the dataset's), read by ``from_dataset``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    n_layers: int = 2
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    negative_slope: float = 0.01
    modalities: tuple[str, ...] | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("MMGCNConfig", dim=self.dim, n_layers=self.n_layers, lr=self.lr,
                       batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("MMGCNConfig", reg=self.reg, negative_slope=self.negative_slope)
        self.modalities = optional_tuple(self.modalities)


class _ModalityGCN(torch.nn.Module):
    """One modality's GCN: user preferences, the feature projection and ``L`` (aggregate, own, combine) layers."""

    def __init__(self, n_users: int, d_feat: int, dim: int, n_layers: int) -> None:
        super().__init__()
        self.preference = torch.nn.Parameter(torch.empty(n_users, dim))                          # (U, D)
        self.proj = torch.nn.Linear(d_feat, dim)                                                 # d_m -> D
        self.agg = torch.nn.ModuleList([torch.nn.Linear(dim, dim, bias=False) for _ in range(n_layers)])
        self.own = torch.nn.ModuleList([torch.nn.Linear(dim, dim) for _ in range(n_layers)])
        self.comb = torch.nn.ModuleList([torch.nn.Linear(dim, dim) for _ in range(n_layers)])

    def reset_parameters(self, std: float, generator: torch.Generator | None) -> None:
        init_normal_(self.preference, std, generator)
        for layer in [self.proj, *self.agg, *self.own, *self.comb]:
            init_xavier_linear_(layer, generator)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, id_emb: torch.Tensor, adj: tuple,
                slope: float) -> torch.Tensor:
        """``features (I, d_m)``, ``mask (I,)`` (items having the modality; the others start from zero),
        ``id_emb (U+I, D)`` -> node representations ``(U+I, D)``."""
        items = self.proj(features) * mask[:, None]                                             # (I, D)
        x = F.normalize(torch.cat([self.preference, items]), dim=1)                             # (U+I, D)
        for agg, own, comb in zip(self.agg, self.own, self.comb):
            h = F.leaky_relu(constant_spmm(adj[0], agg(x), adj[1]), slope)                    # (U+I, D)
            x_hat = F.leaky_relu(own(x), slope) + id_emb                                       # (U+I, D)
            x = F.leaky_relu(comb(h) + x_hat, slope)                                           # (U+I, D)
        return x


class MMGCN(MultimodalGraphRecommender):
    """MMGCN recommender (see the module docstring).

    Args:
        n_users, n_items: sizes.
        config: :class:`MMGCNConfig` (``None``: defaults); keyword overrides allowed.
        edge_index, item_features, feature_dims, feature_masks: see :class:`MultimodalGraphRecommender`;
            :meth:`from_dataset` passes them.

    Raises:
        ValueError: no item features (``from_dataset`` names the dataset), or bad config values.
    """

    config_class = MMGCNConfig

    def __init__(self, n_users: int, n_items: int, config: MMGCNConfig | None = None, **kwargs) -> None:
        super().__init__(n_users, n_items, config, **kwargs)
        c = self.config
        self.id_emb = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, c.dim))        # (U+I, D)
        self.gcns = torch.nn.ModuleList([_ModalityGCN(self.n_users, d, c.dim, c.n_layers) for d in self.modality_dims])
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_normal_(self.id_emb, self.config.init_std, generator)
        for gcn in self.gcns:
            gcn.reset_parameters(self.config.init_std, generator)

    def mean_adjacency(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The mean-aggregation matrix :math:`D^{-1}A` and its transpose (for the backward pass), cached."""
        key = ("mean_t", self.edge_index.device)
        if key not in self._adj_cache:
            n = self.n_users + self.n_items
            ei = bipartite_edge_index(self.edge_index, self.n_users)                           # (2, 2E)
            w = normalized_edge_values(ei, None, n, "mean")                                    # (2E,)
            self._adj_cache[key] = (to_csr(ei, w, n), to_csr(ei.flip(0), w, n))
        return self._adj_cache[key]

    def _modality_reps(self) -> list[torch.Tensor]:
        r"""Every modality's final node vectors :math:`\mathbf{x}^{m,(L)}`: ``M x (U+I, D)``."""
        adj = self.mean_adjacency()
        return [gcn(self.modality_block(m), self.feature_masks[:, m], self.id_emb, adj, self.config.negative_slope)
                for m, gcn in enumerate(self.gcns)]

    def _propagate(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        rep = sum(self._modality_reps())                                                       # (U+I, D)
        return rep[:self.n_users], rep[self.n_users:]

    @torch.no_grad()
    def score_parts(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        r"""The factors of the score's parts, for diagnosing what the ranking rests on: ``{part: (users (U, D),
        items (I, D))}``. ``"modality_<m>"``: modality ``m``'s network alone, :math:`\mathbf{x}^{m,(L)}_u,
        \mathbf{x}^{m,(L)}_{U+i}` (its index in ``modality_dims``); ``"full"``: the model's score, whose
        dot product also holds the cross-modality terms."""
        self._require_graph()
        reps = self._modality_reps()                                                           # M x (U+I, D)
        parts = {f"modality_{m}": x for m, x in enumerate(reps)}
        parts["full"] = sum(reps)                                            # what _propagate returns, not recomputed
        return {k: (x[:self.n_users], x[self.n_users:]) for k, x in parts.items()}

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_rep, item_rep = self._propagate(train=True)                                       # (U, D), (I, D)
        r_u, r_i, r_j = user_rep[users], item_rep[pos], item_rep[neg]                           # (B, D) each
        y_ui, y_uj = (r_u * r_i).sum(-1), (r_u * r_j).sum(-1)                                  # (B,)
        e = self.id_emb
        reg = (e[users].square().sum() + e[pos + self.n_users].square().sum() + e[neg + self.n_users].square().sum()
               + sum(g.preference[users].square().sum() for g in self.gcns)) / len(users)
        return -F.logsigmoid(y_ui - y_uj).mean() + self.config.reg * reg
