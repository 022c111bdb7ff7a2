"""Tiny synthetic datasets built inside the tests (imported by conftest.py and by test modules).

Kept out of conftest.py on purpose: notebooks/ has a conftest.py too, and two modules named ``conftest``
cannot both be imported by name when pytest collects tests/ and notebooks/ in one run.
"""
from __future__ import annotations

import numpy as np

from mmgrec_lib.data.dataset import RecDataset, random_split


def make_tiny_dataset(n_users: int = 40, n_items: int = 60, per_user: int = 12, seed: int = 0,
                      dims: dict | None = None) -> RecDataset:
    """A small random dataset with two clustered modalities; every user has ``per_user`` items."""
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 4, n_items)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([
        rng.choice(np.nonzero(clusters == u % 4)[0].tolist() + rng.choice(n_items, 3).tolist(),
                   per_user, replace=True) for u in range(n_users)])
    pairs = np.unique(users * n_items + items)
    tr, va, te = random_split(pairs // n_items, pairs % n_items, seed=seed)
    dims = dims or {"visual": 8, "textual": 6}
    centers = {m: rng.normal(size=(4, d)) for m, d in dims.items()}
    feats = {m: (centers[m][clusters] + 0.1 * rng.normal(size=(n_items, d))).astype(np.float32)
             for m, d in dims.items()}
    ds = RecDataset.from_splits("tiny", n_users, n_items, tr, va, te, features=feats, source="tiny fixture")
    ds.item_meta = None
    ds.info["clusters"] = clusters
    return ds


def random_recid_setup(n_users: int = 30, n_items: int = 60, codes: int = 3, seed: int = 0, dim: int = 8):
    """A tiny dataset with random two-level Rec-IDs (``codes`` per level, a popularity token appended) and random
    ``dim``-wide user and item vectors: ``(dataset, RecIDTable, user vectors, item vectors)``."""
    import torch

    from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate

    ds = make_tiny_dataset(n_users=n_users, n_items=n_items)
    rng = np.random.default_rng(seed)
    table = RecIDTable(disambiguate(rng.integers(0, codes, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(seed)
    return ds, table, torch.randn(ds.n_users, dim, generator=g), torch.randn(ds.n_items, dim, generator=g)


def rung_config(params: dict, name: str, ladder: list[dict]) -> tuple:
    """The (Rec-ID, generator, loop) configs of rung ``name`` of ``ladder`` on a notebook's base settings, built from
    its profile's parameters as notebooks 03, 04 and 09 build them (a rung with ``base`` or below others carries
    their changes too)."""
    from mmgrec_lib.experiments import Rung, rung_configs
    from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig

    device = params.get("DEVICE", "cpu")
    recid = GraphRQVAEConfig(codebook_size=params["CODEBOOK_SIZE"], epochs=params["RECID_EPOCHS"],
                             rq_epochs=params["RECID_RQ_EPOCHS"], seed=params["SEED"], device=device)
    gen = GeneratorConfig(model=ModelConfig(finetune_item_emb=params["FINETUNE_ITEM_EMB"]),
                          train=TrainConfig(targets_per_input=params["TARGETS_PER_INPUT"], seed=params["SEED"],
                                            device=device))
    loop = LoopConfig(epochs=params["EPOCHS"], patience=params["PATIENCE"], eval_every=params["EVAL_EVERY"],
                      monitor="recall@10")
    rungs = [Rung.from_dict(r) for r in ladder]
    return dict(zip([r.name for r in rungs], rung_configs(recid, gen, loop, rungs)))[name]


def built_rung_config(params: dict, name: str, table) -> tuple:
    """The configs rung ``name`` of notebook 09's ladder was trained with, as its committed table records it: the
    rung's changes on those of the rungs it was built on, following the table's ``built_on`` column to the first
    rung (in a greedy ladder a rung goes on top of the rungs kept above it, which only the run knows)."""
    from mmgrec_lib.experiments import Rung, built_chain
    chain = built_chain([Rung.from_dict(r) for r in params["LADDER"]], table, name)
    by_name = {r["name"]: r for r in params["LADDER"]}
    return rung_config(params, name, [{k: v for k, v in by_name[r.name].items() if k != "base"} for r in chain])
