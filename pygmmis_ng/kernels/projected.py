"""E-step of samples with their own projection: y_i = R_i x_i + noise (extreme deconvolution).

For sample i with projection R_i (dy, D) and noise S_i (dy, dy), and
component k (Bovy, Hogg & Roweis 2011; docs/design.md, "One EM iteration")::

    T_ik = R_i V_k R_i^T + S_i,   d_ik = y_i - R_i m_k,   u_ik = T_ik^-1 d_ik
    log p_ik = log a_k - (dy log 2pi + log det T_ik + d_ik^T u_ik) / 2
    b_ik - m_k = V_k R_i^T u_ik
    B_ik = V_k - V_k R_i^T T_ik^-1 R_i V_k

so the centred statistics need only the lifted sums
SU_k = sum_i q_ik R_i^T u_ik and SW_k = sum_i q_ik (R_i^T u u^T R_i - R_i^T T^-1 R_i):
Mc_k = V_k SU_k and Cc_k = V_k SW_k V_k + A_k V_k -- the per-sample-noise
kernel of :mod:`.dense` with u and T^-1 replaced by their lifts.

Groups of samples that share one projection (a missingness pattern, or a
shared ``R``) do not come here: they are the no/shared/per-sample noise
problems of :mod:`.dense` in the projected space (see
:mod:`pygmmis_ng.data.layout`).
The statistics use the compiled kernel of :mod:`.fused` (per-sample skeleton) when
numba is enabled; this numpy version (batched LAPACK: np.linalg.cholesky
and solve over the chunk, never explicit inverses) is the reference, and
serves density evaluation.
"""
from __future__ import annotations

import numpy as np

from . import fused
from .compiled_transforms import deconvolve
from .stats import LOG_2PI, Components, SufficientStats, member_responsibilities


def _pair_terms(y: np.ndarray, R: np.ndarray, S: np.ndarray | None, mean: np.ndarray,
                V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """chi2, log det T, R^T u and R^T T^-1 R of one component for a chunk.

    Parameters
    ----------
    y : (n, dy);  R : (n, dy, D);  S : None, (dy, dy) or (n, dy, dy)
    mean : (D,);  V : (D, D)

    Returns
    -------
    chi2 (n,), log_det (n,), Rt_u (n, D), RtTinvR (n, D, D)

    Raises
    ------
    numpy.linalg.LinAlgError
        If some T_ik is not positive definite.
    """
    RV = R @ V                                           # (n, dy, D)
    T = RV @ np.swapaxes(R, 1, 2)
    if S is not None:
        T = T + S
    L = np.linalg.cholesky(T)                            # raises if not PD
    log_det = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    d = y - R @ mean
    sol = np.linalg.solve(T, np.concatenate([d[:, :, None], R], axis=2))   # T^-1 [d | R]
    u = sol[:, :, 0]
    chi2 = np.einsum("na,na->n", d, u)
    Rt_u = np.einsum("nad,na->nd", R, u)
    RtTinvR = np.einsum("nad,nae->nde", R, sol[:, :, 1:])
    return chi2, log_det, Rt_u, RtTinvR


def log_joint(y: np.ndarray, R: np.ndarray, S: np.ndarray | None, comps: Components
              ) -> tuple[np.ndarray, np.ndarray]:
    """log a_k + log N(y_i | R_i m_k, R_i V_k R_i^T + S_i) and chi2_ik for one chunk, (n, K) each."""
    K = comps.mean.shape[0]
    dy = y.shape[1]
    out = np.empty((y.shape[0], K))
    chi2 = np.empty((y.shape[0], K))
    for k in range(K):
        chi2[:, k], log_det, _, _ = _pair_terms(y, R, S, comps.mean[k], comps.covar[k])
        out[:, k] = comps.log_amp[k] - 0.5 * (dy * LOG_2PI + log_det + chi2[:, k])
    return out, chi2


def chunk_stats(y: np.ndarray, R: np.ndarray, S: np.ndarray | None, comps: Components,
                weight: np.ndarray | None = None, log_bg: np.ndarray | None = None
                ) -> SufficientStats:
    """Sufficient statistics of one chunk of projected samples (see module docstring).

    Parameters
    ----------
    y : ndarray (n, dy);  R : ndarray (n, dy, D)
    S : None, ndarray (dy, dy) shared or (n, dy, dy) per-sample noise
    comps : Components of the intrinsic mixture (only log_amp, mean, covar are used)
    weight : None or ndarray (n,);  log_bg : None or ndarray (n,) (as in kernels.chunk_stats)

    Returns
    -------
    SufficientStats of the D-dimensional true values, centred on the means
    """
    K, D = comps.mean.shape
    if fused.enabled():
        A, Mc, Cc, logL, B = fused.stats_projected(y, R, S, weight, log_bg, comps.mean,
                                                   comps.covar, comps.log_amp)
        return SufficientStats(A, Mc, Cc, logL,
                               float(y.shape[0] if weight is None else weight.sum()), B)
    dy = y.shape[1]
    n = y.shape[0]
    log_p = np.empty((n, K))
    cache = []
    for k in range(K):
        chi2, log_det, Rt_u, RtTinvR = _pair_terms(y, R, S, comps.mean[k], comps.covar[k])
        log_p[:, k] = comps.log_amp[k] - 0.5 * (dy * LOG_2PI + log_det + chi2)
        cache.append((Rt_u, RtTinvR))
    log_norm, q, q_bg = member_responsibilities(log_p, log_bg)
    w = np.ones(n) if weight is None else weight
    q = q * w[:, None]
    A = q.sum(axis=0)
    SU = np.empty((K, D))
    SW = np.empty((K, D, D))
    for k, (Rt_u, RtTinvR) in enumerate(cache):
        qu = Rt_u * q[:, k, None]
        SU[k] = qu.sum(axis=0)
        SW[k] = qu.T @ Rt_u - np.tensordot(q[:, k], RtTinvR, axes=1)
    Mc, Cc = deconvolve(comps.covar, comps.covar, A, SU, 0.5 * (SW + np.swapaxes(SW, 1, 2)))
    return SufficientStats(A, Mc, Cc, float(w @ log_norm), float(w.sum()),
                           0.0 if q_bg is None else float(w @ q_bg))
