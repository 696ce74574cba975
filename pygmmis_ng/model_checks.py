"""The argument checks of the model layer (:class:`pygmmis_ng.GMM`, model.py, and model_files.py).

Arrays, indices, integers, flags, paths, the extra arrays of ``GMM.save``, and
the memory a call needs. Arrays are converted by the shared
:func:`as_float_array` (no complex, strings, objects), masked entries refused;
sizes are bounded by the memory first. Errors are ValueError or TypeError
naming the argument.
"""
from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from . import config
from .data.censoring import check_censored
from .data.validation import (  # noqa: F401  (check_flag: the model's boolean rule)
    as_float_array,
    check_data,
    check_flag,
    check_int,
    check_noise,
    check_observed,
)

# -- memory -------------------------------------------------------------------
#: a model call's arrays may take this share of the memory limit (the rest: temporaries)
ARRAY_SHARE = 4


def check_memory(nbytes: int, what: str) -> None:
    """Raise a ValueError if ``nbytes`` of arrays (for ``what``), with room for their
    temporaries, exceed the memory limit (:func:`pygmmis_ng.config.check_memory`)."""
    config.check_memory(ARRAY_SHARE * nbytes, what,
                        f" (arrays of {nbytes / 2**30:.3g} GiB and their temporaries)")


def param_bytes(K: int, D: int) -> int:
    """Bytes of the float64 parameters amp (K,), mean (K, D) and covar (K, D, D)."""
    return 8 * K * (1 + D + D * D)


# -- arguments ----------------------------------------------------------------
def real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a float64 array: :func:`as_float_array`, also for masked arrays and overflow.

    Masked entries raise (numpy would silently use the hidden values), as do
    integers too large for float64; float values beyond float64 (longdouble)
    become inf, which the callers refuse where it matters.
    """
    if isinstance(value, np.ma.MaskedArray):
        if np.ma.getmaskarray(value).any():
            raise ValueError(f"{name} is a masked array with {int(np.ma.count_masked(value))} "
                             f"masked value(s); mark missing values with NaN instead "
                             f"({name}.filled(np.nan))")
        value = np.ma.getdata(value)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return as_float_array(value, name)
    except OverflowError as exc:
        raise ValueError(f"{name} must be numbers representable as float64: {exc}") from None


def flat_index(value: Any, name: str = "dims") -> np.ndarray:
    """``value`` as an array of at most one dimension (indices or a mask, checked by the caller)."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nesting, a failing __array__
        raise ValueError(f"{name} must be a sequence of dimension indices: {exc}") from None
    if arr.ndim > 1:
        raise ValueError(f"{name} must be one-dimensional (indices or a boolean mask), "
                         f"got shape {arr.shape}")
    return arr


def eval_inputs(coords: Any, covar: Any, R: Any, D: int, censored: Any = None
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool,
                           np.ndarray | None]:
    """Checked coords (N, D) or (N, dy), their noise and projections, whether single, and the
    censoring flags (None: no value censored; see
    :func:`pygmmis_ng.data.censoring.check_censored`)."""
    X = real_array(coords, "coords")
    covar = None if covar is None else real_array(covar, "covar (noise covariance)")
    R = None if R is None else real_array(R, "R (projection)")
    single = X.ndim == 1
    if single:
        if R is not None and R.ndim != 2:
            raise ValueError("a single point takes a single projection R of shape (dy, D), "
                             f"got shape {R.shape}")
        dy = D if R is None else R.shape[0]
        if X.shape[0] != dy:
            raise ValueError(f"a single point must have {dy} coordinates, got {X.shape[0]}; "
                             "pass several points as an (N, D) array")
        X = X[None]
        if covar is not None and covar.ndim == 2:
            covar = covar[None]  # its own: NaN allowed if missing
        if censored is not None:
            censored = np.asarray(censored)[None]
    C = None
    if censored is not None:
        X, C = check_censored(censored, np.asarray(X, dtype=float), R)
    if R is None:
        X = check_data(X, D, name="coords", allow_missing=True)
        S = check_noise(covar, X.shape[0], X.shape[1], ~np.isnan(X))
    else:
        X, R, S = check_observed(X, covar, R, D)
    return X, S, R, single, C


def check_integer(value: Any, name: str, minimum: int | None = None) -> int:
    """:func:`check_int`, also for reals numpy cannot test, like ``Fraction(6, 2)``."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, numbers.Integral)):
        try:
            value = float(value)
        except (OverflowError, ValueError, TypeError):
            raise ValueError(f"{name} must be an integer, got {value!r:.60}") from None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(value) >= 2**63 \
            or isinstance(value, float) and 2**63 <= abs(value) < np.inf:
        raise ValueError(f"{name} must be of magnitude < 2**63, got about {float(value):.3g}"
                         if isinstance(value, float) or int(value).bit_length() < 1000 else
                         f"{name} must be of magnitude < 2**63, got {int(value).bit_length()} bits")
    return check_int(value, name, minimum=minimum)


def check_path(filename: Any, name: str = "filename") -> str:
    """A non-empty str path from a str, bytes or os.PathLike; else TypeError/ValueError."""
    if not isinstance(filename, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike) or an open binary file, "
                        f"got {type(filename).__name__}")
    try:
        path = os.fsdecode(filename)
    except (TypeError, UnicodeError) as exc:
        raise TypeError(f"{name} is not a usable path: {exc}") from None
    if not path:
        raise ValueError(f"{name} is empty")
    if "\x00" in path:
        raise ValueError(f"{name} contains a NUL character: {path!r}")
    return path


# -- saving -------------------------------------------------------------------
def extra_array(value: Any, key: str) -> np.ndarray:
    """An extra array for GMM.save: anything numpy stores without pickling."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nesting, a failing __array__
        raise ValueError(f"extra array {key!r} is not an array: {exc}") from None
    if arr.dtype.hasobject:
        raise ValueError(f"extra array {key!r} holds Python objects (dtype {arr.dtype}), which "
                         "cannot be saved without pickling; convert it to a numeric or string array")
    return arr
