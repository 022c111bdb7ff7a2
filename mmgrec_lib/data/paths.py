"""Where datasets are read from (``$MMGREC_DATA``) and computed features are cached (``$MMGREC_CACHE``)."""
from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The datasets folder: ``root`` if given, else ``$MMGREC_DATA``, else ``None``."""
    value = root if root is not None else os.environ.get("MMGREC_DATA")
    return Path(value).expanduser() if value else None


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Cache for computed features: ``path``, else ``$MMGREC_CACHE``, else ``~/.cache/mmgrec``."""
    value = path or os.environ.get("MMGREC_CACHE") or Path.home() / ".cache" / "mmgrec"
    p = Path(value).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p
