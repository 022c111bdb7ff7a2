r"""InvRL: invariant representation learning for multimedia recommendation (Du et al., ACM MM 2022).

Generic content features (a poster's colours, a soundtrack's loudness) hold spurious correlations with the
interactions. InvRL splits the training interactions into heterogeneous **environments** in which those
correlations differ, learns a **mask** over the feature dimensions that keeps the dimensions whose effect is
the same in every environment, and trains the final recommender on the masked (invariant) features. With
:math:`\mathcal{D}` the training pairs :math:`(u, i)`, :math:`\mathbf{f}_i \in \mathbb{R}^F` an item's modality
features side by side (each modality scaled to mean row norm 1; zero where the item lacks it) and the mask
:math:`\mathbf{m} \in [0, 1]^F`, ``n_rounds`` rounds alternate two stages:

**1. Heterogeneous environments.** A uniformly random assignment :math:`z: \mathcal{D} \to \{1..E\}`
(:math:`E` = ``n_envs``) is refined at most ``env_iters`` times, or until fewer than 1% of the pairs move: on the
pairs of each environment :math:`e` a fresh content scorer reading the *variant* part of the features,

.. math::

    s_e(u, i) = \mathbf{q}^{e\top}_u\, \mathbf{W}_e \big((\mathbf{1} - \mathbf{m}) \odot \mathbf{f}_i\big),
    \qquad \mathbf{q}^e_u \in \mathbb{R}^C,\ \mathbf{W}_e \in \mathbb{R}^{C \times F},

is trained with BPR for ``env_epochs`` epochs, then every pair moves to the environment whose scorer explains it
best, :math:`z(u, i) \leftarrow \arg\max_e s_e(u, i)`. In the first round no dimension is known to be invariant
yet (:math:`\mathbf{m} = \mathbf{0}`: the scorers read all features); later rounds use the previous round's mask.

**2. Invariant mask.** A shared content scorer with stochastic gates (Gaussian-noise hard-sigmoid gates,
:math:`\sigma` = ``gate_noise``; :math:`\boldsymbol{\epsilon} \sim \mathcal{N}(0, I)` drawn per step),

.. math::

    \mathbf{g} = \operatorname{clip}(\boldsymbol{\mu} + \sigma \boldsymbol{\epsilon} + \tfrac12, 0, 1), \qquad
    s(u, i) = \mathbf{q}^\top_u \mathbf{W} (\mathbf{g} \odot \mathbf{f}_i),

is trained from scratch for ``mask_epochs`` epochs, each step drawing one batch of (user, positive, negative)
triples per non-empty environment (``batch_size / E`` each); with :math:`R_e` the mean BPR loss of environment
:math:`e`'s batch and :math:`\mathbf{G}_e = \partial R_e / \partial \mathbf{W}` (kept differentiable):

.. math::

    \min_{\mathbf{q}, \mathbf{W}, \boldsymbol{\mu}}\ \frac{1}{E}\sum_e R_e + \alpha P
        + \lambda \|\boldsymbol{\mu}\|^2, \qquad
    P = \frac{1}{CF}\sum_{c,k} \Big(\bar{m}_k \frac{V_{ck}}{\nu}\Big)^2, \qquad
    V = \frac{1}{E}\sum_e (\mathbf{G}_e - \bar{\mathbf{G}})^{\odot 2},

with :math:`\bar{\mathbf{m}} = \operatorname{clip}(\boldsymbol{\mu} + \tfrac12, 0, 1)`, :math:`\bar{\mathbf{G}}`
the mean gradient and :math:`\nu` the mean of :math:`\mathbf{G}_e^{\odot 2}` over environments and entries (a
constant: no gradient): dimensions whose projection gradients disagree between environments are pushed towards
gate 0 (:math:`\alpha` = ``penalty_weight``, :math:`\lambda` = ``mask_reg``). The round's mask is
:math:`\mathbf{m} \leftarrow \bar{\mathbf{m}}`; :math:`\alpha` and :math:`\lambda` grow by 5% per round (as in
the reference code).

**3. The recommender.** LightGCN (:math:`\tilde{A} = D^{-1/2} A D^{-1/2}` of the training graph) over ID
embeddings side by side with the masked content:

.. math::

    \mathbf{x}_u = [\mathbf{p}_u; \mathbf{r}_u], \quad
    \mathbf{x}_{U+i} = [\mathbf{v}_i; \mathbf{W}_\text{rec}(\mathbf{m} \odot \mathbf{f}_i) + \mathbf{b}], \quad
    \mathbf{e} = \frac{1}{L+1}\sum_{l=0}^{L} \tilde{A}^l \mathbf{x}, \quad
    \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_{U+i},

trained with BPR plus L2 on the batch's layer-0 ID embeddings and content preferences:

.. math::

    \mathcal{L} = -\frac{1}{B}\sum_{(u,i,j)} \ln\sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \frac{\lambda_\text{reg}}{B}\sum_{(u,i,j)} \left(\|\mathbf{p}_u\|^2 + \|\mathbf{r}_u\|^2
        + \|\mathbf{v}_i\|^2 + \|\mathbf{v}_j\|^2\right).

Both stages run once, at the start of the first training epoch of ``fit`` (so their time counts in that epoch's
time), from a seed drawn from the ``fit`` generator: a run is reproducible. The mask is a buffer saved with the
model and in the loop's checkpoints, so a resumed run continues with the same mask without running the stages
again. Before ``fit``, or with ``n_rounds = 0``, the mask is all ones (the model is then LightGCN with unmasked
content).

Simplifications against the paper / reference code (github.com/nickwzk/InvRL):

* backbone: LightGCN with BPR on one uniform negative, not UltraGCN (its constraint-weighted BCE loss with 50
  negatives per pair); no UltraGCN pretraining;
* stage models score by content only, trained from scratch: the reference's environment models are whole
  UltraGCN networks (ID embeddings included) and its mask stage starts from the pretrained UltraGCN's frozen user
  and item vectors, training only the projection and the gates (here the users' content preferences
  :math:`\mathbf{q}` are learned with them);
* the environment models read :math:`(\mathbf{1} - \mathbf{m}) \odot \mathbf{f}`; the reference reads all
  features and adds an L1 penalty on :math:`\mathbf{W}_e \odot \mathbf{m}` (weight 0.01 on a mean over the
  entries: negligible at its scale);
* the penalty is the reference's (gradient variance w.r.t. the projection, weighted by the gates, squared) made
  scale-free: mean risks instead of sums over batches of 512, the variance instead of the sum of squared
  deviations over environments, divided by :math:`\nu` and averaged over the entries, so that :math:`\alpha` does
  not depend on batch size or feature scale;
* one batch per environment per step, drawn uniformly with replacement (the reference cycles through each
  environment's shuffled pairs); Adam everywhere at ``stage_lr`` = 5e-2 in the stages (the reference: Adagrad for
  the environment models' embeddings, learning rates 1e-3);
* shorter stages by default (``n_envs`` 4 vs 10, ``n_rounds`` 2 vs 5, ``env_iters`` 3 vs 10, ``env_epochs`` 3 vs 20,
  ``mask_epochs`` 5 vs 40);
* the L2 term covers the batch's embeddings only (the reference decays every embedding and the projection,
  0.1 on the final projection);
* features: each modality scaled to mean row norm 1 (:func:`~mmgrec_lib.baselines.mmgcn.modality_features`; the
  reference L2-normalises every item's row per modality), as given by the dataset (the reference learns TikTok's
  text features from word embeddings);
* model selection as for every baseline here (early stopping on validation Recall@10; the reference uses
  NDCG@10 with patience 40).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.dataset import RecDataset
from ..data.sparse import symmetric_adjacency
from ..training.sampling import BPRSampler
from ..training.optim import adam
from ..utils import check_fields
from .base import check_non_negative, check_positive, init_normal_, init_xavier_uniform_, optional_tuple, weights_key
from .mmgcn import MultimodalGraphRecommender, lightgcn_propagate

ENV_TOL = 0.01          # environments are final when at most this share of the pairs moves (reference: 1%)
ROUND_GROWTH = 1.05     # penalty_weight and mask_reg grow by this factor per round (reference)


# ---------------------------------------------------------------------------------------------- stage helpers
def hard_gate(mu: torch.Tensor) -> torch.Tensor:
    r"""The deterministic gate :math:`\operatorname{clip}(\mu + \frac12, 0, 1)` (the mask), same shape."""
    return (mu + 0.5).clamp(0.0, 1.0)


def gradient_variance_penalty(grads: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    r"""InvRL's invariance penalty :math:`P = \frac{1}{CF}\sum_{c,k} (\bar{m}_k V_{ck} / \nu)^2` (module docstring).

    Args:
        grads: ``(E, C, F)`` per-environment gradients :math:`\mathbf{G}_e` of the risk w.r.t. the projection.
        gate: ``(F,)`` the gates :math:`\bar{\mathbf{m}}` weighting each feature dimension.

    Returns:
        A scalar, 0 for a single environment or identical gradients; differentiable in ``grads`` and ``gate``
        (:math:`\nu`, the mean squared gradient, is a constant).
    """
    var = grads.var(0, unbiased=False)                                                  # (C, F)
    nu = grads.detach().square().mean().clamp_min(torch.finfo(grads.dtype).tiny)
    return (var * gate[None, :] / nu).square().mean()


def pair_margins(pref: torch.Tensor, proj: torch.Tensor, diff: torch.Tensor) -> torch.Tensor:
    r"""Score margins :math:`s(u, i) - s(u, j) = \mathbf{q}_u^\top \mathbf{W} (\mathbf{f}_i - \mathbf{f}_j)` of a content
    scorer (linear in the features): ``pref (n, C)`` the users' rows, ``proj (C, F)``, ``diff (n, F)`` the
    (gated) feature differences -> ``(n,)``."""
    return ((diff @ proj.T) * pref).sum(-1)


def bpr_projection_gradient(pref: torch.Tensor, diff: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    r""":math:`\partial R / \partial \mathbf{W}` of the mean BPR risk :math:`R = -\frac1n \sum_t \ln\sigma(x_t)` of
    the margins :math:`x_t` (:func:`pair_margins`) in closed form, :math:`-\frac1n \sum_t \sigma(-x_t)\,
    \mathbf{q}_{u_t} \mathbf{d}_t^\top`: ``(C, F)``, differentiable in all three inputs (cheaper than
    ``autograd.grad(..., create_graph=True)``; equal to it, tested)."""
    return -(pref * torch.sigmoid(-margins)[:, None]).T @ diff / len(margins)


def fit_environment_scorers(features: torch.Tensor, users: torch.Tensor, items: torch.Tensor, env: torch.Tensor,
                            n_envs: int, n_users: int, config: "InvRLConfig", sampler: BPRSampler,
                            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Stage 1's per-environment content scorers :math:`s_e`, each trained with BPR on its own pairs.

    The ``E`` scorers share nothing, so they train together: each epoch visits every pair once in random order
    (batches of ``config.batch_size``), scoring it with its environment's scorer.

    Args:
        features: ``(I, F)`` the features the scorers read (the variant part :math:`(1 - m) \odot f`).
        users, items: ``(N,)`` long, the training pairs (CPU); ``env``: ``(N,)`` their environments (CPU).
        sampler: negatives for the users; ``generator``: every draw (initialisation, order, negatives).

    Returns:
        ``pref (E, U, C)`` and ``proj (E, C, F)`` (no gradient).
    """
    c, dev = config, features.device
    pref = torch.empty(n_envs, n_users, c.content_dim)                                  # (E, U, C)
    proj = torch.empty(n_envs, c.content_dim, features.shape[1])                        # (E, C, F)
    init_normal_(pref, c.init_std, generator)
    init_xavier_uniform_(proj, generator)
    pref, proj = pref.to(dev).requires_grad_(), proj.to(dev).requires_grad_()
    optimizer = adam([pref, proj], c.stage_lr)
    for _ in range(c.env_epochs):
        order = torch.randperm(len(users), generator=generator)
        for start in range(0, len(order), c.batch_size):
            batch = order[start:start + c.batch_size]
            u, i, z = users[batch], items[batch], env[batch]                            # (B,) each
            j = sampler.negatives(u, generator)                                         # (B,)
            loss = torch.zeros((), device=dev)
            for e in torch.unique(z).tolist():
                sel = z == e
                ue, ie, je = (t[sel].to(dev) for t in (u, i, j))                        # (n_e,) each
                x = pair_margins(pref[e][ue], proj[e], features[ie] - features[je])     # (n_e,)
                loss = loss - F.logsigmoid(x).sum()
            optimizer.zero_grad(set_to_none=True)
            (loss / len(batch)).backward()
            optimizer.step()
    return pref.detach(), proj.detach()


@torch.no_grad()
def assign_environments(features: torch.Tensor, pref: torch.Tensor, proj: torch.Tensor, users: torch.Tensor,
                        items: torch.Tensor) -> torch.Tensor:
    r"""Every pair to the environment whose scorer gives it the highest score, :math:`\arg\max_e s_e(u, i)`.

    Args:
        features: ``(I, F)``; ``pref``: ``(E, U, C)``; ``proj``: ``(E, C, F)``; ``users``, ``items``: ``(N,)``.

    Returns:
        ``(N,)`` long environments on the CPU (ties: the lowest index).
    """
    dev = features.device
    u, i = users.to(dev), items.to(dev)
    scores = torch.stack([(pref[e][u] * (features @ proj[e].T)[i]).sum(-1)              # (N,) per environment
                          for e in range(pref.shape[0])])                               # (E, N)
    return scores.argmax(0).cpu()


def identify_environments(features: torch.Tensor, mask: torch.Tensor, users: torch.Tensor, items: torch.Tensor,
                          n_users: int, config: "InvRLConfig", sampler: BPRSampler,
                          generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Stage 1: heterogeneous environments of the training pairs ``users, items (N,)`` from the variant features
    ``(1 - mask) * features`` (``mask (F,)``: the invariant mask known so far).

    Returns:
        ``env (N,)`` long in ``[0, n_envs)`` (CPU) and a log: iterations run and the share of pairs that moved
        in the last one.
    """
    variant = features * (1.0 - mask)[None, :]                                          # (I, F)
    env = torch.randint(config.n_envs, (len(users),), generator=generator)              # (N,)
    moved, it = 1.0, 0
    for it in range(1, config.env_iters + 1):
        pref, proj = fit_environment_scorers(variant, users, items, env, config.n_envs, n_users, config, sampler,
                                             generator)
        new = assign_environments(variant, pref, proj, users, items)
        moved = float((new != env).float().mean())
        env = new
        if moved <= ENV_TOL:
            break
    return env, {"env_iters": it, "moved": moved}


def learn_mask(features: torch.Tensor, users: torch.Tensor, items: torch.Tensor, env: torch.Tensor, n_users: int,
               config: "InvRLConfig", sampler: BPRSampler, generator: torch.Generator, penalty_weight: float,
               mask_reg: float) -> tuple[torch.Tensor, dict]:
    """Stage 2: the invariant mask ``(F,)`` in ``[0, 1]`` (no gradient) from gated content scorers trained with the
    gradient-variance penalty across the environments ``env (N,)`` of the pairs ``users, items (N,)``.

    Returns:
        The mask and a log: the mean risk and penalty of the last epoch.
    """
    c, dev = config, features.device
    pref = torch.empty(n_users, c.content_dim)                                          # (U, C)
    proj = torch.empty(c.content_dim, features.shape[1])                                # (C, F)
    init_normal_(pref, c.init_std, generator)
    init_xavier_uniform_(proj, generator)
    pref, proj = pref.to(dev).requires_grad_(), proj.to(dev).requires_grad_()
    mu = torch.zeros(features.shape[1], device=dev, requires_grad=True)                 # (F,)
    optimizer = adam([pref, proj, mu], c.stage_lr)
    members = [torch.nonzero(env == e).flatten() for e in range(c.n_envs)]
    members = [m for m in members if len(m)]                                            # non-empty environments
    per_env = max(1, c.batch_size // len(members))
    steps = math.ceil(len(users) / c.batch_size)
    risk_sum = pen_sum = 0.0
    for _ in range(c.mask_epochs):
        risk_sum = pen_sum = 0.0
        for _ in range(steps):
            noise = torch.randn(features.shape[1], generator=generator).to(dev)         # (F,)
            gate = (mu + c.gate_noise * noise + 0.5).clamp(0.0, 1.0)                    # (F,) stochastic gates
            risks, grads = [], []
            for m in members:
                pick = m[torch.randint(len(m), (per_env,), generator=generator)]        # (b,)
                u, i = users[pick], items[pick]
                j = sampler.negatives(u, generator)
                u, i, j = u.to(dev), i.to(dev), j.to(dev)
                diff = (features[i] - features[j]) * gate                               # (b, F)
                x = pair_margins(pref[u], proj, diff)                                   # (b,)
                risks.append(-F.logsigmoid(x).mean())
                grads.append(bpr_projection_gradient(pref[u], diff, x))                 # (C, F)
            risks, grads = torch.stack(risks), torch.stack(grads)                       # (E',), (E', C, F)
            penalty = gradient_variance_penalty(grads, hard_gate(mu))
            loss = risks.mean() + penalty_weight * penalty + mask_reg * mu.square().sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            risk_sum, pen_sum = risk_sum + float(risks.detach().mean()), pen_sum + float(penalty.detach())
    return hard_gate(mu.detach()), {"risk": risk_sum / steps, "penalty": pen_sum / steps}


# ---------------------------------------------------------------------------------------------- InvRL
@dataclass
class InvRLConfig:
    """InvRL hyper-parameters (defaults not tuned here; epochs of the final model live in ``LoopConfig``).

    Args:
        dim: width :math:`D` of the ID embeddings of the recommender.
        content_dim: width :math:`C` of the projected content (recommender and stage scorers).
        n_layers: LightGCN layers :math:`L` of the recommender (``0``: a plain dot product, as UltraGCN scores).
        n_envs: environments :math:`E` (reference: 10).
        n_rounds: rounds of (environments, mask) (reference: 5); ``0`` leaves the mask at ones.
        env_iters: at most this many scorer fits and reassignments per round (reference: 10).
        env_epochs: epochs of each environment scorer fit (reference: 20).
        mask_epochs: epochs of the mask stage per round (reference: 40).
        penalty_weight: :math:`\\alpha`, weight of the gradient-variance penalty.
        mask_reg: :math:`\\lambda`, L2 on the gate parameters :math:`\\mu` (pulls the gates to 1/2).
        gate_noise: :math:`\\sigma`, std of the gates' training noise (reference: 0.01).
        stage_lr: Adam learning rate of both stages (the content scorers are bilinear: at 1e-2 their risk stays
            near ln 2 for several epochs on ml100k, at 5e-2 it falls to about 0.5 within two).
        lr: Adam learning rate of the recommender.
        reg: :math:`\\lambda_\\text{reg}`, L2 on the batch's ID embeddings and content preferences (per triple).
        batch_size: triples per step (recommender and stages; the mask stage splits it among environments).
        init_std: std of the normal initialisation of embeddings and preferences (projections: Xavier).
        modalities: modalities to use (``None``: all of the dataset's), read by ``from_dataset``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    dim: int = 64
    content_dim: int = 64
    n_layers: int = 2
    n_envs: int = 4
    n_rounds: int = 2
    env_iters: int = 3
    env_epochs: int = 3
    mask_epochs: int = 5
    penalty_weight: float = 1.0
    mask_reg: float = 0.1
    gate_noise: float = 0.01
    stage_lr: float = 5e-2
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    init_std: float = 0.1
    modalities: tuple[str, ...] | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_positive("InvRLConfig", dim=self.dim, content_dim=self.content_dim, n_envs=self.n_envs,
                       env_iters=self.env_iters, env_epochs=self.env_epochs, mask_epochs=self.mask_epochs,
                       stage_lr=self.stage_lr, lr=self.lr, batch_size=self.batch_size, init_std=self.init_std)
        check_non_negative("InvRLConfig", n_layers=self.n_layers, n_rounds=self.n_rounds,
                           penalty_weight=self.penalty_weight, mask_reg=self.mask_reg, gate_noise=self.gate_noise,
                           reg=self.reg)
        self.modalities = optional_tuple(self.modalities)


class InvRL(MultimodalGraphRecommender):
    """InvRL recommender (see the module docstring).

    Args:
        n_users, n_items: sizes.
        config: :class:`InvRLConfig` (``None``: defaults); keyword overrides allowed.
        edge_index, item_features, feature_dims, feature_masks: see :class:`MultimodalGraphRecommender`;
            :meth:`from_dataset` passes them.

    Attributes:
        mask: ``(F,)`` buffer, the invariant mask (saved with the model; ones until ``fit``); ``stage_done``:
            ``()`` bool buffer, whether it was learned.
        environments: ``(N,)`` the last round's environment of each training pair (CSR order of
            ``dataset.train``), or ``None`` before ``fit`` (not saved).
        stage_log: one dict per round (environment sizes, iterations, moved share, mask statistics).

    Raises:
        ValueError: no item features (``from_dataset`` names the dataset), or bad config values.
    """

    config_class = InvRLConfig

    def __init__(self, n_users: int, n_items: int, config: InvRLConfig | None = None, **kwargs) -> None:
        super().__init__(n_users, n_items, config, **kwargs)
        c = self.config
        n_feat = self.item_features.shape[1]
        self.user_emb = torch.nn.Parameter(torch.empty(self.n_users, c.dim))               # (U, D)
        self.user_pref = torch.nn.Parameter(torch.empty(self.n_users, c.content_dim))      # (U, C)
        self.item_emb = torch.nn.Parameter(torch.empty(self.n_items, c.dim))               # (I, D)
        self.proj_weight = torch.nn.Parameter(torch.empty(c.content_dim, n_feat))          # (C, F)
        self.proj_bias = torch.nn.Parameter(torch.empty(c.content_dim))                    # (C,)
        self.register_buffer("mask", torch.ones(n_feat))                                   # (F,)
        self.register_buffer("stage_seed", torch.zeros((), dtype=torch.long))
        self.register_buffer("stage_done", torch.zeros((), dtype=torch.bool))             # mask learned?
        self.environments: torch.Tensor | None = None
        self.stage_log: list[dict] = []
        self._feat_cache: tuple | None = None     # (mask key, (kept dimensions, masked features))
        self._stage_data: RecDataset | None = None   # the dataset being fitted (between prepare and finish_fit)
        self.reset_parameters(torch.Generator().manual_seed(0))   # fit() re-draws from its generator
        self._place()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Fresh recommender weights, the mask back to ones, and a new seed for the stages (all from ``generator``)."""
        for p in (self.user_emb, self.user_pref, self.item_emb):
            init_normal_(p, self.config.init_std, generator)
        init_xavier_uniform_(self.proj_weight, generator)
        with torch.no_grad():
            self.proj_bias.zero_()
            self.mask.fill_(1.0)
            self.stage_done.fill_(False)
            self.stage_seed.fill_(int(torch.randint(2 ** 62, (), generator=generator)))
        self.environments, self.stage_log, self._emb_cache = None, [], None

    # ------------------------------------------------------------------ stages
    def prepare(self, dataset: RecDataset) -> None:
        """The training graph; the stages wait for the first epoch (:meth:`start_epoch`)."""
        super().prepare(dataset)
        self._stage_data = dataset

    def start_epoch(self, generator: torch.Generator) -> None:
        """Before the first epoch's triples: both stages (the mask), from the seed :meth:`reset_parameters` drew
        (not from the epoch's ``generator``). Skipped once done (``stage_done``, restored by a resumed run)."""
        if not bool(self.stage_done):
            if self._stage_data is None:
                raise RuntimeError("InvRL.start_epoch: no dataset; the stages run inside fit()")
            self.learn_invariant_mask(self._stage_data, torch.Generator().manual_seed(int(self.stage_seed)))

    def finish_fit(self) -> None:
        self._stage_data = None

    def learn_invariant_mask(self, dataset: RecDataset, generator: torch.Generator) -> torch.Tensor:
        """Run ``n_rounds`` rounds of stage 1 (environments) and stage 2 (mask) on ``dataset.train`` and store the
        mask in :attr:`mask`; returns it ``(F,)``. Every draw comes from ``generator``."""
        self._check_dataset(dataset)
        c = self.config
        sampler = BPRSampler(dataset.train)
        users, items = sampler.users, sampler.items                                     # (N,) each, CPU
        feats = self.item_features                                                      # (I, F)
        mask = torch.ones(feats.shape[1], device=feats.device)                          # (F,) n_rounds = 0: all
        known = torch.zeros_like(mask)                  # round 1: no dimension known invariant (scorers read all)
        alpha, lam = c.penalty_weight, c.mask_reg
        self.stage_log, self.environments = [], None
        for r in range(c.n_rounds):
            env, env_log = identify_environments(feats, known, users, items, self.n_users, c, sampler, generator)
            mask, mask_log = learn_mask(feats, users, items, env, self.n_users, c, sampler, generator, alpha, lam)
            known = mask
            self.environments = env
            self.stage_log.append({"round": r + 1, **env_log,
                                   "env_sizes": torch.bincount(env, minlength=c.n_envs).tolist(), **mask_log,
                                   "mask_mean": float(mask.mean()), "mask_zero": float((mask == 0).float().mean())})
            alpha, lam = alpha * ROUND_GROWTH, lam * ROUND_GROWTH
        with torch.no_grad():
            self.mask.copy_(mask)
            self.stage_done.fill_(True)
        self._emb_cache = None
        return self.mask.detach().clone()

    # ------------------------------------------------------------------ recommender
    def _weights_key(self) -> tuple:
        return weights_key(self) + ((self.mask._version, self.mask.data_ptr()),)

    def propagation_matrix(self) -> torch.Tensor:
        """:math:`\\tilde{A}` of the training graph (:func:`~mmgrec_lib.data.sparse.symmetric_adjacency`), cached."""
        self._require_graph()
        key = ("lightgcn", self.edge_index.device)
        if key not in self._adj_cache:
            self._adj_cache[key] = symmetric_adjacency(self.edge_index, self.n_users, self.n_items)
        return self._adj_cache[key]

    def masked_features(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The dimensions ``keep (F',)`` with a non-zero mask (``None``: all) and the masked features
        :math:`\\mathbf{m} \\odot \\mathbf{f}` on them, ``(I, F')``; cached until the mask changes."""
        key = (self.mask._version, self.mask.data_ptr(), self.mask.device)
        if self._feat_cache is None or self._feat_cache[0] != key:
            keep = torch.nonzero(self.mask > 0).flatten()                               # (F',)
            if len(keep) == len(self.mask):
                keep, feats = None, self.item_features * self.mask                      # (I, F)
            else:
                feats = self.item_features[:, keep] * self.mask[keep]                   # (I, F')
            self._feat_cache = (key, (keep, feats))
        return self._feat_cache[1]

    def masked_content(self) -> torch.Tensor:
        """Item content :math:`\\mathbf{W}_\\text{rec}(\\mathbf{m} \\odot \\mathbf{f}_i) + \\mathbf{b}`: ``(I, C)``
        (feature dimensions masked to 0 are skipped)."""
        keep, feats = self.masked_features()
        weight = self.proj_weight if keep is None else self.proj_weight[:, keep]       # (C, F')
        return feats @ weight.T + self.proj_bias                                        # (I, C)

    def layer0(self) -> torch.Tensor:
        """Layer-0 node vectors ``(U+I, D+C)``: users ``[p_u; r_u]``, then items ``[v_i; content_i]``."""
        users = torch.cat([self.user_emb, self.user_pref], 1)                           # (U, D+C)
        items = torch.cat([self.item_emb, self.masked_content()], 1)                    # (I, D+C)
        return torch.cat([users, items])

    def _propagate(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        out = lightgcn_propagate(self.propagation_matrix(), self.layer0(), self.config.n_layers)  # (U+I, D+C)
        return out[:self.n_users], out[self.n_users:]

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_rep, item_rep = self._propagate(train=True)                               # (U, D+C), (I, D+C)
        y = (user_rep[users] * (item_rep[pos] - item_rep[neg])).sum(-1)                 # (B,) y_ui - y_uj
        reg = (self.user_emb[users].square().sum() + self.user_pref[users].square().sum()
               + self.item_emb[pos].square().sum() + self.item_emb[neg].square().sum()) / len(users)
        return -F.logsigmoid(y).mean() + self.config.reg * reg
