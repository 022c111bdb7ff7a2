"""Decoding results kept beside a checkpoint: read back only while the checkpoint is unchanged, equal to what was
computed, and a reused generator run neither evaluates nor lists its test users twice."""
from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from mmgrec_lib.evaluation import EvalResult
from mmgrec_lib.experiments import decode_cache
from mmgrec_lib.experiments.decode_cache import cache_path, cached, decode_result, encode_result

TINY_RECID = dict(dim=8, codebook_size=4, epochs=2, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4, device="cpu")
TINY_GEN = dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu")


def test_cached_reads_back_only_for_the_same_checkpoint(tmp_path):
    ckpt = tmp_path / "generator_x.pt"
    ckpt.write_bytes(b"one")
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(len(calls) * 3)

    first = cached(ckpt, "k", compute)
    assert torch.equal(cached(ckpt, "k", compute), first) and len(calls) == 1       # read back, not computed
    assert cache_path(ckpt).name == "generator_x.decode.pt"
    assert torch.equal(cached(ckpt, "other key", compute), torch.arange(6)) and len(calls) == 2
    assert torch.equal(cached(ckpt, "k", compute), first) and len(calls) == 2       # both keys kept
    ckpt.write_bytes(b"retrained")                                                  # another size: stale
    assert torch.equal(cached(ckpt, "k", compute), torch.arange(9)) and len(calls) == 3
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))                      # same size, rewritten later
    assert torch.equal(cached(ckpt, "k", compute), torch.arange(12)) and len(calls) == 4
    assert torch.equal(cached(None, "k", compute), torch.arange(15))                # no checkpoint: no cache
    assert torch.equal(cached(tmp_path / "missing.pt", "k", compute), torch.arange(18)) and len(calls) == 6
    cache_path(ckpt).write_bytes(b"torn")                                           # unreadable: computed again
    assert torch.equal(cached(ckpt, "k", compute), torch.arange(21))
    threads = torch.get_num_threads()
    try:                                                                            # float sums depend on them
        torch.set_num_threads(threads + 1)
        assert torch.equal(cached(ckpt, "k", compute), torch.arange(24)) and len(calls) == 8
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(cached(ckpt, "k", compute), torch.arange(21))


def test_a_new_cache_version_does_not_read_older_entries(tmp_path, monkeypatch):
    ckpt = tmp_path / "g.pt"
    ckpt.write_bytes(b"x")
    assert cached(ckpt, "k", lambda: 1) == 1
    monkeypatch.setattr(decode_cache, "DECODE_CACHE_VERSION", decode_cache.DECODE_CACHE_VERSION + 1)
    assert cached(ckpt, "k", lambda: 2) == 2


def test_eval_results_round_trip():
    per_user = pd.DataFrame({"recall@10": [0.5, 0.0, 1.0], "ndcg@10": [0.25, 0.0, 0.75]},
                            index=pd.Index([3, 7, 9], name="user"))
    res = EvalResult(per_user, "test", (10,), "mmgrec", {"inference_s": 0.5, "users": 3, "lists": torch.ones(3, 2)})
    back = decode_result(encode_result(res))
    pd.testing.assert_frame_equal(back.per_user, res.per_user)
    assert (back.split, back.ks, back.name) == ("test", (10,), "mmgrec")
    assert back.extra["inference_s"] == 0.5 and torch.equal(back.extra["lists"], torch.ones(3, 2))
    assert back.extra["decode_cached"] is True and "decode_cached" not in res.extra
    with pytest.raises(TypeError, match="cannot store"):
        encode_result(EvalResult(per_user, "test", (10,), "m", {"table": pd.DataFrame()}))


def test_a_reused_generator_run_does_not_decode_its_test_users_again(tmp_path, monkeypatch):
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import load_or_assign_recids, run_generator, top_k_lists
    from mmgrec_lib.experiments import analysis
    from mmgrec_lib.generator import GeneratorConfig, training
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    ds = load_dataset("synthetic", seed=0, n_users=40, n_items=60, mean_items_per_user=8.0)
    recids, _, _ = load_or_assign_recids(ds, GraphRQVAEConfig(**TINY_RECID), runs_dir=tmp_path, progress=False)
    gc, loop = GeneratorConfig.from_dict(TINY_GEN), LoopConfig(epochs=1, patience=0, progress=False)
    first = run_generator(ds, recids, gc, loop, runs_dir=tmp_path)
    lists = top_k_lists({"m": first}, ds)["m"]
    assert "decode_cached" not in first.test.extra and cache_path(first.checkpoint).is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")
    monkeypatch.setattr(training, "evaluate_generator", no_decoding)
    monkeypatch.setattr(analysis, "split_lists", no_decoding)
    again = run_generator(ds, recids, gc, loop, runs_dir=tmp_path)                  # finished: loaded
    assert again.fit.resumed_from > 0 and again.test.extra["decode_cached"] is True
    pd.testing.assert_frame_equal(again.test.per_user, first.test.per_user)
    assert torch.equal(top_k_lists({"m": again}, ds)["m"], lists)
    # another beam width is another key: decoded (here: the patched function raises)
    with pytest.raises(AssertionError, match="decoded again"):
        run_generator(ds, recids, gc, loop, runs_dir=tmp_path, test_beam_width=30)
