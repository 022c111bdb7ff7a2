"""Restricted unpickling for the pickled files that public recommendation datasets ship.

A pickle can name any importable callable and call it while loading (``os.system``, ``builtins.eval``,
...), so :func:`pickle.load` on a downloaded file runs whatever code its author chose. The loaders in
:mod:`mmgrec_lib.data` therefore read pickles with :class:`RestrictedUnpickler`, whose ``find_class``
admits only an explicit allow-list of globals:

* ``numpy.ndarray``, ``numpy.dtype`` and numpy's array / scalar reconstruct helpers ``_reconstruct``,
  ``scalar`` and (protocol 5) ``_frombuffer``, under both the numpy 1.x module paths ``numpy.core.*`` and
  the numpy 2.x paths ``numpy._core.*``;
* the ``scipy.sparse`` matrix classes the MMSSL-format files use (``coo_matrix``; ``csr_matrix`` and
  ``csc_matrix`` for files saved after a format conversion), under their public and private module paths;
* ``_codecs.encode``, which protocol-2 pickles use to rebuild ``bytes``; it is wrapped so that it only
  accepts the ``latin1`` encoding those pickles use.

Anything else raises :class:`~mmgrec_lib.data.dataset.DataError` naming the file and the rejected
global. Plain containers (``dict``, ``list``, ``tuple``, ``int``, ``str``) need no global and load as usual.
"""
from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from .dataset import DataError

__all__ = ["RestrictedUnpickler", "load_pickle", "loads_restricted", "load_npy_object", "allowed_globals"]


def _numpy_multiarray():
    """numpy's ``multiarray`` module (``numpy._core`` on numpy 2, ``numpy.core`` on numpy 1)."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _numpy_numeric():
    """numpy's ``numeric`` module (``numpy._core`` on numpy 2, ``numpy.core`` on numpy 1)."""
    try:
        from numpy._core import numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import numeric
    return numeric


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to what protocol-2 pickles need: ``str`` -> ``bytes`` via latin-1."""
    if not isinstance(obj, str) or encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed with a str and the latin1 encoding, "
                                     f"got {type(obj).__name__} / {encoding!r}")
    return codecs.encode(obj, "latin1", errors)


def allowed_globals() -> dict[tuple[str, str], Any]:
    """The allow-list: ``(module, name)`` as written in the pickle -> the object it resolves to."""
    ma = _numpy_multiarray()
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray",
                "numpy.core._multiarray_umath", "numpy._core._multiarray_umath"):
        table[(mod, "_reconstruct")] = ma._reconstruct
        table[(mod, "scalar")] = ma.scalar
    frombuffer = getattr(_numpy_numeric(), "_frombuffer", None)   # protocol-5 array pickles
    if frombuffer is not None:
        for mod in ("numpy.core.numeric", "numpy._core.numeric"):
            table[(mod, "_frombuffer")] = frombuffer
    for cls, short in ((sp.coo_matrix, "coo"), (sp.csr_matrix, "csr"), (sp.csc_matrix, "csc")):
        for mod in ("scipy.sparse", f"scipy.sparse.{short}", f"scipy.sparse._{short}"):
            table[(mod, cls.__name__)] = cls
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` whose ``find_class`` admits only :func:`allowed_globals`.

    Args:
        file: binary file object positioned at the start of the pickle stream.
        source: file name used in error messages.
        allowed: optional replacement allow-list (``(module, name)`` -> object).
    """

    def __init__(self, file: io.BufferedIOBase, source: str,
                 allowed: dict[tuple[str, str], Any] | None = None) -> None:
        super().__init__(file)
        self.source = source
        self.allowed = allowed if allowed is not None else allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.source}: refusing to unpickle: it references the global '{module}.{name}', which is "
                f"not an allowed numpy / scipy.sparse class (pickles can run arbitrary code; only numpy "
                f"arrays and scipy.sparse matrices are accepted)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.source}: refusing to unpickle: it uses persistent ids ({pid!r})")


def _run(unpickler: RestrictedUnpickler) -> Any:
    try:
        return unpickler.load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as exc:
        raise DataError(f"{unpickler.source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def loads_restricted(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; ``source`` names it in errors."""
    return _run(RestrictedUnpickler(io.BytesIO(data), source))


def load_pickle(path: str | os.PathLike, expect: type | tuple[type, ...] | None = None,
                what: str | None = None) -> Any:
    """Load a pickle file with :class:`RestrictedUnpickler`.

    Args:
        path: the ``.pkl`` file.
        expect: if given, the loaded object must be an instance of this type (or tuple of types).
        what: description of the expected content for the error message (e.g. ``"a scipy.sparse matrix"``).

    Raises:
        DataError: missing or unreadable file, a rejected global, or content of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as fh:
        obj = _run(RestrictedUnpickler(fh, str(path)))
    _check_type(obj, expect, what, path)
    return obj


def _check_type(obj: Any, expect, what: str | None, path: Path) -> None:
    if expect is not None and not isinstance(obj, expect):
        names = what or " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise DataError(f"{path}: expected {names} in the pickle, got {type(obj).__module__}.{type(obj).__name__}")


def load_npy_object(path: str | os.PathLike, expect: type | tuple[type, ...] | None = None,
                    what: str | None = None) -> Any:
    """Read a ``.npy`` file that may hold a pickled Python object, without ``allow_pickle=True``.

    ``np.save`` of a dict writes an object array whose payload is a pickle; this function reads the
    ``.npy`` header itself and unpickles the payload with :class:`RestrictedUnpickler`. A 0-d object
    array is unwrapped (``.item()``), so a saved dict comes back as a dict. Numeric ``.npy`` files are
    read with ``np.load(allow_pickle=False)``.

    Raises:
        DataError: missing / unreadable file, rejected global, or (with ``expect``) wrong content type.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = np.lib.format
    with open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            readers: dict[tuple[int, int], Callable] = {(1, 0): fmt.read_array_header_1_0,
                                                        (2, 0): fmt.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran, dtype = readers[version](fh)
        except ValueError as exc:
            raise DataError(f"{path}: not a readable .npy file ({exc})") from exc
        if dtype.hasobject:
            obj = _run(RestrictedUnpickler(fh, str(path)))
            if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
                obj = obj.item()
        else:
            try:
                obj = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise DataError(f"{path}: not a readable .npy file ({exc})") from exc
    _check_type(obj, expect, what, path)
    return obj
