"""The math of one EM iteration on one chunk of samples.

Pure functions, no state: the fitter (``em.py``) streams fixed chunks of
samples through :func:`chunk_stats` and adds the returned
:class:`SufficientStats` in a fixed order.

For sample i and component k (DESIGN §3), with noise S_i (0 if none)::

    T_ik = V_k + S_i,   L = chol(T_ik),   r = L^-1 (x_i - m_k)
    log p_ik = log a_k - (D log 2pi + 2 sum log diag L + |r|^2) / 2
    q_ik = p_ik / sum_k p_ik
    b_ik = m_k + V_k T_ik^-1 (x_i - m_k)           (posterior mean of the true x)
    B_ik = V_k - V_k T_ik^-1 V_k                   (posterior covariance)

The statistics are kept centred on the current mean m_k, which is
numerically safe and lets imputed samples (later) be added linearly::

    A_k  = sum_i w_i q_ik
    Mc_k = sum_i w_i q_ik (b_ik - m_k)
    Cc_k = sum_i w_i q_ik [(b_ik - m_k)(b_ik - m_k)^T + B_ik]

Three paths, each with the work it really needs:

* no noise: one Cholesky per component per iteration, one GEMM per chunk
  for all components' Mahalanobis distances (as sklearn does);
* one shared noise S: T_k = V_k + S is per component, so the chunk work is
  that of plain EM plus D x D products per component: O(K D^3), not O(N K D^3);
* per-sample noise S_i: the Cholesky factors of all T_ik in a chunk are
  computed "structure of arrays" (samples on the last, contiguous axis), so a
  D x D factorization costs O(D) numpy calls for the whole chunk. The
  statistics need only sum_i q_ik u_ik, sum_i q_ik u u^T and sum_i q_ik T_ik^-1
  with u = T_ik^-1 (x_i - m_k), because
  Cc_k = V_k [sum q (u u^T - T^-1)] V_k + A_k V_k.

Nothing of size N x K x D x D is ever held: the per-chunk cache is
K x D x D x n for a chunk of n samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import fused, fused_transforms

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
    """

    log_amp: np.ndarray
    mean: np.ndarray
    covar: np.ndarray
    prec_chol: np.ndarray | None
    log_det: np.ndarray | None
    gain: np.ndarray | None
    post_covar: np.ndarray | None


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
                       noise: np.ndarray | None = None) -> Components:
    """Factorize what the chunk kernels need once per iteration.

    Parameters
    ----------
    amp : ndarray (K,)
    mean : ndarray (K, D)
    covar : ndarray (K, D, D), symmetric positive definite
    noise : None, ndarray (D, D) shared, or ndarray (N, D, D) per sample

    Raises
    ------
    numpy.linalg.LinAlgError
        If some V_k (+ S) is not positive definite.
    """
    with np.errstate(divide="ignore"):
        log_amp = np.log(amp)
    per_sample = noise is not None and noise.ndim == 3
    if per_sample:
        return Components(log_amp, mean, covar, None, None, None, None)
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
    return Components(log_amp, mean, covar, prec_chol, log_det, gain, post_covar)


# ---------------------------------------------------------------------------
# structure-of-arrays linear algebra for per-sample noise: matrices (D, D, n)
# ---------------------------------------------------------------------------

def cholesky_soa(T: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of SPD matrices laid out (D, D, n).

    Raises numpy.linalg.LinAlgError if a pivot is not positive.
    """
    D = T.shape[0]
    L = np.zeros_like(T)
    for j in range(D):
        if j:
            Lj = L[j, :j]
            pivot = T[j, j] - np.einsum("kn,kn->n", Lj, Lj)
        else:
            pivot = T[j, j]
        if not (pivot > 0).all():
            raise np.linalg.LinAlgError("matrix is not positive definite")
        L[j, j] = np.sqrt(pivot)
        if j + 1 < D:
            col = T[j + 1:, j]
            if j:
                col = col - np.einsum("ikn,kn->in", L[j + 1:, :j], L[j, :j])
            L[j + 1:, j] = col / L[j, j]
    return L


def tri_inverse_soa(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower-triangular matrices laid out (D, D, n)."""
    D = L.shape[0]
    Linv = np.zeros_like(L)
    for i in range(D):
        inv_diag = 1.0 / L[i, i]
        Linv[i, i] = inv_diag
        if i:
            # row i: Linv[i, :i] = -(sum_k L[i, k] Linv[k, :i]) / L[i, i], k < i
            Linv[i, :i] = -np.einsum("kn,kjn->jn", L[i, :i], Linv[:i, :i]) * inv_diag
    return Linv


# ---------------------------------------------------------------------------
# log p and sufficient statistics of one chunk
# ---------------------------------------------------------------------------

def _mahalanobis_shared(x: np.ndarray, comps: Components) -> np.ndarray:
    """chi2_ik = |L_k^-1 (x_i - m_k)|^2 for all k at once: one GEMM. Returns (n, K)."""
    K, D = comps.mean.shape
    P = np.swapaxes(comps.prec_chol, 1, 2)                      # (K, D, D): L_k^-T
    W = x @ P.transpose(1, 0, 2).reshape(D, K * D)             # (n, K*D)
    W = W.reshape(-1, K, D) - np.einsum("kd,kde->ke", comps.mean, P)[None]
    return np.einsum("nkd,nkd->nk", W, W)


def _mahalanobis_per_sample(x: np.ndarray, S: np.ndarray, comps: Components
                            ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """chi2_ik and log det T_ik for T_ik = V_k + S_i, plus the cache the statistics need.

    Returns
    -------
    chi2 : ndarray (n, K)
    log_det : ndarray (n, K)
    cache : (u, Linv) with u = T_ik^-1 (x_i - m_k) of shape (K, D, n) and
        Linv = chol(T_ik)^-1 of shape (K, D, D, n)
    """
    K, D = comps.mean.shape
    n = x.shape[0]
    S_soa = np.ascontiguousarray(S.transpose(1, 2, 0))          # (D, D, n)
    xt = np.ascontiguousarray(x.T)                              # (D, n)
    chi2 = np.empty((n, K))
    log_det = np.empty((n, K))
    u_all = np.empty((K, D, n))
    Linv_all = np.empty((K, D, D, n))
    for k in range(K):
        L = cholesky_soa(S_soa + comps.covar[k][:, :, None])
        Linv = tri_inverse_soa(L)
        r = np.einsum("abn,bn->an", Linv, xt - comps.mean[k][:, None])   # L^-1 d
        chi2[:, k] = np.einsum("an,an->n", r, r)
        log_det[:, k] = 2.0 * np.log(np.einsum("aan->an", L)).sum(axis=0)
        u_all[k] = np.einsum("abn,an->bn", Linv, r)             # L^-T L^-1 d = T^-1 d
        Linv_all[k] = Linv
    return chi2, log_det, (u_all, Linv_all)


def _log_joint_chi2_cache(x: np.ndarray, comps: Components, S: np.ndarray | None):
    D = comps.mean.shape[1]
    if S is None:
        chi2, log_det, cache = _mahalanobis_shared(x, comps), comps.log_det[None], None
    else:
        chi2, log_det, cache = _mahalanobis_per_sample(x, S, comps)
    return comps.log_amp[None] - 0.5 * (D * LOG_2PI + log_det + chi2), chi2, cache


def log_joint_chi2(x: np.ndarray, comps: Components, S: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`log_joint` and chi2_ik = (x_i - m_k)^T (V_k + S_i)^-1 (x_i - m_k), (n, K) each."""
    return _log_joint_chi2_cache(x, comps, S)[:2]


def log_joint(x: np.ndarray, comps: Components, S: np.ndarray | None = None) -> np.ndarray:
    """log a_k + log N(x_i | m_k, V_k + S_i) for one chunk.

    Parameters
    ----------
    x : ndarray (n, D)
    comps : Components from :func:`prepare_components`
    S : None (no or shared noise, already in ``comps``) or ndarray (n, D, D)

    Returns
    -------
    log_p : ndarray (n, K)
    """
    return _log_joint_chi2_cache(x, comps, S)[0]


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


def chunk_stats(x: np.ndarray, comps: Components, S: np.ndarray | None = None,
                weight: np.ndarray | None = None, log_bg: np.ndarray | None = None,
                nbr: np.ndarray | None = None, redo: np.ndarray | None = None, c2: float = 0.0
                ) -> SufficientStats:
    """E-step of one chunk and its sufficient statistics.

    Parameters
    ----------
    x : ndarray (n, D)
    comps : Components from :func:`prepare_components`
    S : None or ndarray (n, D, D) per-sample noise of this chunk
    weight : None or ndarray (n,) sample weights
    log_bg : None or ndarray (n,)
        log of the amplitude-weighted background density at each sample:
        an extra, non-Gaussian mixture member (``comps.log_amp`` must then
        hold the signal amplitudes times 1 - background fraction).
    nbr, redo, c2 : neighborhoods (compiled kernels only)
        ``nbr`` (n, K) uint8, updated in place: pair (i, k) is evaluated only
        if flagged; the flags of components with ``redo[k]`` are first
        recomputed as chi2_ik < c2 (see :func:`pygmmis_ng.fused._stats_shared_py`).
        The numpy kernels ignore them and evaluate every pair (exact).

    Returns
    -------
    SufficientStats
    """
    K, D = comps.mean.shape
    if fused.use_for(D, S is not None):
        wsum = float(x.shape[0]) if weight is None else float(weight.sum())
        if S is not None:
            A, Mc, Cc, logL, B = fused.stats_per_sample(x, S, weight, log_bg, comps.mean,
                                                        comps.covar, comps.log_amp, nbr, redo, c2,
                                                        comps.gain, comps.post_covar)
            return SufficientStats(A, Mc, Cc, logL, wsum, B)
        log_const = comps.log_amp - 0.5 * (D * LOG_2PI + comps.log_det)
        A, Mc, Cc, logL, B = fused.stats_shared(x, weight, log_bg, comps.mean, comps.prec_chol,
                                                log_const, nbr, redo, c2)
        return _deconvolved(SufficientStats(A, Mc, Cc, logL, wsum, B), comps)
    log_p, _, cache = _log_joint_chi2_cache(x, comps, S)
    q_bg = None
    if log_bg is None:
        log_norm, q = log_normalize(log_p)
    else:
        log_norm, q = log_normalize(np.concatenate([log_p, log_bg[:, None]], axis=1))
        q, q_bg = q[:, :K], q[:, K]
    if weight is not None:
        q *= weight[:, None]
        logL = float(weight @ log_norm)
        wsum = float(weight.sum())
        B = 0.0 if q_bg is None else float(weight @ q_bg)
    else:
        logL = float(log_norm.sum())
        wsum = float(x.shape[0])
        B = 0.0 if q_bg is None else float(q_bg.sum())
    A = q.sum(axis=0)
    if cache is None:
        Mc, Cc = _moments_about_means(x, q, A, comps)
        return _deconvolved(SufficientStats(A, Mc, 0.5 * (Cc + np.swapaxes(Cc, 1, 2)), logL,
                                            wsum, B), comps)
    Mc = np.empty((K, D))
    Cc = np.empty((K, D, D))
    for k in range(K):
        qk = q[:, k]
        u, Linv = cache[0][k], cache[1][k]
        uq = u * qk
        # sum_i q_i T_i^-1 with T^-1 = Linv^T Linv
        Tinv_sum = np.tensordot(Linv * qk, Linv, axes=([0, 2], [0, 2]))
        Mc[k] = uq.sum(axis=1)
        Cc[k] = uq @ u.T - Tinv_sum
    # lift: G = V (or V R^T for a projected group), Cc = G (sum ...) G^T + A V
    G = comps.covar if comps.gain is None else comps.gain
    post = comps.covar if comps.post_covar is None else comps.post_covar
    Mc = np.einsum("kab,kb->ka", G, Mc)
    Cc = G @ Cc @ np.swapaxes(G, 1, 2) + A[:, None, None] * post
    Cc = 0.5 * (Cc + np.swapaxes(Cc, 1, 2))
    return SufficientStats(A, Mc, Cc, logL, wsum, B)


def _deconvolved(stats: SufficientStats, comps: Components) -> SufficientStats:
    """Statistics of the true values from those of the (shared-noise) observed ones.

    With one noise S for all samples, b - m = G (x - m) with the gain
    G = V T^-1 and B = V - V T^-1 V are the same for every sample, so
    Mc = G sum q (x - m) and Cc = G [sum q (x - m)(x - m)^T] G^T + A B.
    Without noise (``comps.gain`` None) the statistics are returned as they are.
    """
    if comps.gain is None:
        return stats
    stats.Mc, stats.Cc = fused_transforms.deconvolve(comps.gain, comps.post_covar, stats.A,
                                                     stats.Mc, stats.Cc)
    return stats


#: largest |m_k|^2 / lambda_min(T_k) for which second moments are accumulated
#: about the origin (one GEMM for all components) instead of about each mean;
#: the cancellation then costs at most ~1e-10 of the component variance
UNCENTERED_LIMIT = 1e6


def uncentered_ok(comps: Components) -> bool:
    """Whether :func:`chunk_stats` may use raw moments (see UNCENTERED_LIMIT)."""
    if comps.prec_chol is None:
        return False
    # |L^-1 m|^2 <= |m|^2 / lambda_min(T): bound it by the Frobenius norm of L^-1
    r2 = (comps.mean**2).sum(axis=1) * (comps.prec_chol**2).sum(axis=(1, 2))
    return bool(r2.max() < UNCENTERED_LIMIT)


def _moments_about_means(x: np.ndarray, q: np.ndarray, A: np.ndarray, comps: Components
                         ) -> tuple[np.ndarray, np.ndarray]:
    """sum_i q_ik (x_i - m_k) and sum_i q_ik (x_i - m_k)(x_i - m_k)^T for all k.

    Uses raw moments (two GEMMs for all components) when that is accurate
    (:func:`uncentered_ok`), else sums about each mean.
    """
    n, D = x.shape
    m = comps.mean
    if uncentered_ok(comps):
        S1 = q.T @ x                                                   # (K, D)
        xx = (x[:, :, None] * x[:, None, :]).reshape(n, D * D)
        S2 = (q.T @ xx).reshape(-1, D, D)
        Mc = S1 - A[:, None] * m
        mS1 = m[:, :, None] * S1[:, None, :]
        Cc = S2 - mS1 - np.swapaxes(mS1, 1, 2) + A[:, None, None] * m[:, :, None] * m[:, None, :]
        return Mc, Cc
    K = m.shape[0]
    Mc = np.empty((K, D))
    Cc = np.empty((K, D, D))
    xt = x.T
    for k in range(K):
        d = xt - m[k][:, None]
        qd = d * q[:, k]
        Mc[k] = qd.sum(axis=1)
        Cc[k] = qd @ d.T
    return Mc, Cc
