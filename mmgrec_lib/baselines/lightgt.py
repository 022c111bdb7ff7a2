r"""LightGT: a light graph transformer for multimedia recommendation (Wei et al., SIGIR 2023).

**LightGCN backbone.** Free ID embeddings :math:`\mathbf{E}^{(0)} = [\mathbf{E}_\text{user}; \mathbf{E}_\text{item}]`
are propagated on the symmetric-normalised user-item training graph :math:`\tilde{A} = D^{-1/2} A D^{-1/2}`:

.. math::

    \mathbf{E}^{(l)} = \tilde{A}\,\mathbf{E}^{(l-1)}, \qquad
    \bar{\mathbf{e}} = \frac{1}{K+1}\sum_{l=0}^{K} \mathbf{E}^{(l)} \quad (K = \texttt{n\_gcn\_layers}).

**Modality-specific item embeddings.** :math:`\mathbf{g}^m_i = (\mathbf{W}_m \mathbf{f}^m_i + \mathbf{b}_m)
\,[i \text{ has } m]`, width :math:`D`.

**Transformer with the layer-wise position encoder.** A user's input is a subset :math:`S_u \subseteq
\mathcal{N}(u)` of at most :math:`s` (``max_len``) of the user's training items: during training a uniform
random subset drawn afresh at every step (reproducibly, see below); at inference the deterministic, evenly
spaced subset :math:`\{\mathcal{N}(u)_{\lfloor n |\mathcal{N}(u)| / k \rfloor} : n < k\}`, :math:`k =
\min(|\mathcal{N}(u)|, s)`, of the user's items sorted by id (so it does not depend on the batch). Users are
batched, padded to the longest subset, with key padding masks (items lacking modality :math:`m` are masked
out of its encoder too). Per modality, :math:`L_T` (``n_layers``) encoder layers run on
:math:`\mathbf{h}^{m,(0)}_{n} = \mathbf{g}^m_{i_n}`; the position encoding of layer :math:`l` is the
:math:`l`-th LightGCN layer output of the item at that position, :math:`\mathbf{q}^{(l)}_n =
\operatorname{sg}(\mathbf{E}^{(l)}_{U+i_n})` (stop-gradient, as in the reference code), added to the layer's
query and key inputs:

.. math::

    \mathbf{h}^{m,(l)} &= \operatorname{LN}\Big(\mathbf{h}^{m,(l-1)} + \operatorname{Drop}\big(
        \operatorname{MHA}(Q = K = \mathbf{h}^{m,(l-1)} + \mathbf{q}^{(l)},\ V = \mathbf{h}^{m,(l-1)})\big)\Big),\\
    \mathbf{t}^m_u &= \mathbf{W}^m_o\, \frac{1}{|S^m_u|}\sum_{n \in S^m_u} \mathbf{h}^{m,(L_T)}_n + \mathbf{b}^m_o
        \quad (\mathbf{0} \text{ when } S^m_u = \emptyset).

**Score and loss.** Two forms (``score``). ``"sum"`` (the default): one dot product of the summed
representations,

.. math::

    \mathbf{r}_u = \bar{\mathbf{e}}_u + \frac{1}{M}\sum_m \mathbf{t}^m_u, \qquad
    \mathbf{r}_i = \bar{\mathbf{e}}_{U+i} + \frac{1}{M}\sum_m \mathbf{g}^m_i, \qquad
    \hat{y}_{ui} = \mathbf{r}_u^\top \mathbf{r}_i;

``"split"`` (the reference code's): an ID score and per-modality content scores, weighted by :math:`w`
(``score_weight``), with no cross terms between the ID and content spaces,

.. math::

    \hat{y}_{ui} = w\,\bar{\mathbf{e}}_u^\top\bar{\mathbf{e}}_{U+i} + (1 - w)\sum_m \mathbf{t}^{m\top}_u \mathbf{g}^m_i
    = \mathbf{r}_u^\top \mathbf{r}_i, \quad
    \mathbf{r}_u = [\sqrt{w}\,\bar{\mathbf{e}}_u \,\|\, \sqrt{1-w}\,\mathbf{t}^1_u \,\|\, \dots], \
    \mathbf{r}_i = [\sqrt{w}\,\bar{\mathbf{e}}_{U+i} \,\|\, \sqrt{1-w}\,\mathbf{g}^1_i \,\|\, \dots]

(so scoring stays one dot product, of width :math:`D(M+1)`).

**User token** (``user_token``, off by default; the reference code's form). A learned per-user vector
:math:`\mathbf{p}_u` is prepended to each modality's sequence, with the user's own layer-:math:`l` LightGCN output
:math:`\operatorname{sg}(\mathbf{E}^{(l)}_u)` as its position encoding, and the user's content vector is read at
that position instead of pooled over the items: :math:`\mathbf{t}^m_u = \operatorname{LeakyReLU}(\mathbf{W}^m_o
\mathbf{h}^{m,(L_T)}_0 + \mathbf{b}^m_o)`. It gives the content branch a free user vector, so that a user with two
items is not reduced to their mean content.

The loss, for either form:

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \frac{\lambda}{B}\sum_{(u,i,j)} \left(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_{U+i}\|^2
        + \|\mathbf{e}^{(0)}_{U+j}\|^2\right).

**Reproducibility.** Every training step takes one seed from two buffers (a seed drawn from the ``fit``
generator and a step counter, in the ``state_dict`` the training loop checkpoints): the input subsets come from
a CPU generator seeded with it, the dropout from torch's global RNG inside
:func:`~mmgrec_lib.utils.seeded_rng` (the caller's RNG state is left as it was), so a resumed run is exact.

Simplifications against the paper / reference code: the reference prepends a learned user token whose output
is the user's content vector, maps each position encoding through ``sigmoid(MLP(.))`` and uses the mean of
LightGCN layers ``0..l``; here the user vector is the mean over the item positions and the raw layer-``l``
output is added. The reference scores in the ``"split"`` form (its default :math:`w = 0.05`); the ``"sum"`` form
is this module's original simplification, kept as the default so that earlier runs stay valid. Like the
reference, the encoder layers have no feed-forward block; unlike it, they keep the residual connection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..data.sparse import constant_spmm
from ..utils import check_fields, eval_mode, seeded_rng
from .base import (check_fraction, check_non_negative, check_positive, init_normal_, init_xavier_linear_,
                   init_xavier_uniform_, next_step_seed, optional_tuple, register_step_seed, reset_step_seed)
from .mmgcn import MultimodalGraphRecommender


SCORES = ("sum", "split")


@dataclass
class LightGTConfig:
    """LightGT hyper-parameters (defaults not tuned here; epochs live in ``LoopConfig``).

    Args:
        dim: width :math:`D` of the ID embeddings, modality embeddings and the Transformer.
        n_layers: Transformer encoder layers :math:`L_T` per modality (layer ``l`` takes the LightGCN layer-``l``
            output as its position encoding).
        n_heads: attention heads (must divide ``dim``).
        dropout: dropout on the attention weights and the attention output (training only), in ``[0, 1)``.
        max_len: :math:`s`, most items of a user fed to the Transformer.
        n_gcn_layers: :math:`K`, LightGCN layers averaged into :math:`\\bar{\\mathbf{e}}`.
        score: ``"sum"`` (one dot product of the summed ID and content representations) or ``"split"`` (the
            reference code's: ``score_weight`` times the ID score plus the rest times the per-modality content
            scores, no cross terms).
        score_weight: :math:`w` of the ``"split"`` score, in ``[0, 1]`` (ignored by ``"sum"``).
        user_token: prepend a learned user vector to each modality's sequence and read the user's content vector
            at its position (the reference code's form; see the module docstring), instead of mean pooling.
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's layer-0 ID embeddings (per triple).
        batch_size: triples per training step; also users per chunk in :meth:`LightGT.score`.
        init_std: std of the normal initialisation of the ID embeddings (weights: Xavier).
        modalities: modalities to use (``None``: all of the dataset's), read by ``from_dataset``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 1
    dropout: float = 0.1
    max_len: int = 20
    n_gcn_layers: int = 2
    score: str = "sum"
    score_weight: float = 0.05
    user_token: bool = False
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    modalities: tuple[str, ...] | None = None
    device: str = "auto"

    # fields added after runs existed, with the value those runs had: left out of run keys at that value
    LATER_DEFAULTS: ClassVar[dict] = {"score": "sum", "score_weight": 0.05, "user_token": False}

    def __post_init__(self) -> None:
        check_fields(self)
        if self.score not in SCORES:
            raise ValueError(f"LightGTConfig: score must be one of {SCORES}, got {self.score!r}")
        if not 0.0 <= self.score_weight <= 1.0:
            raise ValueError(f"LightGTConfig: score_weight must be in [0, 1], got {self.score_weight}")
        check_positive("LightGTConfig", dim=self.dim, n_layers=self.n_layers, n_heads=self.n_heads,
                       max_len=self.max_len, lr=self.lr, batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("LightGTConfig", n_gcn_layers=self.n_gcn_layers, reg=self.reg)
        if self.dim % self.n_heads:
            raise ValueError(f"LightGTConfig: n_heads ({self.n_heads}) must divide dim ({self.dim})")
        check_fraction("LightGTConfig", dropout=self.dropout)
        self.modalities = optional_tuple(self.modalities)


class PositionEncodedLayer(torch.nn.Module):
    """One encoder layer: self-attention whose queries and keys get the layer's position encoding, residual,
    LayerNorm (no feed-forward block)."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.norm = torch.nn.LayerNorm(dim)
        self.dropout = dropout

    def reset_parameters(self, generator: torch.Generator | None) -> None:
        d = self.attn.embed_dim
        for k in range(3):                                               # W_q, W_k, W_v: Xavier each
            init_xavier_uniform_(self.attn.in_proj_weight[k * d:(k + 1) * d], generator)
        with torch.no_grad():
            self.attn.in_proj_bias.zero_()
            self.norm.weight.fill_(1.0)
            self.norm.bias.zero_()
        init_xavier_linear_(self.attn.out_proj, generator)

    def forward(self, h: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        """``h (B, N, D)``, ``pos (B, N, D)``, ``key_padding_mask (B, N)`` (``True``: ignore) -> ``(B, N, D)``."""
        q = h + pos                                                                            # (B, N, D)
        a = self.attn(q, q, h, key_padding_mask=key_padding_mask, need_weights=False)[0]       # (B, N, D)
        return self.norm(h + F.dropout(a, self.dropout, self.training))


class LightGT(MultimodalGraphRecommender):
    """LightGT recommender (see the module docstring).

    Args:
        n_users, n_items: sizes.
        config: :class:`LightGTConfig` (``None``: defaults); keyword overrides allowed.
        edge_index, item_features, feature_dims, feature_masks: see :class:`MultimodalGraphRecommender`;
            :meth:`from_dataset` passes them.

    Raises:
        ValueError: no item features (``from_dataset`` names the dataset), or bad config values.
    """

    config_class = LightGTConfig

    def __init__(self, n_users: int, n_items: int, config: LightGTConfig | None = None, **kwargs) -> None:
        super().__init__(n_users, n_items, config, **kwargs)
        c = self.config
        register_step_seed(self)
        self.id_emb = torch.nn.Parameter(torch.empty(self.n_users + self.n_items, c.dim))        # (U+I, D)
        self.user_vec = (torch.nn.Parameter(torch.empty(self.n_users, c.dim)) if c.user_token else None)  # (U, D)
        with seeded_rng():        # torch's own init draws from the global RNG: keep the caller's state
            self.proj = torch.nn.ModuleList([torch.nn.Linear(d, c.dim) for d in self.modality_dims])  # d_m -> D
            self.encoders = torch.nn.ModuleList([
                torch.nn.ModuleList([PositionEncodedLayer(c.dim, c.n_heads, c.dropout) for _ in range(c.n_layers)])
                for _ in self.modality_dims])
            self.out = torch.nn.ModuleList([torch.nn.Linear(c.dim, c.dim) for _ in self.modality_dims])
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_normal_(self.id_emb, self.config.init_std, generator)
        if self.user_vec is not None:
            init_normal_(self.user_vec, self.config.init_std, generator)
        for m in range(self.n_modalities):
            init_xavier_linear_(self.proj[m], generator)
            for layer in self.encoders[m]:
                layer.reset_parameters(generator)
            init_xavier_linear_(self.out[m], generator)
        reset_step_seed(self, generator)
        self._emb_cache = None

    # ------------------------------------------------------------------ user item lists
    def user_items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training items of every user as CSR, on the CPU: ``indptr (U+1,)``, ``items (E,)`` (each user's
        items sorted by id); cached per graph."""
        key = ("user_items", "cpu")
        if key not in self._adj_cache:
            self._require_graph()
            users, items = self.edge_index.cpu()                                               # (E,) each
            order = torch.argsort(users * self.n_items + items)
            counts = torch.bincount(users, minlength=self.n_users)                             # (U,)
            indptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])           # (U+1,)
            self._adj_cache[key] = (indptr, items[order].contiguous())
        return self._adj_cache[key]

    def input_items(self, users: torch.Tensor, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Transformer inputs of ``users (B,)``: item ids ``(B, N)`` and a padding mask ``(B, N)`` (``True``:
        padding), ``N = max(1, max_b min(deg_b, max_len))``, on the model's device.

        With ``generator`` (training): a uniform random subset of at most ``max_len`` of each user's training
        items, drawn from ``generator``, in random order. Without (inference): the evenly spaced subset of the
        user's items sorted by id, a function of the user alone.
        """
        indptr, flat = self.user_items()
        u = users.cpu()
        start, deg = indptr[u], indptr[u + 1] - indptr[u]                                      # (B,) each
        k = deg.clamp(max=self.config.max_len)                                                 # (B,) kept
        n_cols = max(1, int(k.max())) if len(u) else 1
        cols = torch.arange(n_cols)                                                            # (N,)
        valid = cols[None, :] < k[:, None]                                                     # (B, N)
        if generator is None:
            offset = cols[None, :] * deg[:, None] // k.clamp_min(1)[:, None]                   # (B, N)
            idx = (start[:, None] + torch.where(valid, offset, 0)).clamp(max=max(len(flat) - 1, 0))
            items = torch.where(valid, flat[idx], 0)                                           # (B, N)
        else:
            row = torch.repeat_interleave(torch.arange(len(u)), deg)                           # (T,)
            first = deg.cumsum(0) - deg                                                        # (B,) row starts
            edge = start[row] + torch.arange(len(row)) - first[row]                            # (T,) index in flat
            keys = torch.rand(len(row), generator=generator, dtype=torch.float64)              # (T,)
            order = torch.argsort(row.double() + keys)                 # by row, then random key (keys in [0, 1))
            rank = torch.arange(len(row)) - first[row[order]]                                  # (T,) rank in row
            keep = rank < k[row[order]]
            items = torch.zeros(len(u), n_cols, dtype=torch.long)
            items[row[order][keep], rank[keep]] = flat[edge[order][keep]]                      # (B, N)
        dev = self.device
        return items.to(dev), (~valid).to(dev)

    # ------------------------------------------------------------------ representations
    def lightgcn_layers(self) -> list[torch.Tensor]:
        r"""The LightGCN layer outputs :math:`\mathbf{E}^{(0)}, \dots, \mathbf{E}^{(\max(K, L_T))}`, each
        ``(U+I, D)``."""
        self._require_graph()
        adj = self.adjacency("sym")
        layers = [self.id_emb]
        for _ in range(max(self.config.n_gcn_layers, self.config.n_layers)):
            layers.append(constant_spmm(adj, layers[-1]))                                      # (U+I, D)
        return layers

    def position_encodings(self, layers: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        r"""Item position encodings of the Transformer layers ``1 .. L_T``: :math:`\operatorname{sg}(\mathbf{E}^{(l)}
        _\text{items})`, each ``(I, D)``."""
        layers = self.lightgcn_layers() if layers is None else layers
        return [layers[l][self.n_users:].detach() for l in range(1, self.config.n_layers + 1)]

    def modality_embeddings(self, m: int, items: torch.Tensor | None = None) -> torch.Tensor:
        """:math:`\\mathbf{g}^m` of ``items`` (any shape ``S``; ``None``: all items) -> ``S + (D,)``."""
        if items is None:
            return self.proj[m](self.modality_block(m)) * self.feature_masks[:, m, None]       # (I, D)
        return self.proj[m](self.modality_block(m)[items]) * self.feature_masks[items, m][..., None]

    def encode(self, m: int, items: torch.Tensor, pad: torch.Tensor, x: torch.Tensor,
               pe: list[torch.Tensor], users: torch.Tensor | None = None,
               layers: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Modality ``m``'s Transformer on ``x (B, N, D)`` (the inputs of ``items (B, N)``, padding ``pad (B, N)``)
        with position encodings ``pe`` (``L_T x (I, D)``) -> the user vectors :math:`\\mathbf{t}^m` ``(B, D)``. With
        ``user_token``, ``users (B,)`` and the LightGCN ``layers`` give the prepended token and its encodings."""
        mask = pad | ~self.feature_masks[items, m]                                             # (B, N) ignored keys
        pos = [q[items] for q in pe]                                                           # L_T x (B, N, D)
        token = self.user_vec is not None
        if token:
            if users is None or layers is None:
                raise ValueError("LightGT with user_token: encode needs the users and the LightGCN layers")
            x = torch.cat([self.user_vec[users][:, None], x], dim=1)                           # (B, 1+N, D)
            pos = [torch.cat([layers[l][users].detach()[:, None], p], dim=1)                   # (B, 1+N, D)
                   for l, p in enumerate(pos, 1)]
            mask = torch.cat([torch.zeros_like(mask[:, :1]), mask], dim=1)                     # the token: kept
        else:
            empty = mask.all(1)                                                                # (B,) nothing left
            mask = mask.clone()
            mask[empty, 0] = False                # a fully masked row would give NaN attention; output zeroed below
        h = x
        for layer, q in zip(self.encoders[m], pos):
            h = layer(h, q, mask)                                                              # (B, [1+]N, D)
        if token:
            return F.leaky_relu(self.out[m](h[:, 0]))                                          # (B, D)
        w = (~mask).to(h.dtype)                                                                # (B, N)
        pooled = (h * w[..., None]).sum(1) / w.sum(1, keepdim=True)                            # (B, D)
        return self.out[m](pooled) * (~empty).to(h.dtype)[:, None]                             # (B, D)

    def user_content(self, users: torch.Tensor, layers: list[torch.Tensor],
                     generator: torch.Generator | None = None,
                     item_content: list[torch.Tensor] | None = None) -> torch.Tensor:
        r""":math:`\frac{1}{M}\sum_m \mathbf{t}^m_u` for ``users (B,)``: ``(B, D)``; ``item_content`` (``M x (I, D)``,
        :math:`\mathbf{g}^m` of every item, differentiable or not) is gathered instead of projecting each slot."""
        return torch.stack(self.user_content_parts(users, layers, generator, item_content)).mean(0)

    def user_content_parts(self, users: torch.Tensor, layers: list[torch.Tensor],
                           generator: torch.Generator | None = None,
                           item_content: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        r""":math:`\mathbf{t}^m_u` of every modality for ``users (B,)``: ``M x (B, D)`` (see :meth:`user_content`)."""
        items, pad = self.input_items(users, generator)                                        # (B, N) each
        pe = self.position_encodings(layers)
        parts = []
        for m in range(self.n_modalities):
            x = (item_content[m][items] if item_content is not None
                 else self.modality_embeddings(m, items))                                      # (B, N, D)
            parts.append(self.encode(m, items, pad, x, pe, users.to(items.device), layers))    # (B, D)
        return parts

    def represent(self, ids: torch.Tensor, content: list[torch.Tensor]) -> torch.Tensor:
        r"""The scoring vectors of nodes from their LightGCN representation ``ids (B, D)`` and content parts
        ``M x (B, D)`` (:math:`\mathbf{t}^m` of users or :math:`\mathbf{g}^m` of items): ``(B, D)`` for the
        ``"sum"`` score, ``(B, D (M + 1))`` for ``"split"``, so that a dot product gives the score."""
        if self.config.score == "sum":
            return ids + torch.stack(content).mean(0)
        w = self.config.score_weight
        return torch.cat([math.sqrt(w) * ids] + [math.sqrt(1.0 - w) * c for c in content], dim=-1)

    def _inference_state(self) -> tuple:
        """Cached at inference until the weights change: LightGCN layers, mean :math:`\\bar{\\mathbf{e}}`, item
        representations ``(I, D)`` and :math:`\\mathbf{g}^m` ``M x (I, D)``."""
        key = self._weights_key()
        if self._emb_cache is None or self._emb_cache[0] != key:
            with torch.no_grad():
                layers = self.lightgcn_layers()
                e_bar = torch.stack(layers[:self.config.n_gcn_layers + 1]).mean(0)             # (U+I, D)
                g = [self.modality_embeddings(m) for m in range(self.n_modalities)]            # M x (I, D)
                item_rep = self.represent(e_bar[self.n_users:], g)                             # (I, D')
            self._emb_cache = (key, (layers, e_bar, item_rep, g))
        return self._emb_cache[1]

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference representations of all users ``(U, D')`` and items ``(I, D')`` (users in chunks; ``D' = D`` for
        the ``"sum"`` score, ``D (M + 1)`` for ``"split"``)."""
        users = torch.arange(self.n_users, device=self.device)
        _, e_bar, item_rep, _ = self._inference_state()
        return torch.cat([self._user_rep(chunk) for chunk in users.split(self.config.batch_size)]), item_rep

    @torch.no_grad()
    def _user_rep(self, users: torch.Tensor) -> torch.Tensor:
        layers, e_bar, _, g = self._inference_state()
        with eval_mode(self):
            return self.represent(e_bar[users], self.user_content_parts(users, layers, item_content=g))  # (B, D')

    @torch.no_grad()
    def score_parts(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        r"""The factors of the score's parts, for diagnosing what the ranking rests on: ``{part: (users (U, D'),
        items (I, D'))}``, each part's score the dot product of its pair (inference representations).

        ``"id"``: :math:`\bar{\mathbf{e}}_u, \bar{\mathbf{e}}_{U+i}` (the LightGCN branch); ``"content"``: the
        content branch as the score form combines it (``"sum"``: :math:`\frac1M\sum_m \mathbf{t}^m_u,
        \frac1M\sum_m \mathbf{g}^m_i`; ``"split"``: the concatenations of :math:`\mathbf{t}^m_u` and
        :math:`\mathbf{g}^m_i`, so the dot product is :math:`\sum_m \mathbf{t}^{m\top}_u \mathbf{g}^m_i`);
        ``"content_<m>"``: modality ``m`` alone (its index in ``modality_dims``); ``"full"``: the model's own
        score. In the ``"sum"`` form the full score also holds the cross terms
        :math:`\bar{\mathbf{e}}_u^\top \bar{\mathbf{g}}_i + \bar{\mathbf{t}}_u^\top \bar{\mathbf{e}}_{U+i}`."""
        self._require_graph()
        layers, e_bar, item_rep, g = self._inference_state()
        users = torch.arange(self.n_users, device=self.device)
        with eval_mode(self):
            chunks = [self.user_content_parts(c, layers, item_content=g) for c in users.split(self.config.batch_size)]
        t = [torch.cat(parts) for parts in zip(*chunks)]                                       # M x (U, D)
        join = (lambda xs: torch.stack(xs).mean(0)) if self.config.score == "sum" else (lambda xs: torch.cat(xs, -1))
        parts = {"id": (e_bar[:self.n_users], e_bar[self.n_users:]), "content": (join(t), join(g))}
        parts.update({f"content_{m}": (t[m], g[m]) for m in range(self.n_modalities)})
        parts["full"] = (self.represent(e_bar[:self.n_users], t), item_rep)
        return parts

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        users = self._check_users(users)
        self._require_graph()
        _, _, item_rep, _ = self._inference_state()
        out = [self._user_rep(chunk) @ item_rep.T for chunk in users.split(self.config.batch_size)]  # (b, I) each
        return torch.cat(out) if out else torch.zeros(0, self.n_items, device=self.device)  # (B, I)

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        seed = next_step_seed(self)
        layers = self.lightgcn_layers()
        e_bar = torch.stack(layers[:self.config.n_gcn_layers + 1]).mean(0)                     # (U+I, D)
        uniq, inv = torch.unique(users, return_inverse=True)                                   # (B',), (B,)
        gen = torch.Generator().manual_seed(seed)
        # g^m of every item once per step (one (I, F_m) x (F_m, D) product per modality), then gathered: the
        # batch's input subsets hold more item slots than the catalogue has items (B' * max_len + 2B > I)
        g_all = [self.modality_embeddings(m) for m in range(self.n_modalities)]                # M x (I, D)
        if self.training and self.config.dropout > 0:
            with seeded_rng((seed + 1) % 2 ** 63, self.device):
                t = self.user_content_parts(uniq, layers, gen, item_content=g_all)             # M x (B', D)
        else:
            t = self.user_content_parts(uniq, layers, gen, item_content=g_all)
        r_u = self.represent(e_bar[users], [tm[inv] for tm in t])                              # (B, D')
        items = torch.cat([pos, neg])                                                          # (2B,)
        r_i, r_j = self.represent(e_bar[items + self.n_users],
                                  [gm[items] for gm in g_all]).split(len(users))              # (B, D') each
        y = (r_u * (r_i - r_j)).sum(-1)                                                        # (B,) y_ui - y_uj
        e = self.id_emb
        reg = (e[users].square().sum() + e[pos + self.n_users].square().sum()
               + e[neg + self.n_users].square().sum()) / len(users)
        return -F.logsigmoid(y).mean() + self.config.reg * reg
