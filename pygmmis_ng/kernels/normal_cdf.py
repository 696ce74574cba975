"""The standard normal distribution in one, two and three dimensions (numba).

Its log density and log CDF in both tails (``log_ndtr``: erfc to -37, then the continued
fraction of Mills' ratio), the bivariate CDF of Genz (2004, Statistics and Computing 14,
251: Gauss-Legendre rules of 6, 12 or 20 points in the arcsine of the correlation, double
precision), the trivariate CDF as a Gauss-Legendre integral of bivariate ones along the
coordinate with the smallest limit (20 points per piece; pieces shorter where strong
correlations make the integrand sharp), and their logarithms (``log_bvn``, ``log_tvn``,
``log_orthant``) that stay accurate where the probability is tiny: below 1e-7, where an
absolute accuracy of 1e-16 says little, the integral along one coordinate is taken in logs
from the integrand's maximum outwards (:func:`_log_tail2_py`, :func:`_log_tail3_py`), so
log P keeps its relative accuracy at any depth (tested against 40-digit quadrature).

Everything is written in loops for numba (plain Python without it): the same bits on
every machine with the same instruction set, wherever the arrays lie in memory. The
orthant moments built on these are :mod:`.orthant`.
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
        return 1.0 if k == -math.inf else ndtr(-k)
    if k == -math.inf:
        return ndtr(-h)
    if r == 0.0:
        return ndtr(-h) * ndtr(-k)
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
        return max(0.0, min(1.0, bvn * asr / TWO_PI + ndtr(-h) * ndtr(-k)))
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
            sp = math.sqrt(TWO_PI) * ndtr(-b / a)
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
        bvn += ndtr(-max(h, k))
    elif h >= k:
        bvn = -bvn
    else:
        L = ndtr(k) - ndtr(h) if h < 0.0 else ndtr(-h) - ndtr(-k)
        bvn = L - bvn
    return max(0.0, min(1.0, bvn))


def _bvn_py(h, k, r):
    """Phi_2(h, k; r) = P(X < h, Y < k)."""
    return bvn_upper(-h, -k, r)


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
    r01, r02, r12 = clip_rho(r01), clip_rho(r02), clip_rho(r12)
    upper = min(h0, -_T_LOW)
    if upper <= _T_LOW:
        return 0.0
    s1 = math.sqrt((1.0 - r01) * (1.0 + r01))
    s2 = math.sqrt((1.0 - r02) * (1.0 + r02))
    rc = clip_rho((r12 - r01 * r02) / (s1 * s2))
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
                f = bvn((h1 - r01 * t) / s1, (h2 - r02 * t) / s2, rc)
                total += _W20[i] * math.exp(log_phi(t)) * f
    return max(0.0, min(1.0, 0.5 * width * total))


def _integrand2_py(t, c1, g1):
    """log phi(t) + log Phi(c1 + g1 t): log-concave in t."""
    return log_phi(t) + log_ndtr(c1 + g1 * t)


def _integrand3_py(t, c1, g1, c2, g2, rc):
    """log phi(t) + log Phi_2(c1 + g1 t, c2 + g2 t; rc): log-concave in t."""
    return log_phi(t) + log_bvn(c1 + g1 * t, c2 + g2 * t, rc)


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
    r = clip_rho(r)
    P = bvn(h, k, r)
    if P > _TAIL:
        return math.log(P)
    s = math.sqrt((1.0 - r) * (1.0 + r))
    return _log_tail2(h, k / s, -r / s)


def _log_tvn_py(h0, h1, h2, r01, r02, r12):
    """log Phi_3(h; R), as :func:`_log_bvn_py`: :func:`_tvn_py` where it exceeds 1e-7, else
    the integral over the coordinate with the smallest limit in logs."""
    P = tvn(h0, h1, h2, r01, r02, r12)
    if P > _TAIL:
        return math.log(P)
    if h1 < h0 and h1 <= h2:
        h0, h1, r01, r02, r12 = h1, h0, r01, r12, r02
    elif h2 < h0 and h2 < h1:
        h0, h2, r01, r02, r12 = h2, h0, r12, r02, r01
    r01, r02, r12 = clip_rho(r01), clip_rho(r02), clip_rho(r12)
    s1 = math.sqrt((1.0 - r01) * (1.0 + r01))
    s2 = math.sqrt((1.0 - r02) * (1.0 + r02))
    rc = clip_rho((r12 - r01 * r02) / (s1 * s2))
    return _log_tail3(h0, h1 / s1, -r01 / s1, h2 / s2, -r02 / s2, rc)


def _log_orthant_py(h, R, n):
    """log Phi_n(h; R) for n in 0..3 (R the correlation matrix, (n, n))."""
    if n == 0:
        return 0.0
    if n == 1:
        return log_ndtr(h[0])
    if n == 2:
        return log_bvn(h[0], h[1], R[0, 1])
    return log_tvn(h[0], h[1], h[2], R[0, 1], R[0, 2], R[1, 2])


ndtr = compile_kernel(_ndtr_py)
log_ndtr = compile_kernel(_log_ndtr_py)
log_phi = compile_kernel(_log_phi_py)
clip_rho = compile_kernel(_clip_rho_py)
bvn_upper = compile_kernel(_bvn_upper_py)
bvn = compile_kernel(_bvn_py)
log_phi2 = compile_kernel(_log_phi2_py)
tvn = compile_kernel(_tvn_py)
_integrand2 = compile_kernel(_integrand2_py, inline=True)
_golden_step = compile_kernel(_golden_step_py, inline=True)
_tail_pieces = compile_kernel(_tail_pieces_py)
_log_tail2 = compile_kernel(_log_tail2_py)
log_bvn = compile_kernel(_log_bvn_py)
_integrand3 = compile_kernel(_integrand3_py, inline=True)
_log_tail3 = compile_kernel(_log_tail3_py)
log_tvn = compile_kernel(_log_tvn_py)
log_orthant = compile_kernel(_log_orthant_py)
