"""nbval runs the notebooks with their saved (smoke) defaults; they read the real datasets."""
import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    root = os.environ.get("MMGREC_DATA")
    if root and Path(root).is_dir():
        return
    skip = pytest.mark.skip(reason="notebooks need the datasets: set MMGREC_DATA to the shared data folder")
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(skip)
