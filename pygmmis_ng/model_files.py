"""Saving and loading a :class:`pygmmis_ng.GMM` (model.py): ``.npz`` files, checked before use.

A model is written like ``numpy.savez`` (uncompressed, never pickled) under a
temporary name, then renamed. A saved model is read without trusting the file:
the ``.npy`` headers inside the ``.npz`` are parsed and cross-checked, and the
memory the arrays need is checked, before the three parameter arrays are read
(never unpickled; extra arrays stored by ``GMM.save(**kwargs)`` are not read).
Errors are ValueError, TypeError or FileNotFoundError naming the file and key.
The checks of the arguments (paths, memory, extra arrays) are in :mod:`.model_checks`.
"""
from __future__ import annotations

import io
import os
import secrets
import stat
import struct
import zipfile
import zlib
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from .model_checks import check_memory, check_path, param_bytes

#: the parameter arrays of a saved GMM
PARAMS = ("amp", "mean", "covar")

#: what the zip reader raises on a corrupt or truncated archive
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError,
               NotImplementedError, ValueError, zlib.error, struct.error)

#: deflate never expands more than about 1032:1
_MAX_DEFLATE_RATIO = 1100

_KIND_NAMES = {"b": "booleans", "U": "strings", "S": "bytes", "O": "Python objects",
               "V": "structured records", "M": "dates", "m": "time deltas", "c": "complex numbers"}


# -- file objects -------------------------------------------------------------
def _file_object(obj: Any, mode: str, name: str) -> bool:
    """Whether ``obj`` is an open file to use as such (binary, with the needed methods)."""
    if isinstance(obj, (str, bytes, os.PathLike)):
        return False
    needed = ("read", "seek", "tell") if mode == "r" else ("write",)
    if not all(callable(getattr(obj, m, None)) for m in needed):
        return False
    if isinstance(obj, io.TextIOBase):
        raise TypeError(f"{name} is a text-mode file: open it in binary mode ('{mode}b')")
    return True


# -- writing ------------------------------------------------------------------
def write_npz(filename: Any, arrays: dict[str, np.ndarray]) -> str | None:
    """Write ``arrays`` as an uncompressed ``.npz``, like ``numpy.savez`` (no pickling).

    A path gets the ``.npz`` suffix if missing (as with numpy.savez); the file is
    written under a temporary name, then renamed, so a failure leaves an existing
    file untouched. Returns the path written (None for a file object).
    """
    if _file_object(filename, "w", "filename"):
        _write_zip(filename, arrays)
        return None
    path = check_path(filename)
    if os.path.basename(path) in ("", ".", ".."):
        raise ValueError(f"filename {path!r} names a directory, not a file")
    if not path.endswith(".npz"):
        path += ".npz"
    if os.path.isdir(path):
        raise ValueError(f"filename {path!r} is a directory, not a file")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot save to {path!r}: the directory {parent!r} does not exist")
    tmp = os.path.join(parent, f".gmm-{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            _write_zip(f, arrays)
        try:
            os.replace(tmp, path)
        except OSError as exc:   # a name too long, no permission
            raise ValueError(f"cannot save to {path!r}: {exc.strerror}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def _write_zip(f: Any, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as fid:
                npy_format.write_array(fid, np.asanyarray(arr), allow_pickle=False)


# -- reading ------------------------------------------------------------------
def resolve_path(filename: Any) -> str:
    """The file to load: ``filename``, or ``filename + '.npz'`` (as GMM.save writes it)."""
    path = check_path(filename)
    tried = [path] if path.endswith(".npz") else [path, path + ".npz"]
    modes = []
    for candidate in tried:
        try:
            modes.append(os.stat(candidate).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            modes.append(None)
            continue
        except OSError as exc:   # no permission, a name too long, a loop of symbolic links
            raise ValueError(f"cannot load a GMM from {candidate!r}: {exc.strerror}") from None
        if stat.S_ISREG(modes[-1]):
            return candidate
    for candidate, mode in zip(tried, modes):
        if mode is not None:
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise ValueError(f"cannot load a GMM from {candidate!r}: it is {what}")
    raise FileNotFoundError(f"no saved GMM at {' or '.join(map(repr, tried))}: no such file")


def read_params(filename: Any) -> tuple[str, dict[str, np.ndarray]]:
    """Read the parameters of a saved GMM: (the file's name, {'amp', 'mean', 'covar'}).

    The arrays are float64, of shapes (K,), (K, D), (K, D, D) with K, D >= 1,
    and finite; whether they form a valid mixture is left to the caller.
    """
    if _file_object(filename, "r", "filename"):
        label = repr(getattr(filename, "name", None) or f"<{type(filename).__name__}>")
        return label, _read_npz(filename, label)
    path = resolve_path(filename)
    with open(path, "rb") as f:
        return repr(path), _read_npz(f, repr(path))


def _read_npz(f: Any, label: str) -> dict[str, np.ndarray]:
    try:
        start = f.tell()
        head = f.read(8)
        f.seek(start)
    except (OSError, ValueError) as exc:   # closed, or not open for reading
        raise ValueError(f"{label} cannot be read: {exc}") from None
    if not isinstance(head, bytes):
        raise TypeError(f"{label} must be opened in binary mode")
    if not head:
        raise ValueError(f"{label} is empty, not a saved GMM")
    if head.startswith(npy_format.MAGIC_PREFIX):
        raise ValueError(f"{label} is a single-array .npy file, not a saved GMM "
                         "(a .npz archive written by GMM.save)")
    if not head.startswith(b"PK"):
        raise ValueError(f"{label} is not a saved GMM: not a .npz (zip) archive "
                         f"(it starts with {head!r})")
    try:
        zf = zipfile.ZipFile(f)
    except _ZIP_ERRORS as exc:
        raise ValueError(f"{label} is not a readable .npz archive (truncated or corrupt?): "
                         f"{exc}") from None
    with zf:
        infos = _members(zf, label)
        headers = {key: _header(zf, info, label, key) for key, info in infos.items()}
        K, D = _check_shapes(label, {key: h[0] for key, h in headers.items()})
        raw = sum(infos[key].file_size for key in PARAMS)
        check_memory(param_bytes(K, D) + raw, f"loading {label} (K={K}, D={D})")
        out = {key: _array(zf, infos[key], headers[key], label, key) for key in PARAMS}
    if not (np.diagonal(out["covar"], axis1=1, axis2=2) > 0).all():   # cheap, before eigvalsh
        raise ValueError(f"{label} does not hold a valid mixture: key 'covar' must be positive "
                         "definite, but a variance is <= 0")
    return out


def _members(zf: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    names = zf.namelist()
    missing = [key for key in PARAMS if key + ".npy" not in names and key not in names]
    if missing:
        raise ValueError(f"{label} is not a saved GMM: missing {sorted(missing)} "
                         f"(it holds {sorted(n.removesuffix('.npy') for n in names)[:10]})")
    infos = {}
    for key in PARAMS:
        found = [n for n in names if n in (key, key + ".npy")]
        if len(found) != 1:
            raise ValueError(f"{label}: key {key!r} is stored {len(found)} times ({found}); "
                             "which one is meant is ambiguous")
        info = zf.getinfo(found[0])
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"{label}: key {key!r} is compressed with zip method "
                             f"{info.compress_type}; a saved GMM is stored or deflated")
        if info.flag_bits & 0x1:
            raise ValueError(f"{label}: key {key!r} is encrypted")
        limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED
                                      else _MAX_DEFLATE_RATIO) + 1024
        if info.file_size > limit:
            raise ValueError(f"{label}: key {key!r} claims {info.file_size} bytes from "
                             f"{info.compress_size} stored: corrupt (or a zip bomb)")
        infos[key] = info
    return infos


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, key: str
            ) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of a member, checked against its size."""
    where = f"{label}: key {key!r}"
    try:
        with zf.open(info) as fp:
            version = npy_format.read_magic(fp)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy format version {version}")
            read = (npy_format.read_array_header_1_0 if version == (1, 0)
                    else npy_format.read_array_header_2_0)
            shape, fortran, dtype = read(fp)
            offset = fp.tell()
    except (*_ZIP_ERRORS, TypeError, SyntaxError) as exc:
        raise ValueError(f"{where} is not a readable .npy array (truncated or corrupt?): "
                         f"{exc}") from None
    if dtype.kind not in "fiu" or dtype.fields is not None or dtype.subdtype is not None:
        why = (" (loading it would need pickle, which is refused)" if dtype.hasobject
               else "; a GMM's parameters are real" if dtype.kind == "c" else "")
        raise ValueError(f"{where} holds {_KIND_NAMES.get(dtype.kind, 'non-numbers')} "
                         f"(dtype {dtype}), not real numbers{why}")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"{where} has an invalid shape {shape}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise ValueError(f"{where} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                         f"{info.file_size - offset} bytes of data: truncated or corrupt")
    return shape, fortran, dtype, offset


def _check_shapes(label: str, shapes: dict[str, tuple[int, ...]]) -> tuple[int, int]:
    """K and D from shapes amp (K,), mean (K, D), covar (K, D, D); else a ValueError."""
    amp, mean, covar = shapes["amp"], shapes["mean"], shapes["covar"]
    ok = len(amp) == 1 and len(mean) == 2 and len(covar) == 3
    K, D = (amp[0], mean[1]) if ok else (0, 0)
    if not ok or mean != (K, D) or covar != (K, D, D):
        raise ValueError(f"{label} holds inconsistent shapes amp {amp}, mean {mean}, "
                         f"covar {covar}; a saved GMM has amp (K,), mean (K, D), covar (K, D, D)")
    if K < 1 or D < 1:
        raise ValueError(f"{label} holds an empty GMM (K={K}, D={D}); need K >= 1 and D >= 1")
    return K, D


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, header: tuple, label: str, key: str
           ) -> np.ndarray:
    """The checked member as a finite float64 array (its CRC verified)."""
    shape, fortran, dtype, offset = header
    nbytes = info.file_size - offset
    try:
        with zf.open(info) as fp:
            fp.read(offset)
            data = fp.read(nbytes)
            rest = fp.read()
    except _ZIP_ERRORS as exc:
        raise ValueError(f"{label}: key {key!r} cannot be read (truncated or corrupt?): "
                         f"{exc}") from None
    if len(data) != nbytes or rest:
        raise ValueError(f"{label}: key {key!r} holds {len(data) + len(rest)} bytes of data, "
                         f"not the {nbytes} its header declares")
    arr = np.frombuffer(data, dtype=dtype)
    arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float64)
    bad = np.argwhere(~np.isfinite(out))
    if bad.size:
        raise ValueError(f"{label}: key {key!r} holds NaN or inf (or values beyond float64) "
                         f"at {bad.shape[0]} place(s), first at index {tuple(bad[0].tolist())}")
    return out
