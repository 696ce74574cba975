"""Fused E-step for samples with their own projection R_i (numba; see :mod:`.projected`).

One pass over a chunk, pair by pair: T_ik = R_i V_k R_i^T + S_i (dy x dy),
its Cholesky factor, chi2 and log det, the log-sum-exp over components and,
for every pair with a non-negligible responsibility, the lifted sums
sum q R^T u and sum q (R^T u u^T R - R^T T^-1 R) in D dimensions. Nothing of
size n x K is allocated; the sums run in a fixed order (bit-identical for
any number of workers). :func:`pygmmis_ng.kernels.projected.chunk_stats` is the
numpy reference this kernel is tested against.
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import Q_NEGLIGIBLE, compile_kernel, deconvolve, mirror_upper, weigh_members
from .compiled_transforms import back_solve as _back_solve
from .compiled_transforms import fold_det as _fold_det
from .compiled_transforms import lower_inverse as _lower_inverse


def _stats_projected_py(y, R, S, weight, log_bg, has_bg, mean, covar, log_amp,
                        A, SU, G):
    """Sums of one chunk: y (n, dy), R (n, dy, D), S (n, dy, dy) (zeros for no noise).

    Accumulates A_k, SU_k = sum q R^T u and G_k = sum q R^T (u u^T - T^-1) R (upper
    triangle) with u = T_ik^-1 (y_i - R_i m_k).

    Returns
    -------
    logL, B, bad : bad = 1 + index of the first sample with a T_ik that is
        not positive definite (0 if none)
    """
    n, dy = y.shape
    K, D = mean.shape
    lp = np.empty(K + 2)
    Ls = np.empty((K, dy, dy))              # chol(T_ik) of the current sample
    ys = np.empty((K, dy))                  # L^-1 (y_i - R_i m_k)
    RV = np.empty((dy, D))
    Li = np.empty((dy, dy))
    u = np.empty(dy)
    Ru = np.empty(D)
    W = np.empty((dy, D))                   # L^-1 R
    c0 = dy * np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        mx = -np.inf
        for k in range(K):
            # RV = R_i V_k, then T = RV R_i^T + S_i, factorized in place (lower)
            for a in range(dy):
                for b in range(D):
                    s = 0.0
                    for c in range(D):
                        s += R[i, a, c] * covar[k, c, b]
                    RV[a, b] = s
            logdet = 0.0
            det = 1.0                       # log det T = 2 log prod L_aa
            chi2 = 0.0
            for a in range(dy):
                for b in range(a + 1):
                    s = S[i, a, b]
                    for c in range(D):
                        s += RV[a, c] * R[i, b, c]
                    for c in range(b):
                        s -= Ls[k, a, c] * Ls[k, b, c]
                    if a == b:
                        if not s > 0.0:
                            return logL, B, i + 1
                        Ls[k, a, a] = np.sqrt(s)
                        det, logdet = _fold_det(Ls[k, a, a], det, logdet)
                    else:
                        Ls[k, a, b] = s / Ls[k, b, b]
                s = y[i, a]
                for c in range(D):
                    s -= R[i, a, c] * mean[k, c]
                for c in range(a):
                    s -= Ls[k, a, c] * ys[k, c]
                ys[k, a] = s / Ls[k, a, a]
                chi2 += ys[k, a] * ys[k, a]
            lp[k] = log_amp[k] - 0.5 * (c0 + chi2) - (logdet + np.log(det))
            if lp[k] > mx:
                mx = lp[k]
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, wi, logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] < Q_NEGLIGIBLE * tot:
                continue
            q = lp[k] * scale
            # L^-1 (lower), u = L^-T ys = T^-1 d, W = L^-1 R (dy, D)
            _lower_inverse(Ls[k], dy, Li)
            _back_solve(Li, ys[k], dy, u)
            for a in range(dy):
                for b in range(D):
                    s = 0.0
                    for c in range(a + 1):
                        s += Li[a, c] * R[i, c, b]
                    W[a, b] = s
            for a in range(D):
                s = 0.0
                for c in range(dy):
                    s += R[i, c, a] * u[c]
                Ru[a] = s
            A[k] += q
            for a in range(D):
                qa = q * Ru[a]
                SU[k, a] += qa
                for b in range(a, D):
                    s = 0.0
                    for c in range(dy):
                        s += W[c, a] * W[c, b]
                    G[k, a, b] += qa * Ru[b] - q * s
    return logL, B, 0


_stats_projected_jit = compile_kernel(_stats_projected_py)


def stats_projected(y: np.ndarray, R: np.ndarray, S: np.ndarray | None,
                    weight: np.ndarray | None, log_bg: np.ndarray | None, mean: np.ndarray,
                    covar: np.ndarray, log_amp: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k (of the true values, centred on the means), logL and B of one chunk.

    Parameters
    ----------
    y : (n, dy);  R : (n, dy, D);  S : None, (dy, dy) or (n, dy, dy)
    weight, log_bg : None or (n,);  mean, covar, log_amp : the intrinsic mixture

    Raises
    ------
    numpy.linalg.LinAlgError
        If some R_i V_k R_i^T + S_i is not positive definite.
    """
    n, dy = y.shape
    K, D = mean.shape
    if S is None:
        S = np.zeros((n, dy, dy))
    elif S.ndim == 2:
        S = np.broadcast_to(S, (n, dy, dy))
    A = np.zeros(K)
    SU = np.zeros((K, D))
    G = np.zeros((K, D, D))
    w = np.ones(n) if weight is None else np.ascontiguousarray(weight, dtype=float)
    bg = np.zeros(0) if log_bg is None else np.ascontiguousarray(log_bg, dtype=float)
    logL, B, bad = _stats_projected_jit(
        np.ascontiguousarray(y), np.ascontiguousarray(R), np.ascontiguousarray(S), w, bg,
        int(log_bg is not None), np.ascontiguousarray(mean), np.ascontiguousarray(covar),
        np.ascontiguousarray(log_amp), A, SU, G)
    if bad:
        raise np.linalg.LinAlgError(f"R_i V_k R_i^T + S_i is not positive definite for sample "
                                    f"{bad - 1} of a chunk")
    mirror_upper(G)
    return (A,) + deconvolve(covar, covar, A, SU, G) + (float(logL), float(B))
