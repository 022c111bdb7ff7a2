r"""MF-BPR: matrix factorisation trained with Bayesian Personalised Ranking (Rendle et al., 2009).

.. math::

    \hat{y}_{ui} = \mathbf{p}_u^\top \mathbf{q}_i, \qquad
    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
                  + \frac{\lambda}{B}\sum_{(u,i,j)} \left(\|\mathbf{p}_u\|^2 + \|\mathbf{q}_i\|^2
                  + \|\mathbf{q}_j\|^2\right)

over minibatches of triples (user, positive, sampled negative); the L2 term is on the batch embeddings
only (the convention of LightGCN and PyG's ``BPRLoss``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..utils import check_fields
from .base import BPRRecommender, check_non_negative, check_positive, init_normal_


@dataclass
class MFConfig:
    """MF-BPR hyper-parameters (defaults tuned on ml100k, 80/10/10 split; epochs live in ``LoopConfig``).

    Args:
        dim: embedding size :math:`D`.
        lr: Adam learning rate.
        reg: :math:`\\lambda`, L2 on the batch embeddings (per triple).
        batch_size: triples per step.
        init_std: std of the normal initialisation.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    lr: float = 1e-3
    reg: float = 1e-2          # chosen on ml100k validation (README, "How the defaults were chosen")
    batch_size: int = 2048
    init_std: float = 0.1
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("MFConfig", dim=self.dim, lr=self.lr, batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("MFConfig", reg=self.reg)


class MF(BPRRecommender):
    """Matrix factorisation with BPR (MF-BPR).

    Args:
        n_users, n_items: sizes.
        config: :class:`MFConfig` (``None``: defaults); keyword overrides, e.g. ``MF(943, 1682, dim=32)``.
    """

    config_class = MFConfig

    def __init__(self, n_users: int, n_items: int, config: MFConfig | None = None, **overrides) -> None:
        super().__init__(n_users, n_items, config, **overrides)
        d = self.config.dim
        self.user_emb = torch.nn.Parameter(torch.empty(self.n_users, d))          # (U, D)
        self.item_emb = torch.nn.Parameter(torch.empty(self.n_items, d))          # (I, D)
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_normal_(self.user_emb, self.config.init_std, generator)
        init_normal_(self.item_emb, self.config.init_std, generator)

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        users = self._check_users(users)
        return self.user_emb[users] @ self.item_emb.T                           # (B, I)

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        p_u, q_i, q_j = self.user_emb[users], self.item_emb[pos], self.item_emb[neg]  # (B, D) each
        y_ui, y_uj = (p_u * q_i).sum(-1), (p_u * q_j).sum(-1)                   # (B,)
        reg = (p_u.square().sum() + q_i.square().sum() + q_j.square().sum()) / len(users)
        return -F.logsigmoid(y_ui - y_uj).mean() + self.config.reg * reg
