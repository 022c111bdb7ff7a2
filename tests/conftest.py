"""Shared fixtures: tiny synthetic datasets built in the test, and the real-data root (or a skip)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mmgrec_lib.data.dataset import RecDataset

from _fixtures import make_tiny_dataset  # noqa: F401  (re-exported for fixtures)

torch.set_num_threads(1)


@pytest.fixture
def tiny_dataset() -> RecDataset:
    return make_tiny_dataset()


@pytest.fixture
def data_root() -> Path:
    root = os.environ.get("MMGREC_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real datasets not available: set MMGREC_DATA to the shared data folder")
    return Path(root)
