"""Fused E-step for samples with missing values in many different patterns (numba).

When the missing values form few patterns, each pattern is a group with its
own fast path (:mod:`pygmmis_ng.data.layout`). With many patterns (say D = 10 and values
missing at random: ~1000 patterns) the per-group overhead would dominate,
so all samples go through this kernel instead, sorted by pattern. Per
sample, the measured indices o; per pair, T = V_k[o, o] + S_i[o, o] in
dy = |o| dimensions, chi2 and log det; and the sums Σ q u and
Σ q (u uᵀ − T⁻¹), u = T⁻¹ (x_o − m_o), in dy dimensions while the pattern
lasts, then added onto the rows and columns o of D x D sums -- the
per-sample-noise lift with the selection rows E_o as projection:
Mc = V Σ Eᵀu, Cc = V [Σ Eᵀ(u uᵀ − T⁻¹)E] V + A V.

Without per-sample noise T_k is the same for the whole pattern: its inverse
factor P = L⁻¹ is made once, chi2 = |P d|² is a product without a chain of
divisions, and the sums run over d = x_o − m_o (Σ q d, Σ q d dᵀ), turned into
the sums over u with T⁻¹ once per pattern.
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import Q_NEGLIGIBLE, compile_kernel, deconvolve, mirror_upper, weigh_members
from .compiled_transforms import back_solve as _back_solve
from .compiled_transforms import fold_det as _fold_det
from .compiled_transforms import inverse_gram as _inverse_gram
from .compiled_transforms import lower_inverse as _lower_inverse


def _factor_py(T, dy, L):
    """Lower Cholesky factor of T[:dy, :dy] (lower triangle read) into L; its log det
    (2 log prod L_aa: one log unless the product is extreme), or -inf if T is not
    positive definite."""
    logdet = 0.0
    det = 1.0
    for a in range(dy):
        for b in range(a + 1):
            s = T[a, b]
            for c in range(b):
                s -= L[a, c] * L[b, c]
            if a == b:
                if not s > 0.0:
                    return -np.inf
                L[a, a] = np.sqrt(s)
                det, logdet = _fold_det(L[a, a], det, logdet)
            else:
                L[a, b] = s / L[b, b]
    return logdet + np.log(det)


def _pattern_py(x, i, o, o_prev, dy_prev):
    """Measured indices of sample i into o; returns (dy, whether o equals o_prev[:dy_prev])."""
    dy = 0
    for a in range(x.shape[1]):
        if not np.isnan(x[i, a]):
            o[dy] = a
            dy += 1
    if dy != dy_prev:
        return dy, False
    for a in range(dy):
        if o[a] != o_prev[a]:
            return dy, False
    return dy, True


def _scatter_py(o, dy, k, Ao, SUo, Go, A, SU, G):
    """Add component k's sums over one pattern's values onto rows and columns o of the
    D-space sums (upper triangles) and clear them."""
    A[k] += Ao[k]
    Ao[k] = 0.0
    for a in range(dy):                 # o ascending: (o[a], o[b]) stays in the upper triangle
        SU[k, o[a]] += SUo[k, a]
        SUo[k, a] = 0.0
        for b in range(a, dy):
            G[k, o[a], o[b]] += Go[k, a, b]
            Go[k, a, b] = 0.0


def _to_u_py(dy, k, Ao, SDo, DDo, Tinv, W, SUo, Go):
    """Shared noise: sums over d = x_o - m_o to sums over u = T^-1 d, in place:
    SUo = T^-1 Σ q d, Go = T^-1 (Σ q d d^T) T^-1 - A T^-1 (upper; Tinv full)."""
    for a in range(dy):
        s = 0.0
        for c in range(dy):
            s += Tinv[a, c] * SDo[k, c]
        SUo[k, a] = s
        for c in range(a):
            DDo[k, a, c] = DDo[k, c, a]
    for a in range(dy):
        SDo[k, a] = 0.0
    for a in range(dy):
        for b in range(dy):
            s = 0.0
            for c in range(dy):
                s += DDo[k, a, c] * Tinv[c, b]
            W[a, b] = s
    for a in range(dy):
        for b in range(a, dy):
            s = 0.0
            for c in range(dy):
                s += Tinv[a, c] * W[c, b]
            Go[k, a, b] = s - Ao[k] * Tinv[a, b]
        for b in range(dy):
            DDo[k, a, b] = 0.0


def _stats_masked_shared_py(x, S, weight, log_bg, has_bg, mean, covar, log_amp, A, SU, G):
    """Sums of one chunk sorted by pattern: x (n, D) with NaN, S (D, D) shared noise (zeros
    for none). Returns logL, B, bad (1 + index of a sample whose T is not positive definite)."""
    n, D = x.shape
    K = mean.shape[0]
    lp = np.empty(K + 2)
    mo = np.empty((K, D))                   # m_k[o] of the current pattern
    T = np.empty((D, D))
    L = np.empty((D, D))
    P = np.empty((K, D, D))                 # L_k^-1 and T_k^-1 (full) of the current pattern
    Tinv = np.empty((K, D, D))
    logdets = np.empty(K)
    d = np.empty((K, D))
    Ao = np.zeros(K)                        # Σ q, Σ q d, Σ q d d^T over the current pattern
    SDo = np.zeros((K, D))
    DDo = np.zeros((K, D, D))
    SUo = np.zeros((K, D))
    Go = np.zeros((K, D, D))
    W = np.empty((D, D))
    o = np.empty(D, dtype=np.int64)
    o_prev = np.empty(D, dtype=np.int64)
    dy_prev = -1
    log2pi = np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    for i in range(n + 1):
        if i < n and weight[i] == 0.0:
            continue
        dy, same = _pattern(x, i, o, o_prev, dy_prev) if i < n else (0, False)
        if not same:
            for k in range(K):
                if dy_prev >= 0 and Ao[k] != 0.0:
                    _to_u(dy_prev, k, Ao, SDo, DDo, Tinv[k], W, SUo, Go)
                    _scatter(o_prev, dy_prev, k, Ao, SUo, Go, A, SU, G)
            if i == n:
                break
            for k in range(K):
                for a in range(dy):
                    mo[k, a] = mean[k, o[a]]
                    for b in range(a + 1):
                        T[a, b] = covar[k, o[a], o[b]] + S[o[a], o[b]]
                logdets[k] = _factor(T, dy, L)
                if logdets[k] == -np.inf:
                    return logL, B, i + 1
                _lower_inverse(L, dy, P[k])
                _inverse_gram(P[k], dy, Tinv[k])
                for a in range(dy):
                    for b in range(a):
                        Tinv[k, a, b] = Tinv[k, b, a]
            dy_prev = dy
            o_prev[:dy] = o[:dy]
        mx = -np.inf
        for k in range(K):
            for a in range(dy):
                d[k, a] = x[i, o[a]] - mo[k, a]
            chi2 = 0.0
            for a in range(dy):
                s = 0.0
                for c in range(a + 1):
                    s += P[k, a, c] * d[k, c]
                chi2 += s * s
            lp[k] = log_amp[k] - 0.5 * (dy * log2pi + 2.0 * logdets[k] + chi2)
            if lp[k] > mx:
                mx = lp[k]
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, weight[i], logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] < Q_NEGLIGIBLE * tot:
                continue
            q = lp[k] * scale
            Ao[k] += q
            for a in range(dy):
                qa = q * d[k, a]
                SDo[k, a] += qa
                for b in range(a, dy):
                    DDo[k, a, b] += qa * d[k, b]
    return logL, B, 0


def _stats_masked_per_sample_py(x, S, weight, log_bg, has_bg, mean, covar, log_amp, A, SU, G):
    """As :func:`_stats_masked_shared_py` with S (n, D, D) per-sample noise: T_ik is
    factorized pair by pair, the sums run over u."""
    n, D = x.shape
    K = mean.shape[0]
    lp = np.empty(K + 2)
    mo = np.empty((K, D))                   # m_k[o] and V_k[o, o] of the current pattern
    Vo = np.empty((K, D, D))
    xo = np.empty(D)
    T = np.empty((D, D))
    Ls = np.empty((K, D, D))                # chol(T_ik) of the current sample
    logdets = np.empty(K)
    Li = np.empty((D, D))
    Tinv = np.empty((D, D))
    ys = np.empty((K, D))
    u = np.empty(D)
    Ao = np.zeros(K)                        # Σ q, Σ q u, Σ q (u u^T - T^-1) over the pattern
    SUo = np.zeros((K, D))
    Go = np.zeros((K, D, D))
    o = np.empty(D, dtype=np.int64)
    o_prev = np.empty(D, dtype=np.int64)
    dy_prev = -1
    log2pi = np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    for i in range(n + 1):
        if i < n and weight[i] == 0.0:
            continue
        dy, same = _pattern(x, i, o, o_prev, dy_prev) if i < n else (0, False)
        if not same:
            for k in range(K):
                if dy_prev >= 0 and Ao[k] != 0.0:
                    _scatter(o_prev, dy_prev, k, Ao, SUo, Go, A, SU, G)
            if i == n:
                break
            for k in range(K):
                for a in range(dy):
                    mo[k, a] = mean[k, o[a]]
                    for b in range(a + 1):
                        Vo[k, a, b] = covar[k, o[a], o[b]]
            dy_prev = dy
            o_prev[:dy] = o[:dy]
        for a in range(dy):
            xo[a] = x[i, o[a]]
        mx = -np.inf
        for k in range(K):
            for a in range(dy):
                for b in range(a + 1):
                    T[a, b] = Vo[k, a, b] + S[i, o[a], o[b]]
            logdets[k] = _factor(T, dy, Ls[k])
            if logdets[k] == -np.inf:
                return logL, B, i + 1
            chi2 = 0.0
            for a in range(dy):
                s = xo[a] - mo[k, a]
                for c in range(a):
                    s -= Ls[k, a, c] * ys[k, c]
                ys[k, a] = s / Ls[k, a, a]
                chi2 += ys[k, a] * ys[k, a]
            lp[k] = log_amp[k] - 0.5 * (dy * log2pi + 2.0 * logdets[k] + chi2)
            if lp[k] > mx:
                mx = lp[k]
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, weight[i], logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] < Q_NEGLIGIBLE * tot:
                continue
            q = lp[k] * scale
            _lower_inverse(Ls[k], dy, Li)
            _inverse_gram(Li, dy, Tinv)
            _back_solve(Li, ys[k], dy, u)
            Ao[k] += q
            for a in range(dy):
                qa = q * u[a]
                SUo[k, a] += qa
                for b in range(a, dy):
                    Go[k, a, b] += qa * u[b] - q * Tinv[a, b]
    return logL, B, 0


_factor = compile_kernel(_factor_py, inline=True)
_pattern = compile_kernel(_pattern_py, inline=True)
_scatter = compile_kernel(_scatter_py, inline=True)
_to_u = compile_kernel(_to_u_py, inline=True)
_stats_masked_shared_jit = compile_kernel(_stats_masked_shared_py)
_stats_masked_per_sample_jit = compile_kernel(_stats_masked_per_sample_py)


def stats_masked(x: np.ndarray, S: np.ndarray | None, weight: np.ndarray | None,
                 log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                 log_amp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k (of the true values, centred on the means), logL and B of one chunk.

    Parameters
    ----------
    x : (n, D) with NaN for missing values (every row has a measured one), sorted by
        pattern (any order is correct; runs of one pattern are faster)
    S : None, (D, D) shared or (n, D, D) per-sample noise
    weight, log_bg : None or (n,);  mean, covar, log_amp : the mixture

    Raises
    ------
    numpy.linalg.LinAlgError
        If some V_k[o, o] + S_i[o, o] is not positive definite.
    """
    n, D = x.shape
    K = mean.shape[0]
    A = np.zeros(K)
    SU = np.zeros((K, D))
    G = np.zeros((K, D, D))                 # Σ q (u u^T - T^-1), lifted
    w = np.ones(n) if weight is None else np.ascontiguousarray(weight, dtype=float)
    bg = np.zeros(0) if log_bg is None else np.ascontiguousarray(log_bg, dtype=float)
    per_sample = S is not None and S.ndim == 3 and (S.shape[0] == n and n > 1)
    if per_sample:
        kernel = _stats_masked_per_sample_jit
    else:
        kernel = _stats_masked_shared_jit
        S = np.zeros((D, D)) if S is None else (S[0] if S.ndim == 3 else S)
    logL, B, bad = kernel(
        np.ascontiguousarray(x), np.ascontiguousarray(S), w, bg, int(log_bg is not None),
        np.ascontiguousarray(mean), np.ascontiguousarray(covar), np.ascontiguousarray(log_amp),
        A, SU, G)
    if bad:
        raise np.linalg.LinAlgError(f"V_k + S_i over the measured values is not positive "
                                    f"definite for sample {bad - 1} of a chunk")
    mirror_upper(G)
    return (A,) + deconvolve(covar, covar, A, SU, G) + (float(logL), float(B))
