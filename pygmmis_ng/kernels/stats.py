"""The quantities every E-step kernel shares: prepared components, sufficient statistics.

For sample i and component k (docs/design.md, "One EM iteration"), with noise S_i (0 if none)::

    T_ik = V_k + S_i,   L = chol(T_ik),   r = L^-1 (x_i - m_k)
    log p_ik = log a_k - (D log 2pi + 2 sum log diag L + |r|^2) / 2
    q_ik = p_ik / sum_k p_ik
    b_ik = m_k + V_k T_ik^-1 (x_i - m_k)           (posterior mean of the true x)
    B_ik = V_k - V_k T_ik^-1 V_k                   (posterior covariance)

The statistics are kept centred on the current mean m_k, which is
numerically safe and lets imputed samples be added linearly::

    A_k  = sum_i w_i q_ik
    Mc_k = sum_i w_i q_ik (b_ik - m_k)
    Cc_k = sum_i w_i q_ik [(b_ik - m_k)(b_ik - m_k)^T + B_ik]

:func:`prepare_components` factorizes, once per iteration, what does not
depend on the samples; :func:`log_normalize` turns log p into log-likelihoods
and responsibilities.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import quadratic

LOG_2PI = np.log(2.0 * np.pi)


class Components(NamedTuple):
    """Per-iteration quantities of the mixture that do not depend on samples.

    Attributes
    ----------
    log_amp : ndarray (K,)
    mean : ndarray (K, D)
    covar : ndarray (K, D, D)
        V_k, the intrinsic (deconvolved) component covariances.
    prec_chol : ndarray (K, D, D) or None
        L_k^-1 for L_k = chol(V_k + S) when the noise is absent or shared
        (None for per-sample noise, where it depends on the sample).
    log_det : ndarray (K,) or None
        log det(V_k + S), same condition.
    gain : ndarray (K, D, D) or None
        V_k (V_k + S)^-1 for shared noise (None without noise: identity).
    post_covar : ndarray (K, D, D) or None
        V_k - V_k (V_k + S)^-1 V_k for shared noise (None without noise: zero).
    quad : ndarray (K, F) or None
        Weights of the quadratic features for no or shared noise
        (:func:`pygmmis_ng.kernels.quadratic.feature_weights`); None for
        per-sample noise, or where that form would lose accuracy.
    family : str
        'full', or 'diag' / 'spherical' when every V_k (+ S) is diagonal / isotropic
        (see :func:`kernel_family`): the kernels then do O(D) work per pair and sum
        only the diagonal (its mean) of the second moments -- all that the M-step of
        that covariance type reads.
    """

    log_amp: np.ndarray
    mean: np.ndarray
    covar: np.ndarray
    prec_chol: np.ndarray | None
    log_det: np.ndarray | None
    gain: np.ndarray | None
    post_covar: np.ndarray | None
    quad: np.ndarray | None = None
    family: str = "full"


def kernel_family(covar: np.ndarray, noise: np.ndarray | None, family: str) -> str:
    """The kernel family for components ``covar`` (K, D, D) of a fit whose covariance type
    and noise allow ``family`` ('diag' or 'spherical'; the caller checked that the noise is
    diagonal): 'full' as soon as some V_k is not diagonal (a frozen full component, a start
    not yet constrained); 'spherical' only without shared noise and for isotropic V_k."""
    if family == "full":
        return "full"
    K, D = covar.shape[:2]
    var = np.diagonal(covar, axis1=1, axis2=2)
    if np.count_nonzero(covar.reshape(K, -1)) != np.count_nonzero(var):
        return "full"
    if family == "spherical" and (noise is not None and noise.ndim == 2
                                  or not (var == var[:, :1]).all()):
        return "diag"
    return family


@dataclass
class SufficientStats:
    """Sums over samples of one or more chunks (see module docstring).

    Attributes
    ----------
    A : ndarray (K,)
    Mc : ndarray (K, D)
    Cc : ndarray (K, D, D)
    logL : float
        sum_i w_i log p(x_i), the total (weighted) log-likelihood.
    weight : float
        sum_i w_i, the (weighted) number of samples.
    B : float
        sum_i w_i q_i,bg, the responsibility of the background (0 without).
    """

    A: np.ndarray
    Mc: np.ndarray
    Cc: np.ndarray
    logL: float
    weight: float
    B: float = 0.0

    @classmethod
    def zeros(cls, K: int, D: int) -> SufficientStats:
        return cls(np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), 0.0, 0.0, 0.0)

    def __iadd__(self, other: SufficientStats) -> SufficientStats:
        self.A += other.A
        self.Mc += other.Mc
        self.Cc += other.Cc
        self.logL += other.logL
        self.weight += other.weight
        self.B += other.B
        return self

    def scaled(self, factor: float) -> SufficientStats:
        """All sums multiplied by ``factor`` (the statistics are linear in the weights)."""
        return SufficientStats(self.A * factor, self.Mc * factor, self.Cc * factor,
                               self.logL * factor, self.weight * factor, self.B * factor)


def prepare_components(amp: np.ndarray, mean: np.ndarray, covar: np.ndarray,
                       noise: np.ndarray | None = None, family: str = "full") -> Components:
    """Factorize what the chunk kernels need once per iteration.

    Parameters
    ----------
    amp : ndarray (K,)
    mean : ndarray (K, D)
    covar : ndarray (K, D, D), symmetric positive definite
    noise : None, ndarray (D, D) shared, or ndarray (N, D, D) per sample
    family : 'full', or 'diag' / 'spherical' if the fit's covariance type and its
        (diagonal) noise allow the O(D) kernels (see :func:`kernel_family`)

    Raises
    ------
    numpy.linalg.LinAlgError
        If some V_k (+ S) is not positive definite.
    """
    with np.errstate(divide="ignore"):
        log_amp = np.log(amp)
    per_sample = noise is not None and noise.ndim == 3
    family = kernel_family(covar, noise, family)
    if per_sample:
        return Components(log_amp, mean, covar, None, None, None, None, family=family)
    T = covar if noise is None else covar + noise[None]
    chol = np.linalg.cholesky(T)
    K, D = mean.shape
    # L^-1 of the small (K, D, D) stack in one batched LAPACK call (scipy's
    # solve_triangular costs ~1 ms of overhead per call at small D)
    prec_chol = np.tril(np.linalg.solve(chol, np.broadcast_to(np.eye(D), chol.shape)))
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    gain = post_covar = None
    if noise is not None:
        # T^-1 V = L^-T L^-1 V, so gain = V T^-1 = (T^-1 V)^T
        Tinv_V = np.einsum("kba,kbc,kcd->kad", prec_chol, prec_chol, covar)
        gain = np.swapaxes(Tinv_V, 1, 2)
        post_covar = covar - covar @ Tinv_V
        post_covar = 0.5 * (post_covar + np.swapaxes(post_covar, 1, 2))
    quad = (quadratic.feature_weights(log_amp, mean, prec_chol, log_det, family)
            if quadratic.accurate(mean, prec_chol) else None)
    return Components(log_amp, mean, covar, prec_chol, log_det, gain, post_covar, quad, family)


def shared_gain(prec_chol: np.ndarray, VRt: np.ndarray, covar: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """The gain V_k R^T T_k^-1 (K, D, dy) and the posterior covariance V_k - V_k R^T T_k^-1
    R V_k (K, D, D, symmetrized) of values y = R x + noise shared by a group of samples,
    from ``prec_chol`` L_k^-1 of T_k = R V_k R^T + S (K, dy, dy), ``VRt`` V_k R^T and
    ``covar`` V_k."""
    # T^-1 R V = L^-T L^-1 (V R^T)^T, and the gain is its transpose V R^T T^-1 (K, D, dy)
    Tinv_RV = np.swapaxes(prec_chol, 1, 2) @ (prec_chol @ np.swapaxes(VRt, 1, 2))
    gain = np.swapaxes(Tinv_RV, 1, 2)
    post = covar - gain @ np.swapaxes(VRt, 1, 2)
    return gain, 0.5 * (post + np.swapaxes(post, 1, 2))


def log_normalize(log_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise log-sum-exp and responsibilities.

    Returns
    -------
    log_norm : ndarray (n,)  log sum_k p_ik
    q : ndarray (n, K)  p_ik / sum_k p_ik
    """
    mx = log_p.max(axis=1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    q = np.exp(log_p - mx)
    s = q.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        q /= s
        log_norm = np.log(s[:, 0]) + mx[:, 0]
    return log_norm, q


def member_responsibilities(log_p: np.ndarray, log_bg: np.ndarray | None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`log_normalize` over the K components and, if given, the background member.

    Parameters
    ----------
    log_p : ndarray (n, K)  log a_k N_ik
    log_bg : None or ndarray (n,)  log of the amplitude-weighted background density

    Returns
    -------
    log_norm : ndarray (n,);  q : ndarray (n, K);  q_bg : ndarray (n,) or None
    """
    if log_bg is None:
        log_norm, q = log_normalize(log_p)
        return log_norm, q, None
    K = log_p.shape[1]
    log_norm, q = log_normalize(np.concatenate([log_p, log_bg[:, None]], axis=1))
    return log_norm, q[:, :K], q[:, K]

