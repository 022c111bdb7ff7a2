"""FastDropout: the drop rate, the scaling, determinism under the global seed, and its gradient."""
import pytest
import torch

from mmgrec_lib.generator.dropout import FastDropout, fast_dropout, keep_mask


def test_drop_rate_and_scale():
    torch.manual_seed(0)
    mask = keep_mask((400, 1000), 0.1)
    dropped = (mask == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.003                       # 4e5 draws: std of the rate ~5e-4
    kept = mask[mask > 0]
    assert torch.allclose(kept, torch.full_like(kept, 65536 / (65536 - round(0.1 * 65536))))
    assert abs(mask.mean().item() - 1.0) < 0.005            # expectation preserved


@pytest.mark.parametrize("p", [0.1, 0.5, 0.0])
def test_mask_is_the_draws_compared_then_scaled(p):
    """The mask's bits: each 16-bit lane of torch's 64-bit draws kept when ``>= round(p 2^16) - 2^15``, as
    ``1 / keep probability`` (the comparison written into floats in one pass must give exactly this)."""
    shape, drop = (37, 11, 5), round(p * 65536)
    g = torch.Generator().manual_seed(5)
    words = torch.randint(-2**63, 2**63 - 1, (-(-37 * 11 * 5 // 4),), dtype=torch.int64, generator=g)
    lanes = words.view(torch.int16)[:37 * 11 * 5].view(shape)
    want = (lanes >= drop - 32768).to(torch.float32) * (65536 / (65536 - drop))
    got = keep_mask(shape, p, generator=torch.Generator().manual_seed(5))
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert keep_mask(shape, p, torch.float64, generator=torch.Generator().manual_seed(5)).dtype == torch.float64


def test_lanes_are_independent():
    torch.manual_seed(1)
    mask = keep_mask((100000, 4), 0.5) > 0                  # the four lanes of each 64-bit word side by side
    both = (mask[:, 0] & mask[:, 3]).float().mean().item()
    assert abs(both - 0.25) < 0.01


def test_seeded_and_eval_identity():
    x = torch.randn(7, 33, 5)
    torch.manual_seed(3)
    a = fast_dropout(x, 0.2)
    torch.manual_seed(3)
    b = fast_dropout(x, 0.2)
    assert torch.equal(a, b) and not torch.equal(a, x)
    layer = FastDropout(0.2).eval()
    assert layer(x) is x
    assert FastDropout(0.0).train()(x) is x


def test_gradient_is_the_mask():
    x = torch.randn(3, 50, requires_grad=True)
    torch.manual_seed(4)
    y = FastDropout(0.3).train()(x)
    y.sum().backward()
    mask = torch.where(y.detach() != 0, y.detach() / x.detach(), torch.zeros(()))
    assert torch.allclose(x.grad, mask, atol=1e-5)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_probability(p):
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(p)
