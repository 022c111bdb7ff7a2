"""The generic checks every baseline recommender passes, shared by the ``test_baselines*.py`` files.

A test file builds a :class:`Harness` from its small per-class settings and subclasses the check classes:

    H = Harness(SMALL)

    class TestCommon(CommonChecks):
        harness, MODELS = H, [GraphSAGE, GAT]

Every ``test_*`` method taking ``cls`` is parametrised over the class attribute its :func:`over` names
(``MODELS`` by default); ``ds`` is the test module's fixture (the tiny dataset).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines import Recommender
from mmgrec_lib.evaluation import evaluate
from mmgrec_lib.training import LoopConfig


def loop(epochs=25, **kw) -> LoopConfig:
    return LoopConfig(epochs=epochs, patience=kw.pop("patience", 0), progress=False, **kw)


def random_recall(ds, seeds=range(8)) -> float:
    """Mean validation recall@10 of uniformly random scorers (about 0.17 on the tiny data)."""
    vals = [evaluate(lambda u, s=s: torch.rand(len(u), ds.n_items, generator=torch.Generator().manual_seed(s)),
                     ds, "val", ks=(10,))["recall@10"] for s in seeds]
    return float(np.mean(vals))


def with_missing_visual(n_missing: int = 5):
    """The tiny dataset with the first ``n_missing`` items lacking the visual modality."""
    ds = make_tiny_dataset()
    ds.feature_masks["visual"][:n_missing] = False
    ds.features["visual"][:n_missing] = 0.0
    return ds


class Harness:
    """Builds and trains baselines with small, fast settings per class (``{"device": "cpu"}`` otherwise)."""

    def __init__(self, small: dict) -> None:
        self.small = small

    def build(self, cls, ds, **kw):
        return cls.from_dataset(ds, **{**self.small.get(cls, {"device": "cpu"}), **kw})

    def trained(self, cls, ds, seed=0, epochs=25, **kw):
        model = self.build(cls, ds, **kw)
        result = model.fit(ds, loop(epochs), torch.Generator().manual_seed(seed))
        return model, result


def over(attr: str):
    """Parametrise a check method's ``cls`` over the class attribute ``attr`` instead of ``MODELS``."""
    def mark(fn):
        fn.models_attr = attr
        return fn
    return mark


class _Checks:
    harness: Harness
    MODELS: list

    def pytest_generate_tests(self, metafunc) -> None:
        if "cls" in metafunc.fixturenames:
            models = getattr(self, getattr(metafunc.function, "models_attr", "MODELS"))
            metafunc.parametrize("cls", models, ids=[m.__name__ for m in models])


class CommonChecks(_Checks):
    """Shapes, learning signal on planted clusters, save/load, determinism (global RNG untouched) and exact
    resume. ``TRAINABLE`` (default ``MODELS``) are checked for learning and determinism, ``RESUMABLE``
    (default ``TRAINABLE``) for resume; ``SEED_EPOCHS`` is the training length of the determinism check, and
    ``KEEPS_GLOBAL_RNG`` says the models leave torch's global RNG state as it was (all draws private)."""

    TRAINABLE: list | None = None
    RESUMABLE: list | None = None
    SEED_EPOCHS = 4
    KEEPS_GLOBAL_RNG = False

    @property
    def trainable(self) -> list:
        return self.MODELS if self.TRAINABLE is None else self.TRAINABLE

    @property
    def resumable(self) -> list:
        return self.trainable if self.RESUMABLE is None else self.RESUMABLE

    def test_score_shape_and_recommend(self, cls, ds):
        model, _ = self.harness.trained(cls, ds, epochs=2)
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
        with pytest.raises(ValueError, match=r"out of range \[0, 40\)"):
            model.score(torch.tensor([0, 40]))

    @over("trainable")
    def test_trained_models_beat_random_on_planted_clusters(self, cls, ds):
        # users prefer one of 4 item clusters: ~a quarter of the catalogue holds most of a user's items, so a
        # model that learned anything ranks held-out items far above chance
        rand = random_recall(ds)
        assert 0.05 < rand < 0.35
        model, result = self.harness.trained(cls, ds, seed=0)
        val = evaluate(model.score, ds, "val", ks=(10,))["recall@10"]
        assert val == pytest.approx(result.best_score)                    # best weights restored
        assert val > rand + 0.25, f"{cls.__name__}: val recall@10 {val:.3f} vs random {rand:.3f}"
        test = evaluate(model.score, ds, "test", ks=(10,))["recall@10"]    # not used for model selection
        assert test > rand + 0.15, f"{cls.__name__}: test recall@10 {test:.3f} vs random {rand:.3f}"

    def test_save_load_round_trip(self, cls, ds, tmp_path):
        model, _ = self.harness.trained(cls, ds, epochs=3)
        path = model.save(tmp_path / "model.pt")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # atomic: no temporary files left
        users = torch.arange(ds.n_users)
        for loaded in (Recommender.load(path), cls.load(path)):
            assert type(loaded) is cls and loaded.config == model.config
            if hasattr(model, "edge_index"):
                assert torch.equal(loaded.edge_index, model.edge_index)
            assert torch.equal(loaded.score(users), model.score(users))

    @over("trainable")
    def test_same_seed_same_scores(self, cls, ds):
        users, epochs = torch.arange(ds.n_users), self.SEED_EPOCHS
        torch.manual_seed(123)
        before = torch.get_rng_state()
        a, _ = self.harness.trained(cls, ds, seed=3, epochs=epochs)
        if self.KEEPS_GLOBAL_RNG:
            assert torch.equal(torch.get_rng_state(), before)            # dropout ran on a private RNG
        torch.manual_seed(456)                                            # the global state plays no part
        b, _ = self.harness.trained(cls, ds, seed=3, epochs=epochs)
        c, _ = self.harness.trained(cls, ds, seed=4, epochs=epochs)
        assert torch.equal(a.score(users), b.score(users))
        assert not torch.equal(a.score(users), c.score(users))

    @over("resumable")
    def test_interrupted_fit_resumes_exactly(self, cls, ds, tmp_path):
        h, users = self.harness, torch.arange(ds.n_users)
        full, ref = h.trained(cls, ds, seed=1, epochs=5)
        ckpt = tmp_path / "ckpt.pt"
        part = h.build(cls, ds)
        part.fit(ds, loop(2, checkpoint=ckpt), torch.Generator().manual_seed(1))
        fresh = h.build(cls, ds)                                          # new model and optimizer
        res = fresh.fit(ds, loop(5, checkpoint=ckpt), torch.Generator().manual_seed(1))
        assert res.resumed_from == 2 and res.history == ref.history
        assert torch.equal(fresh.score(users), full.score(users))


class ModalityChecks(_Checks):
    """Models that need item modality features: a clear error without them, one modality, items lacking one."""

    def test_no_modality_features_is_a_clear_error(self, cls, ds):
        bare = dataclasses.replace(make_tiny_dataset(), features={}, feature_masks={})
        with pytest.raises(ValueError, match=rf"{cls.__name__} needs item modality features.*'tiny' has none"):
            cls.from_dataset(bare, device="cpu")
        with pytest.raises(ValueError, match="needs item modality features"):
            cls(ds.n_users, ds.n_items, device="cpu", edge_index=ds.train_edge_index())
        with pytest.raises(ValueError, match=r"has no modality \['audio'\]"):
            cls.from_dataset(ds, modalities=("audio",), device="cpu")
        one, _ = self.harness.trained(cls, ds, epochs=2, modalities=("textual",))   # a single modality works
        assert one.n_modalities == 1 and one.item_features.shape == (ds.n_items, ds.features["textual"].shape[1])
        assert torch.isfinite(one.score(torch.arange(ds.n_users))).all()

    def test_items_lacking_a_modality(self, cls):
        ds2 = with_missing_visual(5)
        model, _ = self.harness.trained(cls, ds2, epochs=2)
        assert not model.feature_masks[:5, 0].any() and model.feature_masks[5:].all()
        assert torch.isfinite(model.score(torch.arange(ds2.n_users))).all()
