"""The per-sample-noise E-step for D = 3 in closed form (numba; the general kernel is the reference).

Three-dimensional data with a noise covariance per sample -- positions or
velocities with their errors -- is the most common extreme-deconvolution case.
:func:`pygmmis_ng.kernels.compiled.stats_per_sample` factorizes T_ik = V_k + S_i
pair by pair in loops over D; here the 3 x 3 Cholesky factor, the solve, the
inverse and T^-1 are written out (no loops, no branches but the positivity
check), one log per pair instead of three, and the per-pair factors live in
registers and small per-component scratch. Same arguments, same sums, same
neighborhood logic; equal to the general kernel to rounding.
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import compile_kernel, keep_member, weigh_members


def _stats_per_sample_d3_py(x, S, weight, log_bg, has_bg, mean, covar, log_amp, nbr, redo, c2,
                            q_negligible, A, SU, SUU, STinv):
    """As :func:`pygmmis_ng.kernels.compiled._stats_per_sample_py` for D = 3."""
    n = x.shape[0]
    K = mean.shape[0]
    lp = np.empty(K + 2)
    F = np.empty((K, 9))                # per component: l00 l10 l11 l20 l21 l22 y0 y1 y2
    c0 = 3.0 * np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    use_nbr = nbr.shape[0] > 0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        s00, s10, s11 = S[i, 0, 0], S[i, 1, 0], S[i, 1, 1]
        s20, s21, s22 = S[i, 2, 0], S[i, 2, 1], S[i, 2, 2]
        x0, x1, x2 = x[i, 0], x[i, 1], x[i, 2]
        attempt = 0
        while True:
            mx = -np.inf
            for k in range(K):
                if use_nbr and attempt == 0 and redo[k] == 0 and nbr[i, k] == 0:
                    lp[k] = -np.inf
                    continue
                t00 = covar[k, 0, 0] + s00
                if not t00 > 0.0:
                    return logL, B, i + 1
                l00 = np.sqrt(t00)
                l10 = (covar[k, 1, 0] + s10) / l00
                l20 = (covar[k, 2, 0] + s20) / l00
                t11 = covar[k, 1, 1] + s11 - l10 * l10
                if not t11 > 0.0:
                    return logL, B, i + 1
                l11 = np.sqrt(t11)
                l21 = (covar[k, 2, 1] + s21 - l20 * l10) / l11
                t22 = covar[k, 2, 2] + s22 - l20 * l20 - l21 * l21
                if not t22 > 0.0:
                    return logL, B, i + 1
                l22 = np.sqrt(t22)
                y0 = (x0 - mean[k, 0]) / l00
                y1 = (x1 - mean[k, 1] - l10 * y0) / l11
                y2 = (x2 - mean[k, 2] - l20 * y0 - l21 * y1) / l22
                chi2 = y0 * y0 + y1 * y1 + y2 * y2
                F[k, 0], F[k, 1], F[k, 2], F[k, 3], F[k, 4], F[k, 5] = l00, l10, l11, l20, l21, l22
                F[k, 6], F[k, 7], F[k, 8] = y0, y1, y2
                log_p = log_amp[k] - 0.5 * (c0 + chi2) - np.log(l00 * l11 * l22)
                mx = keep_member(lp, k, log_p, chi2, use_nbr, redo, nbr, i, c2, attempt, mx)
            if mx > -np.inf or not use_nbr or attempt == 1:
                break
            attempt = 1                 # outside every neighborhood: evaluate all components
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, wi, logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] < q_negligible * tot:
                continue
            q = lp[k] * scale
            i00, i11, i22 = 1.0 / F[k, 0], 1.0 / F[k, 2], 1.0 / F[k, 5]
            i10 = -F[k, 1] * i00 * i11
            i21 = -F[k, 4] * i11 * i22
            i20 = -(F[k, 3] * i00 + F[k, 4] * i10) * i22
            y0, y1, y2 = F[k, 6], F[k, 7], F[k, 8]
            u0 = i00 * y0 + i10 * y1 + i20 * y2          # u = L^-T y = T^-1 (x - m)
            u1 = i11 * y1 + i21 * y2
            u2 = i22 * y2
            A[k] += q
            SU[k, 0] += q * u0
            SU[k, 1] += q * u1
            SU[k, 2] += q * u2
            SUU[k, 0, 0] += q * u0 * u0
            SUU[k, 0, 1] += q * u0 * u1
            SUU[k, 0, 2] += q * u0 * u2
            SUU[k, 1, 1] += q * u1 * u1
            SUU[k, 1, 2] += q * u1 * u2
            SUU[k, 2, 2] += q * u2 * u2
            STinv[k, 0, 0] += q * (i00 * i00 + i10 * i10 + i20 * i20)   # T^-1 = L^-T L^-1
            STinv[k, 0, 1] += q * (i10 * i11 + i20 * i21)
            STinv[k, 0, 2] += q * (i20 * i22)
            STinv[k, 1, 1] += q * (i11 * i11 + i21 * i21)
            STinv[k, 1, 2] += q * (i21 * i22)
            STinv[k, 2, 2] += q * (i22 * i22)
    return logL, B, 0


stats_per_sample_d3 = compile_kernel(_stats_per_sample_d3_py)
