"""Input checks shared by the model and the fitter.

Every check raises a ``ValueError`` (or ``TypeError`` for a wrong kind of
object) that names the argument, says what was wrong and how to fix it.
Nothing here mutates its inputs; the fitter runs all checks before it
touches the model (docs/design.md, "Robustness").
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .arrays import (  # noqa: F401
    MAX_MAGNITUDE,
    as_float_array,
    check_dtype,
    check_magnitude,
    check_numeric,
)
from .covariances import check_covariances

#: rows checked at a time (large data are never copied whole by the checks)
CHECK_ROWS = 1 << 16

def check_int(value: Any, name: str, minimum: int | None = None, strict: bool = False) -> int:
    """Check that ``value`` is an integer (not a bool) not smaller than ``minimum``.

    An integral float (``K / 3`` with K = 9: 3.0) counts as that integer, as in pyGMMis,
    unless ``strict`` (the estimators' parameters: scikit-learn refuses floats there).
    """
    if strict and isinstance(value, numbers.Real) and \
            not isinstance(value, (bool, np.bool_, numbers.Integral)):
        raise ValueError(f"{name} must be an int, got the float {value!r} (the estimators take "
                         "ints for integer parameters, as scikit-learn's do)")
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        try:
            as_float = float(value)
        except (OverflowError, ValueError):
            as_float = np.nan
        if np.isfinite(as_float) and as_float.is_integer():
            value = int(as_float)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


class ParameterError(ValueError, TypeError):
    """An argument of the wrong kind or value (both a ValueError and a TypeError, like
    scikit-learn's ``InvalidParameterError``: code that catches either keeps working)."""


def check_flag(value: Any, name: str) -> bool:
    """The one boolean rule: True or False (Python's or numpy's), as scikit-learn's
    ``"boolean"`` constraint; anything else (also 0 and 1) raises a :class:`ParameterError`
    naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ParameterError(f"{name} must be True or False, got {value!r:.60}")


def check_accelerate(accelerate: Any) -> tuple[bool, bool]:
    """(SQUAREM, Newton polish) for ``accelerate``: True both, 'squarem' the first only, False
    neither (plain EM); anything else raises a :class:`ParameterError`."""
    if isinstance(accelerate, str) and accelerate == "squarem":
        return True, False
    try:
        on = check_flag(accelerate, "accelerate")
    except ParameterError:
        raise ParameterError(f"accelerate must be True, False or 'squarem', got "
                             f"{accelerate!r:.60}") from None
    return on, on


def check_float(value: Any, name: str, minimum: float | None = None,
                strict: bool = False, allow_none: bool = False) -> float | None:
    """Check that ``value`` is a finite real number (>= or > ``minimum``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None:
        if strict and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}")
        if not strict and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_data(data: Any, D: int, name: str = "data", allow_missing: bool = False,
               columns: str | None = None, dtype: Any = np.float64) -> np.ndarray:
    """Check samples of shape (N, D): floats, at least one row, no inf.

    Parameters
    ----------
    allow_missing : bool
        NaN marks a missing value (a feature that was not measured); a row
        must have at least one measured value. Otherwise NaN is an error.
    columns : str or None
        What the D columns are, for the error message (default: the model's
        D dimensions).
    dtype : float64 or float32
        Type of the returned array (see :func:`.arrays.check_dtype`).

    Returns
    -------
    X : ndarray, shape (N, D), of ``dtype``
    """
    X = as_float_array(data, name, dtype)
    what = columns or f"the model has D={D} dimensions"
    if X.ndim != 2:
        hint = " (use data.reshape(-1, 1) for one-dimensional samples)" if X.ndim == 1 else ""
        raise ValueError(f"{name} must have shape (N, D) with D={D} ({what}); got shape {X.shape}{hint}")
    if X.shape[1] != D:
        raise ValueError(f"{name} has {X.shape[1]} columns but {what}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one sample")
    # block by block: whole-array temporaries would double the memory of large (mapped) data
    for lo in range(0, X.shape[0], CHECK_ROWS):
        _check_values(X[lo:lo + CHECK_ROWS], name, allow_missing, lo)
    return X


def _check_values(X: np.ndarray, name: str, allow_missing: bool, first: int) -> None:
    """The value checks of :func:`check_data` on rows ``first``... of the data."""
    nan = np.isnan(X)
    if nan.any():
        if not allow_missing:
            rows = first + np.flatnonzero(nan.any(axis=1))
            raise ValueError(
                f"{name} contains NaN in {rows.size} row(s) (first: row {rows[0]}); "
                "missing features are not supported here: drop or fill those rows")
        empty = first + np.flatnonzero(nan.all(axis=1))
        if empty.size:
            raise ValueError(f"{name} has {empty.size} row(s) with every value missing (NaN) "
                             f"(first: row {empty[0]}): such a sample carries no information; "
                             "drop those rows")
    if np.isinf(X).any():
        rows = first + np.flatnonzero(np.isinf(X).any(axis=1))
        raise ValueError(f"{name} contains inf in {rows.size} row(s) (first: row {rows[0]})")
    check_magnitude(X, name)


def has_nan(X: np.ndarray) -> bool:
    """Whether X holds NaN (block by block: no whole-array temporary)."""
    return any(bool(np.isnan(X[lo:lo + CHECK_ROWS]).any())
               for lo in range(0, X.shape[0], CHECK_ROWS))


def _as_per_sample(a: Any, name: str, dtype: Any) -> np.ndarray:
    """``a`` as a float array: of ``dtype`` when it has 3 dimensions (one matrix per sample),
    else float64. An array already of ``dtype`` is not copied (not even through float64)."""
    arr = as_float_array(a, name, dtype if getattr(a, "ndim", None) == 3 else np.float64)
    return as_float_array(arr, name, dtype) if arr.ndim == 3 else arr


def check_projection(R: Any, N: int, D: int, dtype: Any = np.float64) -> np.ndarray | None:
    """Check projections: None, (dy, D) shared by all samples or (N, dy, D), finite.

    Returns None or an array of that shape: per-sample projections of ``dtype``,
    a shared one of float64.
    """
    if R is None:
        return None
    P = _as_per_sample(R, "R (projection)", dtype)
    if P.ndim not in (2, 3) or P.shape[-1] != D or (P.ndim == 3 and P.shape[0] != N) \
            or P.shape[-2] < 1:
        raise ValueError(f"R (projection) must have shape (dy, {D}) shared by all samples or "
                         f"({N}, dy, {D}), one per sample (data then has dy columns, dy >= 1); "
                         f"got shape {P.shape}")
    if not np.isfinite(P).all():
        raise ValueError("R (projection) contains NaN or inf; mark a missing measurement by "
                         "NaN in data instead")
    check_magnitude(P, "R (projection)")
    return P


def check_observed(data: Any, covar: Any, R: Any, D: int, dtype: Any = np.float64
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Data (NaN = missing), projections and noise of a fit, checked together.

    Returns X (N, dy), R (None, (dy, D) or (N, dy, D)) and S (None, (dy, dy)
    or (N, dy, dy)); dy = D without R. X and per-sample R and S are of
    ``dtype`` (float64 or float32: how a fit stores them), shared ones of float64.
    """
    if R is None:
        X = check_data(data, D, allow_missing=True, dtype=dtype)
        P = None
    else:
        arr = as_float_array(data, "data", dtype)
        if arr.ndim != 2:
            raise ValueError(f"data must have shape (N, dy) for projections R, got shape "
                             f"{arr.shape}")
        P = check_projection(R, arr.shape[0], D, dtype)
        dy = P.shape[-2]
        X = check_data(arr, dy, allow_missing=True, dtype=dtype,
                       columns=f"R projects onto dy={dy} values (R has shape {P.shape})")
    S = check_noise(covar, X.shape[0], X.shape[1], ~np.isnan(X) if has_nan(X) else None, dtype)
    if P is not None and S is None:
        check_projection_rank(X, P)
    return X, P, S


def check_projection_rank(X: np.ndarray, R: np.ndarray) -> None:
    """Without noise, the measured rows of each R_i must be independent (else T_ik is singular)."""
    obs = ~np.isnan(X)
    n, dy = X.shape
    for i in range(0, n, 1 << 14):
        o = obs[i:i + 1 << 14]
        Ri = np.broadcast_to(R, (len(o),) + R.shape[-2:]) if R.ndim == 2 else R[i:i + 1 << 14]
        Rz = np.where(o[:, :, None], Ri, 0.0)
        G = Rz @ np.swapaxes(Rz, 1, 2) + np.einsum("na,ab->nab", (~o).astype(float), np.eye(dy))
        scale = np.sqrt(np.einsum("naa->na", G))
        ev = np.linalg.eigvalsh(G / (scale[:, :, None] * scale[:, None, :]))
        bad = np.flatnonzero(~(ev[:, 0] > 1e-13))
        if bad.size:
            raise ValueError(f"R: the measured rows of the projection of sample {i + bad[0]} "
                             "are linearly dependent (or zero), and without noise its density "
                             "is singular; give a noise covariance (covar) or drop the "
                             "redundant rows")


def check_noise(covar: Any, N: int, D: int, observed: np.ndarray | None = None,
                dtype: Any = np.float64) -> np.ndarray | None:
    """Check the noise argument of fit/density: None, (D, D) shared or (N, D, D).

    ``observed`` (N, D) bool marks the measured values when data have missing
    ones: per-sample noise then only matters (and is only checked) on the
    measured values, and may hold anything, NaN included, elsewhere.

    Returns None, a (D, D) array or an (N, D, D) array (validated, symmetrized;
    per-sample noise of ``dtype``, shared noise of float64).
    """
    if covar is None:
        return None
    S = _as_per_sample(covar, "covar", dtype)
    if S.shape not in ((D, D), (N, D, D)):
        raise ValueError(
            f"covar (noise covariance) must be None, shape ({D}, {D}) shared by all samples "
            f"or ({N}, {D}, {D}) one per sample; got shape {S.shape}")
    if S.ndim == 3 and observed is not None and not observed.all():
        # missing rows/columns -> identity, so the check is that of the measured block
        both = observed[:, :, None] & observed[:, None, :]
        S = np.where(both, S, np.eye(D)[None] * (~observed)[:, :, None])
        rows = np.flatnonzero(~np.isfinite(S).all(axis=(1, 2)))
        if rows.size:
            raise ValueError(f"covar (noise covariance) has NaN or inf at measured values of "
                             f"{rows.size} sample(s) (first: row {rows[0]}); only the entries "
                             "of missing values may be NaN")
    return check_covariances(S, D, "covar (noise covariance)", positive_definite=False,
                             dtype=dtype if S.ndim == 3 else np.float64)


def check_weights(sample_weight: Any, N: int) -> np.ndarray | None:
    """Check per-sample weights: None or (N,) finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    w = as_float_array(sample_weight, "sample_weight")
    if w.shape != (N,):
        raise ValueError(f"sample_weight must have shape ({N},), got {w.shape}")
    check_weight_values(w)
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total):
        raise ValueError("sample_weight sums to inf: rescale the weights")
    if total <= 0:
        raise ValueError("sample_weight sums to zero: nothing to fit")
    return w


def check_weight_values(w: np.ndarray) -> None:
    """Sample weights must be finite and non-negative (their sum is checked by the caller)."""
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or inf")
    if (w < 0).any():
        raise ValueError("sample_weight must be non-negative")


def check_spread(span: np.ndarray) -> None:
    """The extent (max - min) of each column must be representable in covariances: those
    that vary lie within 1e-100..1e75 (their squares within 1e-200..1e150, see
    :data:`~.arrays.MAX_MAGNITUDE`)."""
    span = span[span > 0].astype(np.float64)
    if span.size and not (span.min() > 1e-100 and span.max() < 1e75):
        raise ValueError(f"data spread {span.min():.3g}..{span.max():.3g} is outside 1e-100..1e75, "
                         "where covariances cannot be represented in float64: rescale the data")


def check_rng(rng: Any) -> np.random.Generator:
    """Turn None, an int, a SeedSequence, a Generator or a RandomState into a Generator.

    A ``RandomState`` is honoured by drawing a seed from it, so the user's
    RandomState advances and the same RandomState state gives the same fit.
    None and the ``numpy.random`` module (pyGMMis's default) draw that seed
    from numpy's global RandomState, as pyGMMis and scikit-learn do: after
    ``np.random.seed(0)`` the fit is reproducible.
    """
    if rng is None or rng is np.random:
        rng = np.random.mtrand._rand
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.RandomState):
        return np.random.default_rng(rng.randint(0, 2**32, size=4, dtype=np.uint64))
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"rng seed must be non-negative, got {rng}")
        return np.random.default_rng(int(rng))
    raise ValueError(
        "rng must be None, numpy.random, a non-negative int seed, a numpy.random.Generator, "
        f"a numpy.random.RandomState or a SeedSequence; got {type(rng).__name__}")


def check_frozen(frozen: Any, K: int) -> dict[str, np.ndarray]:
    """Turn ``frozen`` into boolean masks of frozen components per parameter.

    ``frozen`` is None, a sequence of component indices (amp, mean and covar
    of those components are kept), or a dict with any of the keys 'amp',
    'mean', 'covar' mapping to index sequences.
    """
    masks = {key: np.zeros(K, dtype=bool) for key in ("amp", "mean", "covar")}
    if frozen is None:
        return masks

    def indices(seq: Any, label: str) -> np.ndarray:
        if isinstance(seq, (str, bytes)) or not np.iterable(seq):
            raise ValueError(f"{label} must be a sequence of component indices, got {seq!r}")
        out = []
        for item in seq:
            if isinstance(item, bool) or not isinstance(item, numbers.Integral):
                raise ValueError(f"{label} must contain integer component indices, got {item!r}")
            if not -K <= item < K:
                raise ValueError(f"{label} contains index {item}, out of range for K={K}")
            out.append(int(item) % K)
        return np.asarray(out, dtype=int)

    if isinstance(frozen, dict):
        unknown = set(frozen) - set(masks)
        if unknown:
            raise ValueError(
                f"frozen dict has unknown key(s) {sorted(map(str, unknown))}; "
                "allowed keys are 'amp', 'mean', 'covar'")
        for key, seq in frozen.items():
            masks[key][indices(seq, f"frozen[{key!r}]")] = True
        return masks
    idx = indices(frozen, "frozen")
    for key in masks:
        masks[key][idx] = True
    return masks


def check_frozen_params(gmm: Any, masks: dict[str, np.ndarray]) -> None:
    """Frozen parameters are kept from the GMM as passed: they must be valid."""
    fa, fm, fc = masks["amp"], masks["mean"], masks["covar"]
    if fa.any():
        if fa.all():
            raise ValueError("all amplitudes are frozen; freeze 'mean' and 'covar' instead")
        a = gmm.amp[fa]
        if not np.isfinite(a).all() or (a < 0).any() or a.sum() >= 1:
            raise ValueError("frozen amplitudes must be finite, non-negative and sum to < 1")
    if fm.any() and not np.isfinite(gmm.mean[fm]).all():
        raise ValueError("frozen means must be finite: set gmm.mean for the frozen components")
    if fc.any():
        check_covariances(gmm.covar[fc], gmm.D, "frozen GMM.covar", positive_definite=True)
