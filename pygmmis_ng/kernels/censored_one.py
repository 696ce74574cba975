"""The general kernel of :mod:`.censored` for groups with one limit, as one loop nest.

The lane kernels of the family (:func:`pygmmis_ng.kernels.fused.stats_censored`) serve one
limit with up to 4 values and per-sample noise, or 8 without; this serves the rest (more
values, a determinant out of the lanes' range, density evaluation) and is their
reference in the tests. It is written out in one loop nest because numba counts
references at every call that passes an array, which cost more than the arithmetic
(450 ns per pair through the helpers of :mod:`.censored`, 90-140 ns here).
"""
from __future__ import annotations

import math

import numpy as np

from .compiled_transforms import compile_kernel
from .normal_cdf import log_ndtr, log_phi

LOG_2PI = math.log(2.0 * math.pi)


def _add_sample_py(i, lp_out, log_bg, weight, uk, Wk, lp, A_out, SU, SW, sums):
    """Sample i's responsibilities from its members' log densities (lp_out[i], log_bg[i]),
    and its weighted E u, E[u u^T] - T^-1 of each component (uk, Wk) added to A, SU, SW and
    (logL, B) to sums. False when no member explains the sample."""
    K, dy = uk.shape
    mx = -math.inf
    for k in range(K):
        lp[k] = lp_out[i, k]
        mx = max(mx, lp[k])
    lb = log_bg[i] if log_bg.shape[0] > 0 else -math.inf
    mx = max(mx, lb)
    if mx == -math.inf:
        return False
    tot = math.exp(lb - mx)
    for k in range(K):
        lp[k] = math.exp(lp[k] - mx)
        tot += lp[k]
    wi = weight[i] if weight.shape[0] > 0 else 1.0
    sums[0] += wi * (math.log(tot) + mx)
    sums[1] += wi * math.exp(lb - mx) / tot
    for k in range(K):
        q = wi * lp[k] / tot
        if q == 0.0:
            continue
        A_out[k] += q
        for r in range(dy):
            SU[k, r] += q * uk[k, r]
            for t in range(dy):
                SW[k, r, t] += q * Wk[k, r, t]
    return True


def _chunk_one_limit_py(y, S, nS, weight, log_bg, mean, P, log_amp, oi, ci, sgn, stats,
               lp_out, chi2_out, A_out, SU, SW, sums):
    """The general censored kernel (:mod:`.censored`) for groups with one limit, in one loop
    nest (no array passes to helpers: numba counts references at every call, which cost
    more than the arithmetic). With one limit, Sc is a number sc2 and the moments are closed forms:
    z = s (l - mu) / sd, lam = phi(z) / Phi(z), E y_c - mu = -s sd lam, and
    Q = (Var z - 1) / sc2 with Var z = 1 - z lam - lam^2."""
    n, dy = y.shape
    K = mean.shape[0]
    nO = oi.shape[0]
    c, s_c = ci[0], sgn[0]
    m = max(nO, 1)
    L, Tinv, a_k = np.zeros((K, m, m)), np.zeros((K, m, m)), np.zeros((K, m))
    log_det, sc2, sd = np.zeros(K), np.zeros(K), np.zeros(K)
    w, dO = np.empty(m), np.empty(m)
    uk, Wk = np.empty((K, dy)), np.empty((K, dy, dy))
    lp = np.empty(K + 1)
    for i in range(n):
        for k in range(K):
            if nS == 2 or i == 0:           # the factors of T_ik (once per chunk without S_i)
                prod = 1.0
                for r in range(nO):
                    for t in range(r + 1):
                        v = P[k, oi[r], oi[t]] + (S[0 if nS == 1 else i, oi[r], oi[t]]
                                                  if nS > 0 else 0.0)
                        for q in range(t):
                            v -= L[k, r, q] * L[k, t, q]
                        if r == t:
                            if not v > 0.0:
                                return i * K + k + 1
                            L[k, r, r] = math.sqrt(v)
                            prod *= v
                        else:
                            L[k, r, t] = v / L[k, t, t]
                log_det[k] = math.log(prod)
                for r in range(nO):         # a = T_OO^-1 t_Oc, forward then back
                    v = P[k, oi[r], c] + (S[0 if nS == 1 else i, oi[r], c] if nS > 0 else 0.0)
                    for q in range(r):
                        v -= L[k, r, q] * a_k[k, q]
                    a_k[k, r] = v / L[k, r, r]
                for r in range(nO - 1, -1, -1):
                    v = a_k[k, r]
                    for q in range(r + 1, nO):
                        v -= L[k, q, r] * a_k[k, q]
                    a_k[k, r] = v / L[k, r, r]
                v = P[k, c, c] + (S[0 if nS == 1 else i, c, c] if nS > 0 else 0.0)
                for r in range(nO):
                    v -= (P[k, oi[r], c] + (S[0 if nS == 1 else i, oi[r], c] if nS > 0
                                            else 0.0)) * a_k[k, r]
                if not v > 0.0:
                    return i * K + k + 1
                sc2[k], sd[k] = v, math.sqrt(v)
                if stats:                   # T_OO^-1 = L^-T L^-1, column by column
                    for col in range(nO):
                        for r in range(nO):
                            v = 1.0 if r == col else 0.0
                            for q in range(r):
                                v -= L[k, r, q] * Tinv[k, q, col]
                            Tinv[k, r, col] = v / L[k, r, r]
                        for r in range(nO - 1, -1, -1):
                            v = Tinv[k, r, col]
                            for q in range(r + 1, nO):
                                v -= L[k, q, r] * Tinv[k, q, col]
                            Tinv[k, r, col] = v / L[k, r, r]
            chi2, shift = 0.0, 0.0
            for r in range(nO):
                dO[r] = y[i, oi[r]] - mean[k, oi[r]]
                v = dO[r]
                for q in range(r):
                    v -= L[k, r, q] * w[q]
                w[r] = v / L[k, r, r]
                chi2 += w[r] * w[r]
                shift += a_k[k, r] * dO[r]
            z = s_c * (y[i, c] - mean[k, c] - shift) / sd[k]
            lpz = log_ndtr(z)
            lp_out[i, k] = log_amp[k] - 0.5 * (nO * LOG_2PI + log_det[k] + chi2) + lpz
            chi2_out[i, k] = chi2
            if not stats:
                continue
            lam = math.exp(log_phi(z) - lpz)
            h = -s_c * lam / sd[k]                     # (E y_c - mu) / sc2
            Q = -(z * lam + lam * lam) / sc2[k]          # (Var z - 1) / sc2
            for r in range(nO):
                v = -a_k[k, r] * h
                for q in range(nO):
                    v += Tinv[k, r, q] * dO[q]
                uk[k, oi[r]] = v
            uk[k, c] = h
            for r in range(dy):
                for t in range(dy):
                    Wk[k, r, t] = uk[k, r] * uk[k, t]
            for r in range(nO):
                for t in range(nO):
                    Wk[k, oi[r], oi[t]] += Q * a_k[k, r] * a_k[k, t] - Tinv[k, r, t]
                Wk[k, oi[r], c] -= Q * a_k[k, r]
                Wk[k, c, oi[r]] -= Q * a_k[k, r]
            Wk[k, c, c] += Q
        if stats and not add_sample(i, lp_out, log_bg, weight, uk, Wk, lp, A_out, SU, SW, sums):
            return -(i + 1)                               # no member explains the sample
    return 0


add_sample = compile_kernel(_add_sample_py, inline=True)
chunk_one_limit = compile_kernel(_chunk_one_limit_py)
