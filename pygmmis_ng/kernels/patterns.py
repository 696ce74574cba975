"""Compiled helpers of the missing-value kernels (see :mod:`.skeleton_sample`).

Samples with values missing in many different patterns go through one kernel,
sorted by pattern: per sample the measured indices o (:func:`pattern`); while a
pattern lasts, sums in its dy = |o| dimensions, added onto the rows and columns o
of the D-dimensional moment sums when it ends (:func:`scatter`) -- the lift of
the selection rows E_o as a projection: Mc = V sum E^T u,
Cc = V [sum E^T (u u^T - T^-1) E] V + A V. Without per-sample noise T_k[o, o] is
the same for the whole pattern: factorized once, and the sums run over
d = x_o - m_o, turned into sums over u at the end (:func:`to_u`).
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import compile_kernel, fold_det


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
                det, logdet = fold_det(L[a, a], det, logdet)
            else:
                L[a, b] = s / L[b, b]
    return logdet + np.log(det)


def _forward_chi2_py(L, r, n, y):
    """y[:n] = L^-1 r for the lower-triangular L (forward substitution); returns |y|^2."""
    chi2 = 0.0
    for a in range(n):
        s = r[a]
        for c in range(a):
            s -= L[a, c] * y[c]
        y[a] = s / L[a, a]
        chi2 += y[a] * y[a]
    return chi2


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


def _scatter_py(o, dy, K, D, Ao, SUo, Go, sums):
    """Add every component's sums over one pattern's values onto the moment sums (K, NS)
    at the rows and columns o (the upper triangle, row by row) and clear them."""
    for k in range(K):
        if Ao[k] == 0.0:
            continue
        sums[k, 0] += Ao[k]
        Ao[k] = 0.0
        for a in range(dy):             # o ascending: (o[a], o[b]) stays in the upper triangle
            r = o[a]
            sums[k, 1 + r] += SUo[k, a]
            SUo[k, a] = 0.0
            for b in range(a, dy):
                sums[k, 1 + D + r * D - (r * (r - 1)) // 2 + o[b] - r] += Go[k, a, b]
                Go[k, a, b] = 0.0


def _flush_shared_py(o, dy, K, D, Ao, SDo, DDo, Tinv, W, SUo, Go, sums):
    """End of a pattern without per-sample noise: sums over d to sums over u, scattered."""
    for k in range(K):
        if Ao[k] != 0.0:
            to_u(dy, k, Ao, SDo, DDo, Tinv[k], W, SUo, Go)
    scatter(o, dy, K, D, Ao, SUo, Go, sums)


factor = compile_kernel(_factor_py, inline=True)
forward_chi2 = compile_kernel(_forward_chi2_py, inline=True)
pattern = compile_kernel(_pattern_py, inline=True)
to_u = compile_kernel(_to_u_py, inline=True)
scatter = compile_kernel(_scatter_py, inline=True)
flush_shared = compile_kernel(_flush_shared_py, inline=True)
