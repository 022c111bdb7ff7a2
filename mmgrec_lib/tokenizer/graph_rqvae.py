r"""Graph RQ-VAE: Rec-ID assignment (paper section 3.2, eq. 4-12).

Pipeline of :func:`assign_recids`:

1. **Layer-0 nodes (eq. 4).** Item :math:`i`: :math:`\mathbf{h}_i^{(0)} = [\mathbf{h}_i^m \,\|\, \mathbf{h}_i^c]`
   with :math:`\mathbf{h}_i^m = [\mathbf{f}_i^v \| \mathbf{f}_i^a \| \mathbf{f}_i^t]\mathbf{W}` (the modalities the
   dataset has, each scaled on its own (``feature_norm``, default unit L2 norm per item and modality: with
   z-scored features the 256-d projection swamped the CF embedding); rows of items missing a modality are zeroed
   *before* the bias-free projection, so a missing modality contributes exactly nothing) and a learned CF
   embedding :math:`\mathbf{h}_i^c`. Users get learned embeddings of the same width (:math:`2D`). Without
   features (amazon-baby) the item node is :math:`\mathbf{h}_i^c` alone and users are :math:`D`-wide.
2. **GCN (eq. 5).** ``n_layers`` PyG :class:`~torch_geometric.nn.SAGEConv` layers on the bipartite train
   graph (users and items as one node set, edges in both directions), each followed by LeakyReLU:
   :math:`\mathbf{h}_i^{(n)} = \mathrm{LeakyReLU}(\mathbf{h}_i^{(n-1)}\mathbf{W}_1 + \frac{1}{|\mathcal{N}_i|}
   \sum_{u\in\mathcal{N}_i}\mathbf{h}_u^{(n-1)}\mathbf{W}_2)` and symmetrically for users (shared weights).
   The mean is a sparse product with the row-normalised adjacency (``SAGEConv(aggr="sum")`` over edge weights
   :math:`1/|\mathcal{N}_i|`): numerically the mean aggregation (tested against ``SAGEConv(aggr="mean")``),
   about 2x faster on CPU than PyG's ``"mean"`` reduction. The last layer gives :math:`\mathbf{h}_u, \mathbf{h}_i \in \mathbb{R}^D`.
3. **Losses (eq. 10).** :math:`\mathcal{L}_{\text{bpr}}` on :math:`\mathbf{h}_u\mathbf{h}_i^\top -
   \mathbf{h}_u\mathbf{h}_j^\top` with uniform negatives (:class:`~mmgrec_lib.training.sampling.BPRSampler`) plus
   ``reg`` times the L2 norm of the batch's layer-0 embeddings, and :math:`\mathcal{L}_{\text{rqvae}}` of an
   :class:`~mmgrec_lib.tokenizer.rqvae.RQVAE` on the final item representations (eq. 6-9).
4. **Schedules.**

   * ``"alternate"`` (default, the paper: "we alternatively optimize one of two sub-losses"): every
     mini-batch step is one Adam step on :math:`\mathcal{L}_{\text{bpr}}` followed by one Adam step on
     :math:`\mathcal{L}_{\text{rqvae}}` over all items. Early stopping on validation Recall@10 of
     :math:`\mathbf{h}_u\mathbf{h}_i^\top` restores the best joint state (graph and RQ-VAE together, so codes
     and representations stay consistent). Then ``rq_epochs`` RQ-only epochs on the frozen best
     representations polish the codebooks (0 disables).
     *Gradient flow:* with ``rq_grad_to_graph=True`` (default) the RQ-VAE step back-propagates into the graph
     model as well (eq. 10 read as one objective whose two terms take turns); with ``False`` it sees
     ``sg(h_i)`` from the preceding BPR forward (no second graph forward). The joint gradient acts as a
     regulariser that pulls item representations towards a quantisable cluster structure and slows the
     over-fitting of BPR on sparse data, at the price of a less used third level (the measurements are in
     the README, "How the defaults were chosen").
     *Frequency:* ``rq_every = k`` takes the RQ-VAE step after every ``k``-th BPR step of an epoch only (batches
     ``0, k, 2k, ...``); ``k = 1`` (default) is one RQ-VAE step per BPR step. The paper does not say how often the
     two sub-losses alternate; ``k > 1`` is not its per-batch reading and costs fewer full-graph passes per epoch.
   * ``"two_stage"`` (the authors' code): BPR alone with early stopping on validation Recall@10, then the
     RQ-VAE for ``rq_epochs`` epochs on the frozen representations.
   * ``"joint"`` (not the paper's schedule; eq. 10's sum read literally): every mini-batch step is one Adam
     step on :math:`\mathcal{L}_{\text{bpr}} + w\,\mathcal{L}_{\text{rqvae}}` (``w = rq_weight``) from one
     graph forward and backward, the last layer at the batch's users and at every item. The alternating
     schedule runs the graph twice per step (its BPR step, then its RQ step through the graph), so this one
     costs about a third less per epoch; it is another optimisation, so it is chosen on validation, not
     assumed equal. Early stopping, the RQ-only polishing and the gradient flow are those of ``"alternate"``
     with ``rq_grad_to_graph=True``.

5. **Rec-IDs (eq. 11-12).** Semantic tokens ``(n_items, n_levels)`` from the trained RQ-VAE, a collision
   token appended by :func:`mmgrec_lib.tokenizer.recid.disambiguate` (``"popularity"``, ``"random"`` or ``"none"``), a
   :class:`~mmgrec_lib.tokenizer.recid.RecIDTable`, statistics (:func:`mmgrec_lib.tokenizer.stats.recid_stats`), all in a
   :class:`RecIDRun` that saves and loads atomically.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import SAGEConv

from ..data.dataset import RecDataset
from ..data.sparse import RowProduct, bipartite_edge_index, constant_spmm, symmetric_adjacency, transpose_csr
from ..evaluation import evaluate
from .recid import DISAMBIGUATION_MODES
from .run import RecIDRun, build_recids
from .stats import level_usage
from .rqvae import RQVAE, RQVAEOutput
from ..training.sampling import BPRSampler
from ..training.loop import FitResult, LoopConfig, cpu_threads, fit, require_validation
from ..training.optim import adam
from ..training.timing import PhaseTimer, phase
from ..data.device import resolve_device
from ..utils import check_fields, check_unknown, seeded_rng

SCHEDULES = ("alternate", "two_stage", "joint")
ENCODERS = ("sage", "lightgcn")
FEATURE_NORMS = ("l2", "standardize", "none")


# ====================================================================== configuration
@dataclass
class GraphRQVAEConfig:
    r"""Every knob of Rec-ID assignment.

    Defaults were tuned on TikTok validation (the grid and its results: README, "How the defaults were
    chosen"): early stopping with ``patience=10`` at ``lr=1e-3``, ``feature_norm="l2"``, full-batch RQ-VAE
    steps with k-means init and re-seeding of dead codes.

    Args:
        dim: final representation width ``D`` (items enter at ``2D`` when they have features).
        n_layers: number of GCN layers (eq. 5).
        codebook_size: codes per level ``L`` (paper tunes 64 / 128 / 256).
        n_levels: semantic levels ``M - 1`` (paper: 3).
        beta: commitment weight (eq. 10; paper 0.25).
        lr: Adam learning rate of the graph model.
        rq_lr: Adam learning rate of the RQ-VAE.
        reg: L2 weight on the batch's layer-0 embeddings in the BPR step.
        batch_size: BPR triples per step.
        epochs: maximum epochs of the BPR / alternating phase.
        rq_epochs: RQ-VAE-only epochs on frozen representations (stage 2 of ``two_stage``; polishing after
            ``alternate``, 0 disables there).
        rq_batch_size: items per RQ-VAE step (``0``: all items, full batch).
        rq_hidden_dim: hidden width of the RQ-VAE encoder / decoder MLPs.
        rq_latent_dim: RQ-VAE latent (codeword) dimension.
        patience: early-stopping patience in validations (``0``: none).
        eval_every: validate every this many epochs.
        schedule: ``"alternate"``, ``"two_stage"`` or ``"joint"`` (see the module docstring).
        rq_grad_to_graph: in ``alternate``, let the RQ-VAE loss back-propagate into the graph model.
        rq_every: in ``alternate``, one RQ-VAE step after every ``rq_every``-th BPR step (1: after each).
        kmeans_init: k-means initialisation of each codebook on the first batch's residuals.
        reseed_dead: re-seed codes unused over one pass over the items with residuals of random items.
        collision: ``"popularity"`` (eq. 11-12), ``"random"`` (TIGER) or ``"none"`` (no table, report only).
        encoder: ``"sage"`` (eq. 5, the paper: SAGE layers with LeakyReLU, output ``D``-wide) or ``"lightgcn"``
            (not the paper's: parameter-free propagation :math:`\tilde{A} = D^{-1/2} A D^{-1/2}` of the same
            layer-0 nodes, the mean of layers ``0..n_layers`` as the representation, ``2D``-wide with features;
            see :class:`LightGCNEncoder`).
        rq_weight: weight of :math:`\mathcal{L}_{\text{rqvae}}` in the alternating steps (1: eq. 10 as written);
            smaller values let the BPR term shape the representation more.
        negative_slope: LeakyReLU slope of eq. 5.
        init_std: std of the normal initialisation of user / CF embeddings.
        feature_norm: per-modality feature scaling before the projection: ``"l2"`` (each item's modality
            vector to unit norm), ``"standardize"`` (z-score columns over the items that have it), ``"none"``.
        weight_decay: Adam weight decay of the dense graph weights (``W``, ``W1``, ``W2``; not embeddings).
        seed: seed of parameters, sampling, k-means, re-seeding and random disambiguation.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    """

    dim: int = 64
    n_layers: int = 2
    codebook_size: int = 256
    n_levels: int = 3
    beta: float = 0.25
    lr: float = 1e-3
    rq_lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    epochs: int = 60
    rq_epochs: int = 200
    rq_batch_size: int = 0
    rq_hidden_dim: int = 128
    rq_latent_dim: int = 32
    patience: int = 10
    eval_every: int = 1
    schedule: str = "alternate"
    rq_grad_to_graph: bool = True
    rq_every: int = 1
    encoder: str = "sage"
    rq_weight: float = 1.0
    kmeans_init: bool = True
    reseed_dead: bool = True
    collision: str = "popularity"
    negative_slope: float = 0.01
    init_std: float = 0.1
    feature_norm: str = "l2"
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        positive = {"dim": self.dim, "n_layers": self.n_layers, "n_levels": self.n_levels,
                    "batch_size": self.batch_size, "rq_hidden_dim": self.rq_hidden_dim,
                    "rq_latent_dim": self.rq_latent_dim, "eval_every": self.eval_every, "rq_every": self.rq_every}
        for name, value in positive.items():
            if int(value) < 1:
                raise ValueError(f"GraphRQVAEConfig.{name} must be >= 1, got {value}")
        if self.codebook_size < 2:
            raise ValueError(f"GraphRQVAEConfig.codebook_size must be >= 2, got {self.codebook_size}")
        for name in ("epochs", "rq_epochs", "rq_batch_size", "patience"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"GraphRQVAEConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "rq_lr"):
            value = float(getattr(self, name))
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"GraphRQVAEConfig.{name} must be a positive number, got {value}")
        for name in ("beta", "reg", "negative_slope", "init_std", "weight_decay", "rq_weight"):
            value = float(getattr(self, name))
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"GraphRQVAEConfig.{name} must be >= 0, got {value}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"GraphRQVAEConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"GraphRQVAEConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"GraphRQVAEConfig.feature_norm must be one of {FEATURE_NORMS}, got {self.feature_norm!r}")
        if self.collision not in DISAMBIGUATION_MODES:
            raise ValueError(f"GraphRQVAEConfig.collision must be one of {DISAMBIGUATION_MODES}, "
                             f"got {self.collision!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GraphRQVAEConfig":
        """Build from a plain dict (YAML / notebook parameters); unknown keys raise ``TypeError``."""
        check_unknown(values, [f.name for f in dataclasses.fields(cls)], "GraphRQVAEConfig")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """All fields, except those added after runs were first saved while they hold their defaults: the
        dict (and so every run key and saved config built from it) stays what it was for earlier runs."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}


# fields added after the first saved runs, with the defaults that reproduce those runs (left out of to_dict)
_LATER_FIELDS: dict[str, Any] = {"encoder": "sage", "rq_weight": 1.0, "rq_every": 1}


# ====================================================================== inputs
def item_feature_matrix(dataset: RecDataset, norm: str = "l2") -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated item features ``(n_items, F)`` and a column-level presence mask ``(n_items, F)``.

    Each modality is scaled on its own (``norm="l2"``: every item's vector to unit L2 norm, so modalities of
    different dimension and scale weigh alike; ``"standardize"``: z-score each column over the items that have
    the modality; ``"none"``), then rows of items without the modality are set to exactly zero (statistics
    use present rows only). ``F = 0`` for datasets without features.
    """
    if norm not in FEATURE_NORMS:
        raise ValueError(f"feature norm must be one of {FEATURE_NORMS}, got {norm!r}")
    blocks, masks = [], []
    for m in dataset.modalities:
        f = torch.from_numpy(np.ascontiguousarray(dataset.features[m], dtype=np.float32))   # (I, d_m)
        present = torch.from_numpy(np.asarray(dataset.feature_masks[m], dtype=bool))          # (I,)
        if norm == "standardize" and present.any():
            ref = f[present]
            f = (f - ref.mean(0)) / ref.std(0, unbiased=False).clamp_min(1e-6)
        elif norm == "l2":
            f = F.normalize(f, dim=1)
        col = present[:, None].expand_as(f)
        blocks.append(f.masked_fill(~col, 0.0))
        masks.append(col)
    if not blocks:
        return torch.zeros(dataset.n_items, 0), torch.zeros(dataset.n_items, 0, dtype=torch.bool)
    return torch.cat(blocks, 1), torch.cat(masks, 1)


def mean_adjacency(edge_index: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Row-normalised adjacency of the bipartite graph as a sparse CSR ``(U + I, U + I)`` tensor.

    ``edge_index`` holds (user, item) train pairs (``(2, E)``, both 0-based). Nodes ``0..U-1`` are users and
    ``U..U+I-1`` items; row ``v`` has weight ``1/|N(v)|`` on each neighbour, so ``A @ X`` is the neighbour
    mean of eq. 5 (rows of isolated nodes are empty: their mean is 0).
    """
    src, dst = bipartite_edge_index(edge_index, n_users)               # messages user->item and item->user
    n = n_users + n_items
    deg = torch.bincount(dst, minlength=n).clamp_min(1).float()
    adj = torch.sparse_coo_tensor(torch.stack([dst, src]), 1.0 / deg[dst], (n, n),
                                  check_invariants=True).coalesce()
    with warnings.catch_warnings():                     # "sparse CSR support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return adj.to_sparse_csr()


# ====================================================================== models
class MeanSAGEConv(SAGEConv):
    r"""PyG's :class:`~torch_geometric.nn.SAGEConv` over a constant sparse adjacency: the neighbour product runs
    through :func:`~mmgrec_lib.data.sparse.constant_spmm`, with the adjacency's transpose computed once per
    adjacency (not at every backward pass). Where the layer narrows (``in_channels > out_channels``, eq. 5's
    first layer over the ``2D``-wide fused nodes) the neighbour weight is applied before the mean,
    :math:`\mathbf{W}_2\,\mathrm{mean}(\mathbf{x}) = \mathrm{mean}(\mathbf{W}_2\mathbf{x})`, so the sparse
    product runs at the output width. Same values as ``SAGEConv`` up to float rounding (tested)."""

    _transpose: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x, edge_index, size=None) -> torch.Tensor:
        if not torch.is_tensor(x) or self.project or self.normalize:
            return super().forward(x, edge_index, size)
        return self._eq5(x, lambda z: self.propagate(edge_index, x=z, size=size), x)

    def at_rows(self, x: torch.Tensor, product: RowProduct) -> torch.Tensor:
        """The layer's output at ``product.rows`` only (``product``: a :class:`~mmgrec_lib.data.sparse.RowProduct`
        of the adjacency), with the same order of operations as :meth:`forward`: ``(n, out)``."""
        return self._eq5(x, product, x.index_select(0, product.rows))

    def _eq5(self, x: torch.Tensor, mean, root: torch.Tensor) -> torch.Tensor:
        """``W2 mean(x) + b + W1 root``; ``mean`` maps node values to their neighbour means (at the output rows).
        W2 goes before the mean where the layer narrows, after it (as PyG's ``SAGEConv``) otherwise."""
        if isinstance(self.in_channels, int) and self.in_channels > self.out_channels:
            out = mean(F.linear(x, self.lin_l.weight))                          # (n, out)  mean(W2 x)
            if self.lin_l.bias is not None:
                out.add_(self.lin_l.bias)                                       # in place: same sums, one buffer
        else:
            out = self.lin_l(mean(x))                                           # (n, out)  W2 mean(x)
        return out.add_(self.lin_r(root)) if self.root_weight else out

    def message_and_aggregate(self, adj_t: torch.Tensor, x) -> torch.Tensor:
        x = x[0] if isinstance(x, tuple) else x
        if self._transpose is None or self._transpose[0] is not adj_t:
            self._transpose = (adj_t, transpose_csr(adj_t))
        return constant_spmm(adj_t, x, self._transpose[1])


class GraphEncoder(nn.Module):
    r"""Multimodal node initialisation and GCN of Graph RQ-VAE (eq. 4-5).

    Args:
        n_users, n_items: node counts.
        feature_dim: width ``F`` of the concatenated item features (``0``: no features, CF embedding only).
        dim: ``D``; the projection :math:`\mathbf{W}` and the CF embedding are ``D``-wide, so layer-0 nodes are
            ``2D``-wide with features and ``D``-wide without; every GCN layer outputs ``D``.
        n_layers: GCN depth.
        negative_slope: LeakyReLU slope (>= 0: the activation runs in place, and its backward reads the output).
        init_std: std of the normal init of user and CF embeddings.
        seed: parameter initialisation seed.

    ``forward(adj, features, feature_mask) -> (h_u (U, D), h_i (I, D))`` where ``adj`` comes from
    :func:`mean_adjacency`.
    """

    def __init__(self, n_users: int, n_items: int, feature_dim: int = 0, dim: int = 64, n_layers: int = 2,
                 negative_slope: float = 0.01, init_std: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        if n_users < 1 or n_items < 1 or dim < 1 or n_layers < 1 or feature_dim < 0 or negative_slope < 0:
            raise ValueError(f"GraphEncoder: n_users ({n_users}), n_items ({n_items}), dim ({dim}) and n_layers "
                             f"({n_layers}) must be >= 1, feature_dim ({feature_dim}) and negative_slope "
                             f"({negative_slope}) >= 0")
        self.n_users, self.n_items, self.feature_dim = int(n_users), int(n_items), int(feature_dim)
        self.dim, self.negative_slope = int(dim), float(negative_slope)
        in_width = 2 * dim if feature_dim else dim
        widths = [in_width] + [dim] * n_layers
        self.out_dim = dim
        with seeded_rng(seed):
            self.user_emb = nn.Embedding(n_users, in_width)                    # h_u^(0)
            self.item_emb = nn.Embedding(n_items, dim)                         # h_i^c
            nn.init.normal_(self.user_emb.weight, std=init_std)
            nn.init.normal_(self.item_emb.weight, std=init_std)
            self.proj = nn.Linear(feature_dim, dim, bias=False) if feature_dim else None   # W of eq. 4
            # eq. 5: lin_r = W1 (root), lin_l = W2 (neighbour mean); "sum" over 1/deg-weighted edges = mean
            self.convs = nn.ModuleList(MeanSAGEConv(widths[n], widths[n + 1], aggr="sum", root_weight=True)
                                       for n in range(n_layers))

    def layer0(self, features: torch.Tensor | None = None,
               feature_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-0 user ``(U, W0)`` and item ``(I, W0)`` nodes (eq. 4)."""
        h_c = self.item_emb.weight                                             # (I, D)
        if self.proj is None:
            return self.user_emb.weight, h_c
        if features is None or features.shape != (self.n_items, self.feature_dim):
            raise ValueError(f"GraphEncoder needs item features of shape ({self.n_items}, {self.feature_dim}), "
                             f"got {None if features is None else tuple(features.shape)}")
        if feature_mask is not None:
            features = features.masked_fill(~feature_mask, 0.0)              # missing modality -> exact zeros
        h_m = self.proj(features)                                              # (I, D)
        return self.user_emb.weight, torch.cat([h_m, h_c], dim=1)              # (U, 2D), (I, 2D)

    def forward(self, adj: torch.Tensor, features: torch.Tensor | None = None,
                feature_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h_u, h_i = self.layer0(features, feature_mask)
        h = torch.cat([h_u, h_i], dim=0)                                       # (U + I, W0)
        for conv in self.convs:
            h = F.leaky_relu(conv(h, adj), self.negative_slope, inplace=True)  # (U + I, D)   eq. 5
        return h[:self.n_users], h[self.n_users:]

    def node_embeddings(self, adj: torch.Tensor, nodes: torch.Tensor | RowProduct,
                        features: torch.Tensor | None = None,
                        feature_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``nodes`` (``(n,)`` long; users ``0..U-1``, items ``U..U+I-1``) of :meth:`forward`'s output,
        ``(n, D)``, differentiable. Every layer but the last runs over the whole graph; the last (eq. 5) only at
        ``nodes``: their neighbour means and root terms. A BPR step needs the final layer at its batch's nodes
        only, and an RQ-VAE step at the items only. ``nodes`` may be a
        :class:`~mmgrec_lib.data.sparse.RowProduct` of ``adj`` built once for rows needed at every step. Same
        values as ``forward`` (tested); gradients equal up to the order of float sums."""
        product = nodes if isinstance(nodes, RowProduct) else RowProduct(adj, nodes)
        h_u, h_i = self.layer0(features, feature_mask)
        h = torch.cat([h_u, h_i], dim=0)                                       # (U + I, W0)
        for conv in self.convs[:-1]:
            h = F.leaky_relu(conv(h, adj), self.negative_slope, inplace=True)  # (U + I, D)
        out = self.convs[-1].at_rows(h, product)                               # (n, D)   eq. 5 at nodes
        return F.leaky_relu(out, self.negative_slope, inplace=True)


class LightGCNEncoder(GraphEncoder):
    r"""Not the paper's eq. 5: the layer-0 nodes of eq. 4 propagated as in LightGCN (He et al., 2020),

    .. math::

        \mathbf{H}^{(n)} = \tilde{A}\,\mathbf{H}^{(n-1)}, \qquad
        \mathbf{h}_v = \frac{1}{L+1}\sum_{n=0}^{L} \mathbf{h}_v^{(n)}, \qquad
        \tilde{A} = D^{-1/2} A D^{-1/2},

    with PyG's :class:`~torch_geometric.nn.conv.LGConv` over the pre-normalised adjacency of
    :func:`symmetric_adjacency`. No weights besides eq. 4's (the projection ``W`` and the embeddings), so the
    output keeps the input width (``2D`` with features). Same interface as :class:`GraphEncoder`.
    """

    def __init__(self, n_users: int, n_items: int, feature_dim: int = 0, dim: int = 64, n_layers: int = 2,
                 init_std: float = 0.1, seed: int = 0) -> None:
        super().__init__(n_users, n_items, feature_dim, dim, n_layers, 0.0, init_std, seed)
        from ..baselines.lightgcn import SymmetricLGConv
        self.convs = nn.ModuleList(SymmetricLGConv(normalize=False) for _ in range(n_layers))
        self.out_dim = 2 * dim if feature_dim else dim

    def forward(self, adj: torch.Tensor, features: torch.Tensor | None = None,
                feature_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h_u, h_i = self.layer0(features, feature_mask)
        h = torch.cat([h_u, h_i], dim=0)                                       # (U + I, W0)
        total = h
        for conv in self.convs:
            h = conv(h, adj)                                                   # (U + I, W0)
            total = total + h
        h = total / (len(self.convs) + 1)                                      # layer mean
        return h[:self.n_users], h[self.n_users:]

    def node_embeddings(self, adj: torch.Tensor, nodes: torch.Tensor | RowProduct,
                        features: torch.Tensor | None = None,
                        feature_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``nodes`` (a long tensor or a :class:`~mmgrec_lib.data.sparse.RowProduct` of ``adj``) of
        :meth:`forward`'s output ``(n, W0)``: the last propagation only at ``nodes`` (the layer mean needs no
        other row of it); same values as ``forward`` (tested)."""
        product = nodes if isinstance(nodes, RowProduct) else RowProduct(adj, nodes)
        h_u, h_i = self.layer0(features, feature_mask)
        h = torch.cat([h_u, h_i], dim=0)                                       # (U + I, W0)
        total = h.index_select(0, product.rows)                                # (n, W0)
        for conv in self.convs[:-1]:
            h = conv(h, adj)                                                   # (U + I, W0)
            total = total + h.index_select(0, product.rows)
        total = total + product(h)                                             # last layer, rows only
        return total / (len(self.convs) + 1)


class GraphRQVAE(nn.Module):
    r"""The Graph RQ-VAE of Figure 1: :class:`GraphEncoder` (eq. 4-5) and :class:`~mmgrec_lib.tokenizer.rqvae.RQVAE`
    on its final item representations (eq. 6-10).

    Uniform interface: ``forward(adj, features, mask) -> (h_u, h_i)``, ``bpr_loss``, ``rq_loss``, ``score``,
    ``semantic_ids``.
    """

    def __init__(self, n_users: int, n_items: int, feature_dim: int, config: GraphRQVAEConfig,
                 dead_code_window: int = 1) -> None:
        super().__init__()
        if config.encoder == "lightgcn":
            self.graph = LightGCNEncoder(n_users, n_items, feature_dim, config.dim, config.n_layers,
                                         config.init_std, seed=config.seed)
        else:
            self.graph = GraphEncoder(n_users, n_items, feature_dim, config.dim, config.n_layers,
                                      config.negative_slope, config.init_std, seed=config.seed)
        self.rqvae = RQVAE(self.graph.out_dim, config.rq_latent_dim, config.rq_hidden_dim, config.codebook_size,
                           config.n_levels, config.beta, kmeans_init=config.kmeans_init,
                           reseed_dead=config.reseed_dead, dead_code_window=dead_code_window,
                           seed=config.seed + 1)

    def forward(self, adj: torch.Tensor, features: torch.Tensor | None = None,
                feature_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph(adj, features, feature_mask)

    def bpr_loss(self, h_u: torch.Tensor, h_i: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
                 neg: torch.Tensor, reg: float = 0.0,
                 rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        r""":math:`-\ln\sigma(\mathbf{h}_u\mathbf{h}_i^\top - \mathbf{h}_u\mathbf{h}_j^\top)` averaged over the
        batch, plus ``reg`` times the batch's squared layer-0 embedding norms (per triple).

        ``rows``: where the triples' vectors sit in ``h_u`` / ``h_i`` when those hold only the batch's nodes
        (:meth:`GraphEncoder.node_embeddings`); by default ``users``, ``pos`` and ``neg`` themselves."""
        ru, rp, rn = (users, pos, neg) if rows is None else rows
        # index_select rather than h[idx]: the same values and gradients bit for bit, with a cheaper backward
        # (tests/test_graph_rqvae.py)
        hu = h_u.index_select(0, ru)                                           # (B, D)
        x = (hu * (h_i.index_select(0, rp) - h_i.index_select(0, rn))).sum(-1)   # (B,)
        loss = -F.logsigmoid(x).mean()
        if reg > 0:
            e = self.graph
            l2 = (e.user_emb(users).pow(2).sum() + e.item_emb(pos).pow(2).sum()
                  + e.item_emb(neg).pow(2).sum()) / (2 * users.numel())
            loss = loss + reg * l2
        return loss

    def rq_loss(self, h_i: torch.Tensor) -> RQVAEOutput:
        """Eq. 10's :math:`\\mathcal{L}_{\\text{rqvae}}` on item representations ``(B, D)``."""
        return self.rqvae(h_i)

    @staticmethod
    def score(h_u: torch.Tensor, h_i: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """``(B, I)`` preference scores :math:`\\mathbf{h}_u\\mathbf{h}_i^\\top`."""
        return h_u[users] @ h_i.t()

    @torch.no_grad()
    def semantic_ids(self, h_i: torch.Tensor) -> torch.Tensor:
        """``(I, n_levels)`` semantic tokens (eq. 8)."""
        return self.rqvae.encode(h_i)


# ====================================================================== training
class _Trainer:
    """Holds the data tensors, model, sampler and optimiser; exposes epoch functions for :func:`fit`."""

    def __init__(self, dataset: RecDataset, cfg: GraphRQVAEConfig, device: torch.device) -> None:
        self.ds, self.cfg, self.device = dataset, cfg, device
        # item_feature_matrix has already set missing modalities to exact zeros, so the forwards pass no
        # feature_mask: masking again at every graph forward would copy the feature matrix for nothing
        feats, _ = item_feature_matrix(dataset, cfg.feature_norm)
        self.features = feats.to(device) if feats.shape[1] else None
        adjacency = symmetric_adjacency if cfg.encoder == "lightgcn" else mean_adjacency
        self.adj = adjacency(dataset.train_edge_index(), dataset.n_users, dataset.n_items).to(device)
        items = torch.arange(dataset.n_users, dataset.n_users + dataset.n_items, device=device)
        self.item_rows = RowProduct(self.adj, items)                          # the items' last layer, built once
        self.sampler = BPRSampler(dataset.train)
        n = dataset.n_items
        self.rq_bs = n if cfg.rq_batch_size == 0 else min(cfg.rq_batch_size, n)
        self.rq_steps = math.ceil(n / self.rq_bs)                              # RQ steps per pass over items
        self.model = GraphRQVAE(dataset.n_users, n, feats.shape[1], cfg, dead_code_window=self.rq_steps).to(device)
        g = self.model.graph
        embeddings = [g.user_emb.weight, g.item_emb.weight]
        dense = [p for n, p in g.named_parameters() if not n.endswith("_emb.weight")]
        self.opt = adam([{"params": embeddings, "lr": cfg.lr},
                         {"params": dense, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
                         {"params": self.model.rqvae.parameters(), "lr": cfg.rq_lr}], cfg.lr)
        self.frozen_items: torch.Tensor | None = None
        self.timer: PhaseTimer | None = None          # set by benchmarks: wall time per phase of a step

    # -------------------------------------------------------------- pieces
    def embed(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(self.adj, self.features)

    def items(self) -> torch.Tensor:
        """Final item representations ``(I, D)``, differentiable, the last layer computed at the items only."""
        return self.model.graph.node_embeddings(self.adj, self.item_rows, self.features)

    def _bpr_step(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """One Adam step on L_bpr; returns the loss and, where the alternating RQ-VAE step reads them
        (``rq_grad_to_graph`` off), the pre-update detached item representations ``(I, D)``; else ``None``.

        The last GCN layer runs at the batch's nodes only (:meth:`GraphEncoder.node_embeddings`) unless all item
        representations are needed afterwards."""
        with phase(self.timer, "bpr_forward"):
            if self.cfg.schedule == "alternate" and not self.cfg.rq_grad_to_graph:
                h_u, h_i = self.embed()
                loss, keep = self.model.bpr_loss(h_u, h_i, u, i, j, self.cfg.reg), h_i.detach()
            else:
                n_u = self.ds.n_users
                nodes, inv = torch.unique(torch.cat([u, i + n_u, j + n_u]), return_inverse=True)   # (n,), (3B,)
                h = self.model.graph.node_embeddings(self.adj, nodes, self.features)               # (n, D)
                loss, keep = self.model.bpr_loss(h, h, u, i, j, self.cfg.reg, rows=inv.split(u.numel())), None
        with phase(self.timer, "bpr_backward"):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        with phase(self.timer, "bpr_optimizer"):
            self.opt.step()
        return loss.item(), keep

    def _rq_loss(self, h_i: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, RQVAEOutput]:
        """``rq_weight * L_rqvae`` on ``h_i`` ``(I, D)`` (a random ``rq_batch_size`` of its rows when set) and the
        RQ-VAE output."""
        if self.rq_bs < h_i.shape[0]:
            idx = torch.randperm(h_i.shape[0], generator=generator)[:self.rq_bs].to(self.device)
            h_i = h_i[idx]
        out = self.model.rq_loss(h_i)
        return (out.loss * self.cfg.rq_weight if self.cfg.rq_weight != 1.0 else out.loss), out

    def _rq_step(self, h_i: torch.Tensor, generator: torch.Generator) -> RQVAEOutput:
        with phase(self.timer, "rq_forward"):
            loss, out = self._rq_loss(h_i, generator)
        with phase(self.timer, "rq_backward"):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        with phase(self.timer, "rq_optimizer"):
            self.opt.step()
        return out

    def _alternate_step(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                        generator: torch.Generator, batch: int = 0) -> tuple[float, RQVAEOutput | None]:
        """One Adam step on L_bpr, then one on L_rqvae (the ``alternate`` schedule) when ``batch`` (the step's index
        in the epoch) is a multiple of ``rq_every``; the RQ-VAE output is ``None`` when its step is skipped."""
        bpr, h_i = self._bpr_step(u, i, j)                                     # step on L_bpr
        if batch % self.cfg.rq_every:
            return bpr, None
        if self.cfg.rq_grad_to_graph:
            with phase(self.timer, "rq_graph_forward"):
                h_i = self.items()                                             # (I, D), differentiable
        # else: sg(h_i) from this step's forward (before the BPR update): saves a graph forward
        return bpr, self._rq_step(h_i, generator)                              # step on L_rqvae

    def _joint_step(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                    generator: torch.Generator, batch: int = 0) -> tuple[float, RQVAEOutput]:
        """One Adam step on ``L_bpr + rq_weight * L_rqvae`` (the ``joint`` schedule): one graph forward whose
        last layer runs at the batch's users and at every item; returns the BPR loss and the RQ-VAE output."""
        with phase(self.timer, "forward"):
            users, inv = torch.unique(u, return_inverse=True)                 # (n_b,), (B,)
            n_b = users.numel()
            h = self.model.graph.node_embeddings(self.adj, torch.cat([users, self.item_rows.rows]),
                                                 self.features)               # (n_b + I, D)
            bpr = self.model.bpr_loss(h, h, u, i, j, self.cfg.reg, rows=(inv, i + n_b, j + n_b))
            rq, out = self._rq_loss(h[n_b:], generator)                        # on every item's h_i (I, D)
        with phase(self.timer, "backward"):
            self.opt.zero_grad(set_to_none=True)
            (bpr + rq).backward()
        with phase(self.timer, "optimizer"):
            self.opt.step()
        return bpr.item(), out

    def _triples(self, generator: torch.Generator):
        u, i, j = self.sampler.epoch_triples(generator)
        bs = self.cfg.batch_size
        for s in range(0, u.numel(), bs):
            yield u[s:s + bs].to(self.device), i[s:s + bs].to(self.device), j[s:s + bs].to(self.device)

    # -------------------------------------------------------------- epochs
    def epoch_alternate(self, epoch: int, generator: torch.Generator) -> dict[str, float]:
        return self._epoch_with_rq(self._alternate_step, generator)

    def epoch_joint(self, epoch: int, generator: torch.Generator) -> dict[str, float]:
        return self._epoch_with_rq(self._joint_step, generator)

    def _epoch_with_rq(self, step, generator: torch.Generator) -> dict[str, float]:
        """One pass over the epoch's BPR triples with ``step(u, i, j, generator, batch) -> (bpr, RQVAEOutput or
        None)`` per batch; the mean losses (the RQ-VAE's over the steps that took one), the codes re-seeded and the
        time."""
        t0, bpr_sum, sums, n, n_rq = time.perf_counter(), 0.0, {}, 0, 0
        reseeded0 = int(self.model.rqvae.quantizer.n_reseeded.sum())
        for batch, (u, i, j) in enumerate(self._triples(generator)):
            bpr, out = step(u, i, j, generator, batch)
            if self.timer is not None:
                self.timer.step()
            bpr_sum, n = bpr_sum + bpr, n + 1
            if out is not None:
                for k, v in out.parts().items():
                    sums[k] = sums.get(k, 0.0) + v
                n_rq += 1
        row = {"bpr": bpr_sum / max(n, 1), **{k: v / max(n_rq, 1) for k, v in sums.items()}}
        row["reseeded"] = int(self.model.rqvae.quantizer.n_reseeded.sum()) - reseeded0
        row["time_s"] = time.perf_counter() - t0
        return row

    def graph_epoch(self):
        """The epoch function of the graph phase of ``cfg.schedule``."""
        return {"alternate": self.epoch_alternate, "joint": self.epoch_joint}.get(self.cfg.schedule, self.epoch_bpr)

    def epoch_bpr(self, epoch: int, generator: torch.Generator) -> dict[str, float]:
        t0, total, n = time.perf_counter(), 0.0, 0
        for u, i, j in self._triples(generator):
            total += self._bpr_step(u, i, j)[0]
            n += 1
            if self.timer is not None:
                self.timer.step()
        return {"bpr": total / max(n, 1), "time_s": time.perf_counter() - t0}

    def epoch_rq(self, epoch: int, generator: torch.Generator) -> dict[str, float]:
        """One pass over the frozen item representations in RQ-VAE batches."""
        assert self.frozen_items is not None
        t0, sums = time.perf_counter(), {}
        reseeded0 = int(self.model.rqvae.quantizer.n_reseeded.sum())
        x = self.frozen_items
        n = x.shape[0]
        order = torch.randperm(n, generator=generator).to(self.device) if self.rq_bs < n else None
        for s in range(0, n, self.rq_bs):
            xb = x if order is None else x[order[s:s + self.rq_bs]]
            out = self.model.rq_loss(xb)
            self.opt.zero_grad(set_to_none=True)
            out.loss.backward()
            self.opt.step()
            for k, v in out.parts().items():
                sums[k] = sums.get(k, 0.0) + v / self.rq_steps
        sums["reseeded"] = int(self.model.rqvae.quantizer.n_reseeded.sum()) - reseeded0
        sums["time_s"] = time.perf_counter() - t0
        return sums

    # -------------------------------------------------------------- validation
    @torch.no_grad()
    def validate_graph(self) -> dict[str, float]:
        h_u, h_i = self.embed()
        res = evaluate(lambda users: self.model.score(h_u, h_i, users.to(self.device)), self.ds, "val", ks=(10, 20),
                       device=self.device)
        out = res.mean()
        if self.cfg.schedule != "two_stage":                                   # the RQ-VAE trains alongside
            codes = self.model.semantic_ids(h_i)
            for m, u in enumerate(level_usage(codes, self.cfg.codebook_size), start=1):
                out[f"usage_l{m}"] = u["usage"]
        return out

    @torch.no_grad()
    def validate_rq(self) -> dict[str, float]:
        assert self.frozen_items is not None
        out = self.model.rqvae(self.frozen_items)
        codes = out.codes
        row = {"neg_rq_loss": -out.loss.item(), "val_recon": out.recon_loss.item()}
        for m, u in enumerate(level_usage(codes, self.cfg.codebook_size), start=1):
            row[f"usage_l{m}"] = u["usage"]
        return row

    def rq_phase(self, generator: torch.Generator, checkpoint: Path | None, progress: bool,
                 history: list[dict]) -> FitResult | None:
        """Train only the RQ-VAE on frozen representations for ``rq_epochs`` (keeps the best full-data loss).

        The optimiser is the joint one: after ``alternate`` the RQ-VAE's Adam moments carry over (a fresh Adam
        takes ``lr``-sized first steps that, at these small losses, knock the codebooks about for dozens of
        epochs); the graph parameters get no gradient here, so Adam leaves them alone.
        """
        if self.cfg.rq_epochs == 0:
            return None
        self.model.eval()
        with torch.no_grad():
            self.frozen_items = self.embed()[1].detach()                     # (I, D) sg(h_i)
        res = fit(self.model.rqvae, self.opt, self.epoch_rq, self.validate_rq,
                  LoopConfig(epochs=self.cfg.rq_epochs, patience=0, eval_every=1, monitor="neg_rq_loss",
                             checkpoint=checkpoint, progress=progress),
                  generator, desc="RQ-VAE")
        history.extend({"phase": "rq", **row} for row in res.history)
        return res


def _run_seconds(wall: float, *results: FitResult | None) -> float:
    """Seconds of the whole run: this call's wall time plus the checkpointed time of the epochs that earlier,
    interrupted calls ran (``nan`` when a checkpoint predates per-epoch times)."""
    earlier = 0.0
    for res in results:
        if res is None or res.resumed_from == 0:
            continue
        if len(res.epoch_seconds) != len(res.history):
            return float("nan")
        earlier += float(sum(res.epoch_seconds[:res.resumed_from]))
    return wall + earlier


def _stage_checkpoint(checkpoint: str | os.PathLike | None, tag: str) -> Path | None:
    if checkpoint is None:
        return None
    p = Path(checkpoint)
    return p.with_name(f"{p.stem}.{tag}{p.suffix or '.pt'}")


def assign_recids(dataset: RecDataset, config: GraphRQVAEConfig | None = None, progress: bool = True,
                  checkpoint: str | os.PathLike | None = None) -> RecIDRun:
    """Train Graph RQ-VAE on ``dataset`` and assign Rec-IDs to all items (section 3.2).

    Args:
        dataset: a validated :class:`RecDataset` with training interactions.
        config: :class:`GraphRQVAEConfig` (defaults when ``None``).
        progress: tqdm bars.
        checkpoint: resumable checkpoint path of the graph / alternating phase; the RQ-only phase uses
            ``<stem>.rq<suffix>`` beside it. An interrupted call resumes where it stopped.

    Every step runs on one CPU thread (restored afterwards), so the same configuration gives the same codes
    from a script, a notebook kernel or a sweep worker.

    Returns:
        A :class:`RecIDRun` (embeddings, semantic tokens, Rec-ID table, stats, history, config).
    """
    cfg = config if config is not None else GraphRQVAEConfig()
    if not isinstance(cfg, GraphRQVAEConfig):
        raise TypeError(f"config must be a GraphRQVAEConfig, got {type(cfg).__name__}")
    if dataset.train.nnz == 0:
        raise ValueError(f"dataset {dataset.name!r} has no training interactions; Graph RQ-VAE needs some")
    if dataset.n_items < 2:
        raise ValueError(f"dataset {dataset.name!r} has {dataset.n_items} item(s); need at least 2")
    if cfg.epochs > 0:
        require_validation(dataset, "assign_recids (Graph RQ-VAE early-stops on validation recall@10)")
    # One thread for every step, whatever the caller's setting: the run key has no thread count, and the RQ
    # phase's frozen representations, computed outside the training loops, used to take the caller's (two
    # threads in a script, one in a sweep worker), so one key gave other codes in the two.
    with cpu_threads(1):
        return _assign(dataset, cfg, progress, checkpoint)


def _assign(dataset: RecDataset, cfg: GraphRQVAEConfig, progress: bool,
            checkpoint: str | os.PathLike | None) -> RecIDRun:
    """The body of :func:`assign_recids` after its checks (which runs it on one thread)."""
    device = resolve_device(cfg.device)
    t_start = time.perf_counter()
    trainer = _Trainer(dataset, cfg, device)
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []

    res = fit(trainer.model, trainer.opt, trainer.graph_epoch(), trainer.validate_graph,
              LoopConfig(epochs=cfg.epochs, patience=cfg.patience, eval_every=cfg.eval_every,
                         monitor="recall@10", checkpoint=checkpoint, progress=progress),
              generator, desc=f"Graph RQ-VAE ({cfg.schedule})")
    history.extend({"phase": "bpr" if cfg.schedule == "two_stage" else cfg.schedule, **r} for r in res.history)
    rq_res = trainer.rq_phase(generator, _stage_checkpoint(checkpoint, "rq"), progress, history)

    model = trainer.model.eval()
    with torch.no_grad():                                                    # one thread, as every step (above)
        h_u, h_i = trainer.embed()
        semantic = model.semantic_ids(h_i)
        recon = model.rqvae.reconstruction_error(h_i)
        val = evaluate(lambda users: model.score(h_u, h_i, users.to(device)), dataset, "val", ks=(10, 20),
                       device=device).mean()
    wall = time.perf_counter() - t_start
    times = [r["time_s"] for r in history if r.get("phase") != "rq" and "time_s" in r]
    rq_times = [r["time_s"] for r in history if r.get("phase") == "rq" and "time_s" in r]
    q = model.rqvae.quantizer
    extra = {
        "dataset": dataset.name, "schedule": cfg.schedule, "codebook_size": cfg.codebook_size,
        "val_recall@10": val["recall@10"], "val_ndcg@10": val["ndcg@10"], "val_recall@20": val["recall@20"],
        "best_epoch": res.best_epoch, "epochs_run": len(res.history), "stopped_early": res.stopped_early,
        "kmeans_init": cfg.kmeans_init, "reseed_dead": cfg.reseed_dead,
        **{f"reseeded_l{m + 1}": int(v) for m, v in enumerate(q.n_reseeded.tolist())},
        "reseeded_total": int(q.n_reseeded.sum()),
        "recon_rel": recon / max(h_i.pow(2).sum(-1).mean().item(), 1e-12),
        "sec_per_epoch": float(np.mean(times)) if times else float("nan"),
        "sec_per_rq_epoch": float(np.mean(rq_times)) if rq_times else float("nan"),
        # the whole run, like sec_per_epoch (which averages the whole history, resumed epochs included)
        "total_sec": _run_seconds(wall, res, rq_res),
        "this_call_sec": wall,
        "resumed_from_epoch": res.resumed_from,
    }
    sem, table, stats = build_recids(semantic, dataset.item_popularity(), cfg.collision, cfg.codebook_size,
                                     cfg.seed, cfg.to_dict(), recon, extra)
    state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in model.state_dict().items()}
    return RecIDRun(h_u.detach().float().cpu(), h_i.detach().float().cpu(), sem, table,
                    {"method": "graph_rqvae", **stats}, history, cfg.to_dict(), "graph_rqvae", state)
