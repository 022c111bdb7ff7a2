r"""Not the paper's method: popularity-corrected decoding (a prior subtracted from the generator's scores).

A generator trained by maximum likelihood on interaction data learns, for users it knows little about, the
*marginal* distribution of its training targets, which is the item popularity. On a dataset whose median
user has two items (TikTok) its beams then hold the same popular Rec-IDs for everyone. Decoding with

.. math::

    s_{ui} = \log p(i \mid u) - \beta \log q(i), \qquad q(i) = \frac{c_i + \alpha}{\sum_j (c_j + \alpha)},

where :math:`c_i` is the item's number of training interactions, removes a fraction :math:`\beta` of that
prior: :math:`\beta = 0` is the paper's decoding, :math:`\beta = 1` ranks by the pointwise mutual information
of user and item (maximum-mutual-information decoding, Li et al. 2016; logit adjustment, Menon et al. 2021).
:math:`\beta` is chosen on validation.

The prior factorises over the trie exactly like the generator does, so beam search applies it token by
token without any approximation: with :math:`m(n) = \sum_{i \text{ below } n} (c_i + \alpha)` the mass of a
trie node (an item's own mass at the last level),

.. math::

    \log q(i) = \sum_{l=1}^{M} \big(\log m(t_{\le l}) - \log m(t_{< l})\big),

so each step adds :math:`-\beta(\log m(\text{child}) - \log m(\text{parent}))` and a partial beam's score is
the PMI of its prefix. Cost per level: one gather of the candidates' masses (nothing of size batch x catalogue).
"""
from __future__ import annotations

import numpy as np
import torch


class PopularityPrior:
    """``-weight * log q`` of :mod:`this module <mmgrec_lib.generator.prior>`, laid out on a Rec-ID trie.

    Args:
        trie: the :class:`~mmgrec_lib.tokenizer.trie.PrefixTrie` the generator decodes over.
        counts: ``(n_items,)`` non-negative training interactions per item
            (:meth:`RecDataset.item_popularity <mmgrec_lib.data.dataset.RecDataset.item_popularity>`).
        weight: ``beta >= 0``; 0 leaves every score as it is.
        alpha: additive smoothing ``> 0`` (an item never seen in training keeps a finite prior).
    """

    def __init__(self, trie, counts, weight: float, alpha: float = 1.0) -> None:
        c = torch.as_tensor(np.asarray(counts), dtype=torch.float64).reshape(-1)
        if c.shape[0] != trie.n_items:
            raise ValueError(f"popularity prior: counts has {c.shape[0]} entries; the trie has {trie.n_items} items")
        if not torch.isfinite(c).all() or (c < 0).any():
            raise ValueError("popularity prior: counts must be finite and non-negative")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"popularity prior: weight must be a finite number >= 0, got {weight}")
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"popularity prior: alpha must be > 0, got {alpha}")
        self.weight, self.alpha, self.n_levels = float(weight), float(alpha), trie.n_levels
        mass = c + alpha                                                               # (I,)
        self.log_mass: list[torch.Tensor] = []                                         # depth 0..M, per node
        for depth in range(trie.n_levels):
            nodes = trie.item_node(depth).cpu()                                        # (I,)
            n = trie.child_table(depth).shape[0]
            self.log_mass.append(torch.zeros(n, dtype=torch.float64).index_add_(0, nodes, mass).log().float())
        self.log_mass.append(mass.log().float())                                       # depth M: the items
        self._device = torch.device("cpu")

    def to(self, device) -> "PopularityPrior":
        """Moves the masses (in place) and returns ``self``."""
        device = torch.device(device)
        if device != self._device:
            self.log_mass = [m.to(device) for m in self.log_mass]
            self._device = device
        return self

    def step(self, level: int, parent: torch.Tensor, child: torch.Tensor) -> torch.Tensor:
        """The term added to candidates at ``level``: ``parent (...)`` nodes of depth ``level``, ``child (..., C)``
        their candidate children (nodes of depth ``level + 1``, items at the last level; ``-1`` pads read as
        child 0, their candidates are masked anyway) -> ``(..., C)`` floats."""
        up = self.log_mass[level + 1][child.clamp(min=0)]                              # (..., C)
        return -self.weight * (up - self.log_mass[level][parent][..., None])

    def item_term(self) -> torch.Tensor:
        """``(n_items,)`` the whole adjustment of each item, ``-weight * log q(i)`` (the sum of its steps)."""
        return -self.weight * (self.log_mass[-1] - self.log_mass[0][0])

    def __repr__(self) -> str:
        return f"PopularityPrior(weight={self.weight:g}, alpha={self.alpha:g}, levels={self.n_levels})"


class LogitAdjustment:
    r"""Not the paper's method: the logit-adjusted loss (Menon et al. 2021) on the Rec-ID trie.

    Training adds :math:`\tau \log \pi(c \mid n)` to the level-:math:`l` logit of every token :math:`c` after the
    target's prefix node :math:`n`, with the training popularity factorised over the trie (the masses
    :math:`m` of :class:`PopularityPrior`; :math:`m(nc) = 0` where :math:`c` extends no Rec-ID) and smoothed over
    all :math:`C_l` tokens of the level,

    .. math::

        \pi(c \mid n) = \frac{m(nc) + \alpha}{m(n) + \alpha C_l}, \qquad \sum_c \pi(c \mid n) = 1,

    so that the softmax the loss fits is :math:`\propto e^{z_c} \pi(c \mid n)^\tau`. Decoding reads the plain
    logits :math:`z`, which then model the data with :math:`\tau` of the popularity prior divided out: the
    training counterpart of decoding with :class:`PopularityPrior` (weight :math:`\tau`). With :math:`\alpha \to 0`
    the adjustments along an item's Rec-ID add up to :math:`\tau \log q(i)` (tested). ``tau = 0`` adds zeros.

    Args:
        trie: the generator's :class:`~mmgrec_lib.tokenizer.trie.PrefixTrie` (on the model's device).
        counts: ``(n_items,)`` training interactions per item.
        tau: ``τ >= 0``.
        alpha: smoothing ``> 0`` of the item counts (as :class:`PopularityPrior`) and of the tokens.
    """

    def __init__(self, trie, counts, tau: float, alpha: float = 1.0) -> None:
        if not np.isfinite(tau) or tau < 0:
            raise ValueError(f"logit adjustment: tau must be a finite number >= 0, got {tau}")
        prior = PopularityPrior(trie, counts, 1.0, alpha)
        self.trie, self.tau, self.alpha = trie, float(tau), float(alpha)
        device = trie.child_table(0).device
        self.mass = [m.double().exp().to(device) for m in prior.log_mass]             # depth 0..M, per node

    def __call__(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """``nodes (P,)``: prefix nodes of depth ``level`` -> ``(P, C_level)`` the terms added to the logits."""
        child = self.trie.child_table(level)[nodes]                                    # (P, C)
        up = self.mass[level + 1][child.clamp(min=0)].masked_fill(child < 0, 0.0)      # (P, C) m(nc)
        card = child.shape[1]
        log_pi = (up + self.alpha).log() - (self.mass[level][nodes] + self.alpha * card).log()[:, None]
        return (self.tau * log_pi).float()

    def __repr__(self) -> str:
        return f"LogitAdjustment(tau={self.tau:g}, alpha={self.alpha:g}, levels={self.trie.n_levels})"


__all__ = ["LogitAdjustment", "PopularityPrior"]
