"""Alternative semantic-ID assigners for the ablations: hierarchical k-means and "ID w/o" (no graph).

Both produce ``(n_items, n_levels)`` semantic codes that go through the same disambiguation, Rec-ID table
and statistics as Graph RQ-VAE (:meth:`mmgrec_lib.tokenizer.graph_rqvae.RecIDRun.with_codes`).

* :func:`hkmeans_codes` - HK-Means (as in DSI / P5's semantic IDs): k-means with ``k`` clusters at level 1,
  then k-means with ``k`` clusters inside each cluster on its members, and so on for ``n_levels`` levels, so
  each level has at most ``k`` codes (the cardinality of a codebook of size ``k``). A cluster with at most
  ``k`` distinct members gives each distinct member its own code (k-means could do no better), identical
  members share one, and a single member gets code 0.
* :func:`feature_rqvae_codes` - "ID w/o": the RQ-VAE of :mod:`mmgrec_lib.tokenizer.rqvae` trained directly on the
  concatenated (standardised, masked) multimodal item features, without the user-item graph.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..data.dataset import RecDataset
from ..training.loop import cpu_threads
from ..data.device import resolve_device
from .graph_rqvae import GraphRQVAEConfig, item_feature_matrix
from .rqvae import RQVAE, train_rqvae
from .run import RecIDRun, build_recids


def _cluster(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Labels in ``[0, min(k, n_distinct))`` for the rows of ``x`` (one k-means call at most)."""
    uniq, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if uniq.shape[0] <= k:
        # relabel distinct rows by first appearance (item order), so codes do not depend on row values' order
        first = np.full(uniq.shape[0], x.shape[0], dtype=np.int64)
        np.minimum.at(first, inverse, np.arange(x.shape[0]))
        rank = np.empty(uniq.shape[0], dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(uniq.shape[0])
        return rank[inverse]
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(x).astype(np.int64)


def hkmeans_codes(x: np.ndarray | torch.Tensor, k: int, n_levels: int = 3, seed: int = 0) -> np.ndarray:
    """Hierarchical k-means codes ``(n_items, n_levels)`` in ``[0, k)``.

    Args:
        x: ``(n_items, d)`` item representations (e.g. ``RecIDRun.item_emb``).
        k: clusters per node (use the RQ-VAE codebook size for comparable cardinality).
        n_levels: depth.
        seed: ``random_state`` of every k-means call.

    Level ``l`` codes of two items are only comparable when their level ``< l`` codes agree (the tree
    structure); items that share a level-``l`` prefix form the node clustered at level ``l + 1``.
    """
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"hkmeans_codes expects a non-empty (n_items, d) matrix, got shape {arr.shape}")
    if k < 1 or n_levels < 1:
        raise ValueError(f"hkmeans_codes: k ({k}) and n_levels ({n_levels}) must be >= 1")
    if not np.isfinite(arr).all():
        raise ValueError("hkmeans_codes: x contains NaN or inf")
    arr = arr.astype(np.float64)
    n = arr.shape[0]
    codes = np.zeros((n, n_levels), dtype=np.int64)
    groups = [np.arange(n)]
    for level in range(n_levels):
        next_groups = []
        for members in groups:
            labels = _cluster(arr[members], k, seed) if members.size > 1 else np.zeros(1, dtype=np.int64)
            codes[members, level] = labels
            if level + 1 < n_levels:
                order = np.argsort(labels, kind="stable")
                bounds = np.flatnonzero(np.diff(labels[order])) + 1
                next_groups.extend(members[part] for part in np.split(order, bounds))
        groups = next_groups
    return codes


@dataclasses.dataclass
class FeatureRQVAEResult:
    """Output of :func:`feature_rqvae_codes`."""

    semantic: torch.Tensor        # (n_items, n_levels) int64
    latent: torch.Tensor          # (n_items, latent_dim) encoder outputs z_i
    model: RQVAE
    history: list[dict]
    recon_error: float


def feature_rqvae_codes(dataset: RecDataset, config: GraphRQVAEConfig | None = None,
                        threads: int | None = 1) -> FeatureRQVAEResult:
    """"ID w/o": RQ-VAE on the concatenated multimodal features, no graph (same codebook settings).

    Uses ``config``'s codebook size, levels, beta, RQ-VAE widths, ``rq_lr``, ``rq_batch_size``,
    ``kmeans_init``, ``reseed_dead``, ``seed`` and ``device``; trains ``max(rq_epochs, 1)`` epochs on
    ``threads`` CPU threads (default 1, like every training loop: with several threads the codes changed
    between identical runs; ``None`` keeps torch's setting).
    """
    with cpu_threads(threads):
        return _feature_rqvae_codes(dataset, config)


def _feature_rqvae_codes(dataset: RecDataset, config: GraphRQVAEConfig | None) -> FeatureRQVAEResult:
    cfg = config if config is not None else GraphRQVAEConfig()
    feats, _ = item_feature_matrix(dataset, cfg.feature_norm)
    if feats.shape[1] == 0:
        raise ValueError(f"dataset {dataset.name!r} has no item features; 'ID w/o' needs multimodal features")
    device = resolve_device(cfg.device)
    x = feats.to(device)
    bs = None if cfg.rq_batch_size == 0 else min(cfg.rq_batch_size, x.shape[0])
    window = 1 if bs is None else -(-x.shape[0] // bs)
    model = RQVAE(x.shape[1], cfg.rq_latent_dim, cfg.rq_hidden_dim, cfg.codebook_size, cfg.n_levels, cfg.beta,
                  kmeans_init=cfg.kmeans_init, reseed_dead=cfg.reseed_dead, dead_code_window=window,
                  seed=cfg.seed + 1).to(device)
    history = train_rqvae(model, x, max(cfg.rq_epochs, 1), lr=cfg.rq_lr, batch_size=bs,
                          generator=torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        latent = model.encoder(x)
        semantic = model.encode(x)
    return FeatureRQVAEResult(semantic.cpu(), latent.cpu(), model, history, model.reconstruction_error(x))


def assign_hkmeans(run: RecIDRun, dataset: RecDataset, k: int | None = None, seed: int | None = None,
                   collision: str | None = None) -> RecIDRun:
    """HK-Means on ``run.item_emb`` (same representations as Graph RQ-VAE), as a :class:`RecIDRun`."""
    k = int(k or run.config.get("codebook_size", 256))
    n_levels = int(run.semantic.shape[1])
    seed = int(run.config.get("seed", 0) if seed is None else seed)
    sem = hkmeans_codes(run.item_emb, k, n_levels, seed)
    return run.with_codes(sem, dataset.item_popularity(), collision, codebook_size=k, method="hkmeans",
                          extra_stats={"dataset": dataset.name, "codebook_size": k})


def assign_id_without_graph(dataset: RecDataset, config: GraphRQVAEConfig | None = None,
                            base_run: RecIDRun | None = None) -> RecIDRun:
    """"ID w/o" Rec-IDs as a :class:`RecIDRun`.

    With ``base_run`` the embeddings (generator inputs and user vectors) are those of ``base_run`` and only
    the codes change, isolating the effect of the IDs. Without it, items are represented by their RQ-VAE
    latents and users by the mean latent of their training items.
    """
    cfg = config if config is not None else GraphRQVAEConfig()
    res = feature_rqvae_codes(dataset, cfg)
    extra = {"dataset": dataset.name, "codebook_size": cfg.codebook_size,
             "reseeded_total": int(res.model.quantizer.n_reseeded.sum())}
    if base_run is not None:
        return base_run.with_codes(res.semantic, dataset.item_popularity(), cfg.collision,
                                   codebook_size=cfg.codebook_size, method="id_wo_graph",
                                   recon_error=res.recon_error, extra_stats=extra, seed=cfg.seed)
    train = dataset.train.tocsr()
    deg = np.asarray(train.sum(1)).ravel()
    users = torch.from_numpy(np.asarray(train @ res.latent.numpy()) / np.maximum(deg, 1)[:, None]).float()
    conf = {**cfg.to_dict(), "method": "id_wo_graph"}
    sem, table, stats = build_recids(res.semantic, dataset.item_popularity(), cfg.collision, cfg.codebook_size,
                                     cfg.seed, conf, res.recon_error, extra)
    history = [{"phase": "rq", **row} for row in res.history]
    return RecIDRun(users, res.latent.float(), sem, table, {"method": "id_wo_graph", **stats}, history, conf,
                    "id_wo_graph", {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                                    for k, v in res.model.state_dict().items()})
