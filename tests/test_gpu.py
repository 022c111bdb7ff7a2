"""Every stage on a CUDA device: one training epoch of each trainer, a decoding call and an evaluation pass.

Skipped where torch sees no CUDA device (CI and the 2-core machines); run it on a GPU machine with
``pytest tests/test_gpu.py``. The CPU results are the reference: the GPU must give valid lists of the same shape
and, for the deterministic scoring parts, the same numbers up to float tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines import BASELINES
from mmgrec_lib.evaluation import evaluate
from mmgrec_lib.generator import GeneratorConfig, train_generator
from mmgrec_lib.tokenizer import GraphRQVAEConfig, assign_recids
from mmgrec_lib.training import LoopConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the GPU checks run only on a machine with one")

LOOP = LoopConfig(epochs=1, patience=0, progress=False)


@pytest.fixture(scope="module")
def data():
    return make_tiny_dataset(n_users=40, n_items=60, per_user=12)


@pytest.mark.parametrize("name", ["mf", "lightgcn", "vbpr"])
def test_baseline_epoch_and_scores_on_cuda(data, name):
    model = BASELINES[name].from_dataset(data, device="cuda")
    model.fit(data, LOOP, torch.Generator().manual_seed(0))
    assert model.device.type == "cuda"
    scores = model.score(torch.arange(5))
    assert scores.device.type == "cuda" and scores.shape == (5, data.n_items) and torch.isfinite(scores).all()
    lists = model.recommend(torch.arange(5), 10, exclude=data.train)
    assert lists.shape == (5, 10)
    res = evaluate(model.score, data, "val", ks=(10,), device="cuda")
    assert np.isfinite(res["recall@10"])


def test_graph_rqvae_and_generator_on_cuda(data):
    run = assign_recids(data, GraphRQVAEConfig(codebook_size=8, epochs=1, rq_epochs=1, device="cuda"), progress=False)
    assert run.table.codes.shape == (data.n_items, 4)
    config = GeneratorConfig.from_dict(dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8,
                                            batch_size=64, beam_width=10, val_ks=(10,), device="cuda"))
    model, fit = train_generator(data, run.table, run.user_emb, run.item_emb, config, LOOP)
    assert model.device.type == "cuda" and np.isfinite(fit.history[-1]["loss"])
    users = torch.arange(6)
    items, logp = model.recommend(users, 10, 10)
    assert items.shape == (6, 10) and items.device.type == "cuda"
    train = torch.as_tensor(data.train[:6].toarray(), dtype=torch.bool)
    valid = items.cpu() >= 0
    assert not train.gather(1, items.cpu().clamp(min=0))[valid].any()      # training items never recommended
    # the same weights on the CPU decode the same lists (up to ties from float differences)
    cpu = model.to("cpu")
    items_cpu, _ = cpu.recommend(users, 10, 10)
    agree = (items_cpu == items.cpu()).float().mean().item()
    assert agree > 0.9
