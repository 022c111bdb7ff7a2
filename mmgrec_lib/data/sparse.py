"""Small sparse-matrix helpers shared by every stage: CSR rows as (user, item) pairs, as bool masks, and the
user-item bipartite graph as one homogeneous graph."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch


def csr_pairs(mat: sp.spmatrix) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-zeros of a ``(n_users, n_items)`` matrix as ``users (E,)``, ``items (E,)`` long tensors, in
    (user, item) order (CSR order, so equal matrices give equal pairs)."""
    csr = sp.csr_matrix(mat)
    users = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return torch.from_numpy(users), torch.from_numpy(csr.indices.astype(np.int64))


def rows_mask(mat: sp.spmatrix, rows, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(len(rows), n_cols)`` bool mask of the non-zeros of ``mat[rows]``. Dense: for scoring models that
    already hold a ``(B, n_items)`` score matrix, never for decoding."""
    sub = sp.csr_matrix(mat)[np.asarray(rows)].tocoo()
    out = torch.zeros(sub.shape, dtype=torch.bool, device=device)
    out[torch.from_numpy(sub.row.astype(np.int64)).to(device), torch.from_numpy(sub.col.astype(np.int64)).to(device)] = True
    return out


def pair_positions(keys: torch.Tensor, n_cols: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Where each pair ``(rows[b], cols[b, k])`` sits among ascending ``row * n_cols + col`` ``keys`` (its index;
    in CSR order for a matrix's non-zeros), ``-1`` where it is not there or ``cols`` is negative:
    ``rows (B,)``, ``cols (B, K)`` -> ``(B, K)`` long. Cost O(B K log E), nothing of size ``B x n_cols``."""
    if keys.numel() == 0:
        return torch.full(cols.shape, -1, dtype=torch.long, device=cols.device)
    keys = keys.to(cols.device)
    q = rows.to(cols.device).long()[:, None] * n_cols + cols.long()               # (B, K)
    pos = torch.searchsorted(keys, q).clamp(max=keys.numel() - 1)
    return torch.where((keys[pos] == q) & (cols >= 0), pos, -1)


class PairSet:
    """The non-zeros of a ``(n_rows, n_cols)`` sparse matrix as a sorted set of ``row * n_cols + col`` keys, for
    membership tests of ``(B, K)`` candidate lists without a dense ``(B, n_cols)`` mask."""

    def __init__(self, mat: sp.spmatrix) -> None:
        rows, cols = csr_pairs(mat)
        self.n_cols = int(mat.shape[1])
        self.keys = torch.sort(rows * self.n_cols + cols).values                   # (E,) ascending
        self.counts = torch.bincount(rows, minlength=int(mat.shape[0]))             # (n_rows,) non-zeros per row

    def contains(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``rows (B,)``, ``cols (B, K)`` -> ``(B, K)`` bool: is ``(rows[b], cols[b, k])`` a non-zero? (A negative
        ``col``, e.g. list padding, never is.)"""
        return pair_positions(self.keys, self.n_cols, rows, cols) >= 0


def sddmm(adj: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sampled dense-dense product: the values of ``a @ b.T`` at the non-zeros of the sparse CSR ``adj``
    ``(N, M)``, in CSR order: ``(nnz,)``, for ``a (N, D)`` and ``b (M, D)``; not differentiable (custom backward
    passes use it). ``torch.sparse.sampled_addmm`` computes each dot product in place, where
    ``(a[rows] * b[cols]).sum(-1)`` first gathers two ``(nnz, D)`` matrices (much slower on CPU). ``adj``'s own
    values are ignored."""
    with warnings.catch_warnings():       # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(),
                                          torch.zeros(adj.col_indices().shape, dtype=a.dtype, device=a.device),
                                          adj.shape)
        return torch.sparse.sampled_addmm(pattern, a.contiguous(), b.t(), beta=0.0).values()


def _spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` for a sparse ``adj`` into a fresh buffer: ``adj @ x`` zero-fills its result and then copies it
    once more inside ``addmm``; ``addmm(..., beta=0, out=)`` writes it once (same values, bit for bit)."""
    out = torch.empty(adj.shape[0], x.shape[1], dtype=x.dtype, device=x.device)
    return torch.addmm(out, adj, x, beta=0, out=out)


class _ConstantSpmm(torch.autograd.Function):
    """``A @ X`` for a constant sparse ``A`` whose transpose is given: the backward pass is ``Aᵀ @ G``.

    ``torch.sparse.mm``'s own backward transposes the CSR matrix at every step (and goes through a dense
    zero-fill and copy of the gradient); a graph's adjacency is fixed for a whole run, so its transpose is
    computed once; both products skip a dense zero-fill and copy of the result (:func:`_spmm`). Same values as
    ``torch.sparse.mm`` (tested bit for bit).
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj_t = adj_t
        return _spmm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, _spmm(ctx.adj_t, grad.contiguous())


def constant_spmm(adj: torch.Tensor, x: torch.Tensor, adj_t: torch.Tensor | None = None) -> torch.Tensor:
    """``adj @ x`` differentiable in ``x`` only, with ``adj_t`` (default: ``adj`` itself, for a symmetric
    matrix) as the transpose used by the backward pass."""
    return _ConstantSpmm.apply(adj, adj if adj_t is None else adj_t, x)


def csr_rows(adj: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The rows ``rows`` (``(n,)`` long, any order) of a sparse CSR matrix ``(N, M)`` as a CSR matrix ``(n, M)``,
    each row's entries in their original order; cost O(n + non-zeros of those rows)."""
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    start = crow[rows]                                                                # (n,)
    count = crow[rows + 1] - start                                                    # (n,)
    sub_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    sub_crow[1:] = torch.cumsum(count, 0)
    offset = torch.repeat_interleave(start - sub_crow[:-1], count)                    # (nnz_sub,)
    idx = torch.arange(int(sub_crow[-1]), device=crow.device) + offset               # positions in adj
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(sub_crow, col[idx], val[idx], (rows.numel(), adj.shape[1]))


class RowProduct:
    """``(A @ X)[rows]`` for a constant sparse CSR ``A`` and fixed ``rows``, computing only those rows: the rows'
    CSR matrix (:func:`csr_rows`) and its transpose are built once, so each call costs one sparse product per
    direction over the rows' non-zeros (:func:`constant_spmm`). Use it where the same rows are needed at every
    step (e.g. all items of a bipartite graph); :func:`row_spmm` builds it per call.

    Args:
        adj: sparse CSR ``(N, M)``.
        rows: ``(n,)`` long row indices (any order).

    ``__call__(x (M, D)) -> (n, D)``, differentiable in ``x``; the same values, bit for bit, as the full product
    followed by ``[rows]``, and the same gradients bit for bit when ``rows`` ascend (the gradient sums each column
    in the order of ``rows``; in another order it is equal up to float rounding on some machines; tested).
    """

    def __init__(self, adj: torch.Tensor, rows: torch.Tensor) -> None:
        self.rows = rows
        self.sub = csr_rows(adj, rows)                                                # (n, M)
        self.sub_t = transpose_csr(self.sub)                                          # (M, n)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return constant_spmm(self.sub, x, self.sub_t)                                 # (n, D)


def row_spmm(adj: torch.Tensor, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(adj @ x)[rows]`` differentiable in ``x``, computing only those rows: ``adj`` a constant sparse CSR
    ``(N, M)``, ``rows`` ``(n,)`` long, ``x`` ``(M, D)`` -> ``(n, D)``. Cost O(the rows' non-zeros × D) each way
    (plus sorting them once for the transpose), against O(all non-zeros × D) for the full product; same values
    bit for bit, and gradients too when ``rows`` ascend (see :class:`RowProduct`; tested). For rows reused at every step, build a :class:`RowProduct` once."""
    return RowProduct(adj, rows)(x)


#: value types :func:`transpose_csr` hands to scipy (the ones numpy holds as they are)
_SCIPY_DTYPES = (torch.float32, torch.float64)


def transpose_csr(adj: torch.Tensor) -> torch.Tensor:
    """The transpose of a sparse CSR (or COO) matrix, as CSR: its CSC form read as the transpose's CSR (a counting
    sort; each row's entries in the order of the original rows, as a coalesced COO transpose gives them).

    On CPU the counting sort is scipy's (``csr_matrix.tocsc``), about four times faster than torch's
    ``to_sparse_csc`` at a BPR batch's rows (:class:`RowProduct` transposes them at every step) and the same
    arrays (tested); elsewhere torch's."""
    with warnings.catch_warnings():                     # "sparse CSR support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        if adj.layout != torch.sparse_csr:
            adj = adj.to_sparse_csr()
        shape_t = (adj.shape[1], adj.shape[0])
        crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
        if adj.device.type == "cpu" and val.dtype in _SCIPY_DTYPES and not val.requires_grad:
            csc = sp.csr_matrix((val.numpy(), col.numpy(), crow.numpy()), shape=tuple(adj.shape)).tocsc()
            return torch.sparse_csr_tensor(torch.from_numpy(csc.indptr.astype(np.int64)),
                                           torch.from_numpy(csc.indices.astype(np.int64)),
                                           torch.from_numpy(csc.data), shape_t)
        csc = adj.to_sparse_csc()
        return torch.sparse_csr_tensor(csc.ccol_indices(), csc.row_indices(), csc.values(), shape_t)


def bipartite_edge_index(edge_index: torch.Tensor, n_users: int) -> torch.Tensor:
    """(user, item) pairs ``(2, E)`` -> the undirected bipartite graph as ``(2, 2E)`` (source, target) edges over
    nodes ``0..U-1`` (users) and ``U..U+I-1`` (items): first every user -> item edge, then item -> user."""
    users, items = edge_index[0].long(), edge_index[1].long() + n_users
    return torch.stack([torch.cat([users, items]), torch.cat([items, users])])


def symmetric_adjacency(edge_index: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    r""":math:`D^{-1/2} A D^{-1/2}` of the bipartite graph of (user, item) pairs ``(2, E)`` as a sparse CSR
    ``(U + I, U + I)`` tensor (users ``0..U-1``, items ``U..U+I-1``, no self-loops; isolated nodes get empty rows):
    LightGCN's propagation matrix, normalised by PyG's ``gcn_norm``."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    n = n_users + n_items
    ei, w = gcn_norm(bipartite_edge_index(edge_index, n_users), None, n, add_self_loops=False)
    with warnings.catch_warnings():     # "sparse CSR support is in beta": spmm with CSR is the fast path
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_coo_tensor(ei, w, (n, n), check_invariants=False).coalesce().to_sparse_csr()


# ---------------------------------------------------------------------------------------------- learned edge values
def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():       # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape)


class EdgePattern:
    r"""A fixed sparsity pattern ``(n_rows, n_cols)`` whose values are learned (attention weights, refined edge
    weights), with the two products a graph layer needs, both differentiable in everything they read:

    - :meth:`spmm`: :math:`A X` for values :math:`a_e` on the pattern, with
      :math:`\partial / \partial a_e = \langle G_{r_e}, X_{c_e} \rangle` (a sampled product, :func:`sddmm`) and
      :math:`\partial / \partial X = A^\top G`;
    - :meth:`sddmm`: :math:`s_e = \langle P_{r_e}, Q_{c_e} \rangle` on the pattern, with
      :math:`\partial / \partial P = S G`, :math:`\partial / \partial Q = S^\top G` (``S`` holding the gradient
      of each ``s_e``).

    Neither ever gathers an ``(E, D)`` matrix of rows, which is what edge-wise message passing
    (``x[src] * alpha`` then a scatter) spends its time on. The structure is sorted once: ``order`` takes the
    pairs as given to CSR order (values passed to :meth:`spmm` and returned by :meth:`sddmm` are in CSR order;
    ``values[pattern.order]`` converts), and the transpose's CSR is precomputed for the backward passes.

    Args:
        rows, cols: ``(E,)`` long, the pattern's non-zeros (no repeated pair).
        shape: ``(n_rows, n_cols)``.
    """

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int]) -> None:
        rows, cols = rows.long(), cols.long()
        n_rows, n_cols = int(shape[0]), int(shape[1])
        if rows.shape != cols.shape or rows.ndim != 1:
            raise ValueError(f"EdgePattern: rows {tuple(rows.shape)} and cols {tuple(cols.shape)} must be equal (E,)")
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= n_rows or int(cols.min()) < 0
                             or int(cols.max()) >= n_cols):
            raise ValueError(f"EdgePattern: pairs out of range for shape {(n_rows, n_cols)}")
        self.shape = (n_rows, n_cols)
        key = rows * n_cols + cols
        self.order = torch.argsort(key)                                                # (E,) given -> CSR
        if rows.numel() > 1 and bool((key[self.order][1:] == key[self.order][:-1]).any()):
            raise ValueError("EdgePattern: repeated (row, col) pairs")
        self.rows, self.cols = rows[self.order], cols[self.order]                     # (E,) CSR order
        self.crow = self._crow(self.rows, n_rows)
        self.order_t = torch.argsort(self.cols * n_rows + self.rows)                   # (E,) CSR -> transpose's CSR
        self.crow_t = self._crow(self.cols[self.order_t], n_cols)
        self.col_t = self.rows[self.order_t]

    @staticmethod
    def _crow(sorted_rows: torch.Tensor, n: int) -> torch.Tensor:
        crow = torch.zeros(n + 1, dtype=torch.long, device=sorted_rows.device)
        crow[1:] = torch.cumsum(torch.bincount(sorted_rows, minlength=n), 0)
        return crow

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """The CSR matrix with ``values`` (``(E,)``, CSR order; not differentiable)."""
        return _csr(self.crow, self.cols, values, self.shape)

    def matrix_t(self, values: torch.Tensor) -> torch.Tensor:
        """The transpose's CSR matrix, ``values`` given in this pattern's CSR order (not differentiable)."""
        return _csr(self.crow_t, self.col_t, values[self.order_t], (self.shape[1], self.shape[0]))

    def spmm(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``A @ x``: ``values (E,)`` in CSR order, ``x (n_cols, D)`` -> ``(n_rows, D)``."""
        return _PatternSpmm.apply(self, values, x)

    def sddmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(a @ b.T)`` at the pattern: ``a (n_rows, D)``, ``b (n_cols, D)`` -> ``(E,)`` in CSR order."""
        return _PatternSddmm.apply(self, a, b)


class _PatternSpmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pattern: EdgePattern, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(values, x)
        return _spmm(pattern.matrix(values.detach()), x.detach().contiguous())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        pattern, (values, x) = ctx.pattern, ctx.saved_tensors
        grad = grad.contiguous()
        g_values = sddmm(pattern.matrix(values.detach()), grad, x.detach()) if ctx.needs_input_grad[1] else None
        g_x = _spmm(pattern.matrix_t(values.detach()), grad) if ctx.needs_input_grad[2] else None
        return None, g_values, g_x


class _PatternSddmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pattern: EdgePattern, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(a, b)
        values = torch.zeros(pattern.nnz, dtype=a.dtype, device=a.device)
        return sddmm(pattern.matrix(values), a.detach(), b.detach())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        pattern, (a, b) = ctx.pattern, ctx.saved_tensors
        grad = grad.contiguous()
        g_a = _spmm(pattern.matrix(grad), b.detach().contiguous()) if ctx.needs_input_grad[1] else None
        g_b = _spmm(pattern.matrix_t(grad), a.detach().contiguous()) if ctx.needs_input_grad[2] else None
        return None, g_a, g_b
