"""Restricted unpickler: admits numpy / scipy.sparse content, rejects code-running globals with a clear error."""
from __future__ import annotations

import builtins
import codecs
import os
import pickle
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp

from mmgrec_lib.data.dataset import DataError
from mmgrec_lib.data.safe_pickle import load_npy_object, load_pickle, loads_restricted


class _Evil:
    """Pickles to a call of ``func(*args)``: what a malicious file would do."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_numpy_and_sparse_roundtrip(tmp_path, protocol):
    m = sp.coo_matrix((np.ones(3), ([0, 1, 2], [2, 0, 1])), shape=(3, 4))
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"m": m, "a": np.arange(5, dtype=np.float16), "s": np.int64(7)}, protocol=protocol))
    obj = load_pickle(path)
    assert isinstance(obj["m"], sp.coo_matrix) and (obj["m"].toarray() == m.toarray()).all()
    assert obj["a"].dtype == np.float16 and obj["s"] == 7
    csr = sp.csr_matrix(m)
    path.write_bytes(pickle.dumps(csr, protocol=protocol))
    assert (load_pickle(path, expect=sp.spmatrix).toarray() == m.toarray()).all()


@pytest.mark.parametrize("func,args,name", [(os.system, ("echo pwned",), "system"),
                                            (builtins.eval, ("1+1",), "builtins.eval"),
                                            (subprocess.check_output, (["true"],), "subprocess.check_output")])
def test_rejects_code_globals(tmp_path, func, args, name):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil(func, *args)))
    with pytest.raises(DataError) as exc:
        load_pickle(path)
    msg = str(exc.value)
    assert str(path) in msg and name in msg and "refusing" in msg


def test_rejects_evil_nested_in_allowed_content(tmp_path):
    path = tmp_path / "nested.pkl"
    path.write_bytes(pickle.dumps({"ok": np.zeros(2), "bad": _Evil(builtins.exec, "x=1")}))
    with pytest.raises(DataError, match="builtins.exec"):
        load_pickle(path)


def test_wrong_content_type_and_garbage(tmp_path):
    path = tmp_path / "arr.pkl"
    path.write_bytes(pickle.dumps(np.zeros((2, 2))))
    with pytest.raises(DataError, match=r"arr\.pkl.*expected a scipy.sparse matrix.*ndarray"):
        load_pickle(path, expect=sp.spmatrix, what="a scipy.sparse matrix")
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="not a readable pickle"):
        load_pickle(path)
    with pytest.raises(DataError, match="file not found"):
        load_pickle(tmp_path / "missing.pkl")


def test_codecs_encode_is_restricted():
    ok = pickle.dumps(b"\x00\xffbytes", protocol=2)         # protocol 2 rebuilds bytes via _codecs.encode
    assert loads_restricted(ok) == b"\x00\xffbytes"
    # a hand-written pickle calling _codecs.encode with another codec is refused
    bad = pickle.dumps(_Evil(codecs.encode, "abc", "rot13"), protocol=2)
    with pytest.raises(DataError, match="latin1"):
        loads_restricted(bad, "bad-codec")


def test_npy_object_dict(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, {0: [1, 2], 3: np.array([4])}, allow_pickle=True)
    d = load_npy_object(path, expect=dict)
    assert d[0] == [1, 2] and d[3].tolist() == [4]
    np.save(path, np.arange(3))                              # numeric .npy goes through np.load
    assert load_npy_object(path).tolist() == [0, 1, 2]
    np.save(path, np.array([_Evil(os.system, "echo pwned")], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"d\.npy.*system"):
        load_npy_object(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable .npy"):
        load_npy_object(path)
