"""scikit-learn's parameter shapes of a Gaussian mixture, per ``covariance_type``.

The fit keeps every covariance as a full (D, D) matrix of its family
(:func:`pygmmis_ng.fitting.em.mstep.constrain`); :class:`IncompleteGaussianMixture`
shows them as :class:`sklearn.mixture.GaussianMixture` does:

===========  ====================  ======================================
type         ``covariances_``      ``precisions_cholesky_``
===========  ====================  ======================================
full         (K, D, D)             (K, D, D) upper triangular U, P = U U^T
tied         (D, D)                (D, D)
diag         (K, D) variances      (K, D) 1 / sigma
spherical    (K,) variances        (K,) 1 / sigma
===========  ====================  ======================================

The checks of ``weights_init``, ``means_init`` and ``precisions_init`` raise
with scikit-learn's messages, so code that matches them keeps working.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import solve_triangular


def _shape_error(name: str, expected: tuple, got: tuple) -> ValueError:
    return ValueError(f"The parameter '{name}' should have the shape of {expected}, but got {got}")


def check_weights_init(weights: Any, K: int) -> np.ndarray:
    """``weights_init`` (K,): in [0, 1] and summing to 1."""
    w = np.asarray(weights, dtype=float)
    if w.shape != (K,):
        raise _shape_error("weights", (K,), w.shape)
    if not np.isfinite(w).all() or w.min() < 0 or w.max() > 1:
        raise ValueError("The parameter 'weights' should be in the range [0, 1], but got "
                         f"max value {np.min(w):.5f}, min value {np.max(w):.5f}")
    if not np.allclose(np.abs(1.0 - w.sum()), 0.0):
        raise ValueError(f"The parameter 'weights' should be normalized, but got "
                         f"sum(weights) = {w.sum():.5f}")
    return w / w.sum()


def check_means_init(means: Any, K: int, D: int) -> np.ndarray:
    """``means_init`` (K, D), finite."""
    m = np.asarray(means, dtype=float)
    if m.shape != (K, D):
        raise _shape_error("means", (K, D), m.shape)
    if not np.isfinite(m).all():
        raise ValueError("The parameter 'means' should be finite")
    return m


def precision_shape(covariance_type: str, K: int, D: int) -> tuple:
    return {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[covariance_type]


def covariances_from_precisions(precisions: Any, covariance_type: str, K: int,
                                D: int) -> np.ndarray:
    """Full covariances (K, D, D) from ``precisions_init`` of the given type, checked."""
    P = np.asarray(precisions, dtype=float)
    name = f"{covariance_type} precision"
    shape = precision_shape(covariance_type, K, D)
    if P.shape != shape:
        raise _shape_error(name, shape, P.shape)
    if covariance_type in ("diag", "spherical"):
        if not (np.isfinite(P).all() and (P > 0).all()):
            raise ValueError(f"'{name}' should be positive")
        var = np.broadcast_to((1.0 / P).reshape(K, -1), (K, D))
        out = np.zeros((K, D, D))
        out[:, np.arange(D), np.arange(D)] = var
        return out
    mats = P.reshape(-1, D, D)
    for M in mats:
        if not (np.isfinite(M).all() and np.allclose(M, M.T)
                and np.linalg.eigvalsh(M)[0] > 0):
            raise ValueError(f"'{name}' should be symmetric, positive-definite")
    cov = np.linalg.inv(mats)
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    return np.broadcast_to(cov, (K, D, D)).copy()


def sklearn_covariances(covar: np.ndarray, covariance_type: str) -> np.ndarray:
    """``covariances_`` in scikit-learn's shape from full matrices of the family (K, D, D)."""
    if covariance_type == "full":
        return covar.copy()
    if covariance_type == "tied":
        return covar[0].copy()
    var = np.diagonal(covar, axis1=1, axis2=2).copy()
    return var if covariance_type == "diag" else var.mean(axis=1)


def precisions_cholesky(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """scikit-learn's ``precisions_cholesky_`` from ``covariances_`` of the same type.

    For full matrices U = L^-T with V = L L^T (upper triangular, P = U U^T);
    for variances 1 / sqrt(variance).
    """
    if covariance_type in ("diag", "spherical"):
        return 1.0 / np.sqrt(covariances)
    mats = covariances.reshape(-1, *covariances.shape[-2:])
    out = np.empty_like(mats)
    eye = np.eye(mats.shape[-1])
    for k, V in enumerate(mats):
        L = np.linalg.cholesky(V)
        out[k] = solve_triangular(L, eye, lower=True).T
    return out.reshape(covariances.shape)


def precisions(prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """scikit-learn's ``precisions_`` from ``precisions_cholesky_``."""
    if covariance_type in ("diag", "spherical"):
        return prec_chol**2
    return prec_chol @ np.swapaxes(prec_chol, -1, -2)
