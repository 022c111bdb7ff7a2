r"""Residual quantisation and the RQ-VAE (paper section 3.2.1, eq. 6-10).

Two modules, one idea each:

* :class:`ResidualQuantizer` quantises a latent vector level by level (eq. 7-8): the residual
  :math:`\mathbf{r}_{i,1} = \mathbf{z}_i` is mapped to its nearest codeword
  :math:`c_{i,m} = \arg\min_l \lVert \mathbf{r}_{i,m} - \mathbf{b}_l \rVert_2^2` of the level's codebook
  :math:`\mathbf{B}_m`, and :math:`\mathbf{r}_{i,m+1} = \mathbf{r}_{i,m} - \mathbf{b}_{c_{i,m}}`.
  Codebooks are initialised by k-means on the first training batch's residuals, and codes left unused over
  a window of training steps are re-seeded with residuals of random items of the batch (both switchable).
* :class:`RQVAE` wraps it between a two-layer MLP encoder :math:`\mathcal{E}` (eq. 6) and a two-layer MLP
  decoder :math:`\mathcal{D}` fed through the straight-through estimator (eq. 9),
  :math:`\widehat{\mathbf{h}}_i = \mathcal{D}(\mathbf{z}_i + \mathrm{sg}(\widehat{\mathbf{z}}_i - \mathbf{z}_i))`,
  and returns the loss of eq. 10,

  .. math::

      \mathcal{L}_{\text{rqvae}} = \lVert \mathbf{h}_i - \widehat{\mathbf{h}}_i \rVert^2
        + \sum_{m} \lVert \mathrm{sg}(\mathbf{r}_{i,m}) - \mathbf{b}_{c_{i,m}} \rVert^2
        + \beta \lVert \mathbf{r}_{i,m} - \mathrm{sg}(\mathbf{b}_{c_{i,m}}) \rVert^2 .

Every squared norm is **summed over dimensions** and averaged over the batch (eq. 10 sums over items; the
mean only rescales the learning rate). A per-dimension mean of the reconstruction error makes it so small
next to the codebook terms that all items can collapse onto one code.

Randomness is explicit: layers are initialised from ``seed`` (inside a forked RNG, the global RNG is left
untouched), k-means gets ``random_state=seed + level``, and re-seeding draws from a ``torch.Generator``
whose state is part of ``state_dict()``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..utils import eval_mode, seeded_rng
from ..training.optim import adam


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """The paper's two-layer MLP: ``Linear -> ReLU -> Linear``."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


def squared_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` squared Euclidean distances between rows of ``x`` ``(B, d)`` and ``codebook`` ``(L, d)``:
    ``|x|^2 - 2 x c^T + |c|^2``, clamped at 0. One fused ``addmm`` and two in-place passes over ``(B, L)`` (the
    factor -2 is exact in floating point, so the values are bit for bit those of the three-pass expression)."""
    d = torch.addmm(x.pow(2).sum(-1, keepdim=True), x, codebook.t(), alpha=-2.0)   # (B, L): |x|^2 - 2 x c^T
    return d.add_(codebook.pow(2).sum(-1)[None, :]).clamp_min_(0.0)              # + |c|^2 (1, L)


def kmeans_centroids(x: torch.Tensor, k: int, seed: int, generator: torch.Generator) -> torch.Tensor:
    """``(k, d)`` k-means centroids of ``x`` ``(B, d)`` (scikit-learn, seeded).

    When ``x`` has fewer than ``k`` distinct rows, the distinct rows become centroids and the remaining
    codes are random rows of ``x`` plus a little noise: they start out dead and are re-seeded later.
    """
    from sklearn.cluster import KMeans

    data = x.detach().float().cpu().numpy().astype(np.float64)
    n_distinct = np.unique(data, axis=0).shape[0]
    n_clusters = min(k, n_distinct)
    if n_clusters == n_distinct:
        centroids = np.unique(data, axis=0)
    else:
        km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed, max_iter=100)
        centroids = km.fit(data).cluster_centers_
    out = torch.as_tensor(centroids, dtype=x.dtype)
    if n_clusters < k:
        extra = torch.randint(data.shape[0], (k - n_clusters,), generator=generator)
        scale = float(data.std()) if data.size > 1 else 1.0
        noise = torch.randn(k - n_clusters, data.shape[1], generator=generator) * (1e-3 * max(scale, 1e-6))
        out = torch.cat([out, torch.as_tensor(data, dtype=x.dtype)[extra] + noise.to(x.dtype)])
    return out.to(x.device)


@dataclass
class QuantizerOutput:
    r"""What :meth:`ResidualQuantizer.forward` returns.

    Attributes:
        quantized: ``(B, d)`` straight-through quantised latent ``z + sg(z_hat - z)`` (eq. 9).
        z_hat: ``(B, d)`` sum of the selected codewords (gradient flows to the codebooks only via the losses).
        codes: ``(B, n_levels)`` int64 codeword indices :math:`c_{i,m}`.
        residuals: ``(n_levels, B, d)`` residuals :math:`\mathbf{r}_{i,m}` (detached).
        codebook_loss: scalar, :math:`\sum_m \lVert \mathrm{sg}(\mathbf{r}_m) - \mathbf{b}_{c_m} \rVert^2`.
        commitment_loss: scalar, :math:`\sum_m \lVert \mathbf{r}_m - \mathrm{sg}(\mathbf{b}_{c_m}) \rVert^2`
            (not yet multiplied by beta).
    """

    quantized: torch.Tensor
    z_hat: torch.Tensor
    codes: torch.Tensor
    residuals: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


class ResidualQuantizer(nn.Module):
    r"""Multi-level residual vector quantiser (eq. 7-8) with k-means init and dead-code re-seeding.

    Args:
        dim: latent dimension ``d``.
        codebook_size: codewords per level ``L`` (paper: 64, 128 or 256).
        n_levels: number of codebooks ``M - 1`` (paper: 3).
        kmeans_init: initialise each level's codebook with k-means on the residuals of the first training
            batch (level by level, each on the residuals left by the levels above). Otherwise codebooks
            start uniform in ``[-1/L, 1/L]`` (the VQ-VAE default).
        reseed_dead: replace codes that no item of the last ``dead_code_window`` training batches picked with
            that level's residuals of random items of the current batch.
        dead_code_window: number of training forwards over which usage is counted before re-seeding (use the
            number of batches per pass over the items; ``1`` for full-batch training).
        seed: seed of the codebook initialisation, k-means and re-seeding draws.

    Buffers (saved in ``state_dict``): ``initted`` ``(n_levels,)``, ``usage`` ``(n_levels, L)`` counts in the
    current window, ``n_reseeded`` ``(n_levels,)`` codes re-seeded so far, ``steps`` training forwards.
    ``init_seconds`` (not saved): wall-clock seconds this object has spent in k-means initialisation, one-off work
    inside the first training step that benchmarks keep apart from the time per epoch.
    """

    def __init__(self, dim: int, codebook_size: int, n_levels: int = 3, kmeans_init: bool = True,
                 reseed_dead: bool = True, dead_code_window: int = 1, seed: int = 0) -> None:
        super().__init__()
        if dim < 1 or codebook_size < 1 or n_levels < 1 or dead_code_window < 1:
            raise ValueError(f"ResidualQuantizer: dim ({dim}), codebook_size ({codebook_size}), n_levels "
                             f"({n_levels}) and dead_code_window ({dead_code_window}) must be >= 1")
        self.dim, self.codebook_size, self.n_levels = int(dim), int(codebook_size), int(n_levels)
        self.kmeans_init, self.reseed_dead = bool(kmeans_init), bool(reseed_dead)
        self.dead_code_window, self.seed = int(dead_code_window), int(seed)
        self._gen = torch.Generator().manual_seed(self.seed)
        init = (torch.rand(n_levels, codebook_size, dim, generator=self._gen) * 2 - 1) / codebook_size
        self.codebooks = nn.Parameter(init)                                          # (M-1, L, d)
        self.register_buffer("initted", torch.full((n_levels,), not kmeans_init, dtype=torch.bool))
        self.register_buffer("usage", torch.zeros(n_levels, codebook_size, dtype=torch.long))
        self.register_buffer("n_reseeded", torch.zeros(n_levels, dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.init_seconds = 0.0

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict:
        return {"generator": self._gen.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self._gen.set_state(state["generator"])

    # ------------------------------------------------------------------ codebook maintenance
    @torch.no_grad()
    def _init_level(self, level: int, residual: torch.Tensor) -> None:
        start = time.perf_counter()
        cents = kmeans_centroids(residual, self.codebook_size, self.seed + level, self._gen)
        self.codebooks.data[level].copy_(cents)
        self.initted[level] = True
        self.init_seconds += time.perf_counter() - start

    @torch.no_grad()
    def _reseed_level(self, level: int, residual: torch.Tensor) -> None:
        dead = torch.nonzero(self.usage[level] == 0).flatten()                      # (n_dead,)
        n_dead, batch = int(dead.numel()), residual.shape[0]
        if n_dead == 0 or batch == 0:
            return
        if batch >= n_dead:
            pick = torch.randperm(batch, generator=self._gen)[:n_dead]
        else:
            pick = torch.randint(batch, (n_dead,), generator=self._gen)
        self.codebooks.data[level, dead] = residual[pick.to(residual.device)].to(self.codebooks.dtype)
        self.n_reseeded[level] += n_dead

    # ------------------------------------------------------------------ quantisation
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise ``z`` ``(B, d)``; in training mode also initialise / re-seed codebooks and count usage."""
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(f"ResidualQuantizer expects (B, {self.dim}) inputs, got {tuple(z.shape)}")
        maintain = self.training and z.shape[0] > 0
        reseed_now = (maintain and self.reseed_dead and bool(self.initted.all())
                      and int(self.steps) > 0 and int(self.steps) % self.dead_code_window == 0)
        residual = z
        z_hat = torch.zeros_like(z)
        codes, residuals = [], []
        codebook_loss = z.new_zeros(())
        commitment_loss = z.new_zeros(())
        for m in range(self.n_levels):
            if maintain and not bool(self.initted[m]):
                self._init_level(m, residual.detach())
            if reseed_now:
                self._reseed_level(m, residual.detach())
            book = self.codebooks[m]                                               # (L, d)
            with torch.no_grad():
                idx = squared_distances(residual.detach(), book.detach()).min(-1).indices  # (B,) argmin
            b = book.index_select(0, idx)                                          # (B, d); = book[idx], cheaper backward
            codebook_loss = codebook_loss + (residual.detach() - b).pow(2).sum(-1).mean()
            commitment_loss = commitment_loss + (residual - b.detach()).pow(2).sum(-1).mean()
            codes.append(idx)
            residuals.append(residual.detach())
            z_hat = z_hat + b.detach()
            residual = residual - b.detach()                                       # r_{m+1} = r_m - b_{c_m}
        codes_t = torch.stack(codes, dim=1)                                        # (B, M-1)
        if maintain:
            if reseed_now:
                self.usage.zero_()
            self.usage += torch.stack([torch.bincount(c, minlength=self.codebook_size) for c in codes])
            self.steps += 1
        quantized = z + (z_hat - z).detach()                                       # straight-through (eq. 9)
        return QuantizerOutput(quantized, z_hat, codes_t, torch.stack(residuals), codebook_loss, commitment_loss)

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, n_levels)`` codes of ``z`` without touching codebooks or usage counters."""
        with eval_mode(self):
            return self.forward(z).codes

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, codebook_size={self.codebook_size}, n_levels={self.n_levels}, "
                f"kmeans_init={self.kmeans_init}, reseed_dead={self.reseed_dead}, "
                f"dead_code_window={self.dead_code_window}")


@dataclass
class RQVAEOutput:
    """What :meth:`RQVAE.forward` returns: reconstruction, latents, codes and the parts of eq. 10."""

    x_hat: torch.Tensor            # (B, in_dim) decoder output
    z: torch.Tensor                # (B, latent_dim) encoder output
    z_hat: torch.Tensor            # (B, latent_dim) sum of selected codewords
    codes: torch.Tensor            # (B, n_levels) int64
    recon_loss: torch.Tensor       # scalar, ||x - x_hat||^2 summed over dims, mean over batch
    codebook_loss: torch.Tensor    # scalar
    commitment_loss: torch.Tensor  # scalar (without beta)
    loss: torch.Tensor             # recon + codebook + beta * commitment

    def parts(self) -> dict[str, float]:
        return {"rq_loss": self.loss.item(), "recon": self.recon_loss.item(),
                "codebook": self.codebook_loss.item(), "commit": self.commitment_loss.item()}


class RQVAE(nn.Module):
    r"""RQ-VAE: MLP encoder, residual quantiser, MLP decoder with straight-through gradients (eq. 6-10).

    Args:
        in_dim: input dimension (the item representation width ``D``).
        latent_dim: latent / codeword dimension.
        hidden_dim: hidden width of the two-layer encoder and decoder MLPs.
        codebook_size, n_levels, kmeans_init, reseed_dead, dead_code_window: see :class:`ResidualQuantizer`.
        beta: commitment weight :math:`\beta` (paper: 0.25).
        seed: seed of the layer initialisation and of the quantiser.

    ``forward(x)`` returns an :class:`RQVAEOutput`; ``loss(x)`` its scalar loss; ``encode(x)`` the codes.
    """

    def __init__(self, in_dim: int, latent_dim: int = 32, hidden_dim: int = 128, codebook_size: int = 256,
                 n_levels: int = 3, beta: float = 0.25, kmeans_init: bool = True, reseed_dead: bool = True,
                 dead_code_window: int = 1, seed: int = 0) -> None:
        super().__init__()
        if in_dim < 1 or latent_dim < 1 or hidden_dim < 1:
            raise ValueError(f"RQVAE: in_dim ({in_dim}), latent_dim ({latent_dim}) and hidden_dim ({hidden_dim}) "
                             "must be >= 1")
        if beta < 0:
            raise ValueError(f"RQVAE: beta must be >= 0, got {beta}")
        self.in_dim, self.beta = int(in_dim), float(beta)
        with seeded_rng(seed):
            self.encoder = mlp(in_dim, hidden_dim, latent_dim)
            self.decoder = mlp(latent_dim, hidden_dim, in_dim)
        self.quantizer = ResidualQuantizer(latent_dim, codebook_size, n_levels, kmeans_init=kmeans_init,
                                           reseed_dead=reseed_dead, dead_code_window=dead_code_window, seed=seed)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def n_levels(self) -> int:
        return self.quantizer.n_levels

    def forward(self, x: torch.Tensor) -> RQVAEOutput:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"RQVAE expects (B, {self.in_dim}) inputs, got {tuple(x.shape)}")
        z = self.encoder(x)                                                        # (B, d)   eq. 6
        q = self.quantizer(z)                                                      # eq. 7-8
        x_hat = self.decoder(q.quantized)                                          # (B, D)   eq. 9
        recon = (x - x_hat).pow(2).sum(-1).mean()
        loss = recon + q.codebook_loss + self.beta * q.commitment_loss             # eq. 10
        return RQVAEOutput(x_hat, z, q.z_hat, q.codes, recon, q.codebook_loss, q.commitment_loss, loss)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).loss

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_levels)`` semantic tokens (eval mode: no codebook maintenance)."""
        return self.quantizer.encode(self.encoder(x))

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor) -> float:
        """Mean over rows of ``||x - x_hat||^2`` (summed over dims) in eval mode."""
        with eval_mode(self):
            return self.forward(x).recon_loss.item()


def train_rqvae(model: RQVAE, x: torch.Tensor, epochs: int, lr: float = 1e-3, batch_size: int | None = None,
                generator: torch.Generator | None = None) -> list[dict]:
    """Fit ``model`` on fixed inputs ``x`` ``(N, in_dim)`` with Adam; returns one history row per epoch.

    ``batch_size=None`` trains full-batch (one step per epoch); otherwise each epoch is a seeded random pass in
    batches. A small helper for tests, HK-Means comparisons and the "ID w/o" ablation; the Graph RQ-VAE
    trainer in :mod:`mmgrec_lib.tokenizer.graph_rqvae` drives the same module through the generic fit loop.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(model.quantizer.seed)
    opt = adam(model.parameters(), lr)
    n = x.shape[0]
    bs = n if not batch_size else min(int(batch_size), n)
    history = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen).to(x.device) if bs < n else torch.arange(n, device=x.device)
        sums: dict[str, float] = {}
        steps = 0
        for start in range(0, n, bs):
            out = model(x[order[start:start + bs]])
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            for k, v in out.parts().items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        history.append({"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}})
    model.eval()
    return history
