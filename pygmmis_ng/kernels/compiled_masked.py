"""Fused E-step for samples with missing values in many different patterns (numba).

When the missing values form few patterns, each pattern is a group with its
own fast path (:mod:`pygmmis_ng.data.layout`). With many patterns (say D = 10 and values
missing at random: ~1000 patterns) the per-group overhead would dominate,
so all samples go through this kernel instead: per sample, the measured
indices o; per pair, T = V_k[o, o] + S_i[o, o], its Cholesky factor, chi2
and log det in dy = |o| dimensions; and the sums Σ q u and Σ q (u uᵀ − T⁻¹),
u = T⁻¹ (x_o − m_o), scattered back onto the rows and columns o of D x D
accumulators -- the per-sample-noise lift with the selection rows E_o as
projection: Mc = V Σ Eᵀu, Cc = V [Σ Eᵀ(u uᵀ − T⁻¹)E] V + A V.
"""
from __future__ import annotations

import numpy as np

from .compiled import Q_NEGLIGIBLE, _back_solve, _inverse_gram, _lower_inverse
from .compiled_transforms import compile_kernel, deconvolve, mirror_upper, weigh_members


def _stats_masked_py(x, S, s_per_sample, weight, log_bg, has_bg, mean, covar, log_amp,
                     A, SU, SUU, STinv):
    """Sums of one chunk: x (n, D) with NaN, S (n or 1, D, D) noise (zeros for none).

    Without per-sample noise the factors of a pattern are kept while the
    following samples have the same pattern (the caller sorts them by pattern).

    Returns logL, B, bad (1 + index of a sample with a T that is not positive definite).
    """
    n, D = x.shape
    K = mean.shape[0]
    lp = np.empty(K + 2)
    Ls = np.empty((K, D, D))                # chol(T_k[o, o]) of the current pattern
    logdets = np.empty(K)
    Lis = np.empty((K, D, D))               # their inverses and T^-1, made when first needed
    Tinvs = np.empty((K, D, D))
    li_ok = np.zeros(K, dtype=np.uint8)
    ys = np.empty((K, D))
    u = np.empty(D)
    o = np.empty(D, dtype=np.int64)
    o_prev = np.empty(D, dtype=np.int64)
    dy_prev = -1
    log2pi = np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        dy = 0
        for a in range(D):
            if not np.isnan(x[i, a]):
                o[dy] = a
                dy += 1
        same = (not s_per_sample) and dy == dy_prev
        if same:
            for a in range(dy):
                if o[a] != o_prev[a]:
                    same = False
                    break
        si = i if s_per_sample else 0
        if not same:
            for k in range(K):
                logdet = 0.0
                for a in range(dy):
                    for b in range(a + 1):
                        s = covar[k, o[a], o[b]] + S[si, o[a], o[b]]
                        for c in range(b):
                            s -= Ls[k, a, c] * Ls[k, b, c]
                        if a == b:
                            if not s > 0.0:
                                return logL, B, i + 1
                            Ls[k, a, a] = np.sqrt(s)
                            logdet += np.log(Ls[k, a, a])
                        else:
                            Ls[k, a, b] = s / Ls[k, b, b]
                logdets[k] = logdet
                li_ok[k] = 0
            dy_prev = dy
            for a in range(dy):
                o_prev[a] = o[a]
        mx = -np.inf
        for k in range(K):
            chi2 = 0.0
            for a in range(dy):
                s = x[i, o[a]] - mean[k, o[a]]
                for c in range(a):
                    s -= Ls[k, a, c] * ys[k, c]
                ys[k, a] = s / Ls[k, a, a]
                chi2 += ys[k, a] * ys[k, a]
            lp[k] = log_amp[k] - 0.5 * (dy * log2pi + 2.0 * logdets[k] + chi2)
            if lp[k] > mx:
                mx = lp[k]
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, wi, logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] < Q_NEGLIGIBLE * tot:
                continue
            q = lp[k] * scale
            if li_ok[k] == 0:
                _lower_inverse(Ls[k], dy, Lis[k])
                _inverse_gram(Lis[k], dy, Tinvs[k])
                li_ok[k] = 1
            _back_solve(Lis[k], ys[k], dy, u)
            A[k] += q
            for a in range(dy):                 # o ascending: (o[a], o[b]) stays upper
                qa = q * u[a]
                SU[k, o[a]] += qa
                for b in range(a, dy):
                    SUU[k, o[a], o[b]] += qa * u[b]
                    STinv[k, o[a], o[b]] += q * Tinvs[k, a, b]
    return logL, B, 0


_stats_masked_jit = compile_kernel(_stats_masked_py)


def stats_masked(x: np.ndarray, S: np.ndarray | None, weight: np.ndarray | None,
                 log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                 log_amp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k (of the true values, centred on the means), logL and B of one chunk.

    Parameters
    ----------
    x : (n, D) with NaN for missing values (every row has a measured one)
    S : None, (D, D) shared or (n, D, D) per-sample noise
    weight, log_bg : None or (n,);  mean, covar, log_amp : the mixture

    Raises
    ------
    numpy.linalg.LinAlgError
        If some V_k[o, o] + S_i[o, o] is not positive definite.
    """
    n, D = x.shape
    K = mean.shape[0]
    Sa = np.zeros((1, D, D)) if S is None else (S[None] if S.ndim == 2 else S)
    A = np.zeros(K)
    SU = np.zeros((K, D))
    SUU = np.zeros((K, D, D))
    STinv = np.zeros((K, D, D))
    w = np.ones(n) if weight is None else np.ascontiguousarray(weight, dtype=float)
    bg = np.zeros(0) if log_bg is None else np.ascontiguousarray(log_bg, dtype=float)
    logL, B, bad = _stats_masked_jit(
        np.ascontiguousarray(x), np.ascontiguousarray(Sa), int(Sa.shape[0] == n and n > 1), w,
        bg, int(log_bg is not None), np.ascontiguousarray(mean), np.ascontiguousarray(covar),
        np.ascontiguousarray(log_amp), A, SU, SUU, STinv)
    if bad:
        raise np.linalg.LinAlgError(f"V_k + S_i over the measured values is not positive "
                                    f"definite for sample {bad - 1} of a chunk")
    mirror_upper(SUU)
    mirror_upper(STinv)
    return (A,) + deconvolve(covar, covar, A, SU, SUU - STinv) + (float(logL), float(B))
