"""Feature cache, feature-matrix checks and the extractor plumbing (fake models; real ones marked slow)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgrec_lib.data import features as F
from mmgrec_lib.data.dataset import DataError


class FakeTextModel:
    """Stands in for the SentenceTransformer: a deterministic vector per text, 384-d."""

    def encode(self, texts, **kwargs):
        return np.stack([np.full(F.TEXT_DIM, len(t), dtype=np.float32) for t in texts])


class FakeImageModel(torch.nn.Module):
    """Stands in for EfficientNet: (B, 1280, 7, 7) maps whose mean is the input mean per image."""

    def extract_features(self, x):
        return x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).expand(-1, F.IMAGE_DIM, 7, 7)


def _fake_models(monkeypatch) -> dict:
    calls = {"text": 0, "image": 0}

    def text(device="cpu"):
        calls["text"] += 1
        return FakeTextModel()

    def image(device="cpu"):
        calls["image"] += 1
        return FakeImageModel()

    monkeypatch.setattr(F, "load_text_model", text)
    monkeypatch.setattr(F, "load_image_model", image)
    return calls


def _write_images(folder, n=3, size=(18, 27)):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        p = folder / f"{k}.jpg"
        Image.new("RGB" if k else "L", size, color=(40 * k, 80, 120) if k else 90).save(p)
        paths.append(p)
    return paths


def test_check_feature_matrix():
    out = F.check_feature_matrix(np.ones((3, 2), dtype=np.float16), 3, "f.npy", "visual")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert F.check_feature_matrix(torch.ones(3, 2, dtype=torch.float64), 3, "f.pt").dtype == np.float32
    with pytest.raises(DataError, match=r"f\.npy: visual features have 4 rows but the dataset has 3 items"):
        F.check_feature_matrix(np.ones((4, 2)), 3, "f.npy", "visual")
    bad = np.ones((3, 2))
    bad[1, 0], bad[2, 1] = np.nan, np.inf
    with pytest.raises(DataError, match=r"f\.npy: .*NaN or inf in 2 rows \(first: \[1, 2\]\)"):
        F.check_feature_matrix(bad, 3, "f.npy")
    with pytest.raises(DataError, match="2-D"):
        F.check_feature_matrix(np.ones(3), 3, "f.npy")
    with pytest.raises(DataError, match="non-numeric"):
        F.check_feature_matrix(np.array([["a"], ["b"], ["c"]]), 3, "f.npy")


def test_cached_array_atomic_and_reused(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float64).reshape(3, 2)

    a = F.cached_array("x", "k1", compute, cache=tmp_path, n_rows=3)
    b = F.cached_array("x", "k1", compute, cache=tmp_path, n_rows=3)
    assert len(calls) == 1 and a.dtype == np.float32 and np.array_equal(a, b)
    files = list((tmp_path / "features").iterdir())
    assert [f.name for f in files] == ["x-k1.npy"]                 # no temporary leftovers
    F.cached_array("x", "k2", compute, cache=tmp_path)            # another key -> another entry
    assert len(calls) == 2
    (tmp_path / "features" / "x-k1.npy").write_bytes(b"torn")     # corrupt entry -> recomputed
    with pytest.warns(UserWarning, match="recomputing"):
        F.cached_array("x", "k1", compute, cache=tmp_path, n_rows=3)
    assert len(calls) == 3


def test_feature_key_is_unambiguous():
    assert F.feature_key(["ab", "c"]) != F.feature_key(["a", "bc"])
    assert F.feature_key(["ab"]) == F.feature_key([b"ab"])


def test_text_features_cache_skips_model(tmp_path, monkeypatch):
    calls = _fake_models(monkeypatch)
    texts = ["a", "bbb", "cc"]
    out = F.text_features(texts, name="t", cache=tmp_path, batch_size=2, progress=False)
    assert out.shape == (3, F.TEXT_DIM) and out.dtype == np.float32 and out[1, 0] == 3
    again = F.text_features(texts, name="t", cache=tmp_path, progress=False)
    assert calls["text"] == 1 and np.array_equal(out, again)
    F.text_features(texts + ["d"], name="t", cache=tmp_path, progress=False)   # inputs changed -> new key
    assert calls["text"] == 2


def test_image_features_cache_keyed_on_bytes(tmp_path, monkeypatch):
    calls = _fake_models(monkeypatch)
    paths = _write_images(tmp_path / "img")
    out = F.image_features(paths, name="i", cache=tmp_path / "c", batch_size=2, progress=False)
    assert out.shape == (3, F.IMAGE_DIM) and out.dtype == np.float32 and np.isfinite(out).all()
    F.image_features(paths, name="i", cache=tmp_path / "c", progress=False)
    assert calls["image"] == 1
    from PIL import Image
    Image.new("RGB", (18, 27), color=(1, 2, 3)).save(paths[2])               # same path, new bytes
    F.image_features(paths, name="i", cache=tmp_path / "c", progress=False)
    assert calls["image"] == 2
    (tmp_path / "img" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"bad\.jpg: unreadable image"):
        F.image_features([tmp_path / "img" / "bad.jpg"], name="i", cache=tmp_path / "c", progress=False)
    with pytest.raises(DataError, match=r"missing\.jpg"):
        F.image_features([tmp_path / "img" / "missing.jpg"], name="i", cache=tmp_path / "c", progress=False)


def test_image_preprocessing_shape_and_normalisation(tmp_path):
    (p,) = _write_images(tmp_path, n=1)          # grayscale 18x27 -> RGB 224x224
    x = F._load_image(p)
    assert x.shape == (3, F.IMAGE_SIZE, F.IMAGE_SIZE) and x.dtype == np.float32
    expected = (90 / 255 - np.array(F.IMAGENET_MEAN)) / np.array(F.IMAGENET_STD)
    assert np.allclose(x.mean(axis=(1, 2)), expected, atol=2e-3)   # JPEG rounding


@pytest.mark.slow
def test_real_image_extractor(tmp_path):
    """The bundled EfficientNet-Lite0 gives 1280-d pooled features (no network needed)."""
    paths = _write_images(tmp_path / "img", n=2, size=(64, 96))
    out = F.image_features(paths, name="real", cache=tmp_path / "c", progress=False)
    assert out.shape == (2, 1280) and np.isfinite(out).all() and not np.allclose(out[0], out[1])


@pytest.mark.slow
def test_real_text_extractor(tmp_path):
    """The bundled all-MiniLM-L6-v2 gives unit-norm 384-d embeddings offline."""
    out = F.text_features(["Toy Story (1995). Genres: Animation.", "Heat (1995). Genres: Crime."],
                          name="real", cache=tmp_path, progress=False)
    assert out.shape == (2, 384) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-4)
