"""Synthetic generator: planted clusters drive features and preferences, power-law popularity, scale."""
from __future__ import annotations

import numpy as np
import pytest

from mmgrec_lib.data import load_dataset
from mmgrec_lib.data.synthetic import make_synthetic


def test_contract_and_determinism():
    ds = make_synthetic(n_users=60, n_items=120, n_clusters=4, seed=3)
    again = make_synthetic(n_users=60, n_items=120, n_clusters=4, seed=3)
    other = make_synthetic(n_users=60, n_items=120, n_clusters=4, seed=4)
    assert (ds.n_users, ds.n_items) == (60, 120) and ds.modalities == ["visual", "acoustic", "textual"]
    assert {m: f.shape[1] for m, f in ds.features.items()} == {"visual": 32, "acoustic": 16, "textual": 24}
    assert all(f.dtype == np.float32 for f in ds.features.values())
    assert (ds.train != again.train).nnz == 0 and np.array_equal(ds.features["visual"], again.features["visual"])
    assert (ds.train != other.train).nnz > 0
    clusters = ds.info["clusters"]
    assert isinstance(clusters, np.ndarray) and clusters.shape == (120,) and set(clusters) == set(range(4))
    assert ds.info["duplicates_dropped"]["before_split"] >= 0
    assert ds.info["split"]["seed"] == 3 and ds.item_meta["cluster"].tolist() == clusters.tolist()
    assert np.diff(ds.train.indptr).min() >= 1                      # every user has a training item


def test_clusters_drive_every_modality():
    ds = make_synthetic(n_users=50, n_items=300, n_clusters=5, noise=0.3, seed=0)
    c = ds.info["clusters"]
    for m, f in ds.features.items():
        centroids = np.stack([f[c == k].mean(axis=0) for k in range(5)])
        nearest = np.argmin(((f[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        assert (nearest == c).mean() > 0.95, m


def test_users_prefer_their_clusters_and_popularity_is_skewed():
    ds = make_synthetic(n_users=300, n_items=500, n_clusters=10, mean_items_per_user=15, exploration=0.1,
                        popularity_exponent=1.0, seed=1)
    c, uc = ds.info["clusters"], ds.info["user_clusters"]
    coo = (ds.train + ds.val + ds.test).tocoo()
    in_pref = (c[coo.col][:, None] == uc[coo.row]).any(axis=1).mean()
    assert in_pref > 0.85                                            # ~0.9 + chance hits
    pop = np.sort(np.asarray((ds.train + ds.val + ds.test).sum(axis=0)).ravel())[::-1]
    assert pop[:25].sum() > 0.25 * pop.sum()                         # top 5% of items: > 25% of interactions
    flat = make_synthetic(n_users=300, n_items=500, n_clusters=10, mean_items_per_user=15,
                          popularity_exponent=0.0, seed=1)
    fpop = np.sort(np.asarray((flat.train + flat.val + flat.test).sum(axis=0)).ravel())[::-1]
    assert fpop[:25].sum() < pop[:25].sum()


def test_arguments():
    with pytest.raises(ValueError, match="n_clusters"):
        make_synthetic(n_items=3, n_clusters=5)
    with pytest.raises(ValueError, match="exploration"):
        make_synthetic(exploration=2.0)
    with pytest.raises(TypeError):
        load_dataset("synthetic", n_items=100, bogus=1)
    ds = load_dataset("synthetic", n_users=20, n_items=100, dims={}, seed=0)
    assert ds.modalities == [] and ds.n_items == 100


@pytest.mark.slow
def test_scales_to_a_million_items():
    ds = make_synthetic(n_users=100, n_items=1_000_000, n_clusters=100, dims={"visual": 4, "textual": 2},
                        mean_items_per_user=10, seed=0)
    assert ds.n_items == 1_000_000 and ds.features["visual"].shape == (1_000_000, 4)
    assert ds.features["visual"].dtype == np.float32 and ds.train.nnz > 0
    assert ds.info["clusters"].shape == (1_000_000,)
