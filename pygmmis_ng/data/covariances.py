"""Checks of stacks of covariance matrices: symmetric, positive (semi-)definite, finite.

The checks run in float64 on blocks of :data:`CHECK_BLOCK` matrices, so a
large stack of per-sample noise (stored as float32 with ``dtype=``) is never
held in float64 as a whole.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import as_float_array, check_magnitude

#: relative tolerance for symmetry of covariance matrices (at least 64 ulp of their dtype)
SYMMETRY_RTOL = 1e-8
#: matrices checked (and symmetrized) at once by :func:`check_covariances`
CHECK_BLOCK = 1 << 16


def _symmetry_error(M: np.ndarray) -> np.ndarray:
    """Largest relative asymmetry of each matrix in a (..., D, D) stack."""
    scale = np.abs(M).max(axis=(-2, -1))
    asym = np.abs(M - np.swapaxes(M, -1, -2)).max(axis=(-2, -1))
    return asym / np.where(scale > 0, scale, 1.0)


def check_covariances(covar: Any, D: int, name: str, positive_definite: bool,
                      dtype: Any = np.float64) -> np.ndarray:
    """Check a (..., D, D) stack of symmetric PSD (or PD) matrices; returns them symmetrized.

    Parameters
    ----------
    positive_definite : bool
        True for model covariances (must be SPD), False for noise
        covariances, which may be singular (zero noise in some direction).
    dtype : float64 or float32
        Type of the returned stack. The checks and the symmetrization run in
        float64 on blocks of :data:`CHECK_BLOCK` matrices, so a float32 stack
        is never held in float64 as a whole.
    """
    given = getattr(covar, "dtype", None)
    eps = np.finfo(given).eps if given is not None and np.dtype(given).kind == "f" else 0.0
    rtol = max(SYMMETRY_RTOL, 64 * eps)
    C = as_float_array(covar, name, dtype)
    if C.ndim < 2 or C.shape[-2:] != (D, D):
        raise ValueError(f"{name} must have trailing shape ({D}, {D}), got shape {C.shape}")
    if C.size == 0:
        return C
    flat = C.reshape(-1, D, D)
    blocks = [slice(lo, lo + CHECK_BLOCK) for lo in range(0, len(flat), CHECK_BLOCK)]
    exact = True                  # every matrix exactly symmetric: the stack is returned as is
    for b in blocks:              # block by block: no whole-stack temporary
        if not np.isfinite(flat[b]).all():
            raise ValueError(f"{name} contains NaN or inf")
        check_magnitude(flat[b], name)
        err = _symmetry_error(flat[b])
        bad = np.flatnonzero(err > rtol)
        if bad.size:
            bad_all = np.flatnonzero(_symmetry_error(flat) > rtol)
            raise ValueError(f"{name} is not symmetric ({bad_all.size} matrix/matrices, "
                             f"first: index {bad_all[0]})")
        exact = exact and not err.any()
    # symmetrized into a copy; noise that is exactly symmetric is used as given (the same bits:
    # large per-sample stacks, e.g. memory-mapped, are not copied); model covariances are copied
    exact = exact and not positive_definite
    out = flat if exact else np.empty(flat.shape, dtype=C.dtype)
    what = "positive definite" if positive_definite else "positive semi-definite"
    first, count = None, 0
    for b in blocks:
        M = flat[b].astype(np.float64)
        M = 0.5 * (M + np.swapaxes(M, -1, -2))
        bad, smallest = _not_definite(M, positive_definite)
        if bad.size and first is None:
            first = (b.start + bad[0], smallest[bad[0]])
        count += bad.size
        if not exact:
            out[b] = M
    if first is not None:
        raise ValueError(f"{name} must be {what}: {count} matrix/matrices are not "
                         f"(first: index {first[0]}, smallest eigenvalue {first[1]:.3g})")
    return out.reshape(C.shape)


def _not_definite(C: np.ndarray, positive_definite: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the matrices of a symmetric (n, D, D) block that are not PD (PSD), and the
    smallest eigenvalue of each."""
    eig = np.linalg.eigvalsh(C)
    if not positive_definite:
        scale = np.maximum(np.abs(eig).max(axis=1), np.finfo(float).tiny)
        return np.flatnonzero(eig[:, 0] < -1e-10 * scale), eig[:, 0]
    # judged on the correlation matrix, so that axes in very different units pass
    diag = np.diagonal(C, axis1=-2, axis2=-1)
    ok = (diag > 0).all(axis=1)
    corr_min = np.full(len(diag), -np.inf)
    if ok.any():
        s = np.sqrt(diag[ok])
        corr = C[ok] / (s[:, :, None] * s[:, None, :])
        corr_min[ok] = np.linalg.eigvalsh(corr)[:, 0]
    return np.flatnonzero(~(corr_min > 1e-12)), eig[:, 0]
