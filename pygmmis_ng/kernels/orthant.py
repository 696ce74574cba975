"""Orthant probabilities and truncated moments of a small standard normal vector (numba).

For z ~ N(0, R) in n <= 3 dimensions (R a correlation matrix) and the orthant z < h
(componentwise), :func:`orthant_moments` returns log P(z < h), E[z | z < h] and
E[z z^T | z < h]. These are what the E-step of censored values needs
(:mod:`pygmmis_ng.kernels.censored`):

* n = 1: the closed form of the truncated normal, P = Phi(h), E z = -phi(h)/Phi(h),
  E z^2 = 1 - h phi(h)/Phi(h); log Phi from ``erfc`` (relative accuracy down to
  h = -37) and beyond from the continued fraction of Mills' ratio;
* n = 2: P is the bivariate normal CDF of Genz (2004, Statistics and Computing 14,
  251: Gauss-Legendre rules of 6, 12 or 20 points in the arcsine of the correlation,
  double precision), the moments Tallis' (1961) formulas as written for any n by
  Manjunath & Wilhelm (2012);
* n = 3: P is a Gauss-Legendre integral of bivariate CDFs along the coordinate with the
  smallest limit (pieces of unit length, 10 points each), the moments again Tallis'.

Everything is written in loops for numba (plain Python without it): the same bits on
every machine with the same instruction set, wherever the arrays lie in memory.
"""
from __future__ import annotations

import math

import numpy as np

from .compiled_transforms import compile_kernel

SQRT2 = math.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
TWO_PI = 2.0 * math.pi
#: correlations are kept this far inside (-1, 1) (a singular conditional is a limit case)
RHO_MAX = 1.0 - 1e-12

# Gauss-Legendre nodes and weights on [-1, 1] (positive half) of Genz's BVN rules
_X6 = np.array([0.9324695142031522, 0.6612093864662647, 0.2386191860831970])
_W6 = np.array([0.1713244923791705, 0.3607615730481384, 0.4679139345726904])
_X12 = np.array([0.9815606342467191, 0.9041172563704750, 0.7699026741943050,
                 0.5873179542866171, 0.3678314989981802, 0.1252334085114692])
_W12 = np.array([0.04717533638651177, 0.1069393259953183, 0.1600783285433464,
                 0.2031674267230659, 0.2334925365383547, 0.2491470458134029])
_X20 = np.array([0.9931285991850949, 0.9639719272779138, 0.9122344282513259,
                 0.8391169718222188, 0.7463319064601508, 0.6360536807265150,
                 0.5108670019508271, 0.3737060887154196, 0.2277858511416451,
                 0.07652652113349733])
_W20 = np.array([0.01761400713915212, 0.04060142980038694, 0.06267204833410906,
                 0.08327674157670475, 0.1019301198172404, 0.1181945319615184,
                 0.1316886384491766, 0.1420961093183821, 0.1491729864726037,
                 0.1527533871307259])
#: the limit below which a coordinate's probability mass is ignored in the n = 3 integral
_T_LOW = -10.0


def _ndtr_py(x):
    """Phi(x), the standard normal CDF."""
    return 0.5 * math.erfc(-x / SQRT2)


def _log_ndtr_py(x):
    """log Phi(x), accurate in both tails."""
    if x > 0.0:
        return math.log1p(-0.5 * math.erfc(x / SQRT2))
    if x > -37.0:
        return math.log(0.5 * math.erfc(-x / SQRT2))
    t = -x                              # Mills' ratio Phi(-t) / phi(t) as a continued fraction
    f = t
    for m in range(30, 0, -1):
        f = t + m / f
    return -0.5 * t * t - LOG_SQRT_2PI - math.log(f)


def _log_phi_py(x):
    """log phi(x), the standard normal log density."""
    return -0.5 * x * x - LOG_SQRT_2PI


def _bvn_upper_py(h, k, r):
    """P(X > h, Y > k) for standard normals of correlation r (Genz's BVNU)."""
    if h == math.inf or k == math.inf:
        return 0.0
    if h == -math.inf:
        return 1.0 if k == -math.inf else _ndtr(-k)
    if k == -math.inf:
        return _ndtr(-h)
    if r == 0.0:
        return _ndtr(-h) * _ndtr(-k)
    ar = abs(r)
    if ar < 0.3:
        xg, wg = _X6, _W6
    elif ar < 0.75:
        xg, wg = _X12, _W12
    else:
        xg, wg = _X20, _W20
    ng = xg.shape[0]
    hk = h * k
    bvn = 0.0
    if ar < 0.925:
        hs = 0.5 * (h * h + k * k)
        asr = 0.5 * math.asin(r)
        for i in range(ng):
            for sgn in (-1.0, 1.0):
                sn = math.sin(asr * (1.0 + sgn * xg[i]))
                bvn += wg[i] * math.exp((sn * hk - hs) / (1.0 - sn * sn))
        return max(0.0, min(1.0, bvn * asr / TWO_PI + _ndtr(-h) * _ndtr(-k)))
    if r < 0.0:
        k = -k
        hk = -hk
    if ar < 1.0:
        a_s = (1.0 - r) * (1.0 + r)
        a = math.sqrt(a_s)
        bs = (h - k) ** 2
        c = (4.0 - hk) / 8.0
        d = (12.0 - hk) / 80.0
        asr = -0.5 * (bs / a_s + hk)
        if asr > -100.0:
            bvn = a * math.exp(asr) * (1.0 - c * (bs - a_s) * (1.0 - d * bs) / 3.0
                                       + c * d * a_s * a_s)
        if hk > -100.0:
            b = math.sqrt(bs)
            sp = math.sqrt(TWO_PI) * _ndtr(-b / a)
            bvn -= math.exp(-0.5 * hk) * sp * b * (1.0 - c * bs * (1.0 - d * bs) / 3.0)
        a *= 0.5
        s = 0.0
        for i in range(ng):
            for sgn in (-1.0, 1.0):
                xs = (a * (1.0 + sgn * xg[i])) ** 2
                asr = -0.5 * (bs / xs + hk)
                if asr > -100.0:
                    sp = 1.0 + c * xs * (1.0 + 5.0 * d * xs)
                    rs = math.sqrt(1.0 - xs)
                    ep = math.exp(-0.5 * hk * xs / (1.0 + rs) ** 2) / rs
                    s += wg[i] * math.exp(asr) * (sp - ep)
        bvn = (a * s - bvn) / TWO_PI
    if r > 0.0:
        bvn += _ndtr(-max(h, k))
    elif h >= k:
        bvn = -bvn
    else:
        L = _ndtr(k) - _ndtr(h) if h < 0.0 else _ndtr(-h) - _ndtr(-k)
        bvn = L - bvn
    return max(0.0, min(1.0, bvn))


def _bvn_py(h, k, r):
    """Phi_2(h, k; r) = P(X < h, Y < k)."""
    return _bvn_upper(-h, -k, r)


def _log_phi2_py(x, y, r):
    """log of the standard bivariate normal density of correlation r at (x, y)."""
    s = (1.0 - r) * (1.0 + r)
    return -(x * x - 2.0 * r * x * y + y * y) / (2.0 * s) - math.log(TWO_PI) - 0.5 * math.log(s)


def _clip_rho_py(r):
    return max(-RHO_MAX, min(RHO_MAX, r))


def _tvn_py(h0, h1, h2, r01, r02, r12):
    """Phi_3(h; R) = P(z < h) for a standard trivariate normal, along the coordinate with
    the smallest limit: the integral of phi(t) Phi_2(conditional limits) by pieces of
    Gauss-Legendre."""
    # put the smallest limit first (the shortest integral)
    if h1 < h0 and h1 <= h2:
        h0, h1, r01, r02, r12 = h1, h0, r01, r12, r02
    elif h2 < h0 and h2 < h1:
        h0, h2, r01, r02, r12 = h2, h0, r12, r02, r01
    r01, r02, r12 = _clip_rho(r01), _clip_rho(r02), _clip_rho(r12)
    upper = min(h0, -_T_LOW)
    if upper <= _T_LOW:
        return 0.0
    s1 = math.sqrt((1.0 - r01) * (1.0 + r01))
    s2 = math.sqrt((1.0 - r02) * (1.0 + r02))
    rc = _clip_rho((r12 - r01 * r02) / (s1 * s2))
    pieces = int(math.ceil(upper - _T_LOW))
    width = (upper - _T_LOW) / pieces
    total = 0.0
    for p in range(pieces):
        mid = _T_LOW + (p + 0.5) * width
        for i in range(_X20.shape[0]):
            for sgn in (-1.0, 1.0):
                t = mid + 0.5 * width * sgn * _X20[i]
                f = _bvn((h1 - r01 * t) / s1, (h2 - r02 * t) / s2, rc)
                total += _W20[i] * math.exp(_log_phi(t)) * f
    return max(0.0, min(1.0, 0.5 * width * total))


def _orthant_py(h, R, n):
    """Phi_n(h; R) for n in 0..3 (R the correlation matrix, (n, n))."""
    if n == 0:
        return 1.0
    if n == 1:
        return _ndtr(h[0])
    if n == 2:
        return _bvn(h[0], h[1], _clip_rho(R[0, 1]))
    return _tvn(h[0], h[1], h[2], R[0, 1], R[0, 2], R[1, 2])


def _conditional_orthant_py(a, R, n, j, q, tmp_h, tmp_R):
    """P(W_rest > a_rest | W_j = a_j (, W_q = a_q)) for W ~ N(0, R) (q < 0: one given): the
    conditional Gaussian of the other coordinates, standardized, as a lower orthant."""
    m = 0
    idx = np.empty(3, dtype=np.int64)
    for r in range(n):
        if r != j and r != q:
            idx[m] = r
            m += 1
    mu = np.empty(3)
    cov = np.empty((3, 3))
    if q < 0:
        for s in range(m):
            mu[s] = R[idx[s], j] * a[j]
            for t in range(m):
                cov[s, t] = R[idx[s], idx[t]] - R[idx[s], j] * R[j, idx[t]]
    else:
        rho = _clip_rho(R[j, q])
        det = (1.0 - rho) * (1.0 + rho)
        for s in range(m):
            bj = (R[idx[s], j] - rho * R[idx[s], q]) / det      # regression on (W_j, W_q)
            bq = (R[idx[s], q] - rho * R[idx[s], j]) / det
            mu[s] = bj * a[j] + bq * a[q]
            for t in range(m):
                cov[s, t] = R[idx[s], idx[t]] - bj * R[j, idx[t]] - bq * R[q, idx[t]]
    for s in range(m):
        sd = math.sqrt(max(cov[s, s], 1e-300))
        tmp_h[s] = (mu[s] - a[idx[s]]) / sd                      # P(W > a) = P(-z < ...)
        for t in range(m):
            tmp_R[s, t] = cov[s, t] / (sd * math.sqrt(max(cov[t, t], 1e-300)))
    return _orthant(tmp_h, tmp_R, m)


def _orthant_moments_py(h, R, n, mz, Mzz):
    """log P(z < h), and E[z], E[z z^T] of z ~ N(0, R) given z < h (into mz, Mzz).

    Tallis' formulas for W = -z > a = -h: with F_j = phi(a_j) P(rest > a | W_j = a_j)
    and F_jq = phi_2(a_j, a_q) P(rest > a | W_j = a_j, W_q = a_q),
    E W_i = sum_j R_ij F_j / P and E W_i W_l = R_il + sum_j R_ij R_lj a_j F_j / P
    + sum_j R_ij sum_{q != j} (R_lq - R_jq R_lj) F_jq / P. Returns -inf when P = 0
    (the moments are then not set).
    """
    if n == 1:
        lp = _log_ndtr(h[0])
        lam = math.exp(_log_phi(h[0]) - lp)
        mz[0] = -lam
        Mzz[0, 0] = 1.0 - h[0] * lam
        return lp
    P = _orthant(h, R, n)
    if not P > 0.0:
        return -math.inf
    a = np.empty(3)
    for j in range(n):
        a[j] = -h[j]
    tmp_h = np.empty(3)
    tmp_R = np.empty((3, 3))
    F = np.empty(3)
    for j in range(n):
        F[j] = math.exp(_log_phi(a[j])) * _conditional_orthant(a, R, n, j, -1, tmp_h, tmp_R) / P
    Fjq = np.zeros((3, 3))
    for j in range(n):
        for q in range(n):
            if q != j:
                rho = _clip_rho(R[j, q])
                Fjq[j, q] = math.exp(_log_phi2(a[j], a[q], rho)) * \
                    _conditional_orthant(a, R, n, j, q, tmp_h, tmp_R) / P
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += R[i, j] * F[j]
        mz[i] = -s
    for i in range(n):
        for L in range(i, n):
            s = R[i, L]
            for j in range(n):
                s += R[i, j] * R[L, j] * a[j] * F[j]
                for q in range(n):
                    if q != j:
                        s += R[i, j] * (R[L, q] - R[j, q] * R[L, j]) * Fjq[j, q]
            Mzz[i, L] = s
            Mzz[L, i] = s
    return math.log(P)


_ndtr = compile_kernel(_ndtr_py)
_log_ndtr = compile_kernel(_log_ndtr_py)
_log_phi = compile_kernel(_log_phi_py)
_clip_rho = compile_kernel(_clip_rho_py)
_bvn_upper = compile_kernel(_bvn_upper_py)
_bvn = compile_kernel(_bvn_py)
_log_phi2 = compile_kernel(_log_phi2_py)
_tvn = compile_kernel(_tvn_py)
_orthant = compile_kernel(_orthant_py)
_conditional_orthant = compile_kernel(_conditional_orthant_py)
orthant_moments = compile_kernel(_orthant_moments_py)


def orthant_probability(h: np.ndarray, R: np.ndarray) -> float:
    """Phi_n(h; R) = P(z < h) for z ~ N(0, R), n = len(h) <= 3 (R a correlation matrix)."""
    h = np.ascontiguousarray(h, dtype=float)
    return float(_orthant(h, np.ascontiguousarray(R, dtype=float), h.size))


def truncated_moments(h: np.ndarray, R: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(log P(z < h), E[z | z < h], E[z z^T | z < h]) for z ~ N(0, R), len(h) <= 3."""
    h = np.ascontiguousarray(h, dtype=float)
    n = h.size
    mz, Mzz = np.zeros(n), np.zeros((n, n))
    lp = orthant_moments(h, np.ascontiguousarray(R, dtype=float), n, mz, Mzz)
    return float(lp), mz, Mzz
