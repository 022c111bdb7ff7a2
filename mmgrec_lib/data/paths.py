"""Where datasets are read from (``$MMGREC_DATA``), where computed features are cached (``$MMGREC_CACHE``),
and how files are written (atomically, with the usual permissions)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


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


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through ``write(fh)`` on a temporary file in the same folder, then ``os.replace``.

    Readers never see a torn file; the temporary file is removed when ``write`` fails; the result gets the
    usual file mode (``0666`` less the umask, like ``open``), not ``mkstemp``'s ``0600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)          # the only portable way to read it: set and restore at once
    os.umask(mask)
    return mask
