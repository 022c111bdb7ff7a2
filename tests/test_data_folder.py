"""Your-own-dataset folders (CSV / Parquet + dataset.yaml + features): tiny folders written here, every
bad-input case, the float32 cast of RecDataset.from_splits, and ml-100k's u.data loaded as a folder."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmgrec_lib.data import dataset_tag, load_dataset, resolve_dataset_spec
from mmgrec_lib.data import features as F
from mmgrec_lib.data.dataset import DataError, RecDataset, random_split, to_float32
from mmgrec_lib.data.folder import folder_dataset_name, load_folder

USERS = [f"u{k:02d}" for k in range(6)]             # string ids
ITEMS = [f"m{k:02d}" for k in range(12)]      # sorted as text = sorted by number


def _rows(per_user: int = 10) -> pd.DataFrame:
    """Every user rates ``per_user`` items (rating 1..5, cycling), plus one duplicate row."""
    rows = []
    for u, user in enumerate(USERS):
        for k in range(per_user):
            item = ITEMS[(u + k) % len(ITEMS)]
            rows.append((user, item, 1 + (u + k) % 5, 1_000_000 + 10 * u + k))
    rows.append(rows[0])                              # a repeated (user, item) row
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def write_folder(tmp_path, name="mydata", fmt="csv", df=None, yaml=None, features=None, items=None):
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    df = _rows() if df is None else df
    if fmt == "csv":
        df.to_csv(d / "interactions.csv", index=False)
    else:
        df.to_parquet(d / "interactions.parquet", index=False)
    if yaml is not None:
        (d / "dataset.yaml").write_text(yaml)
    for fname, content in (features or {}).items():
        (d / "features").mkdir(exist_ok=True)
        path = d / "features" / fname
        if fname.endswith(".npy"):
            np.save(path, content)
        elif fname.endswith(".txt"):
            path.write_text("".join(f"{x}\n" for x in content))
        elif fname.endswith(".csv"):
            content.to_csv(path, index=False)
        else:
            content.to_parquet(path, index=False)
    if items is not None:
        items.to_csv(d / "items.csv", index=False)
    return d


def _pairs(ds, split):
    m = ds.split(split).tocoo()
    return {(ds.user_ids[u], ds.item_ids[i]) for u, i in zip(m.row, m.col)}


# ---------------------------------------------------------------------------------------- loading
def test_csv_without_yaml(tmp_path):
    d = write_folder(tmp_path)
    ds = load_dataset(f"folder:{d}", seed=3)
    assert ds.name == "mydata" and ds.info["name_from"] == "folder name"
    assert (ds.n_users, ds.n_items) == (6, 12)
    assert ds.user_ids.tolist() == USERS and ds.item_ids.tolist() == ITEMS    # sorted raw ids, position = id
    assert ds.item_meta["item_id"].tolist() == ITEMS
    assert ds.train.nnz + ds.val.nnz + ds.test.nnz == 60
    assert ds.info["duplicates_dropped"]["before_split"] == 1 and ds.info["rows_read"] == 61
    assert ds.info["split"] == {"method": "per-user random 0.8/0.1/0.1 over (user, item)-sorted unique pairs",
                                "seed": 3, "seed_from": "seed argument", "fractions": [0.8, 0.1, 0.1]}
    assert ds.modalities == [] and len(ds.info["content_sha256"]) == 64
    # the split is random_split over the (user, item)-sorted unique pairs, like the built-in loaders
    codes = np.unique([USERS.index(u) * 12 + ITEMS.index(i) for u, i in zip(_rows()["user"], _rows()["item"])])
    for mat, (u, i) in zip((ds.train, ds.val, ds.test), random_split(codes // 12, codes % 12, seed=3)):
        assert mat.nnz == u.size and np.asarray(mat[u, i]).ravel().all()
    again = load_dataset(str(d), seed=3)                                      # a bare path works too
    assert (again.test != ds.test).nnz == 0
    other = load_folder(d, seed=4)
    assert (other.test != ds.test).nnz > 0


def test_parquet_with_yaml_threshold_and_given_split(tmp_path):
    df = _rows().rename(columns={"user": "uid", "item": "iid", "rating": "stars"})
    df["uid"] = df["uid"].str[1:].astype(int) + 100            # integer user ids stay integers in Parquet
    df["fold"] = np.where(np.arange(len(df)) % 6 == 4, "val", np.where(np.arange(len(df)) % 6 == 5, "test", "train"))
    df = df.iloc[:-1]                                         # no duplicate here (it would sit in two splits)
    yaml = ("name: my-shop\ncolumns: {user: uid, item: iid, rating: stars, split: fold}\n"
            "rating_threshold: 3\nsplit: given\n")
    d = write_folder(tmp_path, name="shop folder", fmt="parquet", df=df, yaml=yaml)
    ds = load_dataset(f"folder:{d}")
    kept = df[df["stars"] >= 3]
    assert ds.name == "my-shop" and ds.info["name_from"] == "dataset.yaml 'name'"
    assert ds.user_ids.dtype == np.int64 and ds.user_ids.tolist() == sorted(kept["uid"].unique())
    assert ds.n_items == kept["iid"].nunique()
    assert ds.info["ratings"]["below_threshold"] == int((df["stars"] < 3).sum())
    assert ds.info["split"] == {"method": "given (column 'fold')", "seed": None}
    for split in ("train", "val", "test"):
        rows = kept[kept["fold"] == split]
        assert _pairs(ds, split) == set(zip(rows["uid"], rows["iid"]))
    assert any("rating_threshold 3" in n for n in ds.info["notes"])


def test_yaml_seed_pins_the_split_and_fractions(tmp_path):
    d = write_folder(tmp_path, yaml="split: {method: random, seed: 7, fractions: [0.5, 0.25, 0.25]}\n")
    a, b = load_folder(d, seed=0), load_folder(d, seed=1)
    assert (a.test != b.test).nnz == 0 and a.info["split"]["seed"] == 7
    assert a.info["split"]["seed_from"] == "dataset.yaml split.seed"
    assert (a.train.nnz, a.val.nnz, a.test.nnz) == (30, 12, 18)       # 10 per user: 5, rint(2.5) = 2, the rest


def test_split_column_defaults_to_given_and_random_overrides(tmp_path):
    df = _rows().iloc[:-1].copy()
    df["split"] = (["train"] * 8 + ["val", "test"]) * 6
    d = write_folder(tmp_path, df=df)
    assert load_folder(d).info["split"]["method"] == "given (column 'split')"
    (d / "dataset.yaml").write_text("split: random\n")
    ds = load_folder(d)
    assert ds.info["split"]["seed"] == 0 and any("'split' ignored" in n for n in ds.info["notes"])


def test_tab_separated_file_named_in_yaml(tmp_path):
    d = tmp_path / "tsv"
    d.mkdir()
    _rows().rename(columns={"user": "who", "item": "what"}).to_csv(d / "ratings.csv", sep="\t", index=False)
    (d / "dataset.yaml").write_text('interactions: ratings.csv\nsep: "\\t"\ncolumns: {user: who, item: what}\n')
    ds = load_folder(d)
    assert (ds.n_users, ds.n_items) == (6, 12) and ds.info["columns"]["user"] == "who"
    assert ds.info["files"][0].endswith("ratings.csv")


def test_zero_ratings_and_duplicates_are_counted(tmp_path):
    df = _rows()
    df.loc[[1, 2], "rating"] = 0
    d = write_folder(tmp_path, df=df)
    ds = load_folder(d)
    r = ds.info["ratings"]
    assert r["zero_ratings"] == 2 and r["zero_dropped"] == 2 and ds.info["rows_kept"] == 59
    assert ds.train.nnz + ds.val.nnz + ds.test.nnz == 58
    assert any("2 rows with rating 0 dropped" in n for n in ds.info["notes"])
    assert any("1 repeated (user, item) rows" in n for n in ds.info["notes"])
    (d / "dataset.yaml").write_text("rating_threshold: 0\n")                # explicit: keep the zeros
    kept = load_folder(d)
    assert kept.train.nnz + kept.val.nnz + kept.test.nnz == 60 and kept.info["ratings"]["below_threshold"] == 0


def test_features_npy_and_tables_with_missing_items(tmp_path):
    rng = np.random.default_rng(0)
    vis = rng.normal(size=(11, 4))                                 # float64, rows m10..m00; m11 has no row
    vis_ids = ITEMS[:11][::-1]
    vis_ids[0] = "not-an-item"                                     # so m10 has none either
    txt = pd.DataFrame({"item": ITEMS[2:], **{f"d{k}": rng.normal(size=10) for k in range(3)}})
    aud = pd.DataFrame({"item": ITEMS, "loudness": np.arange(12, dtype=np.int64)})
    d = write_folder(tmp_path, features={"visual.npy": vis, "visual_ids.txt": vis_ids, "textual.csv": txt,
                                         "acoustic.parquet": aud})
    ds = load_folder(d)
    assert ds.modalities == ["acoustic", "textual", "visual"]
    v, mask = ds.features["visual"], ds.feature_masks["visual"]
    assert v.dtype == np.float32 and v.shape == (12, 4)
    assert mask.tolist() == [True] * 10 + [False, False]
    for row, raw in enumerate(vis_ids):
        if raw in ITEMS:
            assert np.allclose(v[ITEMS.index(raw)], vis[row])
    assert (v[~mask] == 0).all()
    assert ds.info["features"]["visual"]["unused_rows"] == 1
    assert ds.feature_masks["textual"].tolist() == [False, False] + [True] * 10
    assert np.allclose(ds.features["textual"][2:], txt[["d0", "d1", "d2"]].to_numpy())
    assert ds.features["acoustic"][:, 0].tolist() == list(range(12)) and ds.feature_masks["acoustic"].all()
    # the yaml can list the files instead (and pick a subset)
    (d / "dataset.yaml").write_text("features: {visual: features/visual.npy}\n")
    assert load_folder(d).modalities == ["visual"]


def test_integer_ids_match_feature_ids_as_text(tmp_path):
    df = _rows()
    df["item"] = df["item"].str[1:].astype(int) + 10                         # items 10..21
    d = write_folder(tmp_path, df=df, features={"visual.npy": np.eye(12), "visual_ids.txt": range(10, 22)})
    ds = load_folder(d)
    assert ds.item_ids.dtype == np.int64 and ds.item_ids.tolist() == list(range(10, 22))
    assert np.array_equal(ds.features["visual"], np.eye(12, dtype=np.float32)) and ds.feature_masks["visual"].all()


def test_items_table_titles_and_posters(tmp_path):
    items = pd.DataFrame({"item": ITEMS[::-1] + ["m99"], "title": [f"Title {i}" for i in ITEMS[::-1]] + ["x"],
                          "year": range(2000, 2013), "poster_path": ["posters/a.jpg"] + [""] * 12})
    d = write_folder(tmp_path, items=items)
    ds = load_folder(d)
    assert ds.item_titles == [f"Title {i}" for i in ITEMS] and ds.title(0) == "Title m00"
    assert ds.item_meta["year"].tolist() == list(range(2011, 1999, -1))
    assert ds.item_meta["poster_path"][11] == str(d / "posters/a.jpg") and ds.item_meta["poster_path"][0] is None
    assert ds.info["items_table"]["unused_rows"] == 1


def test_dataset_tag_and_spec_helpers(tmp_path, monkeypatch):
    d = write_folder(tmp_path, name="my data!")
    assert dataset_tag(f"folder:{d}") == "my-data" == load_folder(d).name
    assert dataset_tag("ml100k") == "ml100k"
    (d / "dataset.yaml").write_text("name: shop_v2\n")
    assert folder_dataset_name(d) == "shop_v2" == dataset_tag(str(d))
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset_spec("folder:my data!") == f"folder:{d.resolve()}"
    assert resolve_dataset_spec("./my data!") == f"folder:{d.resolve()}"
    assert resolve_dataset_spec("tiktok") == "tiktok"
    with pytest.raises(ValueError, match=r"unknown dataset 'movielens'; expected one of \['ml100k'.*'folder:/path"):
        load_dataset("movielens")
    with pytest.raises(ValueError, match="folder:"):
        dataset_tag("movielens")
    with pytest.raises(TypeError, match="no root"):
        load_dataset(f"folder:{d}", root=tmp_path)
    with pytest.raises(TypeError):
        load_dataset(f"folder:{d}", features=("visual",))


# ---------------------------------------------------------------------------------------- from_splits casts
def test_from_splits_casts_floats_and_names_overflow():
    tr, va, te = (np.array([0, 1]), np.array([0, 1])), (np.array([0]), np.array([1])), (np.array([1]), np.array([0]))
    for dtype in (np.float16, np.float64, np.longdouble):
        ds = RecDataset.from_splits("t", 2, 2, tr, va, te, features={"v": np.ones((2, 3), dtype=dtype)})
        assert ds.features["v"].dtype == np.float32 and ds.features["v"].flags.c_contiguous
    big = np.ones((2, 3))
    big[1, 2] = 1e300
    with pytest.raises(DataError, match=r"src: 'v' features overflow float32 in 1 rows \(first: \[1\]\): largest "
                                        r"magnitude 1e\+300"):
        RecDataset.from_splits("t", 2, 2, tr, va, te, features={"v": big}, source="src")
    nan = np.ones((2, 3))
    nan[0, 0], nan[1, 1] = np.nan, -np.inf
    with pytest.raises(DataError, match=r"'v' features contain NaN or inf in 2 rows \(first: \[0, 1\]\): 1 NaN and "
                                        r"1 inf"):
        RecDataset.from_splits("t", 2, 2, tr, va, te, features={"v": nan})
    with pytest.raises(DataError, match="must cast to float32"):                 # integers are still refused
        RecDataset.from_splits("t", 2, 2, tr, va, te, features={"v": np.ones((2, 3), dtype=np.int64)})
    with pytest.raises(DataError, match="user_ids has shape"):
        RecDataset.from_splits("t", 2, 2, tr, va, te, user_ids=np.array(["a"]))
    with pytest.raises(DataError, match=r"f\.npy: visual features overflow float32"):
        F.check_feature_matrix(big, 2, "f.npy", "visual")
    assert to_float32(np.array([[1, 2]], dtype=np.int64), "x").dtype == np.float32


def test_from_splits_counts_explicit_zeros_in_sparse_splits():
    m = sp.coo_matrix((np.array([1.0, 0.0, 1.0]), (np.array([0, 0, 1]), np.array([0, 1, 1]))), shape=(2, 2))
    ds = RecDataset.from_splits("t", 2, 2, m, (np.array([1]), np.array([0])), sp.coo_matrix((2, 2)), source="s")
    assert ds.train.nnz == 2 and ds.info["explicit_zeros_dropped"] == {"train": 1, "val": 0, "test": 0}


# ---------------------------------------------------------------------------------------- bad input
def _bad(d, case):
    """Apply one defect to a good folder ``d``; return the file to expect in the message (or None)."""
    inter = d / "interactions.csv"
    df = _rows()
    if case == "no_folder":
        return None
    if case == "no_interactions":
        inter.unlink()
    elif case == "both_tables":
        df.to_parquet(d / "interactions.parquet")
    elif case == "missing_item_column":
        df.drop(columns=["item"]).to_csv(inter, index=False)
    elif case == "missing_named_column":
        (d / "dataset.yaml").write_text("columns: {rating: stars}\n")
    elif case == "threshold_without_rating":
        df.drop(columns=["rating"]).to_csv(inter, index=False)
        (d / "dataset.yaml").write_text("rating_threshold: 4\n")
    elif case == "unknown_key":
        (d / "dataset.yaml").write_text("name: x\nthreshold: 4\n")
    elif case == "unknown_role":
        (d / "dataset.yaml").write_text("columns: {users: uid}\n")
    elif case == "same_column_twice":
        (d / "dataset.yaml").write_text("columns: {user: item}\n")
    elif case == "bad_method":
        (d / "dataset.yaml").write_text("split: temporal\n")
    elif case == "bad_fractions":
        (d / "dataset.yaml").write_text("split: {fractions: [0.8, 0.3, 0.1]}\n")
    elif case == "bad_threshold":
        (d / "dataset.yaml").write_text("rating_threshold: four\n")
    elif case == "bad_yaml":
        (d / "dataset.yaml").write_text("name: [unclosed\n")
    elif case == "unsafe_name":
        (d / "dataset.yaml").write_text("name: ../up\n")
    elif case == "builtin_name":
        (d / "dataset.yaml").write_text("name: ML100K\n")
    elif case == "non_numeric_rating":
        df["rating"] = df["rating"].astype(object)
        df.loc[3, "rating"] = "five"
        df.to_csv(inter, index=False)
    elif case == "empty_rating":
        df["rating"] = df["rating"].astype(object)
        df.loc[5, "rating"] = ""
        df.to_csv(inter, index=False)
    elif case == "empty_user":
        df.loc[2, "user"] = ""
        df.to_csv(inter, index=False)
    elif case == "header_only":
        inter.write_text("user,item,rating\n")
    elif case == "empty_file":
        inter.write_text("")
    elif case == "bad_timestamp":
        df["timestamp"] = df["timestamp"].astype(object)
        df.loc[4, "timestamp"] = "yesterday-ish"
        df.to_csv(inter, index=False)
    elif case == "threshold_removes_all":
        (d / "dataset.yaml").write_text("rating_threshold: 6\n")
    elif case == "bad_split_label":
        df["split"] = "train"
        df.loc[7, "split"] = "validation"
        df.to_csv(inter, index=False)
    elif case == "empty_given_split":
        df = df.iloc[:-1].copy()
        df["split"] = np.where(np.arange(len(df)) % 2, "train", "val")
        df.to_csv(inter, index=False)
    elif case == "pair_in_two_splits":
        df["split"] = (["train"] * 8 + ["val", "test"]) * 6 + ["test"]
        df.to_csv(inter, index=False)
    elif case == "empty_random_split":
        df.groupby("user").head(1).to_csv(inter, index=False)            # one interaction per user: no val
    elif case == "ids_do_not_match":
        np.save(d / "features" / "visual.npy", np.ones((3, 2)))
        (d / "features" / "visual_ids.txt").write_text("0\n1\n2\n")
        return d / "features" / "visual_ids.txt"
    elif case == "ids_count":
        (d / "features" / "visual_ids.txt").write_text("m00\nm01\n")
        return d / "features" / "visual_ids.txt"
    elif case == "ids_file_missing":
        (d / "features" / "visual_ids.txt").unlink()
        return d / "features" / "visual_ids.txt"
    elif case == "duplicate_feature_ids":
        (d / "features" / "visual_ids.txt").write_text("m00\nm01\nm01\n")
        return d / "features" / "visual_ids.txt"
    elif case == "nan_feature":
        f = np.ones((3, 2))
        f[2, 1] = np.nan
        np.save(d / "features" / "visual.npy", f)
        return d / "features" / "visual.npy"
    elif case == "inf_feature_table":
        pd.DataFrame({"item": ["m00", "m01"], "a": [1.0, np.inf]}).to_csv(d / "features" / "textual.csv", index=False)
        return d / "features" / "textual.csv"
    elif case == "empty_feature_cell":
        (d / "features" / "textual.csv").write_text("item,a,b\nm00,1,2\nm01,,3\n")
        return d / "features" / "textual.csv"
    elif case == "overflow_feature":
        np.save(d / "features" / "visual.npy", np.array([[1.0, 2.0], [3.0, 4e39], [5.0, 6.0]]))
        return d / "features" / "visual.npy"
    elif case == "text_feature_column":
        (d / "features" / "textual.csv").write_text("item,a,colour\nm00,1,red\nm01,2,blue\n")
        return d / "features" / "textual.csv"
    elif case == "feature_table_without_item":
        (d / "features" / "textual.csv").write_text("id,a\nm0,1\n")
        return d / "features" / "textual.csv"
    elif case == "pickled_feature":
        np.save(d / "features" / "visual.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
        return d / "features" / "visual.npy"
    elif case == "yaml_feature_missing":
        (d / "dataset.yaml").write_text("features: {visual: features/vis.npy}\n")
        return d / "features" / "vis.npy"
    elif case == "duplicate_item_rows":
        pd.DataFrame({"item": ["m00", "m00"], "title": ["a", "b"]}).to_csv(d / "items.csv", index=False)
        return d / "items.csv"
    else:
        raise AssertionError(case)
    return d / "dataset.yaml" if (d / "dataset.yaml").exists() else inter


BAD = [
    ("no_folder", r"nowhere: folder not found"),
    ("no_interactions", r"mydata: no interactions\.csv or interactions\.parquet"),
    ("both_tables", r"mydata: both interactions\.csv and interactions\.parquet exist"),
    ("missing_item_column", r"interactions\.csv: missing column 'item' \(item, needed by every dataset"),
    ("missing_named_column", r"interactions\.csv: missing column 'stars' \(rating; named by 'columns\.rating'"),
    ("threshold_without_rating", r"interactions\.csv: missing column 'rating' \(rating, needed by rating_threshold"),
    ("unknown_key", r"dataset\.yaml: unknown key\(s\) \['threshold'\]; valid keys: \['name'"),
    ("unknown_role", r"dataset\.yaml: 'columns': unknown column role\(s\) \['users'\]"),
    ("same_column_twice", r"dataset\.yaml: 'columns': roles 'user' and 'item' name the same column 'item'"),
    ("bad_method", r"dataset\.yaml: 'split\.method': expected one of \['random', 'given'\], got 'temporal'"),
    ("bad_fractions", r"dataset\.yaml: 'split\.fractions': expected three non-negative numbers"),
    ("bad_threshold", r"dataset\.yaml: 'rating_threshold': expected a number, got 'four'"),
    ("bad_yaml", r"dataset\.yaml: not valid YAML"),
    ("unsafe_name", r"dataset\.yaml: 'name': '\.\./up' is not a safe name"),
    ("builtin_name", r"dataset\.yaml: 'name': dataset name 'ML100K' is a built-in dataset's name"),
    ("non_numeric_rating", r"interactions\.csv: rating column 'rating' has 1 empty or non-numeric values \(first "
                           r"at line 5: non-numeric 'five'\)"),
    ("empty_rating", r"interactions\.csv: rating column 'rating' has 1 empty or non-numeric values \(first at "
                     r"line 7: empty"),
    ("empty_user", r"interactions\.csv: user column 'user' has 1 empty values \(first at line 4\)"),
    ("header_only", r"interactions\.csv: no interaction rows"),
    ("empty_file", r"interactions\.csv: empty file; expected a header row"),
    ("bad_timestamp", r"interactions\.csv: timestamp column 'timestamp' has values that are neither numbers nor "
                      r"dates \(first at line 6: 'yesterday-ish'\)"),
    ("threshold_removes_all", r"interactions\.csv: no interactions left: all 61 rows have a rating below "
                              r"rating_threshold 6 \(set in .*dataset\.yaml\)"),
    ("bad_split_label", r"interactions\.csv: split column 'split' has 1 values that are not \['train', 'val', "
                        r"'test'\] \(first at line 9: 'validation'\)"),
    ("empty_given_split", r"interactions\.csv: the test split is empty: no row has split == 'test'"),
    ("pair_in_two_splits", r"interactions\.csv: 1 \(user, item\) pairs appear in more than one split of column "
                           r"'split' \(e\.g\. user 'u00', item 'm00'\)"),
    ("empty_random_split", r"interactions\.csv: the val split is empty: 6 unique interactions of 6 users"),
    ("ids_do_not_match", r"visual_ids\.txt: none of its 3 item ids matches an item id of interactions\.csv \(e\.g\. "
                         r"feature ids \[0, 1, 2\] vs item ids \['m00', 'm01', 'm02'\]\)"),
    ("ids_count", r"visual_ids\.txt: 2 ids for the 3 rows of visual\.npy"),
    ("ids_file_missing", r"visual_ids\.txt: file not found \(the item ids of visual\.npy"),
    ("duplicate_feature_ids", r"visual_ids\.txt: 1 item ids appear more than once \(e\.g\. \['m01'\]\)"),
    ("nan_feature", r"visual\.npy: visual features contain NaN or inf in 1 rows \(first at row 2, item id 'm02'\): "
                    r"1 NaN and 0 inf"),
    ("inf_feature_table", r"textual\.csv: textual features contain NaN or inf in 1 rows \(first at line 3, item id "
                          r"'m01'\): 0 NaN and 1 inf"),
    ("empty_feature_cell", r"textual\.csv: textual features contain NaN or inf in 1 rows \(first at line 3, item id "
                           r"'m01'\): 1 NaN"),
    ("overflow_feature", r"visual\.npy: visual features overflow float32 in 1 rows \(first: \[1\]\): largest "
                         r"magnitude 4e\+39"),
    ("text_feature_column", r"textual\.csv: textual feature column 'colour' has non-numeric values \(first at line "
                            r"2: 'red'\)"),
    ("feature_table_without_item", r"textual\.csv: missing item id column 'item'"),
    ("pickled_feature", r"visual\.npy: not a readable numeric \.npy"),
    ("yaml_feature_missing", r"vis\.npy: file not found \(visual features"),
    ("duplicate_item_rows", r"items\.csv: 1 item ids appear more than once"),
]


@pytest.mark.parametrize("case,pattern", BAD, ids=[c for c, _ in BAD])
def test_bad_input_names_file_and_problem(tmp_path, case, pattern):
    d = write_folder(tmp_path, features={"visual.npy": np.ones((3, 2)), "visual_ids.txt": ITEMS[:3]})
    named = _bad(d, case)
    target = tmp_path / "nowhere" if case == "no_folder" else d
    with pytest.raises(DataError, match=pattern) as info:
        load_dataset(f"folder:{target}")
    if named is not None:
        assert str(named) in str(info.value) or named.name in str(info.value)


def test_errors_come_before_reading_tables(tmp_path, monkeypatch):
    """A bad feature file header is reported before the interactions table is read."""
    d = write_folder(tmp_path, features={"textual.csv": pd.DataFrame({"id": ["m0"], "a": [1.0]})})

    def boom(*args, **kwargs):
        raise AssertionError("table read before the cheap checks")

    from mmgrec_lib.data import folder as FD
    monkeypatch.setattr(FD._Table, "read", boom)
    with pytest.raises(DataError, match="missing item id column 'item'"):
        load_folder(d)


# ---------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_ml100k_as_a_folder(data_root, tmp_path):
    """ml-100k's u.data written as interactions.csv loads through folder: with the built-in loader's counts
    and, ids being 1..n in both, exactly the built-in split."""
    from mmgrec_lib.data.ml100k import read_grouplens
    raw = read_grouplens(data_root / "ml-100k")
    table = pd.read_csv(data_root / "ml-100k" / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    folder = tmp_path / "ml100k-as-folder"
    folder.mkdir()
    table.to_csv(folder / "interactions.csv", index=False)
    ds = load_dataset(f"folder:{folder}", seed=0)
    assert (ds.n_users, ds.n_items) == (raw.n_users, raw.n_items) == (943, 1682)
    assert ds.info["rows_read"] == raw.users.size == 100_000
    assert ds.train.nnz + ds.val.nnz + ds.test.nnz == np.unique(raw.users * raw.n_items + raw.items).size
    assert ds.info["duplicates_dropped"]["before_split"] == 0 and ds.info["ratings"]["zero_ratings"] == 0
    assert ds.user_ids.tolist() == list(range(1, 944)) and ds.item_ids.tolist() == list(range(1, 1683))
    builtin = load_dataset("ml100k", root=data_root, seed=0, features=(), progress=False)
    for split in ("train", "val", "test"):
        assert (ds.split(split) != builtin.split(split)).nnz == 0
    (folder / "dataset.yaml").write_text("rating_threshold: 4\n")
    liked = load_folder(folder)
    assert liked.info["rows_kept"] == int((table["rating"] >= 4).sum())
