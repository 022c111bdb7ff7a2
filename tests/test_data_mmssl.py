"""MMSSL-format loader (TikTok, Amazon-Baby): tiny generated folders, error cases, and the real files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from mmgrec_lib.data import load_dataset
from mmgrec_lib.data.dataset import DataError
from mmgrec_lib.data.mmssl import load_mmssl

N_USERS, N_ITEMS = 6, 5


def _coo(pairs, shape=(N_USERS, N_ITEMS)):
    rows, cols = zip(*pairs) if pairs else ((), ())
    return sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


def write_mmssl(folder, name="tiktok", features=True, train=None):
    """A tiny MMSSL folder ``folder/name`` with disjoint splits and float16 features."""
    d = folder / name
    d.mkdir(parents=True)
    train = [(u, i) for u in range(N_USERS) for i in range(3) if (u + i) % 2 == 0] if train is None else train
    mats = {"trnMat.pkl": _coo(train), "valMat.pkl": _coo([(0, 3), (1, 4)]), "tstMat.pkl": _coo([(0, 4), (2, 3)])}
    for fname, m in mats.items():
        (d / fname).write_bytes(pickle.dumps(m))
    if features:
        rng = np.random.default_rng(0)
        np.save(d / "image_feat.npy", rng.normal(size=(N_ITEMS, 4)).astype(np.float16))
        np.save(d / "audio_feat.npy", rng.normal(size=(N_ITEMS, 3)).astype(np.float16))
    return d


def test_tiny_tiktok(tmp_path):
    write_mmssl(tmp_path)
    ds = load_mmssl("tiktok", root=tmp_path, reference=False)      # tiny: not the reference TikTok's size
    assert (ds.n_users, ds.n_items) == (N_USERS, N_ITEMS)
    assert (ds.train.nnz, ds.val.nnz, ds.test.nnz) == (9, 2, 2)
    assert ds.modalities == ["visual", "acoustic"]
    assert ds.features["visual"].dtype == np.float32 and ds.features["acoustic"].shape == (N_ITEMS, 3)
    assert all(m.all() for m in ds.feature_masks.values())
    assert ds.train.dtype == np.float32 and ds.info["split"]["seed"] is None
    assert "not the 9308 x 6710" in ds.info["reference"]
    same = load_dataset("tiktok", root=tmp_path, reference=False)
    assert (same.train != ds.train).nnz == 0


def test_amazon_baby_without_features_and_path(tmp_path):
    d = write_mmssl(tmp_path, name="amazon-baby", features=False)
    ds = load_mmssl("amazon-baby", root=tmp_path, reference=False)
    assert ds.modalities == [] and ds.name == "amazon-baby"
    assert load_mmssl("my-copy", path=d).name == "my-copy"
    with pytest.raises(TypeError):
        load_dataset("amazon-baby", root=tmp_path, features=("visual",), reference=False)  # unknown parameter
    with pytest.raises(ValueError, match="unknown dataset"):
        load_mmssl("netflix", root=tmp_path)


def test_duplicates_counted(tmp_path):
    d = write_mmssl(tmp_path)
    m = _coo([(0, 0), (0, 0), (1, 1)])
    (d / "trnMat.pkl").write_bytes(pickle.dumps(m))
    ds = load_mmssl("tiktok", root=tmp_path, reference=False)
    assert ds.train.nnz == 2 and ds.info["duplicates_dropped"]["train"] == 1


def _edit(d, case):
    if case == "missing_split":
        (d / "valMat.pkl").unlink()
    elif case == "missing_audio":
        (d / "audio_feat.npy").unlink()
    elif case == "rows":
        np.save(d / "image_feat.npy", np.zeros((N_ITEMS + 1, 4), np.float16))
    elif case == "nan":
        f = np.zeros((N_ITEMS, 3), np.float32)
        f[2, 1] = np.nan
        np.save(d / "audio_feat.npy", f)
    elif case == "inf":
        f = np.zeros((N_ITEMS, 3), np.float16)
        f[4, 0] = np.inf
        np.save(d / "audio_feat.npy", f)
    elif case == "pickled_features":
        np.save(d / "image_feat.npy", np.array([{"a": 1}] * N_ITEMS, dtype=object), allow_pickle=True)
    elif case == "shape":
        (d / "tstMat.pkl").write_bytes(pickle.dumps(_coo([(0, 1)], shape=(N_USERS + 1, N_ITEMS))))
    elif case == "wrong_type":
        (d / "trnMat.pkl").write_bytes(pickle.dumps(np.zeros((N_USERS, N_ITEMS))))
    elif case == "dict_type":
        (d / "trnMat.pkl").write_bytes(pickle.dumps({"row": [0], "col": [1]}))
    elif case == "evil":
        (d / "valMat.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    elif case == "garbage":
        (d / "tstMat.pkl").write_bytes(b"\x00\x01garbage")
    elif case == "overlap":
        (d / "tstMat.pkl").write_bytes(pickle.dumps(_coo([(0, 3)])))
    elif case == "empty_train":
        (d / "trnMat.pkl").write_bytes(pickle.dumps(_coo([])))


@pytest.mark.parametrize("case,pattern", [
    ("missing_split", r"valMat\.pkl: file not found .*folder passed as root= .* should contain tiktok/valMat\.pkl"),
    ("missing_audio", r"audio_feat\.npy: file not found .*folder passed as root= .*tiktok/audio_feat\.npy"),
    ("rows", r"image_feat\.npy: visual features have 6 rows but the dataset has 5 items"),
    ("nan", r"audio_feat\.npy: acoustic features contain NaN or inf in 1 rows \(first: \[2\]\)"),
    ("inf", r"audio_feat\.npy: .*NaN or inf .*\[4\]"),
    ("pickled_features", r"image_feat\.npy: not a readable numeric \.npy"),
    ("shape", r"tstMat\.pkl: shape \(7, 5\) differs"),
    ("wrong_type", r"trnMat\.pkl: expected a scipy\.sparse .*ndarray"),
    ("dict_type", r"trnMat\.pkl: expected a scipy\.sparse .*dict"),
    ("evil", r"valMat\.pkl: refusing to unpickle: it references the global 'os\.system'"),
    ("garbage", r"tstMat\.pkl: not a readable pickle"),
    ("overlap", r"splits 'val' and 'test' share 1"),
    ("empty_train", r"the train split is empty"),
])
def test_bad_files(tmp_path, case, pattern):
    d = write_mmssl(tmp_path)
    _edit(d, case)
    with pytest.raises(DataError, match=pattern):
        load_mmssl("tiktok", root=tmp_path, reference=False)


def test_missing_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MMGREC_DATA", raising=False)
    with pytest.raises(DataError, match="set MMGREC_DATA"):
        load_mmssl("tiktok")
    with pytest.raises(DataError, match=r"tiktok: folder not found\. The folder passed as root= \(.*\) should "
                                        r"contain tiktok/"):
        load_mmssl("tiktok", root=tmp_path)
    monkeypatch.setenv("MMGREC_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"tiktok: folder not found\. MMGREC_DATA \(now .*\) should point to"):
        load_mmssl("tiktok")


@pytest.mark.realdata
def test_real_tiktok(data_root):
    ds = load_mmssl("tiktok", root=data_root)
    assert (ds.n_users, ds.n_items) == (9308, 6710)
    assert (ds.train.nnz, ds.val.nnz, ds.test.nnz) == (59_541, 3_051, 6_130)
    assert ds.modalities == ["visual", "acoustic"]
    for m in ds.modalities:
        assert ds.features[m].shape == (6710, 128) and ds.features[m].dtype == np.float32
    assert sum(ds.info["duplicates_dropped"].values()) == 0


@pytest.mark.realdata
def test_real_amazon_baby(data_root):
    ds = load_dataset("amazon-baby", root=data_root)
    assert (ds.n_users, ds.n_items) == (19_445, 7_050)
    assert (ds.train.nnz, ds.val.nnz, ds.test.nnz) == (118_551, 21_682, 20_559)
    assert ds.modalities == []


def test_a_known_name_is_never_put_on_other_data(tmp_path):
    """Row 9 of issue 13: 'tiktok' from another folder is refused, naming both sizes and the ways out."""
    d = write_mmssl(tmp_path)
    with pytest.raises(DataError, match=r"holds 6 users x 5 items, not the 9308 x 6710 of the MMSSL TikTok "
                                        r"subset .*refusing to label other data 'tiktok'.*path=.*reference=False"):
        load_dataset("tiktok", root=tmp_path)
    with pytest.raises(DataError, match="refusing to label other data 'tiktok'"):
        load_mmssl("tiktok", path=d)                                 # the same through path=
    own = load_mmssl("my-data", path=d)                                # its own name: loaded, no note
    assert own.name == "my-data" and "reference" not in own.info
    with pytest.raises(DataError, match=r"nowhere: folder not found\. The folder passed as path= should hold "
                                        r"trnMat\.pkl"):
        load_mmssl("my-data", path=tmp_path / "nowhere")
