"""The optimisers on ``foreach`` kernels (``training.optim``) give the for-loop implementation's results bit for bit,
so runs recorded before the switch stay reproducible."""
import copy

import pytest
import torch

from mmgrec_lib.training import adam, sgd

SHAPES = [(300, 16), (40, 8), (8, 8), (7,), (3, 101)]


def _train(make, steps: int = 12) -> list[torch.Tensor]:
    torch.manual_seed(1)
    ps = [torch.nn.Parameter(torch.randn(s) * 0.1) for s in SHAPES]
    g = torch.Generator().manual_seed(2)
    grads = [[torch.randn(s, generator=g) * 10.0 ** -k for s in SHAPES] for k in range(4)]
    opt = make([{"params": ps[:2]}, {"params": ps[2:], "lr": 3e-3}])
    for k in range(steps):
        for n, (p, grad) in enumerate(zip(ps, grads[k % 4])):
            p.grad = None if (k % 5 == 3 and n == 1) else grad.clone()   # a parameter without a gradient at times
        opt.step()
    return ps + [v for p in ps for v in opt.state[p].values() if torch.is_tensor(v) and v.ndim]


@pytest.mark.parametrize("kind", ["adam", "adam_l2", "adamw", "sgd"])
def test_foreach_optimisers_equal_the_for_loop_bit_for_bit(kind):
    ours, loop = {
        "adam": (lambda g: adam(g, 1e-3), lambda g: torch.optim.Adam(g, lr=1e-3, foreach=False)),
        "adam_l2": (lambda g: adam(g, 1e-3, 1e-2),
                    lambda g: torch.optim.Adam(g, lr=1e-3, weight_decay=1e-2, foreach=False)),
        "adamw": (lambda g: adam(g, 1e-3, 1e-2, decoupled=True),
                  lambda g: torch.optim.AdamW(g, lr=1e-3, weight_decay=1e-2, foreach=False)),
        "sgd": (lambda g: sgd(g, 5e-2, 0.9, 1e-4),
                lambda g: torch.optim.SGD(g, lr=5e-2, momentum=0.9, weight_decay=1e-4, foreach=False)),
    }[kind]
    a, b = _train(ours), _train(loop)
    assert len(a) == len(b) > len(SHAPES)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert isinstance(adam([torch.nn.Parameter(torch.zeros(2))], 1e-3, decoupled=True), torch.optim.AdamW)


def test_optimisers_reject_bad_settings():
    with pytest.raises(ValueError):
        adam([torch.nn.Parameter(torch.zeros(2))], -1.0)


# ---------------------------------------------------------------- Adam's fused kernel where it is exact
from mmgrec_lib.training.optim import FUSED_UNIT, fused_exact  # noqa: E402

FUSED_SHAPES = [(1000, 48), (64,), (16,), (35, 64), (7,), (3, 101), (24,)]   # sizes % 16: 0 0 0 0 7 15 8


def _run(make, steps: int = 300, threads: int = 1, state: dict | None = None):
    """``steps`` Adam steps on FUSED_SHAPES in two groups (lr changed mid-way, some gradients missing at times)."""
    torch.manual_seed(3)
    ps = [torch.nn.Parameter(torch.randn(s) * 0.1) for s in FUSED_SHAPES]
    g = torch.Generator().manual_seed(4)
    opt = make([{"params": ps[:3]}, {"params": ps[3:], "lr": 3e-3}])
    if state is not None:
        opt.load_state_dict(copy.deepcopy(state))          # load_state_dict keeps the saved tensors, stepped in place
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for k in range(steps):
            for n, p in enumerate(ps):
                grad = torch.randn(p.shape, generator=g) * 10.0 ** -(k % 5)
                p.grad = None if (k % 7 == 3 and n in (0, 4)) else grad
            if k == steps // 2:
                for group in opt.param_groups:
                    group["lr"] *= 0.5                                   # what a scheduler does
            opt.step()
    finally:
        torch.set_num_threads(previous)
    return ps, opt


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["adam", "adam_l2", "adamw"])
def test_adam_with_fused_kernel_equals_foreach_bit_for_bit(kind, threads):
    wd, decoupled = {"adam": (0.0, False), "adam_l2": (1e-2, False), "adamw": (1e-2, True)}[kind]
    reference = torch.optim.AdamW if decoupled else torch.optim.Adam
    a, opt_a = _run(lambda g: adam(g, 1e-3, wd, decoupled=decoupled), threads=threads)
    b, opt_b = _run(lambda g: reference(g, lr=1e-3, weight_decay=wd, foreach=True), threads=threads)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a.state[x][key], opt_b.state[y][key])


def test_the_fused_kernel_runs_exactly_on_the_parameters_it_steps_exactly(monkeypatch):
    """The fused kernel gets the parameters whose size is a multiple of 16, foreach the others; and on those others
    the fused kernel would indeed round differently (so the split is needed, and the test of equality above has
    parameters on both sides)."""
    import torch.optim.adam as torch_adam

    seen: list[int] = []
    real = torch_adam._fused_adam

    def spy(params, *args, **kwargs):
        seen.extend(id(p) for p in params)
        return real(params, *args, **kwargs)

    monkeypatch.setattr(torch_adam, "_fused_adam", spy)
    ps, _ = _run(lambda g: adam(g, 1e-3), steps=3)
    assert set(seen) == {id(p) for p in ps if p.numel() % FUSED_UNIT == 0}
    assert {p.numel() % FUSED_UNIT for p in ps} >= {0, 7, 15, 8}
    monkeypatch.undo()
    fused, _ = _run(lambda g: torch.optim.Adam(g, lr=1e-3, fused=True))
    plain, _ = _run(lambda g: torch.optim.Adam(g, lr=1e-3, foreach=True))
    assert any(not torch.equal(x, y) for x, y in zip(fused, plain) if x.numel() % FUSED_UNIT)


def test_adam_state_dict_is_torchs_and_checkpoints_load_both_ways():
    _, opt = _run(lambda g: adam(g, 1e-3), steps=40)
    assert len(opt.param_groups) == 2 and all(len(g["params"]) for g in opt.param_groups)
    _, plain = _run(lambda g: torch.optim.Adam(g, lr=1e-3, foreach=True), steps=40)
    saved = plain.state_dict()
    resumed, _ = _run(lambda g: adam(g, 1e-3), steps=25, state=saved)     # a foreach checkpoint, resumed here
    straight, _ = _run(lambda g: torch.optim.Adam(g, lr=1e-3, foreach=True), steps=25, state=saved)
    for x, y in zip(resumed, straight):
        assert torch.equal(x, y)
    ps = _run(lambda g: adam(g, 1e-3), steps=1)[0]                         # ours saved, torch's loads it
    back = torch.optim.Adam([{"params": ps[:3]}, {"params": ps[3:], "lr": 3e-3}], lr=1e-3, foreach=True)
    back.load_state_dict(opt.state_dict())
    assert all(torch.equal(back.state[p]["exp_avg_sq"], opt.state[q]["exp_avg_sq"])
               for p, q in zip(ps, [q for g in opt.param_groups for q in g["params"]]))


def test_fused_exact_rule():
    assert fused_exact(torch.zeros(32, 4))
    assert not fused_exact(torch.zeros(3, 5))                                  # 15: a scalar tail
    assert not fused_exact(torch.zeros(32, 4, dtype=torch.float64))           # only float32 is tested
    assert not fused_exact(torch.zeros(4, 32).t())                            # not contiguous
    assert not fused_exact(torch.zeros(0))


def test_fused_kernel_only_where_the_square_root_is_exact(monkeypatch):
    """foreach's square root runs through MKL's vector maths: exact on its AVX2 branch (the tests' and the entry points'
    setting), not on its AVX-512 branch; where it is not, every parameter stays on foreach."""
    import mmgrec_lib.training.optim as optim

    assert optim.sqrt_is_exact()                          # conftest pins the portable AVX2 kernels
    assert fused_exact(torch.zeros(32))
    monkeypatch.setattr(optim, "sqrt_is_exact", lambda: False)
    assert not fused_exact(torch.zeros(32))


def test_adam_bumps_parameter_versions_as_foreach_does():
    """Caches of propagated embeddings key on a parameter's version counter (``baselines.base.weights_key``); the
    fused kernel writes through raw pointers, so the optimiser bumps the counter itself."""
    for make in (lambda ps: adam(ps, 1e-3), lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True)):
        fused, tail, idle = (torch.nn.Parameter(torch.randn(n)) for n in (32, 7, 16))
        opt = make([fused, tail, idle])
        fused.grad, tail.grad = torch.ones(32), torch.ones(7)
        before = [p._version for p in (fused, tail, idle)]
        opt.step()
        after = [p._version for p in (fused, tail, idle)]
        assert after[0] > before[0] and after[1] > before[1] and after[2] == before[2]
