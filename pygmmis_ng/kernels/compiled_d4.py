"""The per-sample-noise E-step for D = 4 in closed form (numba; see :mod:`.compiled_d3`).

Four measured values with their own noise (two positions and two proper
motions, four photometric bands) close the range of small D that the issue
of vectorised kernels names (1-4). As in :mod:`.compiled_d3`, the Cholesky
factor, the solve, the triangular inverse and T^-1 are written out, one log
per pair; the loop over samples is that of the D = 3 kernel. Equal to the
general kernel to rounding (tested).
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import compile_kernel, keep_member, weigh_members


def _stats_per_sample_d4_py(x, S, weight, log_bg, has_bg, mean, covar, log_amp, nbr, redo, c2,
                            q_negligible, A, SU, SUU, STinv):
    """As :func:`pygmmis_ng.kernels.compiled._stats_per_sample_py` for D = 4."""
    n = x.shape[0]
    K = mean.shape[0]
    lp = np.empty(K + 2)
    F = np.empty((K, 14))               # per component: L (row by row, lower), then y
    c0 = 4.0 * np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    use_nbr = nbr.shape[0] > 0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        attempt = 0
        while True:
            mx = -np.inf
            for k in range(K):
                if use_nbr and attempt == 0 and redo[k] == 0 and nbr[i, k] == 0:
                    lp[k] = -np.inf
                    continue
                t00 = covar[k, 0, 0] + S[i, 0, 0]
                if not t00 > 0.0:
                    return logL, B, i + 1
                l00 = np.sqrt(t00)
                l10 = (covar[k, 1, 0] + S[i, 1, 0]) / l00
                l20 = (covar[k, 2, 0] + S[i, 2, 0]) / l00
                l30 = (covar[k, 3, 0] + S[i, 3, 0]) / l00
                t11 = covar[k, 1, 1] + S[i, 1, 1] - l10 * l10
                if not t11 > 0.0:
                    return logL, B, i + 1
                l11 = np.sqrt(t11)
                l21 = (covar[k, 2, 1] + S[i, 2, 1] - l20 * l10) / l11
                l31 = (covar[k, 3, 1] + S[i, 3, 1] - l30 * l10) / l11
                t22 = covar[k, 2, 2] + S[i, 2, 2] - l20 * l20 - l21 * l21
                if not t22 > 0.0:
                    return logL, B, i + 1
                l22 = np.sqrt(t22)
                l32 = (covar[k, 3, 2] + S[i, 3, 2] - l30 * l20 - l31 * l21) / l22
                t33 = covar[k, 3, 3] + S[i, 3, 3] - l30 * l30 - l31 * l31 - l32 * l32
                if not t33 > 0.0:
                    return logL, B, i + 1
                l33 = np.sqrt(t33)
                y0 = (x[i, 0] - mean[k, 0]) / l00
                y1 = (x[i, 1] - mean[k, 1] - l10 * y0) / l11
                y2 = (x[i, 2] - mean[k, 2] - l20 * y0 - l21 * y1) / l22
                y3 = (x[i, 3] - mean[k, 3] - l30 * y0 - l31 * y1 - l32 * y2) / l33
                chi2 = y0 * y0 + y1 * y1 + y2 * y2 + y3 * y3
                F[k, 0], F[k, 1], F[k, 2], F[k, 3], F[k, 4] = l00, l10, l11, l20, l21
                F[k, 5], F[k, 6], F[k, 7], F[k, 8], F[k, 9] = l22, l30, l31, l32, l33
                F[k, 10], F[k, 11], F[k, 12], F[k, 13] = y0, y1, y2, y3
                log_p = log_amp[k] - 0.5 * (c0 + chi2) - np.log(l00 * l11 * l22 * l33)
                mx = keep_member(lp, k, log_p, chi2, use_nbr, redo, nbr, i, c2, attempt, mx)
            if mx > -np.inf or not use_nbr or attempt == 1:
                break
            attempt = 1                 # outside every neighborhood: evaluate all components
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, wi, logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] >= q_negligible * tot:
                _accumulate_d4(F, k, lp[k] * scale, A, SU, SUU, STinv)
    return logL, B, 0


def _accumulate_d4_py(F, k, q, A, SU, SUU, STinv):
    """Add one pair's q, q u, q u u^T and q T^-1 (upper triangles) from its factor in F[k]."""
    i00, i11, i22, i33 = 1.0 / F[k, 0], 1.0 / F[k, 2], 1.0 / F[k, 5], 1.0 / F[k, 9]
    i10 = -F[k, 1] * i00 * i11                                   # M = L^-1, row by row
    i21 = -F[k, 4] * i11 * i22
    i20 = -(F[k, 3] * i00 + F[k, 4] * i10) * i22
    i32 = -F[k, 8] * i22 * i33
    i31 = -(F[k, 7] * i11 + F[k, 8] * i21) * i33
    i30 = -(F[k, 6] * i00 + F[k, 7] * i10 + F[k, 8] * i20) * i33
    y0, y1, y2, y3 = F[k, 10], F[k, 11], F[k, 12], F[k, 13]
    u = (i00 * y0 + i10 * y1 + i20 * y2 + i30 * y3,              # u = M^T y = T^-1 (x - m)
         i11 * y1 + i21 * y2 + i31 * y3,
         i22 * y2 + i32 * y3,
         i33 * y3)
    A[k] += q
    for a in range(4):
        SU[k, a] += q * u[a]
        for b in range(a, 4):
            SUU[k, a, b] += q * u[a] * u[b]
    STinv[k, 0, 0] += q * (i00 * i00 + i10 * i10 + i20 * i20 + i30 * i30)   # M^T M
    STinv[k, 0, 1] += q * (i10 * i11 + i20 * i21 + i30 * i31)
    STinv[k, 0, 2] += q * (i20 * i22 + i30 * i32)
    STinv[k, 0, 3] += q * (i30 * i33)
    STinv[k, 1, 1] += q * (i11 * i11 + i21 * i21 + i31 * i31)
    STinv[k, 1, 2] += q * (i21 * i22 + i31 * i32)
    STinv[k, 1, 3] += q * (i31 * i33)
    STinv[k, 2, 2] += q * (i22 * i22 + i32 * i32)
    STinv[k, 2, 3] += q * (i32 * i33)
    STinv[k, 3, 3] += q * (i33 * i33)


_accumulate_d4 = compile_kernel(_accumulate_d4_py, inline=True)
stats_per_sample_d4 = compile_kernel(_stats_per_sample_d4_py)
