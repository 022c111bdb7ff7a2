"""Baselines under one interface: shapes, learning signal on planted clusters, save/load, determinism,
exact resume and clear errors. Tiny data only (make_tiny_dataset: 40 users x 60 items)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines import (LightGCN, MF, MostPop, Recommender, VBPR, VBPRConfig, content_features)
from mmgrec_lib.evaluation import evaluate
from mmgrec_lib.training import LoopConfig

# small, fast settings for the tiny data (a few steps per epoch)
SMALL = {
    MF: dict(dim=16, lr=0.02, batch_size=128, device="cpu"),
    LightGCN: dict(dim=16, n_layers=2, lr=0.02, batch_size=128, device="cpu"),
    VBPR: dict(dim=8, content_dim=8, lr=0.02, batch_size=128, device="cpu"),
}
TRAINABLE = [MF, LightGCN, VBPR]
ALL = [MostPop, *TRAINABLE]


def _loop(epochs=25, **kw):
    return LoopConfig(epochs=epochs, patience=kw.pop("patience", 0), progress=False, **kw)


def _build(cls, ds, **kw):
    return cls.from_dataset(ds, **{**SMALL.get(cls, {"device": "cpu"}), **kw})


def _trained(cls, ds, seed=0, epochs=25, **kw):
    model = _build(cls, ds, **kw)
    result = model.fit(ds, _loop(epochs), torch.Generator().manual_seed(seed))
    return model, result


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


@pytest.mark.parametrize("cls", ALL)
def test_score_shape_and_recommend(cls, ds):
    model, _ = _trained(cls, ds, epochs=2)
    users = torch.tensor([0, 5, 39])
    scores = model.score(users)
    assert scores.shape == (3, ds.n_items) and scores.is_floating_point() and torch.isfinite(scores).all()
    assert model.device == torch.device("cpu")
    top = model.recommend(users, k=5, exclude=ds.train)
    assert top.shape == (3, 5) and top.dtype == torch.long
    train = torch.from_numpy(ds.train[users.numpy()].toarray()).bool()
    assert not torch.gather(train, 1, top).any()                       # training items never recommended
    ranked = torch.gather(scores.masked_fill(train, -torch.inf), 1, top)
    assert (ranked[:, :-1] >= ranked[:, 1:]).all()                      # best first


def test_mostpop_counts_training_popularity(ds):
    model = MostPop.from_dataset(ds, device="cpu")
    result = model.fit(ds)
    assert np.array_equal(model.score(torch.tensor([0]))[0].numpy(), ds.item_popularity().astype(np.float32))
    assert result.best_score == pytest.approx(evaluate(model.score, ds, "val", ks=(10,))["recall@10"])


def _random_recall(ds, seeds=range(8)) -> float:
    """Mean validation recall@10 of uniformly random scorers (about 0.17 on the tiny data)."""
    vals = [evaluate(lambda u, s=s: torch.rand(len(u), ds.n_items, generator=torch.Generator().manual_seed(s)),
                     ds, "val", ks=(10,))["recall@10"] for s in seeds]
    return float(np.mean(vals))


@pytest.mark.parametrize("cls", TRAINABLE)
def test_trained_models_beat_random_on_planted_clusters(cls, ds):
    # users prefer one of 4 item clusters: ~a quarter of the catalogue holds most of a user's items, so a
    # model that learned anything ranks held-out items far above chance
    rand = _random_recall(ds)
    assert 0.05 < rand < 0.35
    model, result = _trained(cls, ds, seed=0)
    val = evaluate(model.score, ds, "val", ks=(10,))["recall@10"]
    assert val == pytest.approx(result.best_score)                    # best weights restored
    assert val > rand + 0.25, f"{cls.__name__}: val recall@10 {val:.3f} vs random {rand:.3f}"
    test = evaluate(model.score, ds, "test", ks=(10,))["recall@10"]    # not used for model selection
    assert test > rand + 0.15, f"{cls.__name__}: test recall@10 {test:.3f} vs random {rand:.3f}"


@pytest.mark.parametrize("cls", ALL)
def test_save_load_round_trip(cls, ds, tmp_path):
    model, _ = _trained(cls, ds, epochs=3)
    path = model.save(tmp_path / "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # atomic: no temporary files left
    users = torch.arange(ds.n_users)
    for loaded in (Recommender.load(path), cls.load(path)):
        assert type(loaded) is cls and loaded.config == model.config
        assert torch.equal(loaded.score(users), model.score(users))


def test_load_checks_the_class(ds, tmp_path):
    path = _build(MF, ds).save(tmp_path / "mf.pt")
    with pytest.raises(TypeError, match="holds a MF, not a LightGCN"):
        LightGCN.load(path)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a saved recommender"):
        Recommender.load(tmp_path / "other.pt")


@pytest.mark.parametrize("cls", TRAINABLE)
def test_same_seed_same_scores(cls, ds):
    users = torch.arange(ds.n_users)
    a, _ = _trained(cls, ds, seed=3, epochs=4)
    b, _ = _trained(cls, ds, seed=3, epochs=4)
    c, _ = _trained(cls, ds, seed=4, epochs=4)
    assert torch.equal(a.score(users), b.score(users))
    assert not torch.equal(a.score(users), c.score(users))


@pytest.mark.parametrize("cls", [MF, LightGCN])
def test_interrupted_fit_resumes_exactly(cls, ds, tmp_path):
    users = torch.arange(ds.n_users)
    full, ref = _trained(cls, ds, seed=1, epochs=5)
    ckpt = tmp_path / "ckpt.pt"
    part = _build(cls, ds)
    part.fit(ds, _loop(2, checkpoint=ckpt), torch.Generator().manual_seed(1))
    fresh = _build(cls, ds)                                           # new model and optimizer
    res = fresh.fit(ds, _loop(5, checkpoint=ckpt), torch.Generator().manual_seed(1))
    assert res.resumed_from == 2 and res.history == ref.history
    assert torch.equal(fresh.score(users), full.score(users))


def test_vbpr_features_masks_and_no_modalities(ds):
    # an item lacking a modality has a zero block for it and a 0 presence flag
    ds2 = make_tiny_dataset()
    ds2.feature_masks["visual"][:5] = False
    ds2.features["visual"][:5] = 0.0
    f = content_features(ds2)
    d_vis, d_txt = ds2.features["visual"].shape[1], ds2.features["textual"].shape[1]
    assert f.shape == (ds2.n_items, d_vis + d_txt + 2)
    assert (f[:5, :d_vis] == 0).all() and (f[:5, -2] == 0).all() and (f[5:, -2] == 1).all()
    present = f[5:, :d_vis].norm(dim=1)
    assert present.mean() == pytest.approx(1.0, rel=1e-5)            # modality scaled to mean norm 1
    assert VBPR.from_dataset(ds2, modalities=("textual",), device="cpu").item_features.shape[1] == d_txt + 1
    # no modality at all: a warning, then MF-BPR with item biases
    bare = dataclasses.replace(make_tiny_dataset(), features={}, feature_masks={})
    assert bare.modalities == []
    with pytest.warns(UserWarning, match="no item features"):
        model = VBPR.from_dataset(bare, VBPRConfig(**SMALL[VBPR]))
    model.fit(bare, _loop(2), torch.Generator().manual_seed(0))
    assert model.score(torch.tensor([0, 1])).shape == (2, bare.n_items)


@pytest.mark.parametrize("cls", ALL)
def test_bad_input_gives_a_clear_error(cls, ds):
    model = _build(cls, ds)
    with pytest.raises(ValueError, match=r"out of range \[0, 40\)"):
        model.score(torch.tensor([0, 40]))
    with pytest.raises(ValueError, match="out of range"):
        model.recommend(torch.tensor([-1]), k=3)
    with pytest.raises(ValueError, match="1-D integer"):
        model.score(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(torch.tensor([0]), k=0)
    other = make_tiny_dataset(n_users=30)
    with pytest.raises(ValueError, match="was built for 40 users x 60 items"):
        model.fit(other, _loop(1), torch.Generator().manual_seed(0))


def test_config_errors(ds):
    with pytest.raises(TypeError, match="unknown parameter"):
        MF(10, 10, dimension=8)
    with pytest.raises(ValueError, match="lr must be > 0"):
        MF(10, 10, lr=0.0)
    with pytest.raises(TypeError, match="explicit torch.Generator"):
        _build(MF, ds).fit(ds, _loop(1))
