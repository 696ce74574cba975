"""The E-step of one chunk of samples without projections (numpy, or compiled when faster).

Pure functions, no state: the fitter streams fixed chunks of samples through
:func:`chunk_stats` and adds the returned
:class:`~pygmmis_ng.kernels.stats.SufficientStats` in a fixed order (the
math is in :mod:`pygmmis_ng.kernels.stats`).

Three paths, each with the work it really needs:

* no noise: one Cholesky per component per iteration, one GEMM per chunk
  for all components' Mahalanobis distances (as sklearn does) -- where raw
  moments are accurate, the compiled paths use the quadratic-feature GEMMs of
  :mod:`.quadratic` instead (:func:`kernel_path`);
* one shared noise S: T_k = V_k + S is per component, so the chunk work is
  that of plain EM plus D x D products per component: O(K D^3), not O(N K D^3);
* per-sample noise S_i: the Cholesky factors of all T_ik in a chunk in
  batched LAPACK calls, one per component. The statistics need only
  sum_i q_ik u_ik, sum_i q_ik u u^T and sum_i q_ik T_ik^-1 with
  u = T_ik^-1 (x_i - m_k), because
  Cc_k = V_k [sum q (u u^T - T^-1)] V_k + A_k V_k.

Nothing of size N x K x D x D is ever held: the per-chunk cache is
K x D x D x n for a chunk of n samples.
"""
from __future__ import annotations

import numpy as np

from . import compiled_transforms, fused, quadratic
from .stats import LOG_2PI, Components, SufficientStats, member_responsibilities

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
    """chi2_ik and log det T_ik for T_ik = V_k + S_i, plus the cache the statistics need
    (batched LAPACK over the chunk: the reference the compiled kernels are tested against).

    Returns
    -------
    chi2 : ndarray (n, K)
    log_det : ndarray (n, K)
    cache : (u, Linv) with u = T_ik^-1 (x_i - m_k) of shape (K, D, n) and
        Linv = chol(T_ik)^-1 of shape (K, D, D, n)
    """
    K, D = comps.mean.shape
    n = x.shape[0]
    chi2 = np.empty((n, K))
    log_det = np.empty((n, K))
    u_all = np.empty((K, D, n))
    Linv_all = np.empty((K, D, D, n))
    eye = np.broadcast_to(np.eye(D), (n, D, D))
    for k in range(K):
        L = np.linalg.cholesky(S + comps.covar[k])                 # LinAlgError if not SPD
        Linv = np.tril(np.linalg.solve(L, eye))
        r = np.einsum("nab,nb->na", Linv, x - comps.mean[k])       # L^-1 d
        chi2[:, k] = np.einsum("na,na->n", r, r)
        log_det[:, k] = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        u_all[k] = np.einsum("nab,na->bn", Linv, r)                # L^-T L^-1 d = T^-1 d
        Linv_all[k] = Linv.transpose(1, 2, 0)
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


#: the kernel paths that skip samples of weight 0 at no cost (the others compute them)
SKIPS_WEIGHTLESS = ("per_sample", "fused")
#: largest dimension for which the per-sample skeleton (loops over one sample at a time)
#: serves neighborhoods without per-sample noise; beyond, the GEMMs or numpy evaluate
#: every pair (measured: 1.7-3.6x faster than numpy for D <= 3, slower at D = 8)
MAX_D_NEIGHBORHOODS = 3


def kernel_path(D: int, per_sample: bool, quad: bool, neighborhoods: bool,
                family: str = "full") -> str:
    """Which kernel serves a chunk without projections.

    ``"per_sample"``: the per-sample-noise kernels of :mod:`.fused`;
    ``"fused"``: no or shared noise, by the lane kernels of :mod:`.fused` up to
    ``LANES_MAX_D['shared']`` (measured 1.1-2x faster than the GEMMs at D = 2 ... 8),
    for neighborhoods up to :data:`MAX_D_NEIGHBORHOODS` (the only kernels that skip
    pairs outside them), and for the 'diag' / 'spherical' families at any D where the
    quadratic form is not accurate; ``"quadratic"``: the two GEMMs of :mod:`.quadratic`
    (larger D, where BLAS wins; ``quad``: the raw form is accurate);
    ``"numpy"``: the reference kernels (also whenever numba is off).
    """
    if not fused.enabled():
        return "numpy"
    if per_sample:
        return "per_sample"
    if neighborhoods:
        return "fused" if D <= MAX_D_NEIGHBORHOODS else ("quadratic" if quad else "numpy")
    if D <= fused.LANES_MAX_D["shared"]:
        return "fused"
    if quad:
        return "quadratic"
    return "fused" if family != "full" else "numpy"


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
        recomputed as chi2_ik < c2 (see :func:`pygmmis_ng.kernels.fused.stats_shared`).
        The numpy kernels ignore them and evaluate every pair (exact).

    Returns
    -------
    SufficientStats
    """
    K, D = comps.mean.shape
    path = kernel_path(D, S is not None, comps.quad is not None, nbr is not None, comps.family)
    if path != "numpy":
        wsum = float(x.shape[0]) if weight is None else float(weight.sum())
    if path == "per_sample":
        A, Mc, Cc, logL, B = fused.stats_per_sample(x, S, weight, log_bg, comps.mean,
                                                    comps.covar, comps.log_amp, nbr, redo, c2,
                                                    comps.gain, comps.post_covar, comps.family)
        return SufficientStats(A, Mc, Cc, logL, wsum, B)
    if path == "quadratic":
        A, Mc, Cc, logL, B = quadratic.central_stats(x, comps.mean, comps.quad, weight, log_bg,
                                                     comps.family)
        return _deconvolved(SufficientStats(A, Mc, Cc, logL, wsum, B), comps)
    if path == "fused":
        log_const = comps.log_amp - 0.5 * (D * LOG_2PI + comps.log_det)
        A, Mc, Cc, logL, B = fused.stats_shared(x, weight, log_bg, comps.mean, comps.prec_chol,
                                                log_const, nbr, redo, c2, comps.family)
        return _deconvolved(SufficientStats(A, Mc, Cc, logL, wsum, B), comps)
    log_p, _, cache = _log_joint_chi2_cache(x, comps, S)
    log_norm, q, q_bg = member_responsibilities(log_p, log_bg)
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
        Mc, Cc = _moments_about_means(x, q, comps.mean)
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
    stats.Mc, stats.Cc = compiled_transforms.deconvolve(comps.gain, comps.post_covar, stats.A,
                                                     stats.Mc, stats.Cc)
    return stats


def _moments_about_means(x: np.ndarray, q: np.ndarray, m: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """sum_i q_ik (x_i - m_k) and sum_i q_ik (x_i - m_k)(x_i - m_k)^T for all k, about each mean.

    (Where raw moments are accurate, :mod:`.quadratic` serves the whole chunk instead.)
    """
    K, D = m.shape
    Mc = np.empty((K, D))
    Cc = np.empty((K, D, D))
    xt = x.T
    for k in range(K):
        d = xt - m[k][:, None]
        qd = d * q[:, k]
        Mc[k] = qd.sum(axis=1)
        Cc[k] = qd @ d.T
    return Mc, Cc
