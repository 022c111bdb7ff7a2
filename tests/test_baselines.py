"""Baselines under one interface: shapes, learning signal on planted clusters, save/load, determinism,
exact resume and clear errors. Tiny data only (make_tiny_dataset: 40 users x 60 items)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from _baseline_checks import CommonChecks, Harness, loop as _loop, with_missing_visual
from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines import (LightGCN, MF, MostPop, Recommender, VBPR, VBPRConfig, content_features)
from mmgrec_lib.evaluation import evaluate

# small, fast settings for the tiny data (a few steps per epoch)
SMALL = {
    MF: dict(dim=16, lr=0.02, batch_size=128, device="cpu"),
    LightGCN: dict(dim=16, n_layers=2, lr=0.02, batch_size=128, device="cpu"),
    VBPR: dict(dim=8, content_dim=8, lr=0.02, batch_size=128, device="cpu"),
}
TRAINABLE = [MF, LightGCN, VBPR]
ALL = [MostPop, *TRAINABLE]
H = Harness(SMALL)
_build = H.build


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


class TestCommon(CommonChecks):
    harness, MODELS, TRAINABLE, RESUMABLE = H, ALL, TRAINABLE, [MF, LightGCN]


def test_mostpop_counts_training_popularity(ds):
    model = MostPop.from_dataset(ds, device="cpu")
    result = model.fit(ds)
    assert np.array_equal(model.score(torch.tensor([0]))[0].numpy(), ds.item_popularity().astype(np.float32))
    assert result.best_score == pytest.approx(evaluate(model.score, ds, "val", ks=(10,))["recall@10"])


def test_load_checks_the_class(ds, tmp_path):
    path = _build(MF, ds).save(tmp_path / "mf.pt")
    with pytest.raises(TypeError, match="holds a MF, not a LightGCN"):
        LightGCN.load(path)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a saved recommender"):
        Recommender.load(tmp_path / "other.pt")


def test_vbpr_features_masks_and_no_modalities(ds):
    # an item lacking a modality has a zero block for it and a 0 presence flag
    ds2 = with_missing_visual(5)
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


def test_vbpr_score_parts_add_up_to_the_score(ds):
    """score_parts: the item bias, the collaborative and the content terms, whose dot products add up to the
    score; "full" is the model's score; score_parts_table ranks each alone."""
    from mmgrec_lib.experiments.zoo import score_parts_table
    model, _ = H.trained(VBPR, ds, epochs=2)
    parts = model.score_parts()
    assert list(parts) == ["bias", "cf", "content", "full"]
    dot = {k: u @ i.T for k, (u, i) in parts.items()}                                  # (U, I) each
    users = torch.arange(ds.n_users)
    assert torch.allclose(dot["full"], model.score(users), atol=1e-5)
    assert torch.allclose(dot["bias"] + dot["cf"] + dot["content"], dot["full"], atol=1e-5)
    assert torch.allclose(dot["cf"], model.gamma_user @ model.gamma_item.T)
    assert (dot["bias"] == dot["bias"][:1]).all()                                       # the same for every user
    table = score_parts_table(model, ds, split="val")
    assert list(table["part"]) == list(parts) and table["recall@10"].between(0, 1).all()
