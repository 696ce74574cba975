"""Compiled helpers of the lane skeleton (see :mod:`.skeletons`): a block of samples in
SIMD lanes.

The lane kernels keep every per-pair quantity in arrays of :data:`BL` lanes (one sample
each) and loop over components outside, lanes inside, so the compiler vectorizes the
inner loops. Everything here is branch-free inside those loops: the exponential of
:func:`pygmmis_ng.kernels.compiled_transforms.exp_parts` and a logarithm written the same
way (:func:`lane_log`), as numba's ``np.log`` and ``np.exp`` call the C library one value
at a time. The sums are kept per lane and added over lanes in a fixed order at the end
of a chunk, so the result depends on the chunk alone (not on threads or alignment).
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import bits_of_float, compile_kernel, exp_branch_free, float_of_bits

#: samples per block (measured, one thread: 8 lanes do not vectorize; 64 is 1.1-1.4x faster than
#: 32 and 16 for XD at D = 3, 4 and plain EM at D = 2 ... 8; 128, 256 are slower at D >= 5)
BL = 64
#: a member whose density is below exp(LOG_FLOOR) times the sample's largest is given 0
#: (also in :mod:`.quadratic`): its weight (< 1e-260) is invisible in any sum, while
#: subnormal numbers in the exponential (and the GEMMs) would cost up to 5x a chunk's time;
#: FLOOR: what is left of a clipped difference after the exponential is dropped below it
LOG_FLOOR = -600.0
FLOOR = float(np.exp(LOG_FLOOR + 1.0))
#: products of Cholesky diagonals outside this range make a lane kernel hand the chunk to
#: the per-sample skeleton, which folds them into logarithms as it goes
DET_RANGE = (1e-300, 1e300)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE = 0x3FF0000000000000


def _lane_log_py(v):
    """log v for a positive normal float, within ~1 ulp: the exponent from the bits, the
    mantissa m in [sqrt(1/2), sqrt(2)) by the series of 2 atanh((m - 1) / (m + 1)) to the
    21st power; no branches, no library call."""
    b = bits_of_float(v)
    e = float((b >> 52) - 1023)
    m = float_of_bits((b & _MANTISSA) | _ONE)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    p = 1.0 / 21.0
    p = p * s + 1.0 / 19.0
    p = p * s + 1.0 / 17.0
    p = p * s + 1.0 / 15.0
    p = p * s + 1.0 / 13.0
    p = p * s + 1.0 / 11.0
    p = p * s + 1.0 / 9.0
    p = p * s + 1.0 / 7.0
    p = p * s + 1.0 / 5.0
    p = p * s + 1.0 / 3.0
    r = 2.0 * f + 2.0 * f * s * p
    return e * _LN2_HI + (r + e * _LN2_LO)


_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2PI = 0.3989422804014327


def _lane_log_ndtr_py(z):
    """(log Phi(z), phi(z) / Phi(z)) for any z, branch-free: erfcx(|z| / sqrt 2) as t times a
    Chebyshev series in x = 2 t - 1, t = 2 / (2 + a) (28th degree, Clenshaw, written out; its
    coefficients fitted to 40-digit values at 600 Chebyshev nodes: relative error < 6e-14,
    median 4e-16), then Phi(z) = erfcx e^(-z^2/2) / 2 for z < 0 (in logs: no underflow) and
    1 - erfcx e^(-z^2/2) / 2 above."""
    a = abs(z) / _SQRT2
    t = 2.0 / (2.0 + a)
    x = 2.0 * t - 1.0
    b1 = -1.7947651739579936e-16
    b2 = 0.0
    b1, b2 = 2.0 * x * b1 - b2 + -4.3266660443630193e-17, b1
    b1, b2 = 2.0 * x * b1 - b2 + -1.2819751242557097e-16, b1
    b1, b2 = 2.0 * x * b1 - b2 + -9.614813431917823e-17, b1
    b1, b2 = 2.0 * x * b1 - b2 + -3.845925372767128e-16, b1
    b1, b2 = 2.0 * x * b1 - b2 + 1.4806812685153444e-15, b1
    b1, b2 = 2.0 * x * b1 - b2 + -2.3331947261453912e-15, b1
    b1, b2 = 2.0 * x * b1 - b2 + -1.2906284563444352e-14, b1
    b1, b2 = 2.0 * x * b1 - b2 + 7.41238016844651e-14, b1
    b1, b2 = 2.0 * x * b1 - b2 + -6.136574549476282e-14, b1
    b1, b2 = 2.0 * x * b1 - b2 + -8.586412987239889e-13, b1
    b1, b2 = 2.0 * x * b1 - b2 + 3.5714929579177076e-12, b1
    b1, b2 = 2.0 * x * b1 - b2 + 2.0612184766512216e-12, b1
    b1, b2 = 2.0 * x * b1 - b2 + -6.160395951107395e-11, b1
    b1, b2 = 2.0 * x * b1 - b2 + 1.4320832058536387e-10, b1
    b1, b2 = 2.0 * x * b1 - b2 + 6.347057815026938e-10, b1
    b1, b2 = 2.0 * x * b1 - b2 + -4.154721751563973e-09, b1
    b1, b2 = 2.0 * x * b1 - b2 + -1.2962846389568775e-09, b1
    b1, b2 = 2.0 * x * b1 - b2 + 8.234608808702962e-08, b1
    b1, b2 = 2.0 * x * b1 - b2 + -1.4297608174993833e-07, b1
    b1, b2 = 2.0 * x * b1 - b2 + -1.5154665553808631e-06, b1
    b1, b2 = 2.0 * x * b1 - b2 + 5.44244164545027e-06, b1
    b1, b2 = 2.0 * x * b1 - b2 + 3.278031574179674e-05, b1
    b1, b2 = 2.0 * x * b1 - b2 + -0.00016075829915395722, b1
    b1, b2 = 2.0 * x * b1 - b2 + -0.001112844743352513, b1
    b1, b2 = 2.0 * x * b1 - b2 + 0.003671142395836699, b1
    b1, b2 = 2.0 * x * b1 - b2 + 0.06509515882878651, b1
    b1, b2 = 2.0 * x * b1 - b2 + 0.3554369212704987, b1
    g = t * (x * b1 - b2 + 0.5770337386164696)          # erfcx(a)
    h = -0.5 * z * z
    e = exp_branch_free(h if h > -700.0 else -700.0)
    upper = 1.0 - 0.5 * g * e
    log_phi = lane_log(0.5 * g) + h if z < 0.0 else lane_log(upper)
    lam = _SQRT_2_OVER_PI / g if z < 0.0 else e * _INV_SQRT_2PI / upper
    return log_phi, lam


def _weigh_columns_py(lp, K, n, nb, MX, BGL, has_bg, WL, TOT, q_negligible, logL, B):
    """Turn lp[k, j] = log a_k N_jk of n samples (columns; MX their largest member, BGL the
    log background density) into the members' densities relative to the largest, TOT[j]
    into w_j / their total and MX[j] into ``q_negligible`` times that total:
    w_j q_jk = lp[k, j] TOT[j] where lp[k, j] >= MX[j], else 0. Returns logL and B with the
    first nb samples added in order (the others get TOT 0, as a sample of weight 0 does); a
    sample no member can produce makes logL -inf. Components outside, samples inside: the
    loops over samples vectorize (branch-free exp). The lane kernels call it with n = BL."""
    for j in range(n):
        d = BGL[j] - MX[j]
        e = exp_branch_free(d if d > LOG_FLOOR else LOG_FLOOR) if has_bg else 0.0
        BGL[j] = e if e > FLOOR else 0.0
        TOT[j] = BGL[j]
    for k in range(K):
        lpk = lp[k]
        for j in range(n):
            d = lpk[j] - MX[j]
            e = exp_branch_free(d if d > LOG_FLOOR else LOG_FLOOR)
            e = e if e > FLOOR else 0.0
            lpk[j] = e
            TOT[j] += e
    for j in range(nb):
        w = WL[j]
        if w == 0.0:
            TOT[j] = 0.0
        elif MX[j] == -np.inf or TOT[j] == 0.0:
            logL = -np.inf
            TOT[j] = 0.0
        else:
            logL += w * (MX[j] + np.log(TOT[j]))
            s = w / TOT[j]
            B += BGL[j] * s
            MX[j] = q_negligible * TOT[j]       # threshold, then the scale
            TOT[j] = s
    for j in range(nb, n):
        TOT[j] = 0.0
    return logL, B


def _add_lanes_py(acc, sums, K, NS):
    """sums[k, s] += sum over lanes of acc[k, s, :], lanes in order."""
    for k in range(K):
        for s in range(NS):
            t = 0.0
            for j in range(BL):
                t += acc[k, s, j]
            sums[k, s] += t


lane_log = compile_kernel(_lane_log_py, inline=True)
lane_log_ndtr = compile_kernel(_lane_log_ndtr_py, inline=True)
weigh_columns = compile_kernel(_weigh_columns_py, inline=True)
add_lanes = compile_kernel(_add_lanes_py, inline=True)
