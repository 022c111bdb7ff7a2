"""MovieLens-100K with text (title / year / genres / IMDb plot) and poster features.

Sources, in order:

1. ``root`` (or ``$MMGREC_DATA``) containing ``ml-100k/`` (GroupLens ``u.data``, ``u.item``, ``u.genre``),
   optionally ``ml-100k-imdb/movielens100k_details.csv`` (plots) and ``ml-1m-posters/`` (``movies.dat`` +
   ``posters/<ml-1m id>.jpg``).
2. Without a data root: the copy of the ratings inside the ``recbole==1.2.1`` wheel, fetched with
   ``pip download`` into the cache and read from the zip without installing it (RecBole atomic files
   ``ml-100k.inter`` / ``ml-100k.item``). Text features only (titles, years, genres); no posters.

Every rating is an implicit interaction. Ids become 0-based (``id - 1``). Duplicated (user, item) pairs
are dropped (count in ``info["duplicates_dropped"]["before_split"]``); the remaining pairs, sorted by
(user, item), are split per user 80/10/10 with :func:`~mmgrec_lib.data.dataset.random_split` and ``seed``.

Poster join: ml-100k and ml-1m use different ids; each ``u.item`` title is matched to ``movies.dat`` by
its lower-cased title string with surrounding whitespace stripped. Stripping is the one normalisation
added to the documented exact lower-cased match: three ``u.item`` titles carry a trailing space
(e.g. ``"Two Friends (1986) "``); without it 1,620 titles match (1,617 with a poster), with it 1,623
(1,620 with a poster), the numbers given in the data README. Items without a poster get a zero visual
row and ``feature_masks["visual"] == False``.
"""
from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .paths import cache_dir, data_root, root_hint
from . import features as F
from .dataset import DataError, RecDataset, random_split

__all__ = [
    "GENRES", "RECBOLE_VERSION", "Ml100kRaw", "load_ml100k", "read_grouplens", "read_recbole",
    "parse_atomic", "download_recbole_wheel", "match_posters", "read_imdb_plots", "item_text",
]

#: The 19 genre flags of ``u.item``, in ``u.genre`` order (used when ``u.genre`` is absent).
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
RECBOLE_VERSION = "1.2.1"
_RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/ml-100k"
_MODALITIES = ("textual", "visual")
_YEAR = re.compile(r"\((\d{4})\)")


@dataclass
class Ml100kRaw:
    """Parsed MovieLens-100K before splitting and feature extraction.

    Attributes:
        users, items: 0-based ids of every rating row (duplicates not yet dropped), int64.
        n_users, n_items: id-space sizes.
        meta: per-item DataFrame (index 0..n_items-1) with ``title`` (str or None), ``year`` (Int64),
            ``genres`` (list of str) and source-specific columns.
        source: folder or wheel the ratings came from.
        files: the files read.
    """

    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int
    meta: pd.DataFrame
    source: str
    files: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- helpers
_ML100K_FOLDERS = "ml-100k/, ml-100k-imdb/ and ml-1m-posters/"


def _missing(path: Path, what: str, root: str | os.PathLike | None = None) -> DataError:
    """A "file not found" error whose advice fits how the data folder was given (``root=`` or MMGREC_DATA)."""
    return DataError(f"{path}: file not found ({what}). {_cap(root_hint(root, _ML100K_FOLDERS))}")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _year_of(title: str | None, release_date: str | None = None) -> int | None:
    years = _YEAR.findall(title or "")
    if years:
        return int(years[-1])
    m = re.search(r"(\d{4})\s*$", release_date or "")
    return int(m.group(1)) if m else None


def _title_base(title: str | None) -> str:
    """Title without its ``(year)`` part (the year is added back by :func:`item_text`)."""
    if not title:
        return ""
    years = list(_YEAR.finditer(title))
    if years:
        last = years[-1]
        title = title[:last.start()] + title[last.end():]
    return " ".join(title.split())


def item_text(title: str | None, year: int | None, genres: Sequence[str], plot: str | None = None) -> str:
    """The text embedded for an item: ``"Title (Year). Genres: A, B. Plot: ..."`` (parts omitted when unknown)."""
    text = _title_base(title if isinstance(title, str) else None) or "untitled"
    if year is not None and not pd.isna(year):
        text += f" ({int(year)})"
    text += "."
    if len(genres):
        text += f" Genres: {', '.join(genres)}."
    if isinstance(plot, str) and plot.strip():
        text += f" Plot: {plot.strip()}"
    return text


def _objects(values) -> pd.Series:
    """An ``object`` Series that keeps ``None`` (pandas would turn a list of str / None into NaN strings)."""
    return pd.Series(list(values), dtype=object)


def _to_zero_based(ids: np.ndarray, where: str, what: str) -> np.ndarray:
    if ids.size and ids.min() < 1:
        bad = ids[ids < 1]
        raise DataError(f"{where}: {bad.size} {what} ids < 1 (ids must be 1-based positive integers; e.g. "
                        f"{bad[:3].tolist()})")
    return ids.astype(np.int64) - 1


# ---------------------------------------------------------------------------------------- GroupLens files
def _read_genres(folder: Path) -> tuple[str, ...]:
    path = folder / "u.genre"
    if not path.is_file():
        return GENRES
    rows = [line.rsplit("|", 1) for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
    try:
        names = {int(idx): name for name, idx in rows}
    except ValueError as exc:
        raise DataError(f"{path}: expected 'name|index' lines ({exc})") from exc
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: genre indices must be 0..{len(names) - 1}, got {sorted(names)}")
    return tuple(names[i] for i in range(len(names)))


def read_grouplens(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> Ml100kRaw:
    """Parse GroupLens ``u.data`` (tab-separated ``user item rating time``) and ``u.item`` (latin-1, ``|``).

    ``meta`` gets ``title``, ``year``, ``release_date``, ``imdb_url`` and ``genres`` (from the 19 flags
    in ``u.genre`` order).

    ``root``: the ``root=`` argument the folder came from (only for the advice in "not found" messages).

    Raises:
        DataError: missing / malformed files, ids < 1 or rating items absent from ``u.item``.
    """
    folder = Path(folder)
    data_path, item_path = folder / "u.data", folder / "u.item"
    for p, what in ((data_path, "MovieLens-100K ratings"), (item_path, "MovieLens-100K movie list")):
        if not p.is_file():
            raise _missing(p, what, root)
    try:
        ratings = pd.read_csv(data_path, sep="\t", header=None, dtype=np.int64, engine="c")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{data_path}: cannot parse as tab-separated integers 'user item rating timestamp' "
                        f"({exc})") from exc
    if ratings.shape[1] != 4:
        raise DataError(f"{data_path}: expected 4 tab-separated columns (user, item, rating, timestamp), "
                        f"got {ratings.shape[1]}")
    genres = _read_genres(folder)
    try:
        items = pd.read_csv(item_path, sep="|", header=None, encoding="latin-1", dtype=str,
                            keep_default_na=False, quoting=csv.QUOTE_NONE)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{item_path}: cannot parse as latin-1 '|'-separated movie records ({exc})") from exc
    if items.shape[1] != 5 + len(genres):
        raise DataError(f"{item_path}: expected {5 + len(genres)} '|'-separated fields (id, title, release date, "
                        f"video date, IMDb URL, {len(genres)} genre flags), got {items.shape[1]}")
    try:
        item_ids = items[0].astype(np.int64).to_numpy()
        flags = items.iloc[:, 5:].astype(np.int64).to_numpy().astype(bool)
    except ValueError as exc:
        raise DataError(f"{item_path}: non-integer movie id or genre flag ({exc})") from exc
    n_items = len(items)
    if not np.array_equal(item_ids, np.arange(1, n_items + 1)):
        raise DataError(f"{item_path}: movie ids must be 1..{n_items} in order")
    users = _to_zero_based(ratings[0].to_numpy(), str(data_path), "user")
    rated = _to_zero_based(ratings[1].to_numpy(), str(data_path), "item")
    if rated.size and rated.max() >= n_items:
        bad = rated[rated >= n_items] + 1
        raise DataError(f"{data_path}: {bad.size} ratings reference item ids out of range 1..{n_items} "
                        f"(not in {item_path.name}; e.g. {bad[:3].tolist()})")
    titles = [t.strip() or None for t in items[1]]
    meta = pd.DataFrame({
        "title": _objects(titles),
        "year": pd.array([_year_of(t, d) for t, d in zip(titles, items[2])], dtype="Int64"),
        "release_date": _objects(d or None for d in items[2]),
        "imdb_url": _objects(u or None for u in items[4]),
        "genres": _objects([g for g, f in zip(genres, row) if f] for row in flags),
    })
    return Ml100kRaw(users=users, items=rated, n_users=int(users.max()) + 1 if users.size else 0,
                     n_items=n_items, meta=meta, source=str(folder),
                     files=[str(data_path), str(item_path)])


def read_imdb_plots(path: str | os.PathLike, n_items: int) -> list[str | None]:
    """Plot (``description``) per 0-based item from ``movielens100k_details.csv`` (key ``movie_id``)."""
    path = Path(path)
    try:
        df = pd.read_csv(path, usecols=["movie_id", "description"])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read columns 'movie_id' and 'description' ({exc})") from exc
    plots: list[str | None] = [None] * n_items
    for mid, desc in zip(df["movie_id"], df["description"]):
        if pd.isna(mid) or pd.isna(desc) or not str(desc).strip():
            continue
        idx = int(mid) - 1
        if 0 <= idx < n_items and plots[idx] is None:
            plots[idx] = " ".join(str(desc).split())
    return plots


def match_posters(titles: Sequence[str | None], folder: str | os.PathLike,
                  root: str | os.PathLike | None = None) -> tuple[np.ndarray, list[str | None]]:
    """Join titles to ``<folder>/movies.dat`` (ml-1m) by stripped lower-cased title; find ``posters/<id>.jpg``.

    Returns:
        ``(ml1m_ids, poster_paths)``: ml-1m id per title (-1 when unmatched) and the poster path (or
        ``None`` when unmatched or the file is absent).
    """
    folder = Path(folder)
    movies = folder / "movies.dat"
    if not movies.is_file():
        raise _missing(movies, "ml-1m movie list for the poster join", root)
    by_title: dict[str, int] = {}
    for n, line in enumerate(movies.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            raise DataError(f"{movies}: line {n} is not 'id::Title (Year)::Genres': {line[:80]!r}")
        by_title.setdefault(parts[1].strip().lower(), int(parts[0]))
    ids = np.array([by_title.get((t or "").strip().lower(), -1) for t in titles], dtype=np.int64)
    posters = folder / "posters"
    paths = [str(posters / f"{i}.jpg") if i >= 0 and (posters / f"{i}.jpg").is_file() else None for i in ids]
    return ids, paths


# ---------------------------------------------------------------------------------------- RecBole fallback
def parse_atomic(text: str, source: str = "<atomic>") -> pd.DataFrame:
    """Parse a RecBole atomic file (tab-separated, header ``name:type``).

    Columns are renamed to their bare names; ``float`` columns become float64, ``token`` /
    ``token_seq`` columns stay strings (``token_seq`` is space-separated; split it where needed).

    Raises:
        DataError: empty file, header without ``name:type`` fields, unknown types, ragged rows or
            non-numeric ``float`` values.
    """
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{source}: empty RecBole atomic file")
    header = lines[0].split("\t")
    names, types = [], []
    for h in header:
        name, sep, typ = h.partition(":")
        if not sep or typ not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(f"{source}: header field {h!r} is not 'name:type' with type token, token_seq, "
                            f"float or float_seq")
        names.append(name)
        types.append(typ)
    try:
        df = pd.read_csv(io.StringIO(text), sep="\t", header=0, names=names, dtype=str, keep_default_na=False,
                         quoting=csv.QUOTE_NONE, engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{source}: malformed RecBole atomic rows ({exc})") from exc
    for name, typ in zip(names, types):
        if typ == "float":
            try:
                df[name] = df[name].astype(np.float64)
            except ValueError as exc:
                raise DataError(f"{source}: column {name!r} is declared float but has non-numeric values "
                                f"({exc})") from exc
    return df


def _int_tokens(col: pd.Series, where: str, what: str) -> np.ndarray:
    try:
        return col.astype(np.int64).to_numpy()
    except ValueError as exc:
        raise DataError(f"{where}: {what} tokens must be integer MovieLens ids ({exc})") from exc


def read_recbole(path: str | os.PathLike) -> Ml100kRaw:
    """Read ``ml-100k.inter`` (+ optional ``ml-100k.item``) from a RecBole wheel (zip) or a folder.

    Ids are the original MovieLens ids (1-based), mapped to ``id - 1``. ``meta`` gets ``title``
    (``"Title (Year)"``), ``year`` and ``genres`` (the ``class`` token sequence).
    """
    path = Path(path)
    if path.is_dir():
        def read(member: str) -> str | None:
            f = path / Path(member).name
            return f.read_text(encoding="utf-8") if f.is_file() else None
    elif path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{path}: not a readable wheel / zip file ({exc})") from exc

        def read(member: str) -> str | None:
            try:
                return zf.read(member).decode("utf-8")
            except KeyError:
                return None
    else:
        raise DataError(f"{path}: RecBole wheel or folder not found")
    inter_text = read(f"{_RECBOLE_MEMBER}.inter")
    if inter_text is None:
        raise DataError(f"{path}: no {_RECBOLE_MEMBER}.inter inside")
    where = f"{path}:{Path(_RECBOLE_MEMBER).name}"
    inter = parse_atomic(inter_text, f"{where}.inter")
    for col in ("user_id", "item_id"):
        if col not in inter:
            raise DataError(f"{where}.inter: missing column '{col}:token'")
    users = _to_zero_based(_int_tokens(inter["user_id"], f"{where}.inter", "user"), f"{where}.inter", "user")
    items = _to_zero_based(_int_tokens(inter["item_id"], f"{where}.inter", "item"), f"{where}.inter", "item")
    item_text_ = read(f"{_RECBOLE_MEMBER}.item")
    n_items = int(items.max()) + 1 if items.size else 0
    titles: list[str | None]
    years: list[int | None]
    genres: list[list[str]]
    if item_text_ is not None:
        table = parse_atomic(item_text_, f"{where}.item")
        if "item_id" not in table:
            raise DataError(f"{where}.item: missing column 'item_id:token'")
        ids = _to_zero_based(_int_tokens(table["item_id"], f"{where}.item", "item"), f"{where}.item", "item")
        n_items = max(n_items, int(ids.max()) + 1 if ids.size else 0)
        titles, years, genres = [None] * n_items, [None] * n_items, [[] for _ in range(n_items)]
        empty = pd.Series([""] * len(table), index=table.index)
        for i, name, y, cls in zip(ids, table.get("movie_title", empty), table.get("release_year", empty),
                                   table.get("class", empty)):
            name, y = str(name).strip(), str(y).strip()
            years[i] = int(y) if y.isdigit() else None
            titles[i] = (f"{name} ({y})" if y.isdigit() else name) or None
            genres[i] = str(cls).split()
    else:
        titles, years, genres = [None] * n_items, [None] * n_items, [[] for _ in range(n_items)]
    meta = pd.DataFrame({"title": _objects(titles), "year": pd.array(years, dtype="Int64"),
                         "genres": _objects(genres)})
    return Ml100kRaw(users=users, items=items, n_users=int(users.max()) + 1 if users.size else 0,
                     n_items=n_items, meta=meta, source=str(path),
                     files=[f"{path}!{_RECBOLE_MEMBER}.inter"] + ([f"{path}!{_RECBOLE_MEMBER}.item"]
                                                                   if item_text_ is not None else []))


def download_recbole_wheel(cache: str | os.PathLike | None = None, version: str = RECBOLE_VERSION,
                           timeout: float = 600) -> Path:
    """The ``recbole==version`` wheel in ``cache_dir(cache)/recbole``, fetched with ``pip download`` if absent.

    Only downloads (``--no-deps --only-binary=:all:``); recbole is never installed.

    Raises:
        DataError: pip failed (e.g. no network) or produced no wheel.
    """
    dest = cache_dir(cache) / "recbole"
    existing = sorted(dest.glob(f"recbole-{version}-*.whl"))
    if existing:
        return existing[0]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"recbole=={version}", "-d", tmp, "--disable-pip-version-check", "-q"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"could not download recbole=={version} for the MovieLens-100K ratings ({exc}); "
                            f"set MMGREC_DATA to the shared data folder containing ml-100k/") from exc
        wheels = sorted(Path(tmp).glob(f"recbole-{version}-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise DataError(f"could not download recbole=={version} for the MovieLens-100K ratings "
                            f"(pip exit {proc.returncode}: {' | '.join(tail)}); set MMGREC_DATA to the "
                            f"shared data folder containing ml-100k/")
        target = dest / wheels[0].name
        os.replace(wheels[0], target)
    return target


# ---------------------------------------------------------------------------------------- loader
def load_ml100k(root: str | os.PathLike | None = None, seed: int = 0,
                features: Sequence[str] = ("textual", "visual"), cache: str | os.PathLike | None = None,
                device: str = "cpu", progress: bool = True) -> RecDataset:
    """Load MovieLens-100K as a :class:`RecDataset` with per-user random 80/10/10 split.

    Args:
        root: data folder (default ``$MMGREC_DATA``). Without one, the ratings come from the
            ``recbole==1.2.1`` wheel (downloaded into the cache) and only text features are available.
        seed: split seed for :func:`~mmgrec_lib.data.dataset.random_split`.
        features: modalities to compute, subset of ``("textual", "visual")``; ``()`` for none.
        cache: feature / download cache root (see :func:`mmgrec_lib.data.paths.cache_dir`).
        device: torch device for the extractors (used only on a cache miss).
        progress: show ``tqdm`` bars during extraction.

    Returns:
        The dataset. ``item_titles`` are the ``u.item`` titles; ``item_meta`` (index = item id) has
        ``title``, ``year`` (Int64), ``genres`` (list of str, ``u.genre`` order), ``imdb_plot`` (str or
        None) and, with a data root, ``release_date``, ``imdb_url``, ``ml1m_id`` (Int64) and ``poster_path``
        (str or None). ``info["features"]["poster_join"]`` reports the join coverage.

    Raises:
        DataError: missing / malformed files (named), or ``"visual"`` requested with a data root that
            lacks ``ml-1m-posters/``.
        ValueError: unknown modality names.
    """
    if isinstance(features, str):
        features = (features,)
    unknown = sorted(set(features) - set(_MODALITIES))
    if unknown:
        raise ValueError(f"load_ml100k: unknown modalities {unknown}; available: {list(_MODALITIES)}")
    notes: list[str] = []
    folder = data_root(root)
    files: list[str]
    if folder is not None:
        if not folder.is_dir():
            raise DataError(f"{folder}: data folder not found. {_cap(root_hint(root, 'ml-100k/'))}")
        raw = read_grouplens(folder / "ml-100k", root)
        files = list(raw.files)
        imdb = folder / "ml-100k-imdb" / "movielens100k_details.csv"
        if imdb.is_file():
            raw.meta["imdb_plot"] = _objects(read_imdb_plots(imdb, raw.n_items))
            files.append(str(imdb))
        else:
            raw.meta["imdb_plot"] = None
            notes.append(f"{imdb} not found: text features use title, year and genres only")
        posters = folder / "ml-1m-posters"
        if "visual" in features or (posters / "movies.dat").is_file():
            ml1m_ids, poster_paths = match_posters(raw.meta["title"].tolist(), posters, root)
            raw.meta["ml1m_id"] = pd.array([int(i) if i >= 0 else None for i in ml1m_ids], dtype="Int64")
            raw.meta["poster_path"] = _objects(poster_paths)
            files.append(str(posters / "movies.dat"))
    else:
        wheel = download_recbole_wheel(cache)
        raw = read_recbole(wheel)
        files = list(raw.files)
        raw.meta["imdb_plot"] = None
        notes.append("no data root: ratings from the recbole wheel; no posters or plots")
        if "visual" in features:
            notes.append("visual features requested but posters are unavailable without MMGREC_DATA: skipped")
            features = tuple(m for m in features if m != "visual")

    n_users, n_items = raw.n_users, raw.n_items
    if raw.users.size == 0:
        raise DataError(f"{files[0]}: no ratings; the train split would be empty")
    pairs = np.unique(raw.users * n_items + raw.items)      # dedup; sorted by (user, item)
    dup = int(raw.users.size - pairs.size)
    users, items = pairs // n_items, pairs % n_items
    train, val, test = random_split(users, items, seed=seed)

    feats: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    feat_info: dict[str, Any] = {}
    meta = raw.meta
    if "textual" in features:
        texts = [item_text(t, y, g, p) for t, y, g, p in
                 zip(meta["title"], meta["year"], meta["genres"], meta["imdb_plot"])]
        feats["textual"] = F.text_features(texts, name="ml100k-textual", cache=cache, device=device,
                                           progress=progress)
        masks["textual"] = np.ones(n_items, dtype=bool)
        feat_info["textual"] = {"extractor": F.text_extractor_id(), "dim": int(feats["textual"].shape[1]),
                                "with_plot": int(meta["imdb_plot"].notna().sum())}
    if "visual" in features:
        has = np.array([isinstance(p, str) for p in meta["poster_path"]], dtype=bool)
        vis = np.zeros((n_items, F.IMAGE_DIM), dtype=np.float32)
        vis[has] = F.image_features(meta["poster_path"][has].tolist(), name="ml100k-visual",
                                    cache=cache, device=device, progress=progress)
        feats["visual"], masks["visual"] = vis, has
        feat_info["visual"] = {"extractor": F.image_extractor_id(), "dim": F.IMAGE_DIM}
    if "poster_path" in meta:
        has = np.array([isinstance(p, str) for p in meta["poster_path"]], dtype=bool)
        feat_info["poster_join"] = {
            "method": "stripped lower-cased u.item title == movies.dat title",
            "titles_matched": int(meta["ml1m_id"].notna().sum()),
            "with_poster": int(has.sum()),
            "ratings_with_poster": int(has[raw.items].sum()),
        }

    info = {
        "source": raw.source,
        "files": files,
        "split": {"method": "per-user random 80/10/10 over (user, item)-sorted unique pairs", "seed": seed},
        "ratings_read": int(raw.users.size),
        "features": feat_info,
        "notes": notes,
    }
    ds = RecDataset.from_splits("ml100k", n_users, n_items, train, val, test, features=feats,
                                feature_masks=masks, source=raw.source, info=info,
                                item_titles=[t if isinstance(t, str) else None for t in meta["title"]], item_meta=meta)
    ds.info["duplicates_dropped"]["before_split"] = dup
    return ds
