"""nbval runs the notebooks with their saved (smoke) defaults. Most read the real datasets and are skipped
without ``MMGREC_DATA``; a notebook whose metadata says ``"mmgrec": {"needs_data": false}`` (e.g. the
walkthrough on generated data) runs either way."""
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

from mmgrec_lib.numerics import portable_numerics

portable_numerics()   # the notebook kernels inherit the entry points' AVX2 kernels (see tests/conftest.py)


@lru_cache(maxsize=None)
def needs_data(path: str) -> bool:
    """``False`` only when the notebook's metadata declares ``mmgrec.needs_data: false``."""
    meta = json.loads(Path(path).read_text()).get("metadata", {})
    return bool(meta.get("mmgrec", {}).get("needs_data", True))


def pytest_collection_modifyitems(config, items):
    root = os.environ.get("MMGREC_DATA")
    if root and Path(root).is_dir():
        return
    skip = pytest.mark.skip(reason="notebooks need the datasets: set MMGREC_DATA to the shared data folder")
    for item in items:
        path = str(item.fspath)
        if path.endswith(".ipynb") and needs_data(path):
            item.add_marker(skip)
