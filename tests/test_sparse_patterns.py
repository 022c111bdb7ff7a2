"""EdgePattern and sddmm: sparse products with learned values against dense computations, gradients by
gradcheck, and clear errors for bad patterns."""
import pytest
import torch

from mmgrec_lib.data.sparse import EdgePattern, sddmm


@pytest.fixture
def pattern():
    rows = torch.tensor([0, 3, 1, 6, 2, 2, 5, 4, 0])
    cols = torch.tensor([1, 0, 4, 2, 3, 0, 1, 4, 3])
    return EdgePattern(rows, cols, (7, 5))


def _dense(p, values):
    d = torch.zeros(p.shape, dtype=values.dtype)
    d[p.rows, p.cols] = values
    return d


def test_order_sorts_the_given_pairs_into_csr_order(pattern):
    keys = pattern.rows * 5 + pattern.cols
    assert torch.equal(keys, torch.sort(keys).values)
    given_rows = torch.tensor([0, 3, 1, 6, 2, 2, 5, 4, 0])
    assert torch.equal(given_rows[pattern.order], pattern.rows)
    assert pattern.nnz == 9


def test_products_equal_dense_ones_and_gradcheck(pattern):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(pattern.nnz, dtype=torch.float64, generator=g, requires_grad=True)
    x = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    a = torch.randn(7, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.allclose(pattern.spmm(v, x), _dense(pattern, v.detach()) @ x)
    assert torch.allclose(pattern.sddmm(a, b), (a @ b.T)[pattern.rows, pattern.cols])
    assert torch.autograd.gradcheck(pattern.spmm, (v, x))
    assert torch.autograd.gradcheck(pattern.sddmm, (a, b))
    csr = pattern.matrix(torch.zeros(pattern.nnz, dtype=torch.float64))
    assert torch.allclose(sddmm(csr, a.detach(), b.detach()), (a @ b.T)[pattern.rows, pattern.cols].detach())


def test_empty_pattern_gives_zeros():
    p = EdgePattern(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), (3, 4))
    out = p.spmm(torch.zeros(0), torch.ones(4, 2))
    assert torch.equal(out, torch.zeros(3, 2))
    assert p.sddmm(torch.ones(3, 2), torch.ones(4, 2)).shape == (0,)


@pytest.mark.parametrize("rows, cols, match", [
    ([0, 1], [0], "must be equal"),
    ([0, 7], [0, 1], "out of range"),
    ([0, 1], [0, -1], "out of range"),
    ([1, 1], [2, 2], "repeated"),
])
def test_bad_patterns_are_refused(rows, cols, match):
    with pytest.raises(ValueError, match=match):
        EdgePattern(torch.tensor(rows), torch.tensor(cols), (3, 4))
