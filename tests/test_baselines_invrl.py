"""InvRL under the Recommender interface: shapes, learning signal on planted clusters, save/load (with the learned
mask), determinism, exact resume, clear errors without modality features or with bad configs; its stages against
direct computations: the closed-form projection gradient against autograd, the gradient-variance penalty, the
environment assignment (argmax over the environment scorers), environments that partition the training pairs,
the mask in [0, 1] and the recommender's scores against a dense LightGCN on the masked features. Tiny data only
(make_tiny_dataset: 40 users x 60 items, two modalities)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _baseline_checks import CommonChecks, Harness, ModalityChecks, loop
from _fixtures import make_tiny_dataset
from mmgrec_lib.baselines import BASELINES, Recommender
from mmgrec_lib.baselines.invrl import (InvRL, InvRLConfig, assign_environments, bpr_projection_gradient,
                                        gradient_variance_penalty, hard_gate, identify_environments, pair_margins)
from mmgrec_lib.training.sampling import BPRSampler

SMALL = {InvRL: dict(dim=16, content_dim=8, n_layers=2, n_envs=2, n_rounds=1, env_iters=2, env_epochs=2,
                     mask_epochs=2, lr=0.02, batch_size=128, device="cpu")}
MODELS = [InvRL]
H = Harness(SMALL)
_build, _trained = H.build, H.trained


@pytest.fixture(scope="module")
def ds():
    return make_tiny_dataset()


class TestCommon(CommonChecks, ModalityChecks):
    harness, MODELS, SEED_EPOCHS, KEEPS_GLOBAL_RNG = H, MODELS, 3, True


def test_registered_and_config_errors(ds):
    assert BASELINES["invrl"] is InvRL
    for make, match in [(lambda: InvRLConfig(n_envs=0), "n_envs must be > 0"),
                        (lambda: InvRLConfig(n_rounds=-1), "n_rounds must be >= 0"),
                        (lambda: InvRLConfig(env_iters=0), "env_iters must be > 0"),
                        (lambda: InvRLConfig(mask_epochs=0), "mask_epochs must be > 0"),
                        (lambda: InvRLConfig(penalty_weight=-1.0), "penalty_weight must be >= 0"),
                        (lambda: InvRLConfig(gate_noise=-0.1), "gate_noise must be >= 0"),
                        (lambda: InvRLConfig(stage_lr=0.0), "stage_lr must be > 0"),
                        (lambda: InvRLConfig(n_layers=-1), "n_layers must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match=r"InvRLConfig: n_envs = 2.5"):
        InvRLConfig(n_envs=2.5)
    assert InvRLConfig(modalities=["visual"]).modalities == ("visual",)


# ---------------------------------------------------------------------------------------------- stage pieces
def test_closed_form_projection_gradient_matches_autograd():
    gen = torch.Generator().manual_seed(0)
    pref = torch.randn(7, 3, generator=gen, dtype=torch.double).requires_grad_()           # (n, C)
    proj = torch.randn(3, 5, generator=gen, dtype=torch.double).requires_grad_()           # (C, F)
    diff = torch.randn(7, 5, generator=gen, dtype=torch.double).requires_grad_()           # (n, F)
    x = pair_margins(pref, proj, diff)
    direct = torch.stack([pref[t] @ proj @ diff[t] for t in range(7)])                      # q_u^T W d
    assert torch.allclose(x, direct)
    risk = -F.logsigmoid(x).mean()
    auto, = torch.autograd.grad(risk, proj, create_graph=True)
    closed = bpr_projection_gradient(pref, diff, x)
    assert closed.shape == (3, 5) and torch.allclose(closed, auto)
    # ... and so are its own derivatives (the penalty backpropagates through it)
    w = torch.randn(3, 5, generator=gen, dtype=torch.double)
    g_auto = torch.autograd.grad((auto * w).sum(), (pref, diff), retain_graph=True)
    g_closed = torch.autograd.grad((closed * w).sum(), (pref, diff))
    assert all(torch.allclose(a, b) for a, b in zip(g_auto, g_closed))


def test_gradient_variance_penalty_against_a_direct_computation():
    gen = torch.Generator().manual_seed(1)
    grads = torch.randn(3, 2, 4, generator=gen, dtype=torch.double)                        # (E, C, F)
    gate = torch.tensor([0.0, 0.5, 1.0, 0.25], dtype=torch.double)
    mean = grads.mean(0)
    var = sum((g - mean) ** 2 for g in grads) / 3                                           # (C, F)
    nu = (grads ** 2).mean()
    expected = sum(float((gate[k] * var[c, k] / nu) ** 2) for c in range(2) for k in range(4)) / 8
    assert float(gradient_variance_penalty(grads, gate)) == pytest.approx(expected)
    assert float(gradient_variance_penalty(grads[:1], gate)) == 0.0                        # one environment
    assert float(gradient_variance_penalty(grads[:1].expand(3, 2, 4), gate)) == 0.0        # identical gradients
    assert float(gradient_variance_penalty(grads, torch.zeros(4, dtype=torch.double))) == 0.0
    # scale-free: the same value for gradients 1000x larger
    assert float(gradient_variance_penalty(grads * 1000, gate)) == pytest.approx(expected)
    # a gate with more weight on a disagreeing dimension is penalised more: the gradient pushes that gate down
    mu = torch.zeros(4, dtype=torch.double, requires_grad=True)
    gradient_variance_penalty(grads, hard_gate(mu)).backward()
    assert (mu.grad > 0).all()                                                               # descent lowers them
    assert torch.equal(hard_gate(torch.tensor([-1.0, -0.5, 0.0, 0.2, 0.7])), torch.tensor([0.0, 0.0, 0.5, 0.7, 1.0]))


def test_environment_assignment_is_the_argmax_of_the_scorers():
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(6, 4, generator=gen)                                                 # (I, F)
    pref, proj = torch.randn(3, 5, 2, generator=gen), torch.randn(3, 2, 4, generator=gen)  # (E, U, C), (E, C, F)
    users, items = torch.tensor([0, 1, 4, 4, 2]), torch.tensor([5, 0, 3, 1, 1])
    env = assign_environments(feats, pref, proj, users, items)
    for t in range(5):
        scores = [float(pref[e, users[t]] @ proj[e] @ feats[items[t]]) for e in range(3)]
        assert int(env[t]) == max(range(3), key=scores.__getitem__)
    # without variant features every scorer says 0: all pairs in the first environment (ties: lowest index)
    assert torch.equal(assign_environments(torch.zeros(6, 4), pref, proj, users, items), torch.zeros(5, dtype=torch.long))


def test_environments_partition_the_training_pairs(ds):
    model = _build(InvRL, ds, n_envs=3)
    sampler = BPRSampler(ds.train)
    config = model.config
    mask = torch.zeros(model.item_features.shape[1])
    env, log = identify_environments(model.item_features, mask, sampler.users, sampler.items, ds.n_users, config,
                                     sampler, torch.Generator().manual_seed(0))
    assert env.shape == (ds.train.nnz,) and env.dtype == torch.long and 0 <= int(env.min()) <= int(env.max()) < 3
    assert 1 <= log["env_iters"] <= config.env_iters and 0.0 <= log["moved"] <= 1.0
    again, _ = identify_environments(model.item_features, mask, sampler.users, sampler.items, ds.n_users, config,
                                     sampler, torch.Generator().manual_seed(0))
    assert torch.equal(env, again)                                                           # reproducible


# ---------------------------------------------------------------------------------------------- the model
def test_fit_learns_a_mask_and_environments(ds, tmp_path):
    fresh = _build(InvRL, ds)
    assert torch.equal(fresh.mask, torch.ones(ds.features["visual"].shape[1] + ds.features["textual"].shape[1]))
    assert fresh.environments is None and fresh.stage_log == [] and not bool(fresh.stage_done)
    model, _ = _trained(InvRL, ds, epochs=2, n_rounds=2, n_envs=3)
    assert model.mask.shape == fresh.mask.shape and (model.mask >= 0).all() and (model.mask <= 1).all()
    assert not torch.equal(model.mask, fresh.mask)
    assert model.environments.shape == (ds.train.nnz,) and int(model.environments.max()) < 3
    assert [r["round"] for r in model.stage_log] == [1, 2] and bool(model.stage_done)
    assert all(sum(r["env_sizes"]) == ds.train.nnz and len(r["env_sizes"]) == 3 for r in model.stage_log)
    # the mask travels with the saved model
    loaded = Recommender.load(model.save(tmp_path / "m.pt"))
    assert torch.equal(loaded.mask, model.mask) and bool(loaded.stage_done)
    # n_rounds = 0: no stage, the mask stays all ones
    plain, _ = _trained(InvRL, ds, epochs=1, n_rounds=0)
    assert torch.equal(plain.mask, fresh.mask) and plain.stage_log == []


def test_scores_are_lightgcn_on_ids_and_masked_content(ds):
    model = _build(InvRL, ds, n_layers=2)
    with torch.no_grad():
        model.mask.copy_(torch.rand(model.mask.shape, generator=torch.Generator().manual_seed(0)))
        model.mask[:3] = 0.0                                                                 # some dimensions dropped
        model.proj_bias.normal_(generator=torch.Generator().manual_seed(1))
    n = ds.n_users + ds.n_items
    r = torch.from_numpy(ds.train.toarray()).double()
    a = torch.zeros(n, n, dtype=torch.double)
    a[:ds.n_users, ds.n_users:], a[ds.n_users:, :ds.n_users] = r, r.T
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
    a_hat = inv[:, None] * a * inv[None, :]
    content = (model.item_features.double() * model.mask.double()) @ model.proj_weight.double().T \
        + model.proj_bias.double()                                                           # (I, C)
    x = torch.cat([torch.cat([model.user_emb, model.user_pref], 1).double(),
                   torch.cat([model.item_emb.double(), content], 1)])                       # (U+I, D+C)
    e = (x + a_hat @ x + a_hat @ a_hat @ x) / 3
    expected = e[:ds.n_users] @ e[ds.n_users:].T                                             # (U, I)
    users = torch.arange(ds.n_users)
    assert torch.allclose(model.score(users).double(), expected, atol=1e-5)
    # a dimension masked to 0 plays no part: changing its feature values changes no score
    before = model.score(users)
    with torch.no_grad():
        model.item_features[:, :3] += 5.0
        model.mask.mul_(1.0)                                         # bumps the mask version: caches rebuilt
    assert torch.allclose(model.score(users), before, atol=1e-6)
    # ... while a kept dimension does
    with torch.no_grad():
        model.item_features[:, 3] += 5.0
        model.mask.mul_(1.0)
    assert not torch.allclose(model.score(users), before, atol=1e-4)


def test_stage_losses_are_finite_and_the_penalty_moves_the_mask(ds):
    base, _ = _trained(InvRL, ds, epochs=1, n_envs=3, penalty_weight=0.0, mask_epochs=4)
    strong, _ = _trained(InvRL, ds, epochs=1, n_envs=3, penalty_weight=100.0, mask_epochs=4)
    for model in (base, strong):
        log = model.stage_log[-1]
        assert torch.isfinite(torch.tensor([log["risk"], log["penalty"], log["mask_mean"]])).all()
    assert not torch.equal(base.mask, strong.mask)
    assert strong.mask.mean() < base.mask.mean()                       # a strong penalty closes gates


def test_stages_run_once_in_the_first_epoch_and_not_again_on_resume(ds, tmp_path, monkeypatch):
    calls = []
    original = InvRL.learn_invariant_mask

    def counted(self, *args):
        calls.append(len(calls))
        return original(self, *args)

    monkeypatch.setattr(InvRL, "learn_invariant_mask", counted)
    ckpt = tmp_path / "ckpt.pt"
    part = _build(InvRL, ds)
    part.fit(ds, loop(2, checkpoint=ckpt), torch.Generator().manual_seed(1))
    assert calls == [0]                                                   # once, not per epoch
    fresh = _build(InvRL, ds)
    result = fresh.fit(ds, loop(4, checkpoint=ckpt), torch.Generator().manual_seed(1))
    assert result.resumed_from == 2 and calls == [0]                      # the checkpoint holds the mask
    assert torch.equal(fresh.mask, part.mask) and bool(fresh.stage_done)
    with pytest.raises(RuntimeError, match="the stages run inside fit"):
        _build(InvRL, ds).start_epoch(torch.Generator())
