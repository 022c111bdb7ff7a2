"""Knowledge distillation of the first stage's dot-product ranking into the generator (not the paper's):
the teacher's per-level conditionals, the KL term, exactness of lambda = 0 and of chunked accumulation, run keys,
config errors and a tiny end-to-end run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _fixtures import make_tiny_dataset
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.generator import training as gt
from mmgrec_lib.generator.config import LATER_DEFAULTS, TrainConfig
from mmgrec_lib.generator.model import MMGRecGenerator, grouped_logsumexp
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.training import LoopConfig

SMALL = dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=5)
CFG = dict(SMALL, batch_size=64, beam_width=10, val_ks=(10,), lr=5e-3, device="cpu")
NEW_FIELDS = ("distill_weight", "distill_temperature", "distill_teacher")


@pytest.fixture(scope="module")
def inputs():
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    rng = np.random.default_rng(0)
    table = RecIDTable(disambiguate(rng.integers(0, 4, (ds.n_items, 2)), ds.item_popularity()))   # 3 levels
    g = torch.Generator().manual_seed(1)
    return ds, table, torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g)


def _model(inputs, **kw) -> MMGRecGenerator:
    ds, table, u, i = inputs
    torch.manual_seed(0)
    return MMGRecGenerator(table, u, i, ds.train, distill_teacher=True, **{**SMALL, **kw}).eval()


def _batch(ds, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    users, items = gt.training_pairs(ds)
    pick = torch.randperm(users.numel(), generator=torch.Generator().manual_seed(3))[:n]
    return users[pick], items[pick]


def _grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------------- the teacher
def test_grouped_logsumexp_matches_a_loop():
    x = torch.randn(3, 7, generator=torch.Generator().manual_seed(0)) * 30          # large: needs stability
    group = torch.tensor([2, 0, 2, 1, 0, 2, 2])
    out = grouped_logsumexp(x, group, 4)                                           # group 3 is empty
    for g in range(3):
        torch.testing.assert_close(out[:, g], torch.logsumexp(x[:, group == g], 1))
    assert torch.isneginf(out[:, 3]).all()


def test_teacher_conditionals_match_brute_force_on_a_tiny_trie():
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 2, 0], [1, 1, 0], [1, 1, 1], [1, 1, 2], [2, 0, 0], [0, 2, 1]])
    table = RecIDTable(codes, cardinalities=[3, 3, 3])
    g = torch.Generator().manual_seed(5)
    n_users, I = 4, codes.shape[0]
    h_u, h_i = torch.randn(n_users, 6, generator=g), torch.randn(I, 6, generator=g)
    history = np.zeros((n_users, I), dtype=np.float32)
    history[:, :3] = 1
    model = MMGRecGenerator(table, h_u, h_i, history, distill_teacher=True, **SMALL)
    users = torch.tensor([0, 1, 2, 3, 0, 2])
    items = torch.tensor([0, 3, 5, 6, 7, 2])
    tau = 0.7
    teacher = model.teacher_log_conditionals(users, items, tau)
    assert [t.shape for t in teacher] == [(6, 3)] * 3
    for p, (u, it) in enumerate(zip(users.tolist(), items.tolist())):
        mass = torch.exp(h_u[u] @ h_i.T / tau).double()                           # (I,) unnormalised p_T(i|u)
        for lvl in range(3):
            prefix = (torch.from_numpy(codes[:, :lvl]) == torch.from_numpy(codes[it, :lvl])).all(1)
            expected = torch.zeros(3, dtype=torch.float64)
            for t in range(3):
                expected[t] = mass[prefix & (torch.from_numpy(codes[:, lvl]) == t)].sum() / mass[prefix].sum()
            probs = teacher[lvl][p].exp().double()
            torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)
            children = (torch.from_numpy(codes[prefix.numpy(), lvl])).unique()
            off = torch.ones(3, dtype=torch.bool)
            off[children] = False
            assert torch.isneginf(teacher[lvl][p][off]).all()                      # outside the support: p = 0
            assert float(probs.sum()) == pytest.approx(1.0, abs=1e-6)
    assert not any(t.requires_grad for t in teacher)


def test_teacher_sums_to_one_over_the_valid_children(inputs):
    ds = inputs[0]
    model = _model(inputs)
    users, items = _batch(ds, 20)
    for lvl, t in enumerate(model.teacher_log_conditionals(users, items, 2.0)):
        allowed = model.trie.allowed(lvl, model.trie.item_node(lvl)[items])        # (P, card)
        assert torch.equal(torch.isfinite(t), allowed)
        torch.testing.assert_close(t.exp().sum(1), torch.ones(20))


# ---------------------------------------------------------------------- the loss
@pytest.mark.parametrize("kw", [{}, {"restricted": True}, {"label_smoothing": 0.1},
                                {"weights": torch.linspace(0.2, 2.0, 12)}])
def test_lambda_zero_is_bit_identical_to_the_cross_entropy(inputs, kw):
    ds = inputs[0]
    model = _model(inputs)
    users, items = _batch(ds)
    l0, g0 = _grads(model, lambda: model.loss(users, items, **kw))
    l1, g1 = _grads(model, lambda: model.loss(users, items, distill_weight=0.0, distill_temperature=3.0, **kw))
    assert torch.equal(l0, l1) and g0.keys() == g1.keys() and all(torch.equal(g0[n], g1[n]) for n in g0)
    if not kw:                                             # and equal to the cross-entropy written out here
        logits = model(users, items)
        ref = sum(F.cross_entropy(logits[:, lvl, :c], model.codes[items, lvl])
                  for lvl, c in enumerate(model.cardinalities)) / model.n_levels
        assert torch.equal(l0, ref.detach())


@pytest.mark.parametrize("restricted", [False, True])
def test_kl_is_zero_when_the_student_is_the_teacher(inputs, restricted):
    ds = inputs[0]
    model = _model(inputs)
    users, items = _batch(ds)
    tau = 1.5
    teacher = model.teacher_log_conditionals(users, items, tau)
    levels = [t[:, None] for t in teacher]                    # M x (P, 1, card_l): one target per row
    model.target_logits = lambda u, i, generator=None: levels  # the student's logits = the teacher's conditionals
    ce = model.loss(users, items, restricted=restricted)
    with_kl = model.loss(users, items, restricted=restricted, distill_weight=2.0, distill_temperature=tau)
    assert float(with_kl - ce) == pytest.approx(0.0, abs=1e-5)
    for t in teacher:
        assert float(model.distill_kl(t, t).abs().max()) < 1e-6
        assert (model.distill_kl(t, torch.log_softmax(torch.randn_like(t), 1)) >= -1e-6).all()


def test_student_gets_gradient_and_teacher_none(inputs):
    ds = inputs[0]
    model = _model(inputs, finetune_item_emb=True)
    assert model.teacher_item_repr() is not model.item_table and not model.teacher_item_repr().requires_grad
    users, items = _batch(ds)
    _, g0 = _grads(model, lambda: model.loss(users, items))
    loss, g1 = _grads(model, lambda: model.loss(users, items, distill_weight=1.0, distill_temperature=2.0))
    diff = sum(float((g1[n] - g0[n]).abs().sum()) for n in g0)
    assert diff > 0 and torch.isfinite(loss)
    assert float((g1["head.weight"] - g0["head.weight"]).abs().max()) > 0
    assert model.teacher_items.grad is None and model.user_repr.grad is None
    # training moves the fine-tuned item table, never the teacher's copy (nor is the copy saved)
    before = model.teacher_items.clone()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert torch.equal(model.teacher_items, before) and not torch.equal(model.item_table.detach(), before)
    assert "teacher_items" not in model.state_dict()


def test_frozen_table_is_the_teacher_without_a_copy(inputs):
    model = _model(inputs)
    assert "teacher_items" not in dict(model.named_buffers()) and model.teacher_item_repr() is model.item_table
    ds, table, u, i = inputs
    plain = MMGRecGenerator(table, u, i, ds.train, finetune_item_emb=True, **SMALL)
    with pytest.raises(ValueError, match="distill_teacher"):
        plain.loss(*_batch(ds), distill_weight=1.0)
    with pytest.raises(ValueError, match="columns"):
        MMGRecGenerator(table, u, i[:, :5], ds.train, distill_teacher=True, **SMALL)


@pytest.mark.parametrize("weighted", [False, True])
def test_chunked_accumulation_equals_one_pass(inputs, weighted):
    ds = inputs[0]
    model = _model(inputs, finetune_item_emb=True)
    users, items = gt.training_pairs(ds)
    counts = torch.bincount(users, minlength=ds.n_users)
    g_users, g_items = gt.training_groups(counts, users, items, 3, torch.Generator().manual_seed(0))
    u, i = g_users[:10], g_items[:10]                                              # (10,), (10, 3) with -1
    w = torch.linspace(0.5, 2.0, 10) if weighted else None
    kw = dict(weights=w, distill_weight=0.7, distill_temperature=1.3, restricted=True)

    def run(chunks):
        model.zero_grad(set_to_none=True)
        total, n = gt.accumulate_gradients(model, u, i, chunks, **kw)
        return total, n, [p.grad.clone() for p in model.parameters() if p.grad is not None]
    t1, n1, g1 = run([torch.arange(10)])
    t2, n2, g2 = run([torch.arange(4), torch.arange(4, 7), torch.arange(7, 10)])
    assert n1 == n2 and torch.allclose(t1, t2)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g1, g2))
    # the one pass is the model's loss of the whole batch
    with torch.no_grad():
        single = model.loss(u, i, weights=w, distill_weight=0.7, distill_temperature=1.3, restricted=True)
    scale = n1 if w is None else float((w * (i >= 0).sum(1)).sum())
    assert float(t1) == pytest.approx(float(single) * scale, rel=1e-5)


# ---------------------------------------------------------------------- config, run keys, training
def test_run_key_at_defaults_leaves_out_the_new_fields():
    base = GeneratorConfig.from_dict(CFG)
    key = base.key_settings()
    old = {k: v for k, v in base.flat().items()                    # the key as computed before these fields
           if k not in NEW_FIELDS and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
    assert key == old
    assert base.replace(distill_temperature=3.0).key_settings() == key            # inert while lambda = 0
    on = base.replace(distill_weight=0.5, distill_temperature=2.0).key_settings()
    assert (on["distill_weight"], on["distill_temperature"]) == (0.5, 2.0)
    assert "distill_temperature" not in base.replace(distill_weight=0.5).key_settings()   # tau at its default


@pytest.mark.parametrize("field,value,error", [("distill_weight", -0.1, ValueError),
                                               ("distill_weight", float("nan"), ValueError),
                                               ("distill_temperature", 0.0, ValueError),
                                               ("distill_temperature", -1.0, ValueError),
                                               ("distill_temperature", float("inf"), ValueError),
                                               ("distill_weight", "1", TypeError),
                                               ("distill_temperature", True, TypeError)])
def test_bad_values_name_the_field(field, value, error):
    with pytest.raises(error, match=field):
        TrainConfig(**{field: value})
    with pytest.raises(error, match=field):
        GeneratorConfig.from_dict({**CFG, field: value})


def test_two_epoch_training_with_distillation(inputs):
    ds, table, u, i = inputs
    config = GeneratorConfig.from_dict({**CFG, "distill_weight": 1.0, "distill_temperature": 2.0,
                                        "finetune_item_emb": True, "user_weight_power": 0.5, "label_smoothing": 0.1,
                                        "targets_per_input": 2})
    model, res = gt.train_generator(ds, table, u, i, config, LoopConfig(epochs=2, patience=0, progress=False),
                                    torch.Generator().manual_seed(7))
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert all(np.isfinite(r["loss"]) and "recall@10" in r for r in res.history)
    assert torch.equal(model.teacher_items.cpu(), i)                              # the teacher stayed as built
    plain, res0 = gt.train_generator(ds, table, u, i, config.replace(distill_weight=0.0),
                                     LoopConfig(epochs=1, patience=0, progress=False), torch.Generator().manual_seed(7))
    assert "teacher_items" not in dict(plain.named_buffers())
    assert res.history[0]["loss"] > res0.history[0]["loss"]                     # the KL term is added


# ---------------------------------------------------------------------- an external teacher (e.g. a tuned LightGCN)
def test_external_teacher_scores_with_its_own_vectors(inputs):
    ds, table, u, i = inputs
    g = torch.Generator().manual_seed(11)
    t_users, t_items = torch.randn(ds.n_users, 5, generator=g), torch.randn(ds.n_items, 5, generator=g)
    own = MMGRecGenerator(table, u, i, ds.train, distill_teacher=True, **SMALL)
    ext = MMGRecGenerator(table, u, i, ds.train, distill_teacher=True, teacher=(t_users, t_items), **SMALL)
    # the external teacher equals a first-stage teacher whose h_u, h_i are the external vectors
    as_first = MMGRecGenerator(table, t_users, t_items, ds.train, distill_teacher=True, **SMALL)
    users, items = _batch(ds)
    for a, b in zip(ext.teacher_log_conditionals(users, items, 1.3), as_first.teacher_log_conditionals(users, items, 1.3)):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in
               zip(ext.teacher_log_conditionals(users, items), own.teacher_log_conditionals(users, items)))
    assert "teacher_users" not in dict(ext.state_dict())                          # frozen, not saved


@pytest.mark.parametrize("teacher,match", [((torch.zeros(3, 5), torch.zeros(40, 5)), "30 users"),
                                           ((torch.zeros(30, 5), torch.zeros(40, 4)), "one width"),
                                           ((torch.full((30, 5), float("nan")), torch.zeros(40, 5)), "NaN"),
                                           ((torch.zeros(30, 5),), "pair")])
def test_bad_external_teacher_is_refused(inputs, teacher, match):
    ds, table, u, i = inputs
    with pytest.raises(ValueError, match=match):
        MMGRecGenerator(table, u, i, ds.train, distill_teacher=True, teacher=teacher, **SMALL)


def test_external_teacher_keys_the_run_and_must_be_given(inputs):
    ds, table, u, i = inputs
    base = GeneratorConfig.from_dict({**CFG, "distill_weight": 1.0})
    named = base.replace(distill_teacher="ml100k_lightgcn_0123456789")
    assert named.key_settings()["distill_teacher"] == "ml100k_lightgcn_0123456789"
    assert "distill_teacher" not in base.key_settings()
    assert "distill_teacher" not in named.replace(distill_weight=0.0).key_settings()   # inert without distillation
    with pytest.raises(TypeError, match="distill_teacher"):
        TrainConfig(distill_teacher=3)
    loop = LoopConfig(epochs=1, patience=0, progress=False)
    with pytest.raises(ValueError, match="no teacher vectors"):
        gt.train_generator(ds, table, u, i, named, loop)
    vectors = (torch.randn(ds.n_users, 5), torch.randn(ds.n_items, 5))
    with pytest.raises(ValueError, match="external teacher is off"):
        gt.train_generator(ds, table, u, i, base, loop, teacher=vectors)
    model, res = gt.train_generator(ds, table, u, i, named, loop, torch.Generator().manual_seed(7), teacher=vectors)
    assert np.isfinite(res.history[0]["loss"]) and torch.equal(model.teacher_users.cpu(), vectors[0])


def test_baseline_teacher_reproduces_the_baselines_scores(tmp_path):
    from mmgrec_lib.experiments.runs import baseline_teacher, baseline_run_path
    from mmgrec_lib.experiments.teachers import teacher_vectors
    from mmgrec_lib.baselines import BASELINES
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    loop = LoopConfig(epochs=2, patience=5, eval_every=1, progress=False)
    users, items = baseline_teacher(ds, "lightgcn", {"dim": 8}, loop, 0, tmp_path)
    assert users.shape == (ds.n_users, 8) and items.shape == (ds.n_items, 8)
    ckpt = baseline_run_path(tmp_path, ds, "lightgcn", BASELINES["lightgcn"].config_class(dim=8), loop, 0)
    assert ckpt.is_file()                                                           # the baselines' own run key
    again = baseline_teacher(ds, "lightgcn", {"dim": 8}, loop, 0, tmp_path)       # loaded, not retrained
    assert torch.equal(again[0], users) and torch.equal(again[1], items)

    class NotADotProduct(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def embeddings(self):
            return torch.ones(ds.n_users + ds.n_items, 2)

        def score(self, u):
            return torch.zeros(len(u), ds.n_items)
    with pytest.raises(ValueError, match="not the dot products"):
        teacher_vectors(NotADotProduct(), ds.n_users)
    with pytest.raises(ValueError, match="no embeddings"):
        teacher_vectors(torch.nn.Linear(2, 2), ds.n_users)


def test_teacher_spec_is_canonical_and_checked():
    from mmgrec_lib.experiments.teachers import parse_teacher_spec, teacher_spec
    spec = teacher_spec("lightgcn", {"lr": 0.005, "dim": 8}, {"patience": 20, "epochs": 400})
    assert spec == 'lightgcn {"config": {"dim": 8, "lr": 0.005}, "loop": {"epochs": 400, "patience": 20}}'
    assert teacher_spec("lightgcn", {"lr": 0.005, "dim": 8, "device": "cuda"}, {"patience": 20, "epochs": 400}) == spec
    given = {"model": "lightgcn", "config": {"dim": 8, "lr": 0.005}, "loop": {"epochs": 400, "patience": 20}}
    assert TrainConfig(distill_teacher=given).distill_teacher == spec              # a mapping is stored as its string
    assert TrainConfig(distill_teacher={**given, "config": {**given["config"], "device": "cpu"}}).distill_teacher == spec
    assert GeneratorConfig.from_dict({**CFG, "distill_teacher": given}).train.distill_teacher == spec
    assert parse_teacher_spec(spec) == ("lightgcn", {"dim": 8, "lr": 0.005}, {"epochs": 400, "patience": 20})
    with pytest.raises(ValueError, match="unknown baseline"):
        teacher_spec("lightgcnn")
    with pytest.raises(ValueError, match="unknown loop field"):
        teacher_spec("lightgcn", {}, {"epochz": 3})
    with pytest.raises(TypeError):
        teacher_spec("lightgcn", {"dimm": 8})
    with pytest.raises(ValueError, match="not '<baseline> <JSON>'"):
        parse_teacher_spec("lightgcn {oops")
    with pytest.raises(ValueError, match="canonical"):
        parse_teacher_spec('lightgcn {"loop": {}, "config": {}}')
    with pytest.raises(ValueError, match="'model'"):
        TrainConfig(distill_teacher={"config": {}})


def test_run_generator_trains_with_a_baseline_teacher_spec(tmp_path, inputs):
    from mmgrec_lib.experiments.runs import baseline_teacher, generator_run_path, run_generator
    from types import SimpleNamespace
    ds, table, u, i = inputs
    teacher = {"model": "lightgcn", "config": {"dim": 8}, "loop": {"epochs": 2, "eval_every": 1}}
    config = GeneratorConfig.from_dict({**CFG, "distill_weight": 1.0, "distill_teacher": teacher})
    loop = LoopConfig(epochs=1, patience=0, progress=False)
    recids = SimpleNamespace(table=table, user_emb=u, item_emb=i, config={"tiny": 1})   # what run_generator reads
    run = run_generator(ds, recids, config, loop, runs_dir=tmp_path, ks=(10,))
    want = baseline_teacher(ds, "lightgcn", {"dim": 8}, LoopConfig(epochs=2, eval_every=1), 0,
                            tmp_path)
    assert torch.equal(run.model.teacher_users.cpu(), want[0]) and torch.equal(run.model.teacher_items.cpu(), want[1])
    other = config.replace(distill_teacher={**teacher, "config": {"dim": 4}})
    assert generator_run_path(tmp_path, ds, recids.config, other, loop) != run.checkpoint   # the teacher keys the run
