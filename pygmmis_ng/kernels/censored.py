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


def _chol_solve_py(L, n, x):
    """x <- (L L^T)^-1 x in place."""
    for a in range(n):
        s = x[a]
        for c in range(a):
            s -= L[a, c] * x[c]
        x[a] = s / L[a, a]
    for a in range(n - 1, -1, -1):
        s = x[a]
        for c in range(a + 1, n):
            s -= L[c, a] * x[c]
        x[a] = s / L[a, a]


def _pair_py(T, d, oi, ci, sgn, nO, nC, L, Lc, A, w, u, W, mz, Mzz, Rc, hz, ar):
    """log N(d_O) + log P(limits | y_O) of one pair, and E u (u, dy) and E[u u^T] - T^-1
    (W, dy x dy) in the group's value order. Returns (log density, chi2 of the measured
    values); -inf when the limits have probability 0 (u, W are then not set)."""
    log_det = _cholesky(T, oi, nO, L)
    if log_det != log_det:
        return math.nan, math.nan
    for a in range(nO):                 # w = L^-1 d_O, chi2 = |w|^2
        s = d[oi[a]]
        for c in range(a):
            s -= L[a, c] * w[c]
        w[a] = s / L[a, a]
    chi2 = 0.0
    for a in range(nO):
        chi2 += w[a] * w[a]
    log_n = -0.5 * (nO * LOG_2PI + log_det + chi2)
    for j in range(nC):                 # A = T_OO^-1 T_OC
        for a in range(nO):
            A[a, j] = T[oi[a], ci[j]]
        _chol_solve(L, nO, A[:, j])
    # conditional Gaussian of the limited values: its limits h and correlations Rc
    for j in range(nC):
        shift = 0.0
        for a in range(nO):
            shift += A[a, j] * d[oi[a]]
        for q in range(nC):
            s = T[ci[j], ci[q]]
            for a in range(nO):
                s -= T[oi[a], ci[j]] * A[a, q]
            Lc[j, q] = s                                    # Sc (factored below)
        hz[j] = sgn[j] * (d[ci[j]] - shift)                 # sd applied below
    for j in range(nC):
        hz[j] /= math.sqrt(Lc[j, j])
        for q in range(nC):
            Rc[j, q] = sgn[j] * sgn[q] * Lc[j, q] / math.sqrt(Lc[j, j] * Lc[q, q])
    sd0 = math.sqrt(Lc[0, 0])
    sd1 = math.sqrt(Lc[1, 1]) if nC > 1 else 0.0
    sd2 = math.sqrt(Lc[2, 2]) if nC > 2 else 0.0
    for j in range(nC):
        for q in range(nC):
            Mzz[j, q] = Lc[j, q]                            # keep Sc
    lp = orthant_moments(hz, Rc, nC, u[nO:nO + nC], W[:nC, :nC])
    if lp == -math.inf:
        return -math.inf, chi2
    # e = E y_C - mu = s sd E z;  G = Cov y_C = diag(s sd) Cov z diag(s sd)
    for j in range(nC):
        sj = sgn[j] * (sd0 if j == 0 else sd1 if j == 1 else sd2)
        hz[j] = sj                                         # reuse hz as the scales
    for j in range(nC):
        for q in range(nC):
            Rc[j, q] = hz[j] * hz[q] * (W[j, q] - u[nO + j] * u[nO + q]) - Mzz[j, q]  # G - Sc
    for j in range(nC):
        mz[j] = hz[j] * u[nO + j]                          # e
    # Sc^-1 by Cholesky: h = Sc^-1 e, Q = Sc^-1 (G - Sc) Sc^-1
    _cholesky(Mzz, ar, nC, Lc)
    _chol_solve(Lc, nC, mz)
    for j in range(nC):
        _chol_solve(Lc, nC, Rc[:, j])
    for j in range(nC):
        for q in range(nC):
            Mzz[j, q] = Rc[q, j]
    for j in range(nC):
        _chol_solve(Lc, nC, Mzz[:, j])                      # Q (symmetric)
    return log_n + lp, chi2


def _expectations_py(T, d, oi, ci, nO, nC, L, A, mz, Mzz, u_out, W_out, TOOinv):
    """E u and E[u u^T] - T^-1 in the group's value order from h (mz) and Q (Mzz)."""
    dy = nO + nC
    # T_OO^-1 from L (columns of the identity solved)
    for a in range(nO):
        for b in range(nO):
            TOOinv[a, b] = 1.0 if a == b else 0.0
    for a in range(nO):
        _chol_solve(L, nO, TOOinv[:, a])
    for a in range(nO):
        s = 0.0
        for b in range(nO):
            s += TOOinv[a, b] * d[oi[b]]
        for j in range(nC):
            s -= A[a, j] * mz[j]
        u_out[oi[a]] = s
    for j in range(nC):
        u_out[ci[j]] = mz[j]
    for x in range(dy):
        for y in range(dy):
            W_out[x, y] = u_out[x] * u_out[y]
    for a in range(nO):                   # - T_OO^-1 + A Q A^T
        for b in range(nO):
            s = -TOOinv[a, b]
            for j in range(nC):
                for q in range(nC):
                    s += A[a, j] * Mzz[j, q] * A[b, q]
            W_out[oi[a], oi[b]] += s
    for a in range(nO):                   # - A Q
        for q in range(nC):
            s = 0.0
            for j in range(nC):
                s -= A[a, j] * Mzz[j, q]
            W_out[oi[a], ci[q]] += s
            W_out[ci[q], oi[a]] += s
    for j in range(nC):
        for q in range(nC):
            W_out[ci[j], ci[q]] += Mzz[j, q]


def _chunk_py(y, S, nS, weight, log_bg, mean, P, log_amp, oi, ci, sgn, stats,
              lp_out, chi2_out, A_out, SU, SW, sums):
    """Every pair of one chunk: log densities (lp_out, chi2_out) and, with ``stats``, the
    responsibility-weighted sums A, SU = sum q E u and SW = sum q (E[u u^T] - T^-1)."""
    n, dy = y.shape
    K = mean.shape[0]
    nO, nC = oi.shape[0], ci.shape[0]
    T = np.empty((dy, dy))
    d = np.empty(dy)
    L, Lc = np.zeros((max(nO, 1), max(nO, 1))), np.zeros((3, 3))
    Amat = np.zeros((max(nO, 1), 3))
    w, mz, hz = np.empty(max(nO, 1)), np.empty(3), np.empty(3)
    Mzz, Rc = np.empty((3, 3)), np.empty((3, 3))
    u, W = np.empty(dy + 3), np.empty((3, 3))
    TOOinv = np.empty((max(nO, 1), max(nO, 1)))
    uk, Wk = np.empty((K, dy)), np.empty((K, dy, dy))
    lp = np.empty(K + 1)
    ar = np.arange(3)
    for i in range(n):
        for k in range(K):
            for a in range(dy):
                d[a] = y[i, a] - mean[k, a]
                for b in range(dy):
                    T[a, b] = P[k, a, b] + (S[0 if nS == 1 else i, a, b] if nS > 0 else 0.0)
            val, c2 = _pair(T, d, oi, ci, sgn, nO, nC, L, Lc, Amat, w, u, W, mz, Mzz, Rc, hz,
                            ar)
            if val != val:
                return i * K + k + 1                      # T not positive definite
            lp_out[i, k] = log_amp[k] + val
            chi2_out[i, k] = c2
            if stats and val > -math.inf:
                _expectations(T, d, oi, ci, nO, nC, L, Amat, mz, Mzz, uk[k], Wk[k], TOOinv)
        if not stats:
            continue
        mx = -math.inf
        for k in range(K):
            lp[k] = lp_out[i, k]
            mx = max(mx, lp[k])
        lb = log_bg[i] if log_bg.shape[0] > 0 else -math.inf
        mx = max(mx, lb)
        if mx == -math.inf:
            return -(i + 1)                               # no member explains the sample
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
            for a in range(dy):
                SU[k, a] += q * uk[k, a]
                for b in range(dy):
                    SW[k, a, b] += q * Wk[k, a, b]
    return 0


_cholesky = compile_kernel(_cholesky_py, inline=True)
_chol_solve = compile_kernel(_chol_solve_py, inline=True)
_pair = compile_kernel(_pair_py, inline=True)
_expectations = compile_kernel(_expectations_py, inline=True)
_chunk = compile_kernel(_chunk_py)


def _run(y: np.ndarray, S: np.ndarray | None, cens: np.ndarray, comps: Components,
         weight: np.ndarray | None, log_bg: np.ndarray | None, stats: bool) -> tuple:
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
    flag = _chunk(np.ascontiguousarray(y, dtype=float), S3, nS,
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
    _, _, A, SU, SW, sums = _run(y, S, cens, comps, weight, log_bg, True)
    Mc, Cc = deconvolve(comps.gain, comps.post_covar, A, SU,
                        0.5 * (SW + np.swapaxes(SW, 1, 2)))
    return SufficientStats(A, Mc, Cc, float(sums[0]),
                           float(y.shape[0] if weight is None else weight.sum()), float(sums[1]))
