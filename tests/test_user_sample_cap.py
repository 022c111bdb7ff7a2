"""Per-user sampling of training targets (``TrainConfig.user_sample_cap``, not the paper's): the groups an epoch
keeps, their invariants, and a generator trained with it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _fixtures import random_recid_setup
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.generator import training as gt
from mmgrec_lib.training import LoopConfig

SMALL = dict(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8)
CFG = dict(SMALL, batch_size=64, beam_width=10, val_ks=(10,), lr=5e-3, device="cpu", dropout=0.0,
           targets_per_input=2)


def _groups(counts, T, seed=0):
    counts = torch.as_tensor(counts)
    users = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    items = torch.arange(users.numel())
    return gt.training_groups(counts, users, items, T, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("cap", [1, 4, 25])
def test_each_user_keeps_about_cap_targets_and_light_users_keep_all(T, cap):
    counts = [1, 3, 7, 40, 0, 100]
    g_users, g_items = _groups(counts, T)
    n = (g_items >= 0).sum(1)
    keep = gt.capped_groups(g_users, n, cap, torch.Generator().manual_seed(1))
    for user, total in enumerate(counts):
        mine = g_users == user
        if total == 0:
            assert not mine.any()
            continue
        kept = int(n[mine & keep].sum())
        largest = int(n[mine].max())
        if total <= cap:
            assert kept == total                                  # light users keep every target
        else:
            assert cap <= kept < cap + largest                    # stops at the first group past the cap
        assert (mine & keep).any()                                # everyone keeps a group


def test_the_kept_groups_are_a_fresh_random_draw():
    g_users, g_items = _groups([50, 60], 1)
    n = (g_items >= 0).sum(1)
    a = gt.capped_groups(g_users, n, 5, torch.Generator().manual_seed(1))
    b = gt.capped_groups(g_users, n, 5, torch.Generator().manual_seed(1))
    c = gt.capped_groups(g_users, n, 5, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)            # seeded, and another seed draws others
    with pytest.raises(ValueError, match="cap"):
        gt.capped_groups(g_users, n, 0, torch.Generator())


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_field_is_checked_and_left_out_of_run_keys_while_off(bad):
    base = GeneratorConfig.from_dict(CFG)
    assert "user_sample_cap" not in base.key_settings()
    assert base.replace(user_sample_cap=5).key_settings()["user_sample_cap"] == 5
    with pytest.raises((ValueError, TypeError), match="user_sample_cap"):    # wrong type or range, named
        GeneratorConfig.from_dict({**CFG, "user_sample_cap": bad})


def test_training_with_a_cap_sees_fewer_targets_and_still_learns():
    ds, table, u, i = random_recid_setup(n_users=30, n_items=60, codes=3, seed=3)
    loop = LoopConfig(epochs=2, patience=0, progress=False)
    model, res = gt.train_generator(ds, table, u, i, GeneratorConfig.from_dict({**CFG, "user_sample_cap": 2}), loop,
                                    torch.Generator().manual_seed(3))
    plain, res0 = gt.train_generator(ds, table, u, i, GeneratorConfig.from_dict(CFG), loop,
                                     torch.Generator().manual_seed(3))
    assert all(np.isfinite(r["loss"]) for r in res.history)
    assert not all(torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters()))
    lists, _ = model.recommend(torch.arange(ds.n_users), 10, 10)
    assert lists.shape == (ds.n_users, 10)


def test_shuffled_within_keeps_users_grouped_and_draws_one_uniform_per_entry():
    """The shuffle both training_groups and capped_groups use: a permutation that keeps each user's entries
    together and in user order, varies the order within users, and draws exactly one float64 uniform per entry
    (so the generator's stream after it is the one the epochs drew before the helper existed)."""
    users = torch.repeat_interleave(torch.arange(5), torch.tensor([4, 0, 9, 1, 30]))
    g = torch.Generator().manual_seed(3)
    order = gt.shuffled_within(users, g)
    assert sorted(order.tolist()) == list(range(users.numel()))
    assert torch.equal(users[order], users)                               # grouped, users in order
    assert not torch.equal(order, torch.arange(users.numel()))           # shuffled within users
    ref = torch.Generator().manual_seed(3)
    expected = torch.argsort(users.double() + torch.rand(users.numel(), generator=ref, dtype=torch.float64))
    assert torch.equal(order, expected)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=ref))   # same stream afterwards
