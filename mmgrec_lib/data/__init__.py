"""Datasets: one :class:`RecDataset` for every source, via :func:`load_dataset`."""
from .dataset import DataError, RecDataset, random_split

__all__ = ["DataError", "RecDataset", "random_split", "load_dataset", "DATASETS"]

DATASETS = ("ml100k", "tiktok", "amazon-baby", "mmgcn", "synthetic")


def load_dataset(name: str, root=None, seed: int = 0, **kwargs) -> RecDataset:
    """Load a dataset by name.

    Args:
        name: one of :data:`DATASETS`.
        root: datasets folder; defaults to ``$MMGREC_DATA``.
        seed: seed of the per-user random 80/10/10 split for loaders that split (ml100k, mmgcn,
            synthetic); tiktok and amazon-baby keep their given split and record the seed as unused.
        **kwargs: passed to the loader (e.g. ``features`` for ml100k, ``n_items`` for synthetic);
            unknown ones raise ``TypeError``.
    """
    if name == "ml100k":
        from .ml100k import load_ml100k
        return load_ml100k(root=root, seed=seed, **kwargs)
    if name in ("tiktok", "amazon-baby"):
        from .mmssl import load_mmssl
        return load_mmssl(name, root=root, **kwargs)
    if name == "mmgcn":
        from .mmgcn import load_mmgcn
        return load_mmgcn(root=root, seed=seed, **kwargs)
    if name == "synthetic":
        from .synthetic import make_synthetic
        if root is not None:
            raise TypeError("synthetic data is generated; it takes no root folder")
        return make_synthetic(seed=seed, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
