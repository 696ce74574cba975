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
  smallest limit (20 points per piece; pieces shorter where strong correlations make the
  integrand sharp), the moments again Tallis'.

Where the probability of two or three limits is below 1e-7 (far tails, where an absolute
accuracy of 1e-16 says little), it is computed in logs: the integral over one coordinate of
a log-concave integrand, from its maximum outwards (:func:`_log_tail2_py`,
:func:`_log_tail3_py`), so log P keeps its relative accuracy down to any probability
(tested against 40-digit quadrature).

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
#: below this an orthant probability of two or three limits is computed in logs
_TAIL = 1e-7
_INV_GOLD = 0.6180339887498949
#: the longest piece of that integral (20 Gauss-Legendre nodes each; shorter where the
#: conditional limits move fast: strong correlations)
_PIECE = 2.5


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
    # pieces no longer than the scale on which the conditional limits sweep one sd
    scale = min(s1 / max(abs(r01), 1e-3), s2 / max(abs(r02), 1e-3))
    pieces = int(math.ceil((upper - _T_LOW) / min(_PIECE, max(2.0 * scale, 0.1))))
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


def _integrand2_py(t, c1, g1):
    """log phi(t) + log Phi(c1 + g1 t): log-concave in t."""
    return _log_phi(t) + _log_ndtr(c1 + g1 * t)


def _integrand3_py(t, c1, g1, c2, g2, rc):
    """log phi(t) + log Phi_2(c1 + g1 t, c2 + g2 t; rc): log-concave in t."""
    return _log_phi(t) + _log_bvn(c1 + g1 * t, c2 + g2 * t, rc)


def _golden_step_py(lo, hi, x1, x2, f1, f2):
    """One step of a golden-section search for the maximum of a concave function: the new
    bracket (lo, hi), the kept point and its value, and the point to evaluate next."""
    if f1 < f2:
        return x1, hi, x2, f2, x1 + _INV_GOLD * (hi - x1), False
    return lo, x2, x1, f1, x2 - _INV_GOLD * (x2 - lo), True


def _log_tail2_py(upper, c1, g1):
    """log of the integral over t < upper of phi(t) Phi(c1 + g1 t), in logs (see
    :func:`_tail_pieces_py`)."""
    upper = min(upper, 40.0)
    lo, hi = upper - 200.0, upper
    x1, x2 = hi - _INV_GOLD * (hi - lo), lo + _INV_GOLD * (hi - lo)
    f1, f2 = _integrand2(x1, c1, g1), _integrand2(x2, c1, g1)
    for _ in range(40):             # the bracket to 200 * 0.618^40 = 1e-6
        lo, hi, xk, fk, xn, left = _golden_step(lo, hi, x1, x2, f1, f2)
        fn = _integrand2(xn, c1, g1)
        x1, f1, x2, f2 = (xn, fn, xk, fk) if left else (xk, fk, xn, fn)
    t_star = 0.5 * (lo + hi)
    f_star = max(f1, f2, _integrand2(t_star, c1, g1))
    if f_star == -math.inf:
        return -math.inf
    a, width, pieces = _tail_pieces(t_star, upper, g1 * g1)
    total = 0.0
    for p in range(pieces):
        for i in range(_X20.shape[0]):
            for sgn in (-1.0, 1.0):
                t = a + (p + 0.5 + 0.5 * sgn * _X20[i]) * width
                total += _W20[i] * math.exp(_integrand2(t, c1, g1) - f_star)
    return f_star + math.log(0.5 * width * total)


def _log_tail3_py(upper, c1, g1, c2, g2, rc):
    """log of the integral over t < upper of phi(t) Phi_2(c1 + g1 t, c2 + g2 t; rc), in
    logs (see :func:`_tail_pieces_py`)."""
    upper = min(upper, 40.0)
    lo, hi = upper - 200.0, upper
    x1, x2 = hi - _INV_GOLD * (hi - lo), lo + _INV_GOLD * (hi - lo)
    f1, f2 = _integrand3(x1, c1, g1, c2, g2, rc), _integrand3(x2, c1, g1, c2, g2, rc)
    for _ in range(40):             # the bracket to 200 * 0.618^40 = 1e-6
        lo, hi, xk, fk, xn, left = _golden_step(lo, hi, x1, x2, f1, f2)
        fn = _integrand3(xn, c1, g1, c2, g2, rc)
        x1, f1, x2, f2 = (xn, fn, xk, fk) if left else (xk, fk, xn, fn)
    t_star = 0.5 * (lo + hi)
    f_star = max(f1, f2, _integrand3(t_star, c1, g1, c2, g2, rc))
    if f_star == -math.inf:
        return -math.inf
    a, width, pieces = _tail_pieces(t_star, upper, g1 * g1 + g2 * g2)
    total = 0.0
    for p in range(pieces):
        for i in range(_X20.shape[0]):
            for sgn in (-1.0, 1.0):
                t = a + (p + 0.5 + 0.5 * sgn * _X20[i]) * width
                total += _W20[i] * math.exp(_integrand3(t, c1, g1, c2, g2, rc) - f_star)
    return f_star + math.log(0.5 * width * total)


def _tail_pieces_py(t_star, upper, g2sum):
    """The Gauss-Legendre pieces of a tail integral: the integrand is log-concave with
    curvature at least 1 (phi's), so from its maximum t* (found by golden section on
    [upper - 200, upper]) it falls by more than 72 within 12; pieces no longer than its
    sharpest scale, 1 / sqrt(1 + sum of the squared slopes of the conditional limits).
    Returns (start, width, number of pieces)."""
    a, b = t_star - 12.0, min(upper, t_star + 12.0)
    step = min(_PIECE, max(2.0 / math.sqrt(1.0 + g2sum), 0.02))
    pieces = max(1, int(math.ceil((b - a) / step)))
    return a, (b - a) / pieces, pieces


def _log_bvn_py(h, k, r):
    """log Phi_2(h, k; r) with relative accuracy also in the far tails: Genz's CDF (absolute
    accuracy ~1e-16) where it exceeds 1e-7, else the integral over the first coordinate in
    logs (:func:`_log_tail_py`)."""
    r = _clip_rho(r)
    P = _bvn(h, k, r)
    if P > _TAIL:
        return math.log(P)
    s = math.sqrt((1.0 - r) * (1.0 + r))
    return _log_tail2(h, k / s, -r / s)


def _log_tvn_py(h0, h1, h2, r01, r02, r12):
    """log Phi_3(h; R), as :func:`_log_bvn_py`: :func:`_tvn_py` where it exceeds 1e-7, else
    the integral over the coordinate with the smallest limit in logs."""
    P = _tvn(h0, h1, h2, r01, r02, r12)
    if P > _TAIL:
        return math.log(P)
    if h1 < h0 and h1 <= h2:
        h0, h1, r01, r02, r12 = h1, h0, r01, r12, r02
    elif h2 < h0 and h2 < h1:
        h0, h2, r01, r02, r12 = h2, h0, r12, r02, r01
    r01, r02, r12 = _clip_rho(r01), _clip_rho(r02), _clip_rho(r12)
    s1 = math.sqrt((1.0 - r01) * (1.0 + r01))
    s2 = math.sqrt((1.0 - r02) * (1.0 + r02))
    rc = _clip_rho((r12 - r01 * r02) / (s1 * s2))
    return _log_tail3(h0, h1 / s1, -r01 / s1, h2 / s2, -r02 / s2, rc)


def _log_orthant_py(h, R, n):
    """log Phi_n(h; R) for n in 0..3 (R the correlation matrix, (n, n))."""
    if n == 0:
        return 0.0
    if n == 1:
        return _log_ndtr(h[0])
    if n == 2:
        return _log_bvn(h[0], h[1], R[0, 1])
    return _log_tvn(h[0], h[1], h[2], R[0, 1], R[0, 2], R[1, 2])


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
        rho = _clip_rho(R[j, q])
        det = (1.0 - rho) * (1.0 + rho)
        bj = (R[r0, j] - rho * R[r0, q]) / det
        bq = (R[r0, q] - rho * R[r0, j]) / det
        mu0, c00 = bj * a[j] + bq * a[q], 1.0 - bj * R[j, r0] - bq * R[q, r0]
    sd0 = math.sqrt(max(c00, 1e-300))
    h0 = (mu0 - a[r0]) / sd0                                 # P(W > a) = P(-z < ...)
    if m == 1:
        return _log_ndtr(h0)
    sd1 = math.sqrt(max(c11, 1e-300))
    return _log_bvn(h0, (mu1 - a[r1]) / sd1, c01 / (sd0 * sd1))


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
        lp = _log_ndtr(h[0])
        lam = math.exp(_log_phi(h[0]) - lp)
        mz[0] = -lam
        Mzz[0, 0] = 1.0 - h[0] * lam
        return lp
    lP = _log_orthant(h, R, n)
    if lP == -math.inf:
        return -math.inf
    for j in range(n):                  # ws[0:3] a, ws[3:6] F_j, ws[6:15] F_jq (in logs)
        ws[j] = -h[j]
    for j in range(n):
        ws[3 + j] = math.exp(_log_phi(ws[j]) + _log_conditional_orthant(ws, R, n, j, -1) - lP)
    for j in range(n):
        for q in range(n):
            if q != j:
                ws[6 + 3 * j + q] = math.exp(_log_phi2(ws[j], ws[q], _clip_rho(R[j, q]))
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


_ndtr = compile_kernel(_ndtr_py)
_log_ndtr = compile_kernel(_log_ndtr_py)
_log_phi = compile_kernel(_log_phi_py)
_clip_rho = compile_kernel(_clip_rho_py)
_bvn_upper = compile_kernel(_bvn_upper_py)
_bvn = compile_kernel(_bvn_py)
_log_phi2 = compile_kernel(_log_phi2_py)
_tvn = compile_kernel(_tvn_py)
_integrand2 = compile_kernel(_integrand2_py, inline=True)
_golden_step = compile_kernel(_golden_step_py, inline=True)
_tail_pieces = compile_kernel(_tail_pieces_py)
_log_tail2 = compile_kernel(_log_tail2_py)
_log_bvn = compile_kernel(_log_bvn_py)
_integrand3 = compile_kernel(_integrand3_py, inline=True)
_log_tail3 = compile_kernel(_log_tail3_py)
_log_tvn = compile_kernel(_log_tvn_py)
_log_orthant = compile_kernel(_log_orthant_py)
_log_conditional_orthant = compile_kernel(_log_conditional_orthant_py)
orthant_moments = compile_kernel(_orthant_moments_py)


def orthant_probability(h: np.ndarray, R: np.ndarray) -> float:
    """Phi_n(h; R) = P(z < h) for z ~ N(0, R), n = len(h) <= 3 (R a correlation matrix)."""
    h = np.ascontiguousarray(h, dtype=float)
    return float(np.exp(_log_orthant(h, np.ascontiguousarray(R, dtype=float), h.size)))


def truncated_moments(h: np.ndarray, R: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(log P(z < h), E[z | z < h], E[z z^T | z < h]) for z ~ N(0, R), len(h) <= 3."""
    h = np.ascontiguousarray(h, dtype=float)
    n = h.size
    mz, Mzz = np.zeros(n), np.zeros((n, n))
    lp = orthant_moments(h, np.ascontiguousarray(R, dtype=float), n, mz, Mzz, np.zeros(16))
    return float(lp), mz, Mzz
