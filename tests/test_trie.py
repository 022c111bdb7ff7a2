"""PrefixTrie and UserHistory: shapes and invariants on small random catalogues."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgrec_lib.data.paths import atomic_write
from mmgrec_lib.data.sparse import bipartite_edge_index, csr_pairs, rows_mask
from mmgrec_lib.generator.history import UserHistory
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
from mmgrec_lib.tokenizer.trie import PrefixTrie


def _codes(n=300, card=5, levels=3, seed=0):
    rng = np.random.default_rng(seed)
    sem = rng.integers(0, card, size=(n, levels))
    return disambiguate(sem, rng.integers(1, 50, size=n), "popularity")


def test_node_numbering_is_lexicographic_and_counts_add_up():
    codes = _codes()
    trie = PrefixTrie(torch.from_numpy(codes), [5, 5, 5, int(codes[:, -1].max()) + 1])
    for level in range(codes.shape[1]):
        # nodes of a level number the distinct prefixes in lexicographic order
        if level:
            uniq, inv = np.unique(codes[:, :level], axis=0, return_inverse=True)
            assert np.array_equal(trie.item_node(level).numpy(), inv.reshape(-1))
        below = trie.items_below(level)
        assert int(below.sum()) == len(codes)
        assert torch.equal(below, torch.bincount(trie.item_node(level), minlength=trie.child_table(level).shape[0]))
    assert torch.equal(trie.item_of(torch.from_numpy(codes)), torch.arange(len(codes)))


def test_table_and_trie_agree_and_shared_trie_moves_alone():
    codes = _codes(seed=1)
    table = RecIDTable(codes)
    shared = table.trie.shared()
    assert shared.child_table(0).data_ptr() == table.trie.child_table(0).data_ptr()   # no copy
    shared._apply(lambda t: t.clone())              # what .to("cuda") does: new tensors for this module only
    assert shared.child_table(0).data_ptr() != table.trie.child_table(0).data_ptr()
    assert torch.equal(shared.child_table(0), table.trie.child_table(0))
    assert table.trie.child_table(0).data_ptr() == table.children[0].data_ptr()
    nodes = torch.tensor([0, -1])
    assert table.allowed(0, nodes)[1].sum() == 0


def test_user_history_pairs_and_padding():
    mat = sp.csr_matrix(np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1]], dtype=np.float32))
    h = UserHistory(mat)
    rows, items = h.pairs(torch.tensor([2, 0, 1]))
    assert rows.tolist() == [0, 0, 0, 1, 1] and items.tolist() == [0, 2, 3, 1, 2]
    ids, valid = h.padded(torch.tensor([0, 1, 2]))
    assert ids.shape == valid.shape == (3, 3)
    assert valid.sum(1).tolist() == [2, 0, 3]
    assert ids[2].tolist() == [0, 2, 3]
    h.replace(sp.csr_matrix((3, 4), dtype=np.float32))
    assert h.counts(torch.tensor([0, 1, 2])).tolist() == [0, 0, 0]


def test_sparse_helpers_agree_with_dense():
    rng = np.random.default_rng(0)
    dense = rng.random((6, 7)) < 0.3
    mat = sp.csr_matrix(dense.astype(np.float32))
    u, i = csr_pairs(mat)
    assert sorted(zip(u.tolist(), i.tolist())) == sorted(zip(*np.nonzero(dense)))
    assert torch.equal(rows_mask(mat, [4, 1]), torch.from_numpy(dense[[4, 1]]))
    ei = bipartite_edge_index(torch.stack([u, i]), 6)
    assert ei.shape == (2, 2 * len(u)) and int(ei.max()) < 6 + 7
    assert torch.equal(ei[0, : len(u)], u) and torch.equal(ei[1, : len(u)], i + 6)


def test_atomic_write_uses_the_usual_mode_and_cleans_up(tmp_path):
    path = atomic_write(tmp_path / "x.txt", lambda fh: fh.write(b"hello"))
    assert path.read_bytes() == b"hello"
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask

    def boom(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    try:
        atomic_write(tmp_path / "y.txt", boom)
    except RuntimeError:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_padded_levels_hold_exactly_the_dense_children():
    """Sparse levels get a padded layout with the same (token, child) pairs, tokens ascending; dense ones none."""
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 64, (3000, 3)), axis=0)
    codes = np.concatenate([codes, np.zeros((len(codes), 1), dtype=np.int64)], 1)
    trie = PrefixTrie(torch.as_tensor(codes), [64, 64, 64, 1])
    assert trie.padded(0) is None and trie.padded(3) is None          # root: all 64 tokens; last: card 1
    assert trie.padded(1) is None and trie.padded(2) is not None      # ~47 of 64 children; ~1 of 64
    for level in range(4):
        padded, table = trie.padded(level), trie.child_table(level)
        if padded is None:                                             # dense: some node has > card / 2 children
            assert 2 * int((table >= 0).sum(1).max()) > table.shape[1]
            continue
        tokens, nexts = padded
        assert tokens.dtype == nexts.dtype == torch.int32 and tokens.shape == nexts.shape
        assert 2 * tokens.shape[1] <= table.shape[1]
        for node in range(table.shape[0]):
            valid = torch.nonzero(table[node] >= 0).reshape(-1)
            row = tokens[node][tokens[node] >= 0].long()
            assert torch.equal(row, valid)                             # ascending, same tokens
            assert torch.equal(nexts[node][: row.numel()].long(), table[node, valid])
            assert (nexts[node][row.numel():] == -1).all()


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_constant_spmm_equals_torch_sparse_mm_bit_for_bit():
    """The graph product with a precomputed transpose gives torch.sparse.mm's values and gradients exactly."""
    from mmgrec_lib.data.sparse import constant_spmm, transpose_csr

    g = torch.Generator().manual_seed(0)
    dense = torch.rand(40, 40, generator=g) * (torch.rand(40, 40, generator=g) < 0.1)   # not symmetric
    adj = dense.to_sparse_csr()
    x = torch.randn(40, 7, generator=g, requires_grad=True)
    grad = torch.randn(40, 7, generator=g)
    ref = torch.sparse.mm(adj, x)
    ref.backward(grad)
    ref_grad, x.grad = x.grad.clone(), None
    out = constant_spmm(adj, x, transpose_csr(adj))
    out.backward(grad)
    assert torch.equal(out, ref) and torch.equal(x.grad, ref_grad)
    assert torch.allclose(transpose_csr(adj).to_dense(), dense.T)


def test_row_spmm_equals_the_full_product_rows_bit_for_bit():
    """(A @ X)[rows] computed from A's rows alone: same values, and the same gradient as the full product's
    rows (rows in any order; a non-symmetric A; an empty row)."""
    from mmgrec_lib.data.sparse import constant_spmm, csr_rows, row_spmm, transpose_csr

    g = torch.Generator().manual_seed(1)
    dense = torch.rand(50, 30, generator=g) * (torch.rand(50, 30, generator=g) < 0.2)
    dense[7] = 0                                                                 # a row without entries
    adj = dense.to_sparse_csr()
    rows = torch.tensor([7, 3, 41, 0, 12])
    assert torch.equal(csr_rows(adj, rows).to_dense(), dense[rows])
    x = torch.randn(30, 5, generator=g, requires_grad=True)
    grad = torch.randn(rows.numel(), 5, generator=g)
    ref = constant_spmm(adj, x, transpose_csr(adj))[rows]
    ref.backward(grad)
    ref_grad, x.grad = x.grad.clone(), None
    out = row_spmm(adj, rows, x)
    out.backward(grad)
    assert torch.equal(out, ref) and torch.equal(x.grad, ref_grad)


def test_row_product_reused_across_calls_and_transpose_of_coo_input():
    """A RowProduct built once gives the full product's rows at every call, and its gradients bit for bit when
    the rows ascend (as every caller's do: torch.unique, aranges); in another order the gradient sums each column
    in that order, equal up to float rounding. The transpose of an uncoalesced COO matrix sums its duplicates as
    the dense transpose does."""
    from mmgrec_lib.data.sparse import RowProduct, constant_spmm, transpose_csr

    g = torch.Generator().manual_seed(2)
    dense = torch.rand(30, 20, generator=g) * (torch.rand(30, 20, generator=g) < 0.3)
    adj = dense.to_sparse_csr()
    for rows, exact in ((torch.tensor([4, 11, 29]), True), (torch.tensor([29, 4, 11]), False)):
        product = RowProduct(adj, rows)
        for _ in range(2):
            x = torch.randn(20, 3, generator=g, requires_grad=True)
            grad = torch.randn(3, 3, generator=g)
            ref = constant_spmm(adj, x, transpose_csr(adj))[rows]
            ref.backward(grad)
            ref_grad, x.grad = x.grad.clone(), None
            out = product(x)
            out.backward(grad)
            assert torch.equal(out, ref)
            assert torch.equal(x.grad, ref_grad) if exact else torch.allclose(x.grad, ref_grad, rtol=1e-6, atol=1e-7)
    coo = torch.sparse_coo_tensor(torch.tensor([[0, 0, 2], [1, 1, 0]]), torch.tensor([1.0, 2.0, 5.0]), (3, 2))
    assert torch.equal(transpose_csr(coo).to_dense(), coo.to_dense().T)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_transpose_csr_on_cpu_gives_torchs_csc_arrays(dtype):
    """On CPU the transpose is scipy's counting sort; it gives the arrays of torch's ``to_sparse_csc`` exactly
    (pointers, indices, values in the same order), with empty rows and columns and rows taken out of order."""
    from mmgrec_lib.data.sparse import csr_rows, transpose_csr

    g = torch.Generator().manual_seed(5)
    dense = (torch.rand(60, 45, generator=g, dtype=dtype) * (torch.rand(60, 45, generator=g) < 0.15)).to(dtype)
    dense[10], dense[:, 7] = 0, 0                                                # an empty row and column
    for adj in (dense.to_sparse_csr(), csr_rows(dense.to_sparse_csr(), torch.tensor([59, 3, 10, 3, 20])),
                torch.zeros(4, 6, dtype=dtype).to_sparse_csr()):
        csc = adj.to_sparse_csc()
        got = transpose_csr(adj)
        assert got.shape == (adj.shape[1], adj.shape[0]) and got.values().dtype == dtype
        assert torch.equal(got.crow_indices(), csc.ccol_indices())
        assert torch.equal(got.col_indices(), csc.row_indices())
        assert torch.equal(got.values(), csc.values())


@pytest.mark.parametrize("n_layers", [0, 1, 2, 3])
def test_lightgcn_batch_rows_equal_the_full_propagation_bit_for_bit(n_layers):
    """LightGCN's training loss propagates the last layer only into the batch's nodes: the loss and the
    embedding gradient equal PyG's full get_embedding followed by the batch's rows, bit for bit."""
    from mmgrec_lib.baselines.lightgcn import LightGCN
    from mmgrec_lib.data.synthetic import make_synthetic

    ds = make_synthetic(n_users=60, n_items=40, n_clusters=4, seed=0)
    model = LightGCN.from_dataset(ds, device="cpu", n_layers=n_layers)
    g = torch.Generator().manual_seed(0)
    u = torch.randint(0, ds.n_users, (32,), generator=g)
    i, j = (torch.randint(0, ds.n_items, (32,), generator=g) for _ in range(2))
    emb = model.gnn.get_embedding(model.adjacency())
    e_u, e_i, e_j = emb[u], emb[i + ds.n_users], emb[j + ds.n_users]
    node_id = torch.cat([u, i + ds.n_users, j + ds.n_users])
    ref = model.gnn.recommendation_loss((e_u * e_i).sum(-1), (e_u * e_j).sum(-1), node_id=node_id,
                                        lambda_reg=model.config.reg)
    ref.backward()
    ref_grad = model.gnn.embedding.weight.grad.clone()
    model.zero_grad()
    loss = model.bpr_loss(u, i, j)
    loss.backward()
    assert torch.equal(loss, ref) and torch.equal(model.gnn.embedding.weight.grad, ref_grad)
