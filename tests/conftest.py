"""Shared fixtures: tiny synthetic datasets built in the test, and the real-data root (or a skip)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmgrec_lib.numerics import portable_numerics

# the kernels the entry points use (AVX2 code paths on every x86-64 CPU; MMGREC_NATIVE_ISA=1 opts out), set before
# torch computes anything, so bit-level tests give the same answer on AVX2 and AVX-512 machines
portable_numerics()

import torch  # noqa: E402

from mmgrec_lib.data.dataset import RecDataset  # noqa: E402

from _fixtures import make_tiny_dataset  # noqa: F401, E402  (re-exported for fixtures)

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
