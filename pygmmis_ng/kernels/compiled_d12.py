"""The per-sample-noise E-step for D = 1 and 2 in closed form (numba; see :mod:`.compiled_d3`).

One or two measured values with their own noise -- a magnitude, a colour and
magnitude, a missing-value pattern that keeps two of the features -- are as
common in deconvolution as D = 3. As in :mod:`.compiled_d3`, the Cholesky
factor, the solve and T^-1 are written out, one log per pair. The loop over
samples is that of the D = 3 kernel (numba does not inline a kernel passed as
an argument, which made a shared skeleton slower); only the per-pair algebra
differs. Equal to the general kernel to rounding (tested for D = 1 ... 8).
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import compile_kernel, keep_member, weigh_members


def _stats_per_sample_d2_py(x, S, weight, log_bg, has_bg, mean, covar, log_amp, nbr, redo, c2,
                            q_negligible, A, SU, SUU, STinv):
    """As :func:`pygmmis_ng.kernels.compiled._stats_per_sample_py` for D = 2."""
    n = x.shape[0]
    K = mean.shape[0]
    lp = np.empty(K + 2)
    F = np.empty((K, 5))                # per component: l00 l10 l11 y0 y1
    c0 = 2.0 * np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    use_nbr = nbr.shape[0] > 0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        s00, s10, s11 = S[i, 0, 0], S[i, 1, 0], S[i, 1, 1]
        x0, x1 = x[i, 0], x[i, 1]
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
                t11 = covar[k, 1, 1] + s11 - l10 * l10
                if not t11 > 0.0:
                    return logL, B, i + 1
                l11 = np.sqrt(t11)
                y0 = (x0 - mean[k, 0]) / l00
                y1 = (x1 - mean[k, 1] - l10 * y0) / l11
                chi2 = y0 * y0 + y1 * y1
                F[k, 0], F[k, 1], F[k, 2], F[k, 3], F[k, 4] = l00, l10, l11, y0, y1
                log_p = log_amp[k] - 0.5 * (c0 + chi2) - np.log(l00 * l11)
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
            i00, i11 = 1.0 / F[k, 0], 1.0 / F[k, 2]
            i10 = -F[k, 1] * i00 * i11
            y0, y1 = F[k, 3], F[k, 4]
            u0 = i00 * y0 + i10 * y1                     # u = L^-T y = T^-1 (x - m)
            u1 = i11 * y1
            A[k] += q
            SU[k, 0] += q * u0
            SU[k, 1] += q * u1
            SUU[k, 0, 0] += q * u0 * u0
            SUU[k, 0, 1] += q * u0 * u1
            SUU[k, 1, 1] += q * u1 * u1
            STinv[k, 0, 0] += q * (i00 * i00 + i10 * i10)                # T^-1 = L^-T L^-1
            STinv[k, 0, 1] += q * (i10 * i11)
            STinv[k, 1, 1] += q * (i11 * i11)
    return logL, B, 0


def _stats_per_sample_d1_py(x, S, weight, log_bg, has_bg, mean, covar, log_amp, nbr, redo, c2,
                            q_negligible, A, SU, SUU, STinv):
    """As :func:`pygmmis_ng.kernels.compiled._stats_per_sample_py` for D = 1."""
    n = x.shape[0]
    K = mean.shape[0]
    lp = np.empty(K + 2)
    F = np.empty((K, 2))                # per component: T and chi = (x - m) / sqrt(T)
    c0 = np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    use_nbr = nbr.shape[0] > 0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        s00, x0 = S[i, 0, 0], x[i, 0]
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
                y0 = (x0 - mean[k, 0]) / l00
                chi2 = y0 * y0
                F[k, 0], F[k, 1] = l00, y0
                log_p = log_amp[k] - 0.5 * (c0 + chi2) - np.log(l00)
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
            i00 = 1.0 / F[k, 0]
            u0 = i00 * F[k, 1]
            A[k] += q
            SU[k, 0] += q * u0
            SUU[k, 0, 0] += q * u0 * u0
            STinv[k, 0, 0] += q * (i00 * i00)
    return logL, B, 0


stats_per_sample_d2 = compile_kernel(_stats_per_sample_d2_py)
stats_per_sample_d1 = compile_kernel(_stats_per_sample_d1_py)
