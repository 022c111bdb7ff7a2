"""Generator training: samples, early-stopping loop, exact resume, determinism, evaluation, config errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib.generator import training as gt
from mmgrec_lib.evaluation import EvalResult
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.generator.training import evaluate_generator, train_generator, training_pairs
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.training import LoopConfig

CFG = dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=5, batch_size=64, beam_width=10,
           val_ks=(10,), lr=5e-3, device="cpu")


@pytest.fixture(scope="module")
def inputs():
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    rng = np.random.default_rng(0)
    table = RecIDTable(disambiguate(rng.integers(0, 4, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(1)
    return ds, table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g)


def _strip(history):
    return [{k: v for k, v in row.items() if k not in gt.TIME_KEYS} for row in history]


def _train(inputs, loop, **kw):
    ds, table, u, i = inputs
    return train_generator(ds, table, u, i, GeneratorConfig.from_dict({**CFG, **kw}), loop,
                           torch.Generator().manual_seed(7))


def test_training_pairs_cover_every_interaction(inputs):
    ds = inputs[0]
    users, items = training_pairs(ds)
    assert users.numel() == ds.train.nnz
    assert (np.asarray(ds.train[users.numpy().copy(), items.numpy().copy()]) == 1).all()


def test_train_and_evaluate(inputs):
    ds = inputs[0]
    model, res = _train(inputs, LoopConfig(epochs=3, patience=0, progress=False))
    assert [r["epoch"] for r in res.history] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and "recall@10" in r and r["train_s"] >= 0 for r in res.history)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert 1 <= res.best_epoch <= 3
    ev = evaluate_generator(model, ds, "test", ks=(5, 10), beam_width=12)
    assert isinstance(ev, EvalResult) and set(ev.mean()) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    assert ev.extra["beam_width"] == 12 and ev.extra["users"] == len(ev.per_user)
    assert ev.extra["inference_s_per_user"] >= 0
    assert not model.training
    # validation score of the best epoch is what evaluate_generator reproduces on "val"
    val = evaluate_generator(model, ds, "val", ks=(10,), beam_width=10)
    assert val["recall@10"] == pytest.approx(res.best_score)


def test_same_seed_same_metrics(inputs):
    loop = LoopConfig(epochs=2, patience=0, progress=False)
    _, a = _train(inputs, loop, dropout=0.2)
    _, b = _train(inputs, loop, dropout=0.2)
    assert _strip(a.history) == _strip(b.history)


@pytest.mark.parametrize("attention,schedule", [("relation", "constant"), ("sinusoidal", "constant"),
                                                ("relation", "cosine"), ("relation", "warmup")])
def test_resume_equals_uninterrupted_run(inputs, tmp_path, monkeypatch, attention, schedule):
    kw = dict(dropout=0.2, attention=attention, max_len=3)   # dropout and subset sampling both active
    if schedule == "cosine":
        kw.update(lr_schedule="cosine", schedule_epochs=3, user_memory=True)
    if schedule == "warmup":                      # interrupted inside the warm-up (epoch 3 of 4 warm ones)
        kw.update(warmup_epochs=4)
    torch.manual_seed(1)
    full_model, full = _train(inputs, LoopConfig(epochs=3, patience=0, progress=False,
                                                 checkpoint=tmp_path / "full.pt"), **kw)

    real_run_epoch = gt.run_epoch
    calls = {"n": 0}

    def crash_on_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_run_epoch(*args, **kwargs)

    ckpt = tmp_path / "interrupted.pt"
    loop = LoopConfig(epochs=3, patience=0, progress=False, checkpoint=ckpt)
    monkeypatch.setattr(gt, "run_epoch", crash_on_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        _train(inputs, loop, **kw)
    monkeypatch.setattr(gt, "run_epoch", real_run_epoch)
    assert ckpt.is_file()
    torch.manual_seed(2)                          # a different global RNG state must not matter
    resumed_model, resumed = _train(inputs, loop, **kw)
    assert resumed.resumed_from == 2
    assert _strip(resumed.history) == _strip(full.history)
    assert resumed.best_epoch == full.best_epoch
    sa, sb = full_model.state_dict(), resumed_model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_config_errors(inputs):
    ds, table, u, i = inputs
    with pytest.raises(ValueError, match="beam_width"):
        GeneratorConfig.from_dict(beam_width=5, val_ks=(10,))
    with pytest.raises(ValueError, match="optimizer"):
        GeneratorConfig.from_dict(optimizer="lion")
    with pytest.raises(ValueError, match="attention"):
        GeneratorConfig.from_dict(attention="alibi")
    with pytest.raises(TypeError, match="unknown parameter"):
        GeneratorConfig.from_dict({"d_model": 32, "layers": 3})
    assert GeneratorConfig.from_dict({"d_model": 32}).model.d_model == 32
    with pytest.raises(ValueError, match="user_repr has"):
        train_generator(ds, table, u[:-1], i, GeneratorConfig.from_dict(CFG), LoopConfig(epochs=0, progress=False))
    with pytest.raises(ValueError, match="Rec-ID table has"):
        train_generator(ds, RecIDTable(table.codes[:-1]), u, i, GeneratorConfig.from_dict(CFG),
                        LoopConfig(epochs=0, progress=False))
    model, _ = train_generator(ds, table, u, i, GeneratorConfig.from_dict(CFG), LoopConfig(epochs=0, progress=False))
    with pytest.raises(ValueError, match="beam_width"):
        evaluate_generator(model, ds, "test", ks=(10, 20), beam_width=10)


def test_training_groups_visit_every_pair_once_and_respect_the_cap():
    counts = torch.tensor([3, 0, 25, 100, 19, 20])
    users = torch.repeat_interleave(torch.arange(6), counts)
    items = torch.arange(int(counts.sum()))
    g = torch.Generator().manual_seed(0)
    gu, gi = gt.training_groups(counts, users, items, 8, g)
    assert sorted(gi[gi >= 0].tolist()) == items.tolist()                  # every pair exactly once
    for u in range(6):
        sizes = (gi[gu == u] >= 0).sum(1)
        cap = int(min(8, max(1, int(counts[u]) // 10)))
        assert (sizes <= cap).all() and (sizes >= 1).all()
        if sizes.numel():
            assert int(sizes.max() - sizes.min()) <= 1                      # near-equal group sizes
        assert set(users[gi[gu == u][gi[gu == u] >= 0]].tolist()) <= {u}   # a group holds one user's items
    assert (gi[gu == 3] >= 0).sum(1).max() == 8 and (gi[gu == 4] >= 0).sum(1).max() == 1
    a = gt.training_groups(counts, users, items, 8, torch.Generator().manual_seed(1))[1]
    b = gt.training_groups(counts, users, items, 8, torch.Generator().manual_seed(2))[1]
    assert not torch.equal(a, b)                                            # fresh groups per draw
    gu1, gi1 = gt.training_groups(counts, users, items, 1, g)
    assert torch.equal(gu1, users) and torch.equal(gi1[:, 0], items)        # T = 1: the pairs themselves


@pytest.mark.parametrize("bucket", [False, True])
def test_batch_indices_cover_each_row_once(bucket):
    lengths = torch.randint(0, 50, (1000,), generator=torch.Generator().manual_seed(0))
    batches = gt.batch_indices(lengths, 32, torch.Generator().manual_seed(1), bucket, pool_batches=4)
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    assert all(b.numel() <= 32 for b in batches)
    if bucket:   # within a batch, lengths come from one sorted pool run: spread far below the global one
        spread = torch.tensor([float(lengths[b].max() - lengths[b].min()) for b in batches])
        assert spread.mean() < 0.5 * float(lengths.max() - lengths.min())


def test_grouped_training_runs_and_is_reproducible(inputs):
    loop = LoopConfig(epochs=2, patience=0, progress=False)
    _, a = _train(inputs, loop, targets_per_input=4, max_len=20)
    _, b = _train(inputs, loop, targets_per_input=4, max_len=20)
    assert _strip(a.history) == _strip(b.history) and a.history[-1]["loss"] < a.history[0]["loss"]
    _, c = _train(inputs, loop, bucket_by_length=True, max_len=20)
    assert np.isfinite(c.history[-1]["loss"])


def test_level_accuracy_counts_ranks_of_the_true_tokens(inputs):
    ds, table, u, i = inputs
    model, _ = train_generator(ds, table, u, i, GeneratorConfig.from_dict(CFG), LoopConfig(epochs=0, progress=False))
    df = gt.level_accuracy(model, ds, "val", ks=(1, 2, 1000), batch_size=7)
    assert df["level"].tolist() == [1, 2, 3] and (df["pairs"] == ds.val.nnz).all()
    assert (df["top1_acc"] <= df["top2_acc"]).all() and np.allclose(df["top1000_acc"], 1.0)
    assert (df["cross_entropy"] > 0).all()
    # top-1 accuracy of every level by hand (logits are deterministic in eval mode)
    model.eval()
    vu, vi = ds.val.tocsr().nonzero()
    with torch.no_grad():
        logits = model(torch.tensor(vu, dtype=torch.long), torch.tensor(vi, dtype=torch.long))
    top1 = (logits.argmax(2) == model.codes[torch.tensor(vi, dtype=torch.long)]).double().mean(0)
    assert np.allclose(df["top1_acc"], top1.numpy())


def test_batches_hold_batch_size_targets():
    """Batches are cut by targets, not by inputs: groups of 1 and of 8 targets both fill a 64-target batch."""
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(1, 9, (500,), generator=g)
    lengths = torch.randint(0, 50, (500,), generator=g)
    for bucket in (False, True):
        batches = gt.batch_indices(lengths, 64, torch.Generator().manual_seed(1), bucket, pool_batches=3, sizes=sizes)
        assert sorted(torch.cat(batches).tolist()) == list(range(500))
        totals = torch.tensor([int(sizes[b].sum()) for b in batches])
        assert (totals <= 64 + 7).all() and (totals >= 57).sum() >= len(batches) - 1   # one partial batch at most
    ones = gt.batch_indices(lengths, 64, torch.Generator().manual_seed(1), False, sizes=torch.ones(500, dtype=torch.long))
    assert [b.numel() for b in ones] == [64] * 7 + [500 - 7 * 64]


def test_length_chunks_partition_the_batch_by_length_band():
    lengths = torch.tensor([1, 50, 3, 2, 40, 33, 5, 7, 6, 49, 0, 16])
    chunks = gt.length_chunks(lengths, min_rows=1)
    assert sorted(torch.cat(chunks).tolist()) == list(range(12))
    for c in chunks:
        band = torch.log2(lengths[c].clamp(min=1).double()).floor()
        assert band.max() == band.min()                                    # one power-of-two band per chunk
    merged = gt.length_chunks(lengths, min_rows=4)
    assert sorted(torch.cat(merged).tolist()) == list(range(12)) and all(c.numel() >= 4 for c in merged)
    assert len(gt.length_chunks(lengths, min_rows=100)) == 1


@pytest.mark.parametrize("grouped", [False, True])
def test_chunked_gradient_equals_the_whole_batch(inputs, grouped):
    """Accumulating over length chunks (and trimming empty target slots) is the same step as one padded pass."""
    ds, table, u, i = inputs
    config = GeneratorConfig.from_dict({**CFG, "max_len": 50, "dropout": 0.0})
    model = gt.build_generator(ds, table, u, i, config).eval()       # eval: no dropout; max_len: no subsets
    users, items = training_pairs(ds)
    if grouped:
        counts = torch.bincount(users, minlength=ds.n_users)
        users, items = gt.training_groups(counts, users, items, 4, torch.Generator().manual_seed(0))
        items = torch.cat([items, torch.full((items.shape[0], 3), -1)], 1)   # extra empty slots
    idx = torch.arange(0, users.numel(), 3)
    users, items = users[idx], items[idx]
    lengths = torch.as_tensor(np.diff(ds.train.indptr))[users]

    def grads(chunks):
        model.zero_grad(set_to_none=True)
        total, n = gt.accumulate_gradients(model, users, items, chunks)
        return total, n, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    whole, n1, g1 = grads([torch.arange(users.numel())])
    parts, n2, g2 = grads(gt.length_chunks(lengths, min_rows=2))
    assert n1 == n2 == int((items >= 0).sum())
    assert torch.allclose(whole, parts, rtol=1e-5)
    assert len(g1) == len(g2) and all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g2))


# ---------------------------------------------------------------------- levers beyond the paper (issue 11)
def test_user_memory_token_feeds_the_decoder(inputs):
    ds, table, u, i = inputs
    model = gt.build_generator(ds, table, u, i, GeneratorConfig.from_dict({**CFG, "user_memory": True})).eval()
    users = torch.arange(6)
    memory, pad = model.encode(users)
    plain = gt.build_generator(ds, table, u, i, GeneratorConfig.from_dict(CFG)).eval()
    memory0, pad0 = plain.encode(users)
    assert memory.shape == (6, memory0.shape[1] + 1, CFG["d_model"]) and not pad[:, 0].any()
    assert torch.equal(pad[:, 1:], pad0)
    # the first memory slot is the projected h_u: changing h_u changes what the decoder reads
    logits = model(users, torch.arange(6))
    model.user_repr[users] += 1.0
    assert not torch.allclose(logits, model(users, torch.arange(6)))
    lists, _ = model.recommend(users, 5, 10)
    assert lists.shape == (6, 5)
    _, res = _train(inputs, LoopConfig(epochs=2, patience=0, progress=False), user_memory=True)
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_restricted_loss_is_cross_entropy_over_the_trie_children(inputs):
    ds, table, u, i = inputs
    model = gt.build_generator(ds, table, u, i, GeneratorConfig.from_dict({**CFG, "dropout": 0.0})).eval()
    users, items = torch.arange(10), torch.arange(10)
    logits = model(users, items)                                                    # (B, M, Cmax)
    codes = model.codes[items]
    ref = 0.0
    for lvl in range(model.n_levels):
        node = model.trie.item_node(lvl)[items]
        allowed = model.trie.child_table(lvl)[node] >= 0                            # (B, card)
        z = logits[:, lvl, :model.cardinalities[lvl]].masked_fill(~allowed, float("-inf"))
        ref += torch.nn.functional.cross_entropy(z, codes[:, lvl])
    got = model.loss(users, items, restricted=True)
    assert torch.allclose(got, ref / model.n_levels)
    assert got < model.loss(users, items)                                           # fewer competitors
    with pytest.raises(ValueError, match="label_smoothing"):
        GeneratorConfig.from_dict({**CFG, "restricted_loss": True, "label_smoothing": 0.1})


def test_unit_weights_give_the_unweighted_loss_and_weights_reweight(inputs):
    ds, table, u, i = inputs
    model = gt.build_generator(ds, table, u, i, GeneratorConfig.from_dict({**CFG, "dropout": 0.0})).eval()
    users, items = torch.arange(8), torch.stack([torch.arange(8), torch.arange(8, 16)], 1)   # (8, 2)
    items[3, 1] = -1
    assert torch.allclose(model.loss(users, items, weights=torch.ones(8)), model.loss(users, items))
    only_first = torch.zeros(8)
    only_first[0] = 1.0
    assert torch.allclose(model.loss(users, items, weights=only_first), model.loss(users[:1], items[:1]))
    # chunked accumulation with weights = one weighted pass over the batch
    w = torch.rand(8, generator=torch.Generator().manual_seed(0)) + 0.1
    def grads(chunks):
        model.zero_grad(set_to_none=True)
        total, _ = gt.accumulate_gradients(model, users, items, chunks, weights=w)
        return total, [p.grad.clone() for p in model.parameters() if p.grad is not None]
    t1, g1 = grads([torch.arange(8)])
    t2, g2 = grads([torch.arange(3), torch.arange(3, 8)])
    assert torch.allclose(t1, t2) and all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g2))


def test_user_weighted_training_runs_and_keys_ignore_default_levers(inputs):
    _, res = _train(inputs, LoopConfig(epochs=2, patience=0, progress=False), user_weight_power=1.0,
                    restricted_loss=True)
    assert all(np.isfinite(r["loss"]) for r in res.history)
    base = GeneratorConfig.from_dict(CFG)
    assert set(base.flat()) - set(base.key_settings()) == {"user_memory", "restricted_loss", "user_weight_power",
                                                           "lr_schedule", "schedule_epochs", "lr_min_ratio",
                                                           "distill_weight", "distill_temperature", "distill_teacher",
                                                           "tie_output",
                                                           "target_pop_power", "set_loss", "warmup_epochs",
                                                           "logit_adjust", "user_sample_cap"}
    assert base.replace(user_memory=True).key_settings()["user_memory"] is True
    with pytest.raises(ValueError, match="user_weight_power"):
        GeneratorConfig.from_dict({**CFG, "user_weight_power": -1.0})


def test_hybrid_rerank_keeps_the_beam_and_reorders_it(inputs):
    from mmgrec_lib.experiments.hybrid import hybrid_evaluate, hybrid_rank, hybrid_sweep
    ds, table, u, i = inputs
    model, _ = _train(inputs, LoopConfig(epochs=1, patience=0, progress=False))
    users = torch.arange(8)
    lists = hybrid_rank(model, u, i, users, 5, 12, [0.0, 1.0])
    items, _ = model.recommend(users, 12, 12)
    assert torch.equal(lists[0.0], items[:, :5])                                 # w = 0: the generator's order
    dot = (u[users, None, :] * i[items.clamp(min=0)]).sum(-1).masked_fill(items < 0, float("-inf"))
    assert torch.equal(lists[1.0], items.gather(1, dot.argsort(dim=1, descending=True, stable=True)[:, :5]))
    res = hybrid_evaluate(model, u, i, ds, "test", [0.0], ks=(10,), beam=12)[0.0]
    ref = evaluate_generator(model, ds, "test", ks=(10,), beam_width=12)
    assert res["recall@10"] == pytest.approx(ref["recall@10"]) and res["ndcg@10"] == pytest.approx(ref["ndcg@10"])
    tab, w, test = hybrid_sweep(model, u, i, ds, weights=(0.0, 0.5, 1.0), beam=20, ks=(10, 20))
    assert tab["chosen"].sum() == 1 and w in (0.0, 0.5, 1.0) and "recall@20" in test.mean()
    with pytest.raises(ValueError, match="beam"):
        hybrid_rank(model, u, i, users, 10, 5, [0.0])


def test_warmup_factor_rises_linearly_over_the_runs_steps():
    got = [gt.warmup_factor(2, e, s, 4) for e in (1, 2, 3) for s in range(4)]
    assert got == pytest.approx([1 / 8, 2 / 8, 3 / 8, 4 / 8, 5 / 8, 6 / 8, 7 / 8, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert gt.warmup_factor(0, 1, 0, 4) == 1.0


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warmup_scales_each_steps_rate_and_leaves_keys_alone(inputs, monkeypatch, schedule):
    from mmgrec_lib.generator.config import TrainConfig
    seen = []                                      # the rate at every optimiser step, in order
    real = gt.make_optimizer

    def recording(model, config):
        opt = real(model, config)
        step = opt.step

        def logged(*a, **k):
            seen.append(opt.param_groups[0]["lr"])
            return step(*a, **k)
        opt.step = logged
        return opt
    monkeypatch.setattr(gt, "make_optimizer", recording)
    kw = dict(warmup_epochs=2) | (dict(lr_schedule="cosine", schedule_epochs=3) if schedule == "cosine" else {})
    _, res = _train(inputs, LoopConfig(epochs=3, patience=0, progress=False), **kw)
    train = GeneratorConfig.from_dict({**CFG, **kw}).train
    steps = len(seen) // 3                         # the tiny dataset's epochs have the same number of batches
    assert len(seen) == 3 * steps and steps >= 2
    want = [gt.epoch_lr(train, e) * gt.warmup_factor(2, e, s, steps) for e in (1, 2, 3) for s in range(steps)]
    assert seen == pytest.approx(want)
    assert seen[0] < seen[steps - 1] and seen[-1] == pytest.approx(gt.epoch_lr(train, 3))   # warm, then the schedule
    base = GeneratorConfig.from_dict(CFG)
    assert base.replace(warmup_epochs=0).key_settings() == base.key_settings()       # old run keys still found
    assert base.replace(warmup_epochs=1).key_settings() != base.key_settings()
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(warmup_epochs=-1)


def test_cosine_schedule_sets_each_epochs_lr_and_constant_leaves_keys_alone(inputs):
    from mmgrec_lib.generator.config import TrainConfig
    c = TrainConfig(lr=1e-2, lr_schedule="cosine", schedule_epochs=4, lr_min_ratio=0.1)
    lrs = [gt.epoch_lr(c, e) for e in range(1, 7)]
    assert lrs[0] == pytest.approx(1e-2) and lrs[4] == pytest.approx(1e-3) and lrs[5] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[:4], lrs[1:5]))
    _, res = _train(inputs, LoopConfig(epochs=3, patience=0, progress=False), lr_schedule="cosine", schedule_epochs=2)
    assert [r["lr"] for r in res.history] == pytest.approx([gt.epoch_lr(GeneratorConfig.from_dict(
        {**CFG, "lr_schedule": "cosine", "schedule_epochs": 2}).train, e) for e in (1, 2, 3)])
    base = GeneratorConfig.from_dict(CFG)
    assert base.replace(schedule_epochs=9).key_settings() == base.key_settings()   # inert without cosine
    with pytest.raises(ValueError, match="schedule_epochs"):
        GeneratorConfig.from_dict({**CFG, "lr_schedule": "cosine"})
    with pytest.raises(ValueError, match="lr_schedule"):
        GeneratorConfig.from_dict({**CFG, "lr_schedule": "step"})
