"""The allocator settings of the command-line entry points: environment for child processes, mallopt here."""
from __future__ import annotations

import os

from mmgrec_lib import allocator, cli


def test_tune_malloc_sets_the_environment_and_keeps_the_callers_values(monkeypatch):
    for k in allocator.MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")                   # the caller's value wins
    tuned = allocator.tune_malloc()
    assert isinstance(tuned, bool)
    assert os.environ["MALLOC_TOP_PAD_"] == "0"
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == allocator.MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]


def test_tune_malloc_leaves_values_mallopt_cannot_take_to_glibc(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "lots")
    assert allocator.tune_malloc() is False and os.environ["MALLOC_TRIM_THRESHOLD_"] == "lots"
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", str(1 << 40))  # beyond an int
    assert allocator.tune_malloc() is False


def test_the_command_line_tunes_before_reports_and_benchmarks(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "tune_malloc", lambda env=None: calls.append(1) or True)
    assert cli.main(["bench", "train", "--epochs", "0"]) == 2                 # rejected arguments, but tuned first
    assert calls == [1]
    cli.main(["list"])
    assert calls == [1]                                                      # not for commands that train nothing
