r"""VBPR: visual (here: any-modality) Bayesian Personalised Ranking (He & McAuley, AAAI 2016).

With :math:`\mathbf{f}_i` the item's content vector (all dataset modalities, concatenated),

.. math::

    \hat{y}_{ui} = \beta_i + \boldsymbol{\gamma}_u^\top \boldsymbol{\gamma}_i
                   + \boldsymbol{\theta}_u^\top (\mathbf{E}\,\mathbf{f}_i)
                   + \boldsymbol{\beta}'^\top \mathbf{f}_i

(the global offset and user bias cancel in BPR and are omitted), trained with

.. math::

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \frac{\lambda}{B}\sum_{(u,i,j)} \left(\|\boldsymbol{\gamma}_u\|^2 + \|\boldsymbol{\theta}_u\|^2
        + \|\boldsymbol{\gamma}_i\|^2 + \|\boldsymbol{\gamma}_j\|^2 + \beta_i^2 + \beta_j^2\right)
        + \lambda_E \left(\|\mathbf{E}\|^2 + \|\boldsymbol{\beta}'\|^2\right).

Content vectors (:func:`content_features`): each modality is scaled so that its present rows have mean
L2 norm 1 (modalities of very different widths and scales then weigh alike), rows of items lacking the
modality stay zero, and one presence indicator per modality is appended so the model can tell
"missing" from "small". Without any modality the content terms vanish and VBPR is MF-BPR with item biases
(a warning says so).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.dataset import RecDataset
from ..utils import check_fields
from .base import BPRRecommender, check_non_negative, check_positive, init_normal_, optional_tuple


@dataclass
class VBPRConfig:
    """VBPR hyper-parameters (epochs live in ``LoopConfig``).

    Args:
        dim: size of the collaborative factors :math:`\\gamma`.
        content_dim: size of the content factors :math:`\\theta_u` and rows of :math:`E`.
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch's user/item factors and item biases (per triple).
        reg_content: :math:`\\lambda_E`, L2 on :math:`E` and :math:`\\beta'` (per step).
        batch_size: triples per step.
        init_std: std of the normal initialisation.
        modalities: modalities to use (``None``: all of the dataset's), read by :meth:`VBPR.from_dataset`.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 32
    content_dim: int = 32
    lr: float = 1e-3
    reg: float = 1e-4
    reg_content: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    modalities: tuple[str, ...] | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("VBPRConfig", dim=self.dim, content_dim=self.content_dim, lr=self.lr,
                       batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("VBPRConfig", reg=self.reg, reg_content=self.reg_content)
        self.modalities = optional_tuple(self.modalities)


def content_features(dataset: RecDataset, modalities: list[str] | tuple[str, ...] | None = None) -> torch.Tensor:
    """VBPR item content vectors ``(n_items, sum d_m + n_modalities)`` float32 (see the module docstring)."""
    mods = list(modalities) if modalities is not None else dataset.modalities
    unknown = sorted(set(mods) - set(dataset.modalities))
    if unknown:
        raise ValueError(f"VBPR: dataset {dataset.name!r} has no modality {unknown}; it has {dataset.modalities}")
    if not mods:
        return torch.zeros(dataset.n_items, 0)
    feats, mask = dataset.feature_tensor(mods)                      # (I, sum d_m), (I, M)
    blocks, start = [], 0
    for col, m in enumerate(mods):
        d = dataset.features[m].shape[1]
        block = feats[:, start:start + d] * mask[:, col:col + 1]   # (I, d_m), missing rows zero
        norms = block.norm(dim=1)[mask[:, col]]
        scale = norms.mean() if norms.numel() and norms.mean() > 0 else torch.tensor(1.0)
        blocks.append(block / scale)
        start += d
    return torch.cat(blocks + [mask.float()], dim=1).float()        # (I, F)


class VBPR(BPRRecommender):
    """VBPR recommender over any set of item modalities.

    Args:
        n_users, n_items: sizes.
        config: :class:`VBPRConfig` (``None``: defaults); keyword overrides allowed.
        item_features: ``(n_items, F)`` content vectors, e.g. :func:`content_features` (what
            :meth:`from_dataset` passes); ``None`` or ``F == 0``: no content (MF-BPR with item biases).
    """

    config_class = VBPRConfig

    def __init__(self, n_users: int, n_items: int, config: VBPRConfig | None = None,
                 item_features: torch.Tensor | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        c = self.config
        feats = torch.zeros(self.n_items, 0) if item_features is None else torch.as_tensor(item_features).float()
        if feats.ndim != 2 or feats.shape[0] != self.n_items:
            raise ValueError(f"VBPR: item_features must be ({self.n_items}, F), got {tuple(feats.shape)}")
        if not torch.isfinite(feats).all():
            raise ValueError("VBPR: item_features contain NaN or inf")
        if feats.shape[1] == 0:
            warnings.warn("VBPR: no item features; the model reduces to MF-BPR with item biases", stacklevel=2)
        self.register_buffer("item_features", feats, persistent=False)           # (I, F)
        n_feat = feats.shape[1]
        self.gamma_user = torch.nn.Parameter(torch.empty(self.n_users, c.dim))     # (U, D)
        self.gamma_item = torch.nn.Parameter(torch.empty(self.n_items, c.dim))     # (I, D)
        self.beta_item = torch.nn.Parameter(torch.empty(self.n_items))            # (I,)
        self.theta_user = torch.nn.Parameter(torch.empty(self.n_users, c.content_dim if n_feat else 0))  # (U, D')
        self.E = torch.nn.Parameter(torch.empty(c.content_dim if n_feat else 0, n_feat))  # (D', F)
        self.beta_feat = torch.nn.Parameter(torch.empty(n_feat))                  # (F,)
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    @classmethod
    def from_dataset(cls, dataset: RecDataset, config: VBPRConfig | None = None, **overrides) -> "VBPR":
        mods = overrides.get("modalities", config.modalities if config is not None else None)
        return cls(dataset.n_users, dataset.n_items, config, item_features=content_features(dataset, mods),
                   **overrides)

    def _init_tensors(self) -> dict[str, torch.Tensor]:
        return {"item_features": self.item_features}

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        std = self.config.init_std
        for p in (self.gamma_user, self.gamma_item, self.theta_user, self.E):
            init_normal_(p, std, generator)
        with torch.no_grad():
            self.beta_item.zero_()
            self.beta_feat.zero_()

    def _content(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """``[E f_i, beta'.f_i]`` for ``items`` (all items when ``None``): ``(N, D' + 1)``."""
        proj = torch.cat([self.E, self.beta_feat.unsqueeze(0)], 0)              # (D'+1, F)
        f = self.item_features if items is None else self.item_features[items]  # (N, F)
        return f @ proj.T                                                        # (N, D'+1)

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        users = self._check_users(users)
        c = self._content()                                                      # (I, D'+1)
        return (self.gamma_user[users] @ self.gamma_item.T + self.theta_user[users] @ c[:, :-1].T
                + self.beta_item + c[:, -1])                                     # (B, I)

    @torch.no_grad()
    def score_parts(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        r"""The factors of the score's parts, for diagnosing what the ranking rests on: ``{part: (users (U, d),
        items (I, d))}``, each part's score the dot product of its pair. ``"bias"``: the item's non-personal score
        :math:`\beta_i + \boldsymbol{\beta}'^\top \mathbf{f}_i` (a column of ones for the users); ``"cf"``:
        :math:`\boldsymbol{\gamma}_u, \boldsymbol{\gamma}_i`; ``"content"``: :math:`\boldsymbol{\theta}_u,
        \mathbf{E}\mathbf{f}_i`; ``"full"``: all of them side by side (the model's score)."""
        c = self._content()                                                      # (I, D'+1)
        ones = torch.ones(self.n_users, 1, device=c.device)                      # (U, 1)
        bias = (self.beta_item + c[:, -1])[:, None]                              # (I, 1)
        parts = {"bias": (ones, bias), "cf": (self.gamma_user, self.gamma_item),
                 "content": (self.theta_user, c[:, :-1])}
        parts["full"] = tuple(torch.cat(side, dim=1) for side in zip(*parts.values()))
        return {k: (u.detach(), i.detach()) for k, (u, i) in parts.items()}

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        items = torch.cat([pos, neg])                                            # (2B,)
        # projecting the whole catalogue once is cheaper than gathering 2B wide feature rows when I <= 2B
        c = self._content()[items] if self.n_items <= len(items) else self._content(items)  # (2B, D'+1)
        c_i, c_j = c.split(len(users))                                           # (B, D'+1) each
        g_u, t_u = self.gamma_user[users], self.theta_user[users]               # (B, D), (B, D')
        g_i, g_j = self.gamma_item[pos], self.gamma_item[neg]                   # (B, D) each
        b_i, b_j = self.beta_item[pos], self.beta_item[neg]                     # (B,) each
        y_ui = (g_u * g_i).sum(-1) + (t_u * c_i[:, :-1]).sum(-1) + b_i + c_i[:, -1]  # (B,)
        y_uj = (g_u * g_j).sum(-1) + (t_u * c_j[:, :-1]).sum(-1) + b_j + c_j[:, -1]  # (B,)
        reg = (g_u.square().sum() + t_u.square().sum() + g_i.square().sum() + g_j.square().sum()
               + b_i.square().sum() + b_j.square().sum()) / len(users)
        reg_content = self.E.square().sum() + self.beta_feat.square().sum()
        return -F.logsigmoid(y_ui - y_uj).mean() + self.config.reg * reg + self.config.reg_content * reg_content
