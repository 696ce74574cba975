"""E-step of samples with censored values: upper and lower limits on noisy observations.

A group of samples shares which of its dy values are measured (O) and which are limits
(C, each with a side s_j: +1 for an upper limit y_j < l_j, -1 for a lower limit). With
T = V_k + S_i over the group's values (the projection of component k as for missing
values, plus the sample's noise) and d = y_i - m_k (measured values and limits)::

    log p_ik = log a_k + log N(d_O | 0, T_OO) + log P(y_C beyond the limits | y_O)

where y_C | y_O ~ N(mu, Sc): mu - m_C = A^T d_O, A = T_OO^-1 T_OC, Sc = T_CC - T_CO A.
The probability and the moments of y_C truncated to its orthant come from
:func:`pygmmis_ng.kernels.orthant.orthant_moments` (closed form for one limit,
Tallis' formulas for two or three). The posterior mean of the true x is linear in y
and its covariance does not depend on y, so the statistics of the per-sample-noise
kernels, sum q u and sum q (u u^T - T^-1) with u = T^-1 d, become their expectations:
with e = E[y_C] - mu, G = Cov[y_C] (truncated) and h = Sc^-1 e::

    E u   = (T_OO^-1 d_O - A h,  h)
    E[u u^T] - T^-1 = E u E u^T - [T_OO^-1 0; 0 0] + J (G - Sc) J^T,  J = (-A Sc^-1; Sc^-1)

(the Schur complement form of T^-1), lifted to D dimensions by V_k R_g^T as for a
missing-value group (docs/design.md, "Missing values and projections"). Without
limits these are the per-sample-noise sums of the measured values; with limits far
beyond the data, the sums of the samples with those values missing.
"""
from __future__ import annotations

import math

import numpy as np

from . import fused
from .censored_one import add_sample, chunk_one_limit
from .compiled_transforms import compile_kernel, deconvolve
from .orthant import orthant_moments
from .stats import Components, SufficientStats

LOG_2PI = math.log(2.0 * math.pi)
#: the most censored values one sample may have (the orthant moments' dimension)
MAX_CENSORED = 3


def _cholesky_py(T, idx, n, L):
    """L = chol(T[idx][:, idx]) (n, n) in place; returns log det, or nan if not PD."""
    log_det = 0.0
    for a in range(n):
        for b in range(a + 1):
            s = T[idx[a], idx[b]]
            for c in range(b):
                s -= L[a, c] * L[b, c]
            if a == b:
                if not s > 0.0:
                    return math.nan
                L[a, a] = math.sqrt(s)
                log_det += 2.0 * math.log(L[a, a])
            else:
                L[a, b] = s / L[b, b]
    return log_det


def _solve_col_py(L, n, M, j):
    """M[:, j] <- (L L^T)^-1 M[:, j] in place (the first n rows)."""
    for a in range(n):
        s = M[a, j]
        for c in range(a):
            s -= L[a, c] * M[c, j]
        M[a, j] = s / L[a, a]
    for a in range(n - 1, -1, -1):
        s = M[a, j]
        for c in range(a + 1, n):
            s -= L[c, a] * M[c, j]
        M[a, j] = s / L[a, a]


def _factor_py(T, oi, ci, sgn, nO, nC, ar, L, A, Sc, Lc, Rc, sd, Tinv):
    """What one pair's T (over the group's values) gives independently of the values: chol
    of T_OO (L), A = T_OO^-1 T_OC, Sc = T_CC - T_CO A and its chol (Lc), the standard
    deviations (sd) and oriented correlations (Rc) of the limited values given the measured
    ones, and T_OO^-1 (Tinv). Returns log det T_OO, or nan if T is not positive definite."""
    log_det = _cholesky(T, oi, nO, L)
    if log_det != log_det:
        return math.nan
    for j in range(nC):
        for a in range(nO):
            A[a, j] = T[oi[a], ci[j]]
        _solve_col(L, nO, A, j)
    for j in range(nC):
        for q in range(nC):
            s = T[ci[j], ci[q]]
            for a in range(nO):
                s -= T[oi[a], ci[j]] * A[a, q]
            Sc[j, q] = s
    ld = _cholesky(Sc, ar, nC, Lc)
    if ld != ld:
        return math.nan
    for j in range(nC):
        sd[j] = math.sqrt(Sc[j, j])
    for j in range(nC):
        for q in range(nC):
            Rc[j, q] = sgn[j] * sgn[q] * Sc[j, q] / (sd[j] * sd[q])
    for a in range(nO):
        for b in range(nO):
            Tinv[a, b] = 1.0 if a == b else 0.0
    for a in range(nO):
        _solve_col(L, nO, Tinv, a)
    return log_det


def _pair_py(d, oi, ci, sgn, nO, nC, log_det, L, A, Sc, Lc, Rc, sd, Tinv, w, hz, ez, ezz,
             Q, stats, u, W, ws):
    """log N(d_O) + log P(limits | y_O) of one pair from its factors (:func:`_factor_py`),
    and with ``stats`` E u (u, dy) and E[u u^T] - T^-1 (W, dy x dy) in the group's value
    order. Returns (log density, chi2 of the measured values); -inf when the limits have
    probability 0 (u, W are then not set)."""
    for a in range(nO):                 # w = L^-1 d_O, chi2 = |w|^2
        s = d[oi[a]]
        for c in range(a):
            s -= L[a, c] * w[c]
        w[a] = s / L[a, a]
    chi2 = 0.0
    for a in range(nO):
        chi2 += w[a] * w[a]
    log_n = -0.5 * (nO * LOG_2PI + log_det + chi2)
    for j in range(nC):                 # limits relative to the conditional mean, in sd
        shift = 0.0
        for a in range(nO):
            shift += A[a, j] * d[oi[a]]
        hz[j] = sgn[j] * (d[ci[j]] - shift) / sd[j]
    lp = orthant_moments(hz, Rc, nC, ez, ezz, ws)
    if not stats or lp == -math.inf:
        return log_n + lp, chi2
    # e = E y_C - mu (into hz) and Q = Sc^-1 (G - Sc) Sc^-1, G the truncated covariance
    for j in range(nC):
        for q in range(nC):
            Q[j, q] = sgn[j] * sd[j] * sgn[q] * sd[q] * (ezz[j, q] - ez[j] * ez[q]) - Sc[j, q]
    for j in range(nC):
        hz[j] = sgn[j] * sd[j] * ez[j]
    for j in range(nC):                 # h = Sc^-1 e (into ez), Q by columns, then rows
        ez[j] = hz[j]
    for a in range(nC):
        s = ez[a]
        for c in range(a):
            s -= Lc[a, c] * ez[c]
        ez[a] = s / Lc[a, a]
    for a in range(nC - 1, -1, -1):
        s = ez[a]
        for c in range(a + 1, nC):
            s -= Lc[c, a] * ez[c]
        ez[a] = s / Lc[a, a]
    for j in range(nC):
        _solve_col(Lc, nC, Q, j)
    for j in range(nC):
        for q in range(j):
            Q[j, q], Q[q, j] = Q[q, j], Q[j, q]
    for j in range(nC):
        _solve_col(Lc, nC, Q, j)
    _expectations(d, oi, ci, nO, nC, A, Tinv, ez, Q, u, W)
    return log_n + lp, chi2


def _expectations_py(d, oi, ci, nO, nC, A, Tinv, h, Q, u, W):
    """E u = (T_OO^-1 d_O - A h, h) and E[u u^T] - T^-1 = E u E u^T - [T_OO^-1 0; 0 0]
    + [A Q A^T, -A Q; -Q A^T, Q] in the group's value order."""
    dy = nO + nC
    for a in range(nO):
        s = 0.0
        for b in range(nO):
            s += Tinv[a, b] * d[oi[b]]
        for j in range(nC):
            s -= A[a, j] * h[j]
        u[oi[a]] = s
    for j in range(nC):
        u[ci[j]] = h[j]
    for x in range(dy):
        for y in range(dy):
            W[x, y] = u[x] * u[y]
    for a in range(nO):
        for q in range(nC):
            s = 0.0                     # (A Q)[a, q]
            for j in range(nC):
                s += A[a, j] * Q[j, q]
            W[oi[a], ci[q]] -= s
            W[ci[q], oi[a]] -= s
        for b in range(nO):
            s = -Tinv[a, b]
            for j in range(nC):
                for q in range(nC):
                    s += A[a, j] * Q[j, q] * A[b, q]
            W[oi[a], oi[b]] += s
    for j in range(nC):
        for q in range(nC):
            W[ci[j], ci[q]] += Q[j, q]


def _chunk_py(y, S, nS, weight, log_bg, mean, P, log_amp, oi, ci, sgn, stats,
              lp_out, chi2_out, A_out, SU, SW, sums):
    """Every pair of one chunk: log densities (lp_out, chi2_out) and, with ``stats``, the
    responsibility-weighted sums A, SU = sum q E u and SW = sum q (E[u u^T] - T^-1). Without
    or with shared noise (nS 0 or 1) the factors of each component are made once."""
    n, dy = y.shape
    K = mean.shape[0]
    nO, nC = oi.shape[0], ci.shape[0]
    m = max(nO, 1)
    T, d = np.empty((dy, dy)), np.empty(dy)
    L, A, Tinv = np.zeros((K, m, m)), np.zeros((K, m, 3)), np.zeros((K, m, m))
    Sc, Lc, Rc = np.zeros((K, 3, 3)), np.zeros((K, 3, 3)), np.zeros((K, 3, 3))
    sd, log_det = np.zeros((K, 3)), np.zeros(K)
    w, hz, ez, ezz, Q = np.empty(m), np.empty(3), np.empty(3), np.empty((3, 3)), np.empty((3, 3))
    ar, ws = np.arange(3), np.zeros(16)
    uk, Wk = np.empty((K, dy)), np.empty((K, dy, dy))
    lp = np.empty(K + 1)
    for i in range(n):
        for k in range(K):
            if nS == 2 or i == 0:
                for a in range(dy):
                    for b in range(dy):
                        T[a, b] = P[k, a, b] + (S[0 if nS == 1 else i, a, b] if nS > 0 else 0.0)
                log_det[k] = _factor(T, oi, ci, sgn, nO, nC, ar, L[k], A[k], Sc[k], Lc[k],
                                     Rc[k], sd[k], Tinv[k])
                if log_det[k] != log_det[k]:
                    return i * K + k + 1                  # T not positive definite
            for a in range(dy):
                d[a] = y[i, a] - mean[k, a]
            val, c2 = _pair(d, oi, ci, sgn, nO, nC, log_det[k], L[k], A[k], Sc[k], Lc[k],
                            Rc[k], sd[k], Tinv[k], w, hz, ez, ezz, Q, stats, uk[k], Wk[k], ws)
            lp_out[i, k] = log_amp[k] + val
            chi2_out[i, k] = c2
        if stats and not add_sample(i, lp_out, log_bg, weight, uk, Wk, lp, A_out, SU, SW, sums):
            return -(i + 1)                               # no member explains the sample
    return 0


_cholesky = compile_kernel(_cholesky_py, inline=True)
_solve_col = compile_kernel(_solve_col_py, inline=True)
_factor = compile_kernel(_factor_py, inline=True)
_expectations = compile_kernel(_expectations_py, inline=True)
_pair = compile_kernel(_pair_py, inline=True)
_chunk = compile_kernel(_chunk_py)


def _run(y: np.ndarray, S: np.ndarray | None, cens: np.ndarray, comps: Components,
         weight: np.ndarray | None, log_bg: np.ndarray | None, stats: bool) -> tuple:
    """The general kernels on one chunk (one limit: :func:`.censored_one.chunk_one_limit`):
    log densities and chi2 (n, K) each, and with ``stats`` A, SU, SW and (logL, B)."""
    n, dy = y.shape
    K = comps.mean.shape[0]
    oi = np.flatnonzero(cens == 0).astype(np.int64)
    ci = np.flatnonzero(cens != 0).astype(np.int64)
    sgn = -np.asarray(cens[ci], dtype=float)             # +1: an upper limit (y < l)
    if S is None:
        S3, nS = np.zeros((0, dy, dy)), 0
    elif S.ndim == 2:
        S3, nS = np.ascontiguousarray(S[None], dtype=float), 1
    else:
        S3, nS = np.ascontiguousarray(S, dtype=float), 2
    lp, chi2 = np.empty((n, K)), np.empty((n, K))
    A, SU, SW, sums = np.zeros(K), np.zeros((K, dy)), np.zeros((K, dy, dy)), np.zeros(2)
    kernel = chunk_one_limit if ci.size == 1 else _chunk
    flag = kernel(np.ascontiguousarray(y, dtype=float), S3, nS,
                  np.zeros(0) if weight is None else np.ascontiguousarray(weight, dtype=float),
                  np.zeros(0) if log_bg is None else np.ascontiguousarray(log_bg, dtype=float),
                  np.ascontiguousarray(comps.mean), np.ascontiguousarray(comps.covar),
                  np.ascontiguousarray(comps.log_amp), oi, ci, sgn, stats, lp, chi2,
                  A, SU, SW, sums)
    if flag > 0:
        raise np.linalg.LinAlgError("a component's covariance plus a sample's noise is not "
                                    "positive definite over the sample's values")
    if flag < 0:
        raise FloatingPointError(f"sample {-flag - 1} of the chunk has probability 0 under "
                                 "every component (its limits exclude all of them)")
    return lp, chi2, A, SU, SW, sums


def _lanes(y: np.ndarray, S: np.ndarray | None, side: int, comps: Components,
           weight: np.ndarray | None, log_bg: np.ndarray | None) -> tuple | None:
    """The lane kernels of one limit, the last value (:func:`.fused.stats_censored`): a lower
    limit (side +1) is an upper limit of -y, so that value's sign is flipped in the data,
    the means, the covariances, the noise and the lift (which undoes it)."""
    mean, P, gain = comps.mean, comps.covar, comps.gain
    if side > 0:
        f = np.ones(y.shape[1])
        f[-1] = -1.0
        y, mean, gain, P = y * f, mean * f, gain * f, P * np.outer(f, f)
        S = None if S is None else S * np.outer(f, f)
    return fused.stats_censored(y, S, weight, log_bg, mean, P, comps.log_amp, gain,
                                comps.post_covar)


def log_joint(y: np.ndarray, S: np.ndarray | None, cens: np.ndarray, comps: Components
              ) -> tuple[np.ndarray, np.ndarray]:
    """log a_k + log p(y_i | k) (n, K) of one chunk of a censored group, and the chi2 (n, K)
    of the measured values.

    Parameters
    ----------
    y : (n, dy) the measured values and the limits;  S : None, (dy, dy) or (n, dy, dy)
    cens : (dy,) 0 (measured), -1 (upper limit) or +1 (lower limit) for each value
    comps : Components of the group (projected means and covariances, see
        :func:`pygmmis_ng.data.observed.group_components`)
    """
    lp, chi2 = _run(y, S, cens, comps, None, None, False)[:2]
    return lp, chi2


def chunk_stats(y: np.ndarray, S: np.ndarray | None, cens: np.ndarray, comps: Components,
                weight: np.ndarray | None = None, log_bg: np.ndarray | None = None
                ) -> SufficientStats:
    """Sufficient statistics of the D-dimensional true values of one chunk of a censored
    group (arguments as :func:`log_joint`; ``comps.gain`` the lift V_k R_g^T (K, D, dy),
    ``comps.post_covar`` V_k), centred on the means."""
    n, dy = y.shape
    if fused.enabled() and np.count_nonzero(cens) == 1 and cens[-1] != 0:
        out = _lanes(y, S, cens[-1], comps, weight, log_bg)
        if out is not None:
            A, Mc, Cc, logL, B = out
            return SufficientStats(A, Mc, Cc, logL, float(n if weight is None else weight.sum()), B)
    _, _, A, SU, SW, sums = _run(y, S, cens, comps, weight, log_bg, True)
    Mc, Cc = deconvolve(comps.gain, comps.post_covar, A, SU,
                        0.5 * (SW + np.swapaxes(SW, 1, 2)))
    return SufficientStats(A, Mc, Cc, float(sums[0]),
                           float(y.shape[0] if weight is None else weight.sum()), float(sums[1]))
