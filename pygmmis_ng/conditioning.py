"""Marginal and conditional mixtures of a GMM (pure functions; GMM.marginal / GMM.condition).

For a component N(m, V) split into the kept dimensions r and the given ones d,
with values v measured with noise S (0 if exact)::

    marginal over d:  N(m_d, V_dd)
    p(x_r | v):       N(m_r + V_rd T^-1 (v - m_d),  V_rr - V_rd T^-1 V_dr),  T = V_dd + S
    weights:          a_k N(v | m_d, T) / sum_j a_j N(v | m_j,d, T_j)

so the conditional of a mixture is a mixture with re-weighted components.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .data.validation import as_float_array, check_covariances
from .kernels.stats import log_normalize


def _dims(dims: Any, D: int, name: str = "dims") -> np.ndarray:
    idx = np.atleast_1d(np.asarray(dims))
    if idx.dtype == bool:
        if idx.shape != (D,):
            raise ValueError(f"{name} as a mask must have shape ({D},), got {idx.shape}")
        idx = np.flatnonzero(idx)
    if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty sequence of dimension indices, got {dims!r}")
    if (idx < -D).any() or (idx >= D).any():
        raise ValueError(f"{name} {idx.tolist()} out of range for D={D}")
    idx = idx % D
    if len(set(idx.tolist())) != idx.size:
        raise ValueError(f"{name} has repeated dimensions: {idx.tolist()}")
    return idx


def marginal_params(amp: np.ndarray, mean: np.ndarray, covar: np.ndarray, dims: Any
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Amplitudes, means and covariances of the marginal mixture over ``dims``."""
    d = _dims(dims, mean.shape[1])
    return amp.copy(), mean[:, d].copy(), covar[:, d][:, :, d].copy()


def condition_params(amp: np.ndarray, mean: np.ndarray, covar: np.ndarray, values: Any,
                     dims: Any, noise: Any = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Amplitudes, means and covariances of p(x_r | x_dims = values) (see module docstring).

    Raises ValueError if every dimension is given (nothing would remain) or
    the values do not match ``dims``.
    """
    K, D = mean.shape
    d = _dims(dims, D)
    if d.size == D:
        raise ValueError("condition on fewer than all D dimensions: nothing would remain")
    r = np.setdiff1d(np.arange(D), d)
    v = as_float_array(values, "values").reshape(-1)
    if v.shape != (d.size,) or not np.isfinite(v).all():
        raise ValueError(f"values must be {d.size} finite numbers (one per given dimension), "
                         f"got {np.asarray(values).shape}")
    T = covar[:, d][:, :, d]
    if noise is not None:
        S = check_covariances(noise, d.size, "noise", positive_definite=False)
        if S.shape != (d.size, d.size):
            raise ValueError(f"noise must have shape ({d.size}, {d.size}), got {S.shape}")
        T = T + S[None]
    L = np.linalg.cholesky(T)
    resid = v[None] - mean[:, d]
    sol = np.linalg.solve(T, np.concatenate([resid[:, :, None], covar[:, d][:, :, r]], axis=2))
    V_rd = covar[:, r][:, :, d]
    new_mean = mean[:, r] + (V_rd @ sol[:, :, :1])[:, :, 0]
    new_covar = covar[:, r][:, :, r] - V_rd @ sol[:, :, 1:]
    new_covar = 0.5 * (new_covar + np.swapaxes(new_covar, 1, 2))
    chi2 = np.einsum("ka,ka->k", resid, sol[:, :, 0])
    log_det = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    with np.errstate(divide="ignore"):
        log_w = np.log(amp) - 0.5 * (log_det + chi2)
    new_amp = log_normalize(log_w[None])[1][0]
    return new_amp, new_mean, new_covar
