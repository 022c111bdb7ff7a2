"""Your own dataset: a folder with an interactions table, an optional ``dataset.yaml`` and optional features.

Load it with ``load_dataset("folder:/path/to/mydata")`` (or :func:`load_folder`). Layout::

    mydata/
      interactions.csv          # or interactions.parquet (exactly one of the two)
      dataset.yaml              # optional, see below
      items.csv                 # optional (or items.parquet): item, title, any other columns
      features/                 # optional, one modality per file; the file stem is the modality name
        visual.npy              #   (rows, d) numeric matrix (np.save, no pickles) ...
        visual_ids.txt          #   ... with its item ids, one per line, in row order
        textual.csv             #   or a table (CSV / Parquet): the item column + numeric columns, one per dim

Interactions table: a header row, columns ``user`` and ``item`` (raw ids of any type: integers or
strings), optional ``rating``, ``timestamp`` and ``split``; other columns are ignored. CSV files are read
with ``sep`` (default ``,``), ids as text: a column whose ids are all plain integers (``42``, not ``042``)
becomes ``int64``, any other stays strings. Parquet ids keep their type (integer-valued floats become
``int64``). Users and items are factorised to ``0..n-1`` in sorted raw-id order; the raw ids are kept in
``RecDataset.user_ids`` / ``item_ids`` (position = internal id) and ``item_meta["item_id"]``.

``dataset.yaml`` (every key optional; any other key is an error)::

    name: mydata                     # default: the folder's name (characters outside [A-Za-z0-9_.-] -> "-")
    interactions: interactions.csv   # default: interactions.csv or interactions.parquet
    sep: ","                         # CSV field separator (interactions, items and feature tables)
    columns:                         # column names in your files (defaults shown)
      {user: user, item: item, rating: rating, timestamp: timestamp, split: split, title: title}
    rating_threshold: 4              # keep rows with rating >= 4 (needs the rating column)
    split: {method: random, seed: 0, fractions: [0.8, 0.1, 0.1]}   # or: split: given
    items: items.csv                 # default: items.csv or items.parquet when present
    features:                        # default: every .npy / .csv / .parquet file in features/
      visual: features/visual.npy
      textual: features/textual.parquet

Rules:

* Ratings must be numeric. With ``rating_threshold`` only rows with ``rating >= threshold`` are kept;
  without it, a rating of exactly 0 is not an interaction (as with the zeros of the sparse formats) and its
  rows are dropped. Either way the counts are in ``info["ratings"]`` and ``info["notes"]``.
* Repeated (user, item) pairs are kept once; the count is in ``info["duplicates_dropped"]["before_split"]``.
* Split ``random`` (the default unless the table has the split column): the unique pairs, sorted by
  (user, item), are split per user with :func:`~mmgrec_lib.data.dataset.random_split` (``fractions``,
  ``seed``). ``seed`` in the yaml pins the split; without it the ``seed`` argument is used
  (``info["split"]["seed_from"]`` says which). Split ``given``: the split column holds ``train`` / ``val`` /
  ``test``; a pair in two splits is an error. Every split must be non-empty.
* Features are matched to items by id (compared as text). Items without a row get a zero row and
  ``feature_masks[m] == False`` (the missing-modality convention of every loader); feature rows whose id is
  not an item (e.g. removed by the threshold) are counted in ``info["features"][m]["unused_rows"]``.
  Values are cast to float32 (:func:`~mmgrec_lib.data.dataset.to_float32`): NaN / inf and values beyond the
  float32 range (overflow) are errors naming the file, the row and the item id.
* Items table: optional ``title`` column -> ``item_titles``; every column -> ``item_meta``; a
  ``poster_path`` column with relative paths is resolved against the folder.
* The name must not be a built-in dataset's name (reports and run checkpoints are keyed by name).
  ``info["content_sha256"]`` hashes every file read, so caches can tell edited data apart.

Everything that can be checked cheaply (yaml keys and values, files present, column headers) is checked
before any table is read; errors are :class:`~mmgrec_lib.data.dataset.DataError` naming the file or yaml
field and the problem.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .dataset import SPLITS, DataError, RecDataset, random_split, to_float32

__all__ = ["YAML_FILE", "FEATURES_DIR", "COLUMN_DEFAULTS", "FolderSpec", "read_spec", "folder_dataset_name",
           "load_folder"]

YAML_FILE = "dataset.yaml"
FEATURES_DIR = "features"
TABLE_SUFFIXES = (".csv", ".parquet")
FEATURE_SUFFIXES = (".npy", ".csv", ".parquet")
#: Roles of columns -> default column names.
COLUMN_DEFAULTS = {"user": "user", "item": "item", "rating": "rating", "timestamp": "timestamp",
                   "split": "split", "title": "title"}
YAML_KEYS = ("name", "interactions", "sep", "columns", "rating_threshold", "split", "items", "features")
SPLIT_KEYS = ("method", "seed", "fractions")
SPLIT_METHODS = ("random", "given")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PLAIN_INT = r"-?(?:0|[1-9][0-9]{0,17})"
_MODALITY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass
class FolderSpec:
    """The checked contents of ``dataset.yaml`` (defaults filled in) plus the files it points to."""

    folder: Path
    name: str
    name_from: str
    interactions: Path
    sep: str = ","
    columns: dict[str, str] = field(default_factory=lambda: dict(COLUMN_DEFAULTS))
    explicit_columns: set[str] = field(default_factory=set)
    rating_threshold: float | None = None
    split_method: str | None = None            # None: decided from the table (given if it has the split column)
    split_seed: int | None = None
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    items: Path | None = None
    features: dict[str, Path] = field(default_factory=dict)
    yaml_path: Path | None = None


# ---------------------------------------------------------------------------------------- dataset.yaml
def _yaml_error(path: Path, key: str, problem: str) -> DataError:
    return DataError(f"{path}: '{key}': {problem}")


def _safe_name(folder: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.name).strip("-.")


def _relative_file(folder: Path, yaml_path: Path, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _yaml_error(yaml_path, key, f"expected a file name relative to {folder}, got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else folder / p


def _one_of(folder: Path, stem: str, what: str, required: bool) -> Path | None:
    hits = [folder / f"{stem}{s}" for s in TABLE_SUFFIXES if (folder / f"{stem}{s}").is_file()]
    if len(hits) > 1:
        raise DataError(f"{folder}: both {hits[0].name} and {hits[1].name} exist; keep one {what} table "
                        f"(or name it with '{stem}:' in {YAML_FILE})")
    if not hits and required:
        raise DataError(f"{folder}: no {stem}.csv or {stem}.parquet ({what} table with columns user, item "
                        f"[, rating, timestamp, split]); or name the file with '{stem}:' in {YAML_FILE}")
    return hits[0] if hits else None


def _table_file(folder: Path, yaml_path: Path, raw: dict, key: str, required: bool) -> Path | None:
    """The ``key`` table (``interactions``, ``items``): named in the yaml, else ``<key>.csv`` / ``.parquet``."""
    if key not in raw:
        return _one_of(folder, key, key, required=required)
    path = _relative_file(folder, yaml_path, key, raw[key])
    _check_table_suffix(path, f"{yaml_path}: '{key}'")
    if not path.is_file():
        raise DataError(f"{path}: file not found (named by '{key}' in {yaml_path})")
    return path


def _check_table_suffix(path: Path, where: str) -> None:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"{where}: {path.name} is neither .csv nor .parquet")


def read_spec(folder: str | os.PathLike) -> FolderSpec:
    """Read and check ``folder/dataset.yaml`` (if any) and locate the files; reads no table.

    Raises:
        DataError: missing folder or files, unreadable YAML, unknown keys (top level, ``columns``,
            ``split``), values of the wrong type, a name that is unsafe or a built-in dataset's name.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected a dataset folder with interactions.csv or "
                        f"interactions.parquet)")
    yaml_path = folder / YAML_FILE
    raw: dict[str, Any] = {}
    if yaml_path.is_file():
        import yaml
        try:
            loaded = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DataError(f"{yaml_path}: not valid YAML ({exc})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise DataError(f"{yaml_path}: expected a mapping of settings, got {type(loaded).__name__}")
        raw = loaded or {}
    unknown = sorted(str(k) for k in raw if k not in YAML_KEYS)
    if unknown:
        raise DataError(f"{yaml_path}: unknown key(s) {unknown}; valid keys: {list(YAML_KEYS)}")

    # name
    if "name" in raw:
        name, name_from = raw["name"], f"{YAML_FILE} 'name'"
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise _yaml_error(yaml_path, "name", f"{name!r} is not a safe name: use letters, digits, '_', '.', '-' "
                                                 f"(it becomes part of file names), starting with a letter or digit")
    else:
        name, name_from = _safe_name(folder.resolve()), "folder name"
        if not name:
            raise DataError(f"{folder}: cannot derive a dataset name from the folder name; set 'name:' in "
                            f"{YAML_FILE}")
    from . import DATASETS
    if name.casefold() in {d.casefold() for d in DATASETS}:
        where = f"{yaml_path}: 'name'" if "name" in raw else str(folder)
        raise DataError(f"{where}: dataset name {name!r} is a built-in dataset's name; reports and run "
                        f"checkpoints are keyed by name, so rename the folder or set another 'name:' in {YAML_FILE}")

    # files
    interactions = _table_file(folder, yaml_path, raw, "interactions", required=True)
    items = _table_file(folder, yaml_path, raw, "items", required=False)

    sep = raw.get("sep", ",")
    if not isinstance(sep, str) or not sep:
        raise _yaml_error(yaml_path, "sep", f"expected a non-empty string such as ',' or '\\t', got {sep!r}")

    columns = dict(COLUMN_DEFAULTS)
    explicit: set[str] = set()
    if "columns" in raw:
        cols = raw["columns"]
        if not isinstance(cols, dict):
            raise _yaml_error(yaml_path, "columns", f"expected a mapping such as {{user: user_id, item: item_id}}, "
                                                    f"got {cols!r}")
        bad = sorted(str(k) for k in cols if k not in COLUMN_DEFAULTS)
        if bad:
            raise _yaml_error(yaml_path, "columns", f"unknown column role(s) {bad}; valid roles: "
                                                    f"{list(COLUMN_DEFAULTS)}")
        for role, col in cols.items():
            if not isinstance(col, str) or not col:
                raise _yaml_error(yaml_path, f"columns.{role}", f"expected a column name, got {col!r}")
            columns[role] = col
            explicit.add(role)
        roles_of: dict[str, str] = {}
        for role in ("user", "item", "rating", "timestamp", "split"):   # title lives in the items table
            col = columns[role]
            if col in roles_of:
                raise _yaml_error(yaml_path, "columns", f"roles '{roles_of[col]}' and '{role}' name the same "
                                                        f"column {col!r}")
            roles_of[col] = role

    threshold = raw.get("rating_threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
            raise _yaml_error(yaml_path, "rating_threshold", f"expected a number, got {threshold!r}")
        threshold = float(threshold)

    method, seed, fractions = None, None, (0.8, 0.1, 0.1)
    if "split" in raw:
        sp_ = raw["split"]
        if isinstance(sp_, str):
            sp_ = {"method": sp_}
        if not isinstance(sp_, dict):
            raise _yaml_error(yaml_path, "split", f"expected 'random', 'given' or a mapping with keys "
                                                  f"{list(SPLIT_KEYS)}, got {sp_!r}")
        bad = sorted(str(k) for k in sp_ if k not in SPLIT_KEYS)
        if bad:
            raise _yaml_error(yaml_path, "split", f"unknown key(s) {bad}; valid keys: {list(SPLIT_KEYS)}")
        method = sp_.get("method", "random")
        if method not in SPLIT_METHODS:
            raise _yaml_error(yaml_path, "split.method", f"expected one of {list(SPLIT_METHODS)}, got {method!r}")
        if "seed" in sp_:
            seed = sp_["seed"]
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise _yaml_error(yaml_path, "split.seed", f"expected a non-negative integer, got {seed!r}")
            if method == "given":
                raise _yaml_error(yaml_path, "split.seed", "a given split uses no seed; remove it")
        if "fractions" in sp_:
            fr = sp_["fractions"]
            ok = (isinstance(fr, (list, tuple)) and len(fr) == 3
                  and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in fr))
            if not ok or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0:
                raise _yaml_error(yaml_path, "split.fractions", f"expected three non-negative numbers "
                                  f"[train, val, test] summing to 1 with train > 0, got {fr!r}")
            if method == "given":
                raise _yaml_error(yaml_path, "split.fractions", "a given split uses no fractions; remove them")
            fractions = tuple(float(x) for x in fr)

    features: dict[str, Path] = {}
    if "features" in raw:
        fs = raw["features"] or {}
        if not isinstance(fs, dict):
            raise _yaml_error(yaml_path, "features", f"expected a mapping modality -> file, got {fs!r}")
        for m, f in fs.items():
            if not isinstance(m, str) or not _MODALITY.fullmatch(m):
                raise _yaml_error(yaml_path, "features", f"modality name {m!r} must be an identifier such as "
                                                         f"'visual' or 'textual'")
            p = _relative_file(folder, yaml_path, f"features.{m}", f)
            if p.suffix.lower() not in FEATURE_SUFFIXES:
                raise _yaml_error(yaml_path, f"features.{m}", f"{p.name}: expected a .npy, .csv or .parquet file")
            features[m] = p
    else:
        fdir = folder / FEATURES_DIR
        if fdir.is_dir():
            for p in sorted(fdir.iterdir()):
                if p.is_file() and p.suffix.lower() in FEATURE_SUFFIXES:
                    if p.stem in features:
                        raise DataError(f"{fdir}: several feature files for modality '{p.stem}' "
                                        f"({features[p.stem].name}, {p.name}); keep one")
                    if not _MODALITY.fullmatch(p.stem):
                        raise DataError(f"{p}: the file stem is the modality name and must be an identifier "
                                        f"such as 'visual'; rename the file or list it under 'features:' in "
                                        f"{YAML_FILE}")
                    features[p.stem] = p
    for m, p in features.items():
        if not p.is_file():
            raise DataError(f"{p}: file not found ({m} features, named in {yaml_path})")
        if p.suffix.lower() == ".npy" and not _ids_file(p).is_file():
            raise DataError(f"{_ids_file(p)}: file not found (the item ids of {p.name}, one per line in row order)")

    return FolderSpec(folder=folder, name=name, name_from=name_from, interactions=interactions, sep=sep,
                      columns=columns, explicit_columns=explicit, rating_threshold=threshold, split_method=method,
                      split_seed=seed, fractions=fractions, items=items, features=features,
                      yaml_path=yaml_path if yaml_path.is_file() else None)


def folder_dataset_name(folder: str | os.PathLike) -> str:
    """The name the dataset in ``folder`` gets (``name:`` in ``dataset.yaml``, else the sanitised folder name).

    Reads only ``dataset.yaml``: cheap enough for a runner to name its outputs before loading. The name
    matches ``[A-Za-z0-9][A-Za-z0-9_.-]*``, so it is safe in file and table names.
    """
    return read_spec(folder).name


def _ids_file(npy: Path) -> Path:
    return npy.with_name(f"{npy.stem}_ids.txt")


# ---------------------------------------------------------------------------------------- tables
class _Table:
    """A CSV / Parquet table read with string ids; knows how to name rows in messages."""

    def __init__(self, path: Path, sep: str):
        self.path, self.sep = path, sep
        self.parquet = path.suffix.lower() == ".parquet"

    def row(self, i: int) -> str:
        return f"row {i}" if self.parquet else f"line {i + 2}"

    def header(self) -> list[str]:
        if self.parquet:
            try:
                import pyarrow.parquet as pq
            except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
                raise DataError(f"{self.path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
            try:
                return list(pq.read_schema(self.path).names)
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
                raise DataError(f"{self.path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
        try:
            return [str(c) for c in pd.read_csv(self.path, sep=self.sep, nrows=0, skipinitialspace=True).columns]
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{self.path}: empty file; expected a header row naming the columns") from exc
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot read the CSV header with sep={self.sep!r} ({exc})") from exc

    def read(self, columns: list[str], text: list[str]) -> pd.DataFrame:
        """Read ``columns``; with CSV the ``text`` ones as strings, empty cells as NaN."""
        if self.parquet:
            try:
                return pd.read_parquet(self.path, columns=columns).reset_index(drop=True)
            except Exception as exc:
                raise DataError(f"{self.path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
        try:
            return pd.read_csv(self.path, sep=self.sep, usecols=columns, dtype={c: str for c in text},
                               keep_default_na=False, na_values=[""], skipinitialspace=True,
                               low_memory=False)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot parse as a CSV table with sep={self.sep!r} ({exc})") from exc

    def require(self, header: list[str], role: str, spec: FolderSpec, needed_by: str | None) -> str | None:
        """The column of ``role``; missing is an error when ``needed_by`` says why, or the yaml named it."""
        col = spec.columns[role]
        if col in header:
            return col
        if needed_by or role in spec.explicit_columns:
            how = (f"named by 'columns.{role}' in {YAML_FILE}" if role in spec.explicit_columns
                   else f"set 'columns.{role}' in {YAML_FILE} if it has another name")
            why = f", needed by {needed_by}" if needed_by else ""
            raise DataError(f"{self.path}: missing column {col!r} ({role}{why}; {how}); the header has {header}")
        return None

    def ids(self, values: pd.Series, what: str) -> np.ndarray:
        """Raw ids: int64 when they are all integers, else strings. Missing ids are an error."""
        missing = values.isna().to_numpy().copy()
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            missing |= (values.astype(str).str.strip() == "").to_numpy() & ~missing
        if missing.any():
            first = int(np.nonzero(missing)[0][0])
            raise DataError(f"{self.path}: {what} has {int(missing.sum())} empty values (first at {self.row(first)})")
        if pd.api.types.is_bool_dtype(values.dtype):
            raise DataError(f"{self.path}: {what} holds booleans; ids must be integers or strings")
        if pd.api.types.is_integer_dtype(values.dtype):
            return values.to_numpy(dtype=np.int64)
        if pd.api.types.is_float_dtype(values.dtype):
            v = values.to_numpy(dtype=np.float64)
            frac = (v != np.round(v)) | ~np.isfinite(v)
            if frac.any():
                first = int(np.nonzero(frac)[0][0])
                raise DataError(f"{self.path}: {what} has non-integer numbers (first at {self.row(first)}: "
                                f"{v[first]!r}); ids must be integers or strings")
            return v.astype(np.int64)
        s = values.astype(str)
        if not self.parquet and s.str.fullmatch(_PLAIN_INT).all():
            return s.to_numpy().astype(np.int64)
        return s.to_numpy(dtype=object)

    def numbers(self, values: pd.Series, what: str) -> np.ndarray:
        """A numeric column as float64; empty or non-numeric cells are an error naming the first one."""
        if pd.api.types.is_bool_dtype(values.dtype):
            raise DataError(f"{self.path}: {what} holds booleans; expected numbers")
        num = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_numeric_dtype(values.dtype) else values
        arr = num.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(arr)
        if bad.any():
            first = int(np.nonzero(bad)[0][0])
            shown = values.iloc[first]
            kind = "empty" if pd.isna(shown) or str(shown).strip() == "" else "non-numeric"
            raise DataError(f"{self.path}: {what} has {int(bad.sum())} empty or non-numeric values "
                            f"(first at {self.row(first)}: {kind} {shown!r})")
        return arr


def _keys(ids: np.ndarray) -> pd.Index:
    """Ids compared as text (``42`` and ``"42"`` match)."""
    return pd.Index([str(x) for x in ids.tolist()], dtype=object)


def _examples(values, n: int = 3) -> list:
    return [v.item() if hasattr(v, "item") else v for v in list(values[:n])]


# ---------------------------------------------------------------------------------------- features
def _check_npy_header(path: Path, modality: str) -> None:
    """Shape and dtype of a ``.npy`` feature file without reading its data (memory-mapped)."""
    try:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError:                     # e.g. an empty array cannot be mapped: read it (it is small)
            arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable numeric .npy feature file ({exc})") from exc
    _check_feature_array(arr, path, modality)
    del arr


def _check_feature_array(arr: np.ndarray, path: Path, modality: str) -> None:
    """A 2-D numeric (not bool) matrix, or a ``DataError`` naming the file."""
    if arr.ndim != 2:
        raise DataError(f"{path}: {modality} features must be a 2-D (rows, dim) matrix, got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{path}: {modality} features have non-numeric dtype {arr.dtype}")


def _read_feature_file(path: Path, modality: str, item_col: str, sep: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``(matrix, ids, location kind)`` of one feature file, NaN / inf checked per row with its item id."""
    if path.suffix.lower() == ".npy":
        ids_path = _ids_file(path)
        try:
            mat = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable numeric .npy feature file ({exc})") from exc
        _check_feature_array(mat, path, modality)
        lines = ids_path.read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        ids = [ln.strip() for ln in lines]
        empty = [k for k, x in enumerate(ids) if not x]
        if empty:
            raise DataError(f"{ids_path}: empty id at line {empty[0] + 1}; one item id per line, in row order")
        if len(ids) != mat.shape[0]:
            raise DataError(f"{ids_path}: {len(ids)} ids for the {mat.shape[0]} rows of {path.name}; one id per "
                            f"row, in row order")
        raw = np.asarray(ids, dtype=object)
        if raw.size and pd.Series(raw).str.fullmatch(_PLAIN_INT).all():
            raw = raw.astype(np.int64)
        id_where, row_name = ids_path, (lambda i: f"row {i}")
    else:
        table = _Table(path, sep)
        header = table.header()
        if item_col not in header:
            raise DataError(f"{path}: missing item id column {item_col!r} (the interactions' item column); the "
                            f"header has {header}")
        value_cols = [c for c in header if c != item_col]
        if not value_cols:
            raise DataError(f"{path}: no feature columns besides {item_col!r}")
        df = table.read(header, text=[item_col])
        raw = table.ids(df[item_col], f"item id column {item_col!r}")
        cols = []
        for c in value_cols:
            col = df[c]
            if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
                num = pd.to_numeric(col, errors="coerce")
                bad = num.isna() & col.notna()
                if bad.any():
                    first = int(np.nonzero(bad.to_numpy())[0][0])
                    raise DataError(f"{path}: {modality} feature column {c!r} has non-numeric values (first at "
                                    f"{table.row(first)}: {col.iloc[first]!r})")
                col = num
            cols.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
        mat = np.stack(cols, axis=1) if len(cols) > 1 else cols[0][:, None]
        id_where, row_name = path, table.row
    if np.issubdtype(mat.dtype, np.floating):
        bad = ~np.isfinite(mat)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            n_nan = int(np.isnan(mat).sum())
            raise DataError(f"{path}: {modality} features contain NaN or inf in {rows.size} rows (first at "
                            f"{row_name(int(rows[0]))}, item id {_examples(raw[rows[:1]])[0]!r}): {n_nan} NaN and "
                            f"{int(bad.sum()) - n_nan} inf values")
    keys = _keys(raw)
    if keys.has_duplicates:
        dup = keys[keys.duplicated()].unique()
        raise DataError(f"{id_where}: {dup.size} item ids appear more than once (e.g. {list(dup[:3])}); one row "
                        f"per item")
    return mat, raw, str(id_where)


# ---------------------------------------------------------------------------------------- loader
def _sha256_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_folder(path: str | os.PathLike, seed: int | None = None, name: str | None = None) -> RecDataset:
    """Load a dataset folder (see the module docstring for the layout and ``dataset.yaml``).

    Args:
        path: the folder.
        seed: split seed used when ``dataset.yaml`` sets no ``split.seed`` (default 0); unused for a given split.
        name: overrides the dataset name (same rules as ``name:`` in the yaml).

    Returns:
        The validated dataset: ``user_ids`` / ``item_ids`` hold the raw ids, ``item_meta`` has ``item_id``
        (+ the items table's columns), ``info`` records the files, ``content_sha256``, the split, rating
        filtering, duplicate and feature-coverage counts and ``notes``.

    Raises:
        DataError: bad folder, yaml, files, columns, ids, ratings, splits or features (named).
    """
    spec = read_spec(path)
    if name is not None:
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise DataError(f"{spec.folder}: name={name!r} is not a safe name (letters, digits, '_', '.', '-')")
        spec.name, spec.name_from = name, "name argument"
    cols = spec.columns
    notes: list[str] = []

    # ---- cheap checks first: headers of every table
    inter = _Table(spec.interactions, spec.sep)
    header = inter.header()
    user_col = inter.require(header, "user", spec, "every dataset")
    item_col = inter.require(header, "item", spec, "every dataset")
    rating_col = inter.require(header, "rating", spec,
                               "rating_threshold" if spec.rating_threshold is not None else None)
    time_col = inter.require(header, "timestamp", spec, None)
    method = spec.split_method or ("given" if cols["split"] in header else "random")
    split_col = inter.require(header, "split", spec, "split: given" if method == "given" else None)
    if method == "random" and split_col is not None and spec.split_method == "random":
        notes.append(f"column {split_col!r} ignored: dataset.yaml asks for a random split")
        split_col = None
    items_table = _Table(spec.items, spec.sep) if spec.items is not None else None
    if items_table is not None:
        items_header = items_table.header()
        if item_col not in items_header:
            raise DataError(f"{spec.items}: missing item id column {item_col!r} (the interactions' item column); "
                            f"the header has {items_header}")
        if "title" in spec.explicit_columns and cols["title"] not in items_header:
            raise DataError(f"{spec.items}: missing column {cols['title']!r} (title; named by 'columns.title' in "
                            f"{YAML_FILE}); the header has {items_header}")
    for m, f in spec.features.items():
        if f.suffix.lower() == ".npy":
            _check_npy_header(f, m)
        else:
            fh = _Table(f, spec.sep).header()
            if item_col not in fh:
                raise DataError(f"{f}: missing item id column {item_col!r} (the interactions' item column); the "
                                f"header has {fh}")

    # ---- interactions
    wanted = [c for c in (user_col, item_col, rating_col, time_col, split_col) if c is not None]
    df = inter.read(wanted, text=[c for c in (user_col, item_col, split_col) if c is not None])
    n_rows = len(df)
    if n_rows == 0:
        raise DataError(f"{spec.interactions}: no interaction rows (only a header); the train split would be empty")
    users_raw = inter.ids(df[user_col], f"user column {user_col!r}")
    items_raw = inter.ids(df[item_col], f"item column {item_col!r}")
    keep = np.ones(n_rows, dtype=bool)
    rating_info: dict[str, Any] = {"column": rating_col, "threshold": spec.rating_threshold}
    if rating_col is not None:
        ratings = inter.numbers(df[rating_col], f"rating column {rating_col!r}")
        zero = ratings == 0
        rating_info["zero_ratings"] = int(zero.sum())
        if spec.rating_threshold is not None:
            below = ratings < spec.rating_threshold
            keep &= ~below
            rating_info["below_threshold"] = int(below.sum())
            notes.append(f"rating_threshold {spec.rating_threshold:g}: {int(below.sum())} of {n_rows} rows have a "
                         f"lower rating and were dropped ({int(zero.sum())} rows have rating 0)")
        else:
            keep &= ~zero
            rating_info["zero_dropped"] = int(zero.sum())
            if zero.any():
                notes.append(f"{int(zero.sum())} rows with rating 0 dropped: a zero rating is not an interaction "
                             f"(set rating_threshold: 0 in {YAML_FILE} to keep them)")
    if time_col is not None:
        t = df[time_col]
        if not pd.api.types.is_numeric_dtype(t.dtype) and not pd.api.types.is_datetime64_any_dtype(t.dtype):
            other = pd.to_numeric(t, errors="coerce").isna() & t.notna()        # not a number: must be a date
            bad = pd.Series(False, index=t.index)
            if other.any():
                bad[other] = pd.to_datetime(t[other].astype(str), errors="coerce", format="mixed").isna()
            if bad.any():
                first = int(np.nonzero(bad.to_numpy())[0][0])
                raise DataError(f"{spec.interactions}: timestamp column {time_col!r} has values that are neither "
                                f"numbers nor dates (first at {inter.row(first)}: {t.iloc[first]!r})")
        notes.append(f"timestamp column {time_col!r} checked ({int(t.isna().sum())} empty); the {method} split "
                     f"does not use it")
    if method == "given":
        labels = df[split_col].astype(str).str.strip()
        bad = ~labels.isin(SPLITS) | df[split_col].isna()
        if bad.any():
            first = int(np.nonzero(bad.to_numpy())[0][0])
            raise DataError(f"{spec.interactions}: split column {split_col!r} has {int(bad.sum())} values that are "
                            f"not {list(SPLITS)} (first at {inter.row(first)}: {df[split_col].iloc[first]!r})")
        split_codes = pd.Categorical(labels, categories=list(SPLITS)).codes.astype(np.int64)

    n_kept = int(keep.sum())
    if n_kept == 0:
        why = (f"have a rating below rating_threshold {spec.rating_threshold:g} (set in {spec.yaml_path})"
               if spec.rating_threshold is not None else "have rating 0, which is not an interaction")
        raise DataError(f"{spec.interactions}: no interactions left: all {n_rows} rows {why}; the train split "
                        f"would be empty")
    n_users_all, n_items_all = pd.unique(users_raw).size, pd.unique(items_raw).size
    users_raw, items_raw = users_raw[keep], items_raw[keep]
    u_codes, user_ids = pd.factorize(users_raw, sort=True)
    i_codes, item_ids = pd.factorize(items_raw, sort=True)
    user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
    n_users, n_items = int(user_ids.size), int(item_ids.size)
    codes = u_codes.astype(np.int64) * n_items + i_codes.astype(np.int64)
    rating_info["users_removed"] = int(n_users_all - n_users)       # users / items left with no interaction
    rating_info["items_removed"] = int(n_items_all - n_items)

    if method == "random":
        if spec.split_seed is not None:
            split_seed, seed_from = spec.split_seed, f"{YAML_FILE} split.seed"
        else:
            split_seed, seed_from = (0, "default") if seed is None else (int(seed), "seed argument")
        pairs = np.unique(codes)                              # dedup; sorted by (user, item)
        dup = int(codes.size - pairs.size)
        parts = random_split(pairs // n_items, pairs % n_items, ratios=spec.fractions, seed=split_seed)
        split_info = {"method": f"per-user random {'/'.join(f'{f:g}' for f in spec.fractions)} over "
                                f"(user, item)-sorted unique pairs", "seed": split_seed, "seed_from": seed_from,
                      "fractions": list(spec.fractions)}
    else:
        sc = split_codes[keep]
        both = np.unique(codes * 3 + sc)                      # unique (pair, split)
        pair_of = both // 3
        multi = pd.Series(pair_of).duplicated(keep=False).to_numpy()
        if multi.any():
            shared = np.unique(pair_of[multi])
            u, i = int(shared[0] // n_items), int(shared[0] % n_items)
            raise DataError(f"{spec.interactions}: {shared.size} (user, item) pairs appear in more than one split of "
                            f"column {split_col!r} (e.g. user {_examples(user_ids[[u]])[0]!r}, item "
                            f"{_examples(item_ids[[i]])[0]!r}); each pair must be in one split")
        dup = int(codes.size - both.size)
        parts = tuple((pair_of[both % 3 == k] // n_items, pair_of[both % 3 == k] % n_items) for k in range(3))
        split_seed = None
        split_info = {"method": f"given (column {split_col!r})", "seed": None}
    for name_, (u, _) in zip(SPLITS, parts):
        if u.size == 0:
            if method == "given":
                raise DataError(f"{spec.interactions}: the {name_} split is empty: no row has {split_col} == "
                                f"{name_!r}")
            raise DataError(f"{spec.interactions}: the {name_} split is empty: {pairs.size} unique interactions of "
                            f"{n_users} users split {spec.fractions} per user leave no {name_} interaction (users "
                            f"need several interactions each; change split.fractions in {YAML_FILE})")
    if dup:
        notes.append(f"{dup} repeated (user, item) rows kept once")

    # ---- features
    feats: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    feat_info: dict[str, Any] = {}
    item_keys = _keys(item_ids)
    files = [spec.interactions] + ([spec.yaml_path] if spec.yaml_path else [])
    for m, f in spec.features.items():
        mat, fids, id_where = _read_feature_file(f, m, item_col, spec.sep)
        pos = item_keys.get_indexer(_keys(fids))
        matched = pos >= 0
        if not matched.any():
            raise DataError(f"{id_where}: none of its {fids.size} item ids matches an item id of "
                            f"{spec.interactions.name} (e.g. feature ids {_examples(fids)} vs item ids "
                            f"{_examples(item_ids)}); ids are compared as text")
        mat32 = to_float32(mat, str(f), f"{m} features")       # overflow named with the file's rows
        full = np.zeros((n_items, mat32.shape[1]), dtype=np.float32)
        full[pos[matched]] = mat32[matched]
        mask = np.zeros(n_items, dtype=bool)
        mask[pos[matched]] = True
        feats[m], masks[m] = full, mask
        unused = int((~matched).sum())
        feat_info[m] = {"file": str(f), "dim": int(mat.shape[1]), "rows": int(mat.shape[0]),
                        "items_with_features": int(mask.sum()), "coverage": float(mask.mean()),
                        "unused_rows": unused}
        if unused:
            notes.append(f"{m}: {unused} rows of {f.name} belong to ids that are not items of the interactions "
                         f"(after filtering); unused")
        if not mask.all():
            notes.append(f"{m}: {int((~mask).sum())} of {n_items} items have no row in {f.name}: zero vector, "
                         f"mask False")
        files += [f] + ([_ids_file(f)] if f.suffix.lower() == ".npy" else [])

    # ---- items table
    meta = pd.DataFrame({"item_id": pd.Series(item_ids.tolist(), dtype=object if item_ids.dtype == object
                                              else np.int64)})
    titles = None
    items_info: dict[str, Any] | None = None
    if items_table is not None:
        text_cols = [item_col] + ([cols["title"]] if cols["title"] in items_header else [])
        table = items_table.read(items_header, text=text_cols)
        tids = items_table.ids(table[item_col], f"item id column {item_col!r}")
        tkeys = _keys(tids)
        if tkeys.has_duplicates:
            dupk = tkeys[tkeys.duplicated()].unique()
            raise DataError(f"{spec.items}: {dupk.size} item ids appear more than once (e.g. {list(dupk[:3])}); one "
                            f"row per item")
        table = table.drop(columns=[item_col]).set_index(tkeys)
        if "item_id" in table:
            table = table.drop(columns=["item_id"])
            notes.append(f"column 'item_id' of {spec.items.name} dropped: item_meta['item_id'] holds the raw ids")
        extra = table.reindex(item_keys)
        extra.index = meta.index
        if "poster_path" in extra:
            extra["poster_path"] = pd.Series(
                [(str(spec.folder / p) if not Path(p).is_absolute() else p) if isinstance(p, str) and p.strip()
                 else None for p in extra["poster_path"]], index=extra.index, dtype=object)
        meta = pd.concat([meta, extra], axis=1)
        found = tkeys.isin(item_keys)
        items_info = {"file": str(spec.items), "rows": int(len(tkeys)), "matched": int(found.sum()),
                      "unused_rows": int((~found).sum())}
        if cols["title"] in table:
            titles = [t.strip() if isinstance(t, str) and t.strip() else None for t in extra[cols["title"]]]
            if cols["title"] != "title":
                meta = meta.rename(columns={cols["title"]: "title"})
        files.append(spec.items)
        if int((~found).sum()):
            notes.append(f"{int((~found).sum())} rows of {spec.items.name} are not items of the interactions; unused")

    info = {
        "source": str(spec.folder),
        "format": "folder",
        "name_from": spec.name_from,
        "files": [str(p) for p in files],
        "content_sha256": _sha256_files(files),
        "columns": {r: c for r, c in (("user", user_col), ("item", item_col), ("rating", rating_col),
                                      ("timestamp", time_col), ("split", split_col)) if c is not None},
        "rows_read": n_rows,
        "rows_kept": n_kept,
        "ratings": rating_info,
        "split": split_info,
        "features": feat_info,
        "items_table": items_info,
        "notes": notes,
    }
    ds = RecDataset.from_splits(spec.name, n_users, n_items, *parts, features=feats, feature_masks=masks,
                                source=str(spec.interactions), info=info, item_titles=titles, item_meta=meta,
                                user_ids=user_ids, item_ids=item_ids)
    ds.info["duplicates_dropped"]["before_split"] = dup
    return ds
