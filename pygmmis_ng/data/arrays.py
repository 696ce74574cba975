"""Real-number arrays from what users pass: numpy arrays, nested sequences, pandas objects.

:func:`as_float_array` is the one conversion every array argument goes
through; it refuses, with an error naming the argument, what numpy would
convert silently or fail on deep inside (numeric strings, complex numbers,
dates, ragged sequences, masked entries, integers beyond float64).
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse

#: largest magnitude accepted for data, noise and projections: squares and products of
#: such values stay finite in float64
MAX_MAGNITUDE = 1e150
#: the types data, noise and projections may be stored in during a fit (``dtype=``); the
#: kernels compute and accumulate in float64 either way
STORAGE_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def check_dtype(dtype: Any) -> np.dtype:
    """The storage type of a fit's samples: float64 (default) or float32.

    float32 halves the memory and bandwidth of data, noise and projections;
    every kernel still computes and accumulates in float64, so the only
    difference to float64 is the rounding of the stored values (about 6e-8
    relative).
    """
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in STORAGE_DTYPES:     # (np.dtype == None is True: float64)
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32 (how data, noise and "
                         f"projections are stored; arithmetic is float64 either way), "
                         f"got {dtype!r}")
    return dt


def _missing_to_nan(value: Any) -> Any:
    """None and pandas' NA as NaN; anything else as it is."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return np.nan
    return value


def _from_table(a: Any, name: str) -> np.ndarray:
    """A pandas DataFrame/Series as a float array (pd.NA -> NaN); its columns must be numeric."""
    dtypes = getattr(a, "dtypes", None)
    kinds = [getattr(t, "kind", "O") for t in (dtypes if np.iterable(dtypes) else [dtypes])]
    bad = [k for k in kinds if k not in "biuf"]
    if bad:
        raise ValueError(f"{name} must be numeric: it has columns of kind {sorted(set(bad))} "
                         "(strings, objects, dates, categories); convert or drop them")
    return a.to_numpy(dtype=np.float64, na_value=np.nan)


def as_float_array(a: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Convert ``a`` to a float array of ``dtype`` or raise a ValueError naming ``name``.

    Accepted: real numbers and booleans, as arrays, nested sequences or
    pandas objects (None and pd.NA become NaN). Refused with a clear error:
    complex numbers, strings (also numeric ones: scikit-learn refuses them
    too), dates, other objects, ragged sequences, values beyond the range of
    ``dtype`` (float64 or float32). An array of ``dtype`` is returned as is.
    """
    if hasattr(a, "to_numpy") and hasattr(a, "dtypes"):
        return _cast(_from_table(a, name), name, dtype)
    if np.ma.isMaskedArray(a) and np.ma.getmaskarray(a).any():
        raise ValueError(f"{name} is a masked array with masked entries: numpy would use the "
                         "hidden values; fill them (NaN marks a missing feature in data)")
    try:
        raw = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from None
    kind = raw.dtype.kind
    if kind == "c":
        raise ValueError(f"{name} must be real-valued, got complex numbers")
    if kind == "O":
        flat = [_missing_to_nan(v) for v in raw.reshape(-1)]
        if any(isinstance(v, (complex, np.complexfloating)) for v in flat):
            raise ValueError(f"{name} must be real-valued, got complex numbers")
        if not all(isinstance(v, (numbers.Real, np.bool_)) for v in flat):
            other = next(v for v in flat if not isinstance(v, (numbers.Real, np.bool_)))
            raise ValueError(f"{name} must be numeric; it holds a {type(other).__name__} "
                             f"({other!r:.40})")
        try:
            raw = np.array(flat, dtype=np.float64).reshape(raw.shape)
        except OverflowError:
            raise ValueError(f"{name} holds integers beyond the float64 range") from None
    elif kind not in "biuf":
        what = {"U": "strings", "S": "bytes", "M": "dates", "m": "time deltas",
                "V": "structured records"}.get(kind, f"dtype {raw.dtype}")
        raise ValueError(f"{name} must be numeric, got {what}; convert it to numbers first")
    return _cast(raw, name, dtype)


def _cast(raw: np.ndarray, name: str, dtype: Any) -> np.ndarray:
    """``raw`` (real numbers) as ``dtype``; values beyond its range are an error, not inf."""
    with np.errstate(over="raise"):
        try:
            return np.asarray(raw, dtype=dtype)
        except FloatingPointError:
            raise ValueError(f"{name} holds values beyond the {np.dtype(dtype).name} range"
                             + (" (pass dtype=numpy.float64)" if np.dtype(dtype).itemsize < 8
                                else "")) from None


def check_numeric(a: Any, name: str) -> None:
    """Refuse strings in ``a`` (also numeric ones), without converting it.

    For inputs that scikit-learn's ``validate_data`` converts afterwards: it
    would turn numeric strings into numbers, which we refuse, as scikit-learn's
    own estimators do; complex numbers and other objects get its errors.
    """
    if scipy.sparse.issparse(a):
        return
    if hasattr(a, "to_numpy") and hasattr(a, "dtypes"):
        a = a.to_numpy()
    raw = a if isinstance(a, np.ndarray) else None
    if raw is None:
        try:
            raw = np.asarray(a)
        except (TypeError, ValueError):
            return                      # ragged and the like: scikit-learn's error follows
    kind = raw.dtype.kind
    if kind in "US" or (kind == "O" and any(isinstance(v, (str, bytes)) for v in raw.flat)):
        raise ValueError(f"{name} must be numeric, got strings; convert them to numbers first "
                         "(scikit-learn refuses string data too)")


def check_magnitude(arr: np.ndarray, name: str) -> None:
    """Finite entries of ``arr`` must be at most MAX_MAGNITUDE in absolute value."""
    with np.errstate(invalid="ignore"):
        big = float(np.nanmax(np.abs(np.where(np.isfinite(arr), arr, 0.0)))) if arr.size else 0.0
    if big > MAX_MAGNITUDE:
        raise ValueError(f"{name} has values up to {big:.3g}: beyond {MAX_MAGNITUDE:.0e} their "
                         "squares and products overflow float64; rescale (and shift) the data "
                         "and the noise together")


