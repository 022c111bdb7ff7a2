"""MMGCN-format loader: tiny generated folders (offsets, edge-list text, errors) and the authors' samples."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mmgrec_lib.data import load_dataset
from mmgrec_lib.data.dataset import DataError, random_split
from mmgrec_lib.data.mmgcn import load_mmgcn, text_edges_to_features

N_USERS, N_ITEMS = 5, 8


class _Evil:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def _user_items(offset=0):
    """Each user likes 4 items; user 0 lists one item twice."""
    d = {u: [offset + (u + k) % N_ITEMS for k in range(4)] for u in range(N_USERS)}
    d[0] = d[0] + [d[0][0]]
    return d


def write_mmgcn(folder, offset=0, visual="pt", text="edges", acoustic=True, words=40):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "user_item_dict_sample.npy", _user_items(offset), allow_pickle=True)
    rng = np.random.default_rng(0)
    if visual == "pt":
        torch.save(torch.from_numpy(rng.normal(size=(N_ITEMS, 6))), folder / "v_feat_sample.pt")
    elif visual == "npy":
        np.save(folder / "v_feat_sample.npy", rng.normal(size=(N_ITEMS, 6)))
    if acoustic:
        np.save(folder / "a_feat_sample.npy", rng.normal(size=(N_ITEMS, 3)))
    if text == "edges":                           # items 0..N-2 have words, the last item has none
        items = np.repeat(np.arange(N_ITEMS - 1), 5)
        edges = np.stack([items, rng.integers(2, 2 + words, items.size)]).astype(np.int64)
        torch.save(torch.from_numpy(edges), folder / "t_feat_sample.pt")
    elif text == "dense":
        np.save(folder / "t_feat_sample.npy", rng.normal(size=(N_ITEMS, 7)).astype(np.float64))
    return folder


def test_tiny_no_offset_with_edge_text(tmp_path):
    d = write_mmgcn(tmp_path / "s")
    ds = load_mmgcn(path=d, seed=2, text_dim=4)
    assert (ds.n_users, ds.n_items) == (N_USERS, N_ITEMS) and ds.info["item_offset"] == 0
    assert ds.info["duplicates_dropped"]["before_split"] == 1
    assert ds.train.nnz + ds.val.nnz + ds.test.nnz == N_USERS * 4
    assert ds.modalities == ["visual", "acoustic", "textual"]
    assert ds.features["visual"].dtype == np.float32 and ds.features["visual"].shape == (N_ITEMS, 6)
    t, mask = ds.features["textual"], ds.feature_masks["textual"]
    assert t.shape == (N_ITEMS, 4) and mask.tolist() == [True] * (N_ITEMS - 1) + [False]
    assert (t[~mask] == 0).all()
    assert "TruncatedSVD(4)" in ds.info["features"]["textual"]["method"]
    # split: random_split over the unique (user, item)-sorted pairs with the seed
    pairs = np.unique([u * N_ITEMS + i for u, its in _user_items().items() for i in its])
    tr, _, _ = random_split(pairs // N_ITEMS, pairs % N_ITEMS, seed=2)
    assert ds.train.nnz == tr[0].size and np.asarray(ds.train[tr[0], tr[1]]).all()
    assert ds.name == "mmgcn-s"


def test_offset_items_detected(tmp_path):
    plain = load_mmgcn(path=write_mmgcn(tmp_path / "a"), seed=0)
    shifted = load_mmgcn(path=write_mmgcn(tmp_path / "b", offset=N_USERS), seed=0)
    assert shifted.info["item_offset"] == N_USERS and shifted.n_items == N_ITEMS
    assert (plain.train != shifted.train).nnz == 0
    assert np.array_equal(plain.features["textual"], shifted.features["textual"])
    # without dense features: offset used only when every id is >= n_users; explicit override wins
    d = write_mmgcn(tmp_path / "c", offset=N_USERS, visual=None, acoustic=False, text=None)
    assert load_mmgcn(path=d).info["item_offset"] == N_USERS
    assert load_mmgcn(path=d, item_offset=0).n_items == N_USERS + N_ITEMS


def test_small_vocabulary_and_dense_text(tmp_path):
    ds = load_mmgcn(path=write_mmgcn(tmp_path / "a", words=3), text_dim=64)
    assert ds.features["textual"].shape[1] <= 3
    assert ds.info["features"]["textual"]["method"] == "L2-normalised bag of words"
    m = ds.feature_masks["textual"]
    assert np.allclose(np.linalg.norm(ds.features["textual"][m], axis=1), 1)
    dense = load_mmgcn(path=write_mmgcn(tmp_path / "b", text="dense"))
    assert dense.features["textual"].shape == (N_ITEMS, 7) and dense.feature_masks["textual"].all()


def test_missing_visual_means_no_modality(tmp_path):
    ds = load_mmgcn(path=write_mmgcn(tmp_path / "a", visual=None, text="dense"))
    assert ds.modalities == ["acoustic", "textual"]


def test_text_edges_function_errors():
    with pytest.raises(DataError, match=r"t\.pt: 1 text edges reference item ids out of range \[0, 3\)"):
        text_edges_to_features(np.array([[0, 3], [5, 6]]), 3, where="t.pt")


def _edit(d, case):
    if case == "rows":
        np.save(d / "a_feat_sample.npy", np.zeros((N_ITEMS + 2, 3)))
    elif case == "nan":
        f = np.zeros((N_ITEMS, 3))
        f[1, 1] = np.nan
        np.save(d / "a_feat_sample.npy", f)
    elif case == "inf_pt":
        f = torch.zeros(N_ITEMS, 6)
        f[3, 0] = float("inf")
        torch.save(f, d / "v_feat_sample.pt")
    elif case == "ids":
        np.save(d / "user_item_dict_sample.npy", {0: [0, 1], 1: [N_ITEMS + 40]}, allow_pickle=True)
    elif case == "evil_dict":
        np.save(d / "user_item_dict_sample.npy", np.array([_Evil()], dtype=object), allow_pickle=True)
    elif case == "not_dict":
        np.save(d / "user_item_dict_sample.npy", np.array([[0, 1], [1, 2]], dtype=object), allow_pickle=True)
    elif case == "str_items":
        np.save(d / "user_item_dict_sample.npy", {0: ["a", "b"]}, allow_pickle=True)
    elif case == "str_keys":
        np.save(d / "user_item_dict_sample.npy", {"alice": [0, 1]}, allow_pickle=True)
    elif case == "empty":
        np.save(d / "user_item_dict_sample.npy", {0: []}, allow_pickle=True)
    elif case == "no_dict":
        (d / "user_item_dict_sample.npy").unlink()
    elif case == "two_dicts":
        np.save(d / "user_item_dict_other.npy", {0: [1]}, allow_pickle=True)
    elif case == "pt_object":
        torch.save({"weights": torch.zeros(2)}, d / "v_feat_sample.pt")
    elif case == "pt_code":
        torch.save(_Evil(), d / "v_feat_sample.pt")
    elif case == "text_edge_range":
        torch.save(torch.tensor([[0, N_ITEMS + 3], [4, 5]]), d / "t_feat_sample.pt")


@pytest.mark.parametrize("case,pattern", [
    ("rows", r"a_feat_sample\.npy: 10 feature rows but v_feat_sample\.pt has 8"),
    ("nan", r"a_feat_sample\.npy: acoustic features contain NaN or inf in 1 rows \(first: \[1\]\)"),
    ("inf_pt", r"v_feat_sample\.pt: visual features contain NaN or inf .*\[3\]"),
    ("ids", r"user_item_dict_sample\.npy: item ids span \[0, 48\] but the feature files have 8 rows"),
    ("evil_dict", r"user_item_dict_sample\.npy: refusing to unpickle: .*system"),
    ("not_dict", r"user_item_dict_sample\.npy: expected a dict \{user id: \[item ids\]\}"),
    ("str_items", r"user_item_dict_sample\.npy: items of user 0 must be a list of integers"),
    ("str_keys", r"user_item_dict_sample\.npy: user keys must be integers"),
    ("empty", r"user_item_dict_sample\.npy: no interactions"),
    ("no_dict", r"no user_item_dict\*\.npy"),
    ("two_dicts", r"several candidate files"),
    ("pt_object", r"v_feat_sample\.pt: expected a tensor / array, got dict"),
    ("pt_code", r"v_feat_sample\.pt: not a readable numeric \.pt"),
    ("text_edge_range", r"t_feat_sample\.pt: 1 text edges reference item ids out of range"),
])
def test_bad_files(tmp_path, case, pattern):
    d = write_mmgcn(tmp_path / "s")
    _edit(d, case)
    with pytest.raises(DataError, match=pattern):
        load_mmgcn(path=d)


def test_missing_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MMGREC_DATA", raising=False)
    with pytest.raises(DataError, match="set MMGREC_DATA"):
        load_mmgcn()
    with pytest.raises(DataError, match=r"mmgrec-sample/tiktok: folder not found\. The folder passed as root= "
                                        r"\(.*\) should contain mmgrec-sample/tiktok/"):
        load_mmgcn(root=tmp_path)
    with pytest.raises(DataError, match=r"elsewhere: folder not found \(the path= argument\)"):
        load_mmgcn(path=tmp_path / "elsewhere")
    monkeypatch.setenv("MMGREC_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"folder not found\. MMGREC_DATA \(now .*\) should point to the shared"):
        load_mmgcn()
    with pytest.raises(TypeError):
        load_dataset("mmgcn", root=tmp_path, features=("visual",))


@pytest.mark.realdata
def test_real_sample_tiktok(data_root):
    ds = load_dataset("mmgcn", root=data_root, subset="tiktok", seed=0)
    assert (ds.n_users, ds.n_items) == (100, 1651) and ds.info["item_offset"] == 0
    assert ds.train.nnz + ds.val.nnz + ds.test.nnz == 1929
    assert {m: f.shape for m, f in ds.features.items()} == {"visual": (1651, 128), "acoustic": (1651, 128),
                                                             "textual": (1651, 64)}
    assert ds.info["features"]["textual"]["vocab"] == 3746
    assert all(f.dtype == np.float32 for f in ds.features.values())


@pytest.mark.realdata
def test_real_sample_movielens(data_root):
    ds = load_mmgcn(root=data_root, subset="movielens", seed=0)
    assert (ds.n_users, ds.n_items) == (100, 1141) and ds.info["item_offset"] == 0
    assert ds.train.nnz + ds.val.nnz + ds.test.nnz == 2071
    assert ds.modalities == ["acoustic", "textual"]          # the visual file is absent in the sample
    assert ds.features["textual"].shape == (1141, 100)
