"""The optimisers on ``foreach`` kernels (``training.optim``) give the for-loop implementation's results bit for bit,
so runs recorded before the switch stay reproducible."""
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
