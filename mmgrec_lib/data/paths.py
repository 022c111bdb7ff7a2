"""Where datasets are read from (``$MMGREC_DATA``), where computed features are cached (``$MMGREC_CACHE``),
and how files are written (atomically, with the usual permissions, cleaning up after killed writers)."""
from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

from .dataset import DataError

#: a temporary file of :func:`atomic_write` whose writer cannot be checked (another host, or an old name
#: without host and pid) is removed once it is this old: no write of this project takes that long
STALE_TMP_SECONDS = 15 * 60


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The datasets folder: ``root`` if given, else ``$MMGREC_DATA``, else ``None``."""
    value = root if root is not None else os.environ.get("MMGREC_DATA")
    return Path(value).expanduser() if value else None


def dataset_folder(source: str, sub: str, root: str | os.PathLike | None = None,
                   path: str | os.PathLike | None = None) -> Path:
    """The folder a loader reads: ``path`` when given, else ``<root or $MMGREC_DATA>/<sub>``. With neither a
    path nor a data folder, a ``DataError`` says how to give one (``source`` names the loader)."""
    if path is not None:
        return Path(path).expanduser()
    base = data_root(root)
    if base is None:
        raise DataError(f"{source}: no data folder: set MMGREC_DATA (or pass root= or path=) to the shared data "
                        f"folder that contains {sub}/")
    return base / sub


def root_hint(root: str | os.PathLike | None, wanted: str) -> str:
    """The end of a "not found" message, fitting how the data folder was given: the ``root=`` argument
    when one was passed, else ``$MMGREC_DATA``. ``wanted``: what the folder should contain."""
    if root is not None:
        return f"the folder passed as root= ({Path(root).expanduser()}) should contain {wanted}"
    value = os.environ.get("MMGREC_DATA")
    where = f"MMGREC_DATA (now {value})" if value else "MMGREC_DATA"
    return f"{where} should point to the shared data folder that contains {wanted} (or pass root=)"


def cache_source(path: str | os.PathLike | None = None) -> str:
    """How the cache folder was chosen, for messages: ``cache=`` argument, ``$MMGREC_CACHE`` or the default."""
    if path:
        return "the cache= argument"
    if os.environ.get("MMGREC_CACHE"):
        return "MMGREC_CACHE"
    return "the default cache folder (set MMGREC_CACHE to choose another)"


def cache_dir(path: str | os.PathLike | None = None, create: bool = True) -> Path:
    """Cache for computed features: ``path``, else ``$MMGREC_CACHE``, else ``~/.cache/mmgrec``.

    With ``create`` the folder is made; when that fails the error (same ``OSError`` subclass) names the
    folder and where it came from (``MMGREC_CACHE``, the argument or the default).
    """
    value = path or os.environ.get("MMGREC_CACHE") or Path.home() / ".cache" / "mmgrec"
    p = Path(value).expanduser()
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cache folder {p} (from {cache_source(path)}) cannot be created: "
                                       f"{exc.strerror or exc}; set MMGREC_CACHE to a writable folder",
                            str(p)) from exc
    return p


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through ``write(fh)`` on a temporary file in the same folder, then ``os.replace``.

    Readers never see a torn file; the temporary file is removed when ``write`` fails; the result gets the
    usual file mode (``0666`` less the umask, like ``open``), not ``mkstemp``'s ``0600``.

    A writer killed outright (``kill -9``, power loss) cannot remove its temporary file
    ``.<name>.<host>.<pid>.<random>.tmp``; the next successful write of the same ``path`` removes such
    leftovers: those of this host whose writer process is gone, and any older than
    :data:`STALE_TMP_SECONDS` (other hosts, unnamed writers). Temporary files of live writers (other
    processes, other threads of this one) are left alone, so concurrent writers stay safe.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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
    remove_stale_temporaries(path)
    return path


def remove_stale_temporaries(path: str | os.PathLike, max_age: float | None = None) -> list[Path]:
    """Remove the temporary files that dead writers of ``path`` left beside it (see :func:`atomic_write`);
    return the removed paths. ``max_age`` defaults to :data:`STALE_TMP_SECONDS`."""
    path = Path(path)
    max_age = STALE_TMP_SECONDS if max_age is None else max_age
    prefix = f".{path.name}."
    removed = []
    now = time.time()
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return removed
    for name in names:
        middle = name[len(prefix):-len(".tmp")]
        parts = middle.split(".")
        if len(parts) == 3 and parts[1].isdigit():          # .<name>.<host>.<pid>.<random>.tmp
            host, pid = parts[0], int(parts[1])
            if host == _host() and pid != os.getpid() and not _alive(pid):
                stale = True
            else:
                stale = _age(path.parent / name, now) > max_age
        elif len(parts) == 1:                                # .<name>.<random>.tmp (no host, no pid)
            stale = _age(path.parent / name, now) > max_age
        else:                                                # a temporary file of another name
            continue
        if stale:
            try:
                os.unlink(path.parent / name)
                removed.append(path.parent / name)
            except OSError:                                  # gone already (another writer cleaned it)
                pass
    return removed


def _age(p: Path, now: float) -> float:
    try:
        return now - p.stat().st_mtime
    except OSError:
        return -1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                                  # someone else's process
        return True
    except OSError as exc:                                   # pragma: no cover - unusual platforms
        return exc.errno != errno.ESRCH
    return True


def _host() -> str:
    """This host's name, reduced to ``[A-Za-z0-9-]`` (the temporary-file name uses ``.`` as separator)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:40] or "host"


def _umask() -> int:
    """The process umask: read from ``/proc/self/status`` where the kernel reports it (no window in which
    another thread would see a changed umask), else set and restored at once (the only portable way)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask
