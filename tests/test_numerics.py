"""Portable CPU numerics (mmgrec_lib.numerics): which variables are set where, and that torch obeys them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mmgrec_lib.cli import print_env
from mmgrec_lib.numerics import OPT_OUT_ENV, PORTABLE_ENV, cpu_flags, has_avx2, numerics_tag, portable_numerics

AVX2 = {"sse2", "avx", "avx2", "fma"}


def test_sets_every_variable_on_an_avx2_x86_machine():
    env: dict[str, str] = {}
    added = portable_numerics(env, machine="x86_64", flags=AVX2 | {"avx512f"})
    assert added == PORTABLE_ENV and env == PORTABLE_ENV
    assert numerics_tag(env) == "AVX2 kernels"


def test_a_value_the_caller_set_wins():
    env = {"MKL_CBWR": "COMPATIBLE"}
    added = portable_numerics(env, machine="x86_64", flags=AVX2)
    assert env["MKL_CBWR"] == "COMPATIBLE" and "MKL_CBWR" not in added
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert numerics_tag(env) == "native kernels"          # not every library pinned


@pytest.mark.parametrize("machine, flags, env", [
    ("aarch64", AVX2, {}),                               # not x86: no AVX2 kernels to pin
    ("arm64", None, {}),
    ("x86_64", {"sse2", "avx"}, {}),                     # no AVX2: pinning would select kernels it cannot run
    ("x86_64", set(), {}),                               # flags unreadable
    ("x86_64", AVX2, {OPT_OUT_ENV: "1"}),                # opted out
    ("x86_64", AVX2, {OPT_OUT_ENV: "yes"}),
])
def test_sets_nothing_where_it_cannot_or_should_not(machine, flags, env):
    before = dict(env)
    assert portable_numerics(env, machine=machine, flags=flags) == {}
    assert env == before
    assert numerics_tag(env) == "native kernels"


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_flags(str(info)) == {"fpu", "sse2", "avx2", "fma"}
    assert cpu_flags(str(tmp_path / "missing")) is None


def test_mmgrec_env_prints_exports_and_keeps_set_values(capsys):
    print_env({"MKL_CBWR": "COMPATIBLE", OPT_OUT_ENV: ""})
    out = capsys.readouterr().out.splitlines()
    assert "export MALLOC_MMAP_THRESHOLD_=33554432" in out
    assert "export MKL_CBWR=COMPATIBLE  # already set" in out
    if has_avx2():
        assert "export ATEN_CPU_CAPABILITY=avx2" in out


@pytest.mark.skipif(not has_avx2(), reason="needs an x86-64 CPU with AVX2 (and /proc/cpuinfo)")
def test_torch_runs_avx2_kernels_under_the_pinned_environment():
    """In a fresh process that pins first, torch dispatches to its AVX2 kernels, also on an AVX-512 machine (where
    it would otherwise choose AVX512): the numbers then match an AVX2 machine's."""
    code = ("from mmgrec_lib.numerics import portable_numerics; portable_numerics(); import torch; "
            "print(torch.backends.cpu.get_cpu_capability())")
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV and k != OPT_OUT_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "AVX2"


@pytest.mark.skipif(not has_avx2(), reason="needs an x86-64 CPU with AVX2 (and /proc/cpuinfo)")
def test_the_runner_pins_its_own_environment_before_it_starts_kernels(monkeypatch, capsys):
    """``mmgrec reports`` sets the variables in its environment (which its notebook kernels and sweep workers
    inherit) before anything else, even when it then stops at a bad argument."""
    from mmgrec_lib import cli
    for k in (*PORTABLE_ENV, OPT_OUT_ENV):
        monkeypatch.setenv(k, "x")                      # registered, so the test's end restores the original state
        monkeypatch.delenv(k)
    assert cli.main(["reports", "--dataset", "movielens", "--dry-run"]) == 2
    assert {k: os.environ.get(k) for k in PORTABLE_ENV} == PORTABLE_ENV
