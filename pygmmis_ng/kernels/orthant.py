"""Orthant probabilities and truncated moments of a small standard normal vector (numba).

For z ~ N(0, R) in n <= 3 dimensions (R a correlation matrix) and the orthant z < h
(componentwise), :func:`orthant_moments` returns log P(z < h), E[z | z < h] and
E[z z^T | z < h]. These are what the E-step of censored values needs
(:mod:`pygmmis_ng.kernels.censored`): for n = 1 the closed form of the truncated normal
(P = Phi(h), E z = -phi(h)/Phi(h), E z^2 = 1 - h phi(h)/Phi(h)); for n = 2 and 3 Tallis'
(1961) formulas as written for any n by Manjunath & Wilhelm (2012), in logs, with the
probabilities of :mod:`.normal_cdf`.
"""
from __future__ import annotations

import math

import numpy as np

from .compiled_transforms import compile_kernel
from .normal_cdf import clip_rho, log_bvn, log_ndtr, log_orthant, log_phi, log_phi2


def _log_conditional_orthant_py(a, R, n, j, q):
    """log P(W_rest > a_rest | W_j = a_j (, W_q = a_q)) for W ~ N(0, R), n <= 3 (q < 0: one
    given): the conditional Gaussian of the (at most two) other coordinates, standardized,
    as a lower orthant. Scalars only (no arrays made: this runs once per pair and limit)."""
    m, r0, r1 = 0, -1, -1
    for r in range(n):
        if r != j and r != q:
            if m == 0:
                r0 = r
            else:
                r1 = r
            m += 1
    if m == 0:
        return 0.0
    mu1 = c11 = c01 = 0.0
    if q < 0:
        mu0, c00 = R[r0, j] * a[j], 1.0 - R[r0, j] * R[r0, j]
        if m == 2:
            mu1, c11 = R[r1, j] * a[j], 1.0 - R[r1, j] * R[r1, j]
            c01 = R[r0, r1] - R[r0, j] * R[j, r1]
    else:                               # regression of the one left on (W_j, W_q)
        rho = clip_rho(R[j, q])
        det = (1.0 - rho) * (1.0 + rho)
        bj = (R[r0, j] - rho * R[r0, q]) / det
        bq = (R[r0, q] - rho * R[r0, j]) / det
        mu0, c00 = bj * a[j] + bq * a[q], 1.0 - bj * R[j, r0] - bq * R[q, r0]
    sd0 = math.sqrt(max(c00, 1e-300))
    h0 = (mu0 - a[r0]) / sd0                                 # P(W > a) = P(-z < ...)
    if m == 1:
        return log_ndtr(h0)
    sd1 = math.sqrt(max(c11, 1e-300))
    return log_bvn(h0, (mu1 - a[r1]) / sd1, c01 / (sd0 * sd1))


def _orthant_moments_py(h, R, n, mz, Mzz, ws):
    """log P(z < h), and E[z], E[z z^T] of z ~ N(0, R) given z < h (into mz, Mzz); ``ws`` a
    scratch of at least 15 floats (n > 1).

    Tallis' formulas for W = -z > a = -h: with F_j = phi(a_j) P(rest > a | W_j = a_j)
    and F_jq = phi_2(a_j, a_q) P(rest > a | W_j = a_j, W_q = a_q),
    E W_i = sum_j R_ij F_j / P and E W_i W_l = R_il + sum_j R_ij R_lj a_j F_j / P
    + sum_j R_ij sum_{q != j} (R_lq - R_jq R_lj) F_jq / P. Returns -inf when P = 0
    (the moments are then not set).
    """
    if n == 1:
        lp = log_ndtr(h[0])
        lam = math.exp(log_phi(h[0]) - lp)
        mz[0] = -lam
        Mzz[0, 0] = 1.0 - h[0] * lam
        return lp
    lP = log_orthant(h, R, n)
    if lP == -math.inf:
        return -math.inf
    for j in range(n):                  # ws[0:3] a, ws[3:6] F_j, ws[6:15] F_jq (in logs)
        ws[j] = -h[j]
    for j in range(n):
        ws[3 + j] = math.exp(log_phi(ws[j]) + _log_conditional_orthant(ws, R, n, j, -1) - lP)
    for j in range(n):
        for q in range(n):
            if q != j:
                ws[6 + 3 * j + q] = math.exp(log_phi2(ws[j], ws[q], clip_rho(R[j, q]))
                                             + _log_conditional_orthant(ws, R, n, j, q) - lP)
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += R[i, j] * ws[3 + j]
        mz[i] = -s
    for i in range(n):
        for L in range(i, n):
            s = R[i, L]
            for j in range(n):
                s += R[i, j] * R[L, j] * ws[j] * ws[3 + j]
                for q in range(n):
                    if q != j:
                        s += R[i, j] * (R[L, q] - R[j, q] * R[L, j]) * ws[6 + 3 * j + q]
            Mzz[i, L] = s
            Mzz[L, i] = s
    return lP


_log_conditional_orthant = compile_kernel(_log_conditional_orthant_py)
orthant_moments = compile_kernel(_orthant_moments_py)


def orthant_probability(h: np.ndarray, R: np.ndarray) -> float:
    """Phi_n(h; R) = P(z < h) for z ~ N(0, R), n = len(h) <= 3 (R a correlation matrix)."""
    h = np.ascontiguousarray(h, dtype=float)
    return float(np.exp(log_orthant(h, np.ascontiguousarray(R, dtype=float), h.size)))


def truncated_moments(h: np.ndarray, R: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(log P(z < h), E[z | z < h], E[z z^T | z < h]) for z ~ N(0, R), len(h) <= 3."""
    h = np.ascontiguousarray(h, dtype=float)
    n = h.size
    mz, Mzz = np.zeros(n), np.zeros((n, n))
    lp = orthant_moments(h, np.ascontiguousarray(R, dtype=float), n, mz, Mzz, np.zeros(16))
    return float(lp), mz, Mzz
