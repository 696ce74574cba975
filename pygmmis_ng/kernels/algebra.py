"""The per-pair algebra of the E-step kernels, written out as source for one dimension.

A *pair* is one sample i and one component k. Each function here returns a
:class:`Algebra`: straight-line statements (no loops, no calls) that the
skeletons of :mod:`.skeletons` paste into their loops, so that the compiled
kernel holds every intermediate in a register and, in the lane skeleton, the
compiler turns the statements into SIMD instructions over a block of samples.
Names the statements use: ``X(a)`` and ``S(a, b)`` are placeholders the
skeleton replaces by its access to sample values and noise; the component's
values are read in ``setup`` (once per component and block of samples).

Each algebra defines ``chi2`` (the squared Mahalanobis distance), ``lp0``
(log a_k N_ik without the log det of a per-sample T_ik), ``det`` (the
product of Cholesky diagonals whose log is subtracted, or None),
``pivots`` (positive for a positive definite T_ik), ``factors`` (what the
per-sample skeleton keeps per pair until the responsibilities are known),
``finish`` (statements from the factors to the statistics) and ``stats``
(expressions summed with weight q: the first moments, then the second).

Moments (K, 1 + D + M2) per component: [sum q, sum q s_a, sum q s_ab] with
s = x - m_k and s_ab = s_a s_b (no noise or shared noise), or s = u =
T^-1 (x - m_k) and s_ab = u_a u_b - (T^-1)_ab (per-sample noise); for the
'diag' family only a = b, for 'spherical' one sum over a.
"""
from __future__ import annotations

import re
from typing import NamedTuple


class Spec(NamedTuple):
    """What a kernel does: ``skeleton`` 'lanes' or 'sample'; ``noise`` 'shared' (none
    or one S for all), 'per_sample', 'projected' (a projection R_i and a noise S_i per
    sample, whose values are y_i = R_i x_i + noise), 'masked' (per-sample noise) or
    'masked_shared' (values missing in many patterns); ``family`` 'full', 'diag' or
    'spherical'; ``dim`` the dimension it is written out for (0: any, in loops)."""

    skeleton: str
    noise: str
    family: str
    dim: int


def indent(lines: list[str], n: int) -> str:
    """Source lines indented by n spaces, joined."""
    return "\n".join(" " * n + line if line else "" for line in lines)


def substitute(line: str, x: str, s: str) -> str:
    """The placeholders X(a) and S(a, b) of an algebra replaced by the skeleton's access."""
    line = re.sub(r"X\((\d+)\)", lambda m: x.format(a=m.group(1)), line)
    return re.sub(r"S\((\d+), (\d+)\)", lambda m: s.format(a=m.group(1), b=m.group(2)), line)


def lower_pairs(D: int) -> list[tuple[int, int]]:
    """The (a, b) with b <= a, row by row: the order of a lower triangle's entries."""
    return [(a, b) for a in range(D) for b in range(a + 1)]


class Algebra(NamedTuple):
    setup: list[str]
    pair: list[str]
    det: str | None
    pivots: list[str]
    factors: list[str]
    finish: list[str]
    stats: list[str]


def upper(D: int) -> list[tuple[int, int]]:
    """The (a, b) with a <= b, row by row: the order of the second moments."""
    return [(a, b) for a in range(D) for b in range(a, D)]


def _dot(terms: list[str], start: str | None = None) -> str:
    parts = ([start] if start else []) + terms
    return " + ".join(parts) if parts else "0.0"


def full_shared(D: int) -> Algebra:
    """No noise or one shared noise: C[k] is L_k^-1 (lower) of T_k, log_c[k] the log
    constant log a_k - (D log 2pi + log det T_k) / 2; statistics of s = x - m_k."""
    setup = [f"m{a} = mean[k, {a}]" for a in range(D)]
    setup += [f"p{a}{b} = C[k, {a}, {b}]" for a in range(D) for b in range(a + 1)]
    setup.append("la = log_c[k]")
    pair = [f"d{a} = X({a}) - m{a}" for a in range(D)]
    pair += [f"y{a} = {_dot([f'p{a}{b} * d{b}' for b in range(a + 1)])}" for a in range(D)]
    pair.append(f"chi2 = {_dot([f'y{a} * y{a}' for a in range(D)])}")
    pair.append("lp0 = la - 0.5 * chi2")
    stats = [f"d{a}" for a in range(D)] + [f"d{a} * d{b}" for a, b in upper(D)]
    return Algebra(setup, pair, None, [], [f"d{a}" for a in range(D)], [], stats)


def full_per_sample(D: int) -> Algebra:
    """Per-sample noise: T = V_k + S_i factorized pair by pair (C[k] = V_k, log_c[k] =
    log a_k - D log(2pi) / 2); statistics of u = T^-1 (x - m_k), s_ab = u_a u_b - T^-1_ab."""
    setup = [f"m{a} = mean[k, {a}]" for a in range(D)]
    setup += [f"c{a}{b} = C[k, {a}, {b}]" for a in range(D) for b in range(a + 1)]
    setup.append("la = log_c[k]")
    pair = []
    for a in range(D):
        for b in range(a + 1):
            s = _dot([f"- l{a}{c} * l{b}{c}" for c in range(b)], f"c{a}{b} + S({a}, {b})")
            s = s.replace("+ -", "-")
            if a == b:
                pair += [f"t{a} = {s}", f"l{a}{a} = np.sqrt(t{a})", f"r{a} = 1.0 / l{a}{a}"]
            else:
                pair.append(f"l{a}{b} = ({s}) * r{b}")
        y = _dot([f"- l{a}{c} * y{c}" for c in range(a)], f"X({a}) - m{a}").replace("+ -", "-")
        pair.append(f"y{a} = ({y}) * r{a}")
    pair.append(f"chi2 = {_dot([f'y{a} * y{a}' for a in range(D)])}")
    pair.append("lp0 = la - 0.5 * chi2")
    det = " * ".join(f"l{a}{a}" for a in range(D))
    factors = [f"l{a}{b}" for a in range(D) for b in range(a)] + \
        [f"r{a}" for a in range(D)] + [f"y{a}" for a in range(D)]
    finish = []
    for a in range(D):              # M = L^-1 (lower), row by row
        for b in range(a):
            s = _dot([f"l{a}{c} * i{c}{b}" for c in range(b, a)])
            finish.append(f"i{a}{b} = -({s}) * r{a}")
        finish.append(f"i{a}{a} = r{a}")
    for a in range(D):              # u = M^T y = T^-1 (x - m)
        finish.append(f"u{a} = {_dot([f'i{c}{a} * y{c}' for c in range(a, D)])}")
    stats = [f"u{a}" for a in range(D)]
    for a, b in upper(D):           # u u^T - T^-1, T^-1 = M^T M
        stats.append(f"u{a} * u{b} - ({_dot([f'i{c}{a} * i{c}{b}' for c in range(b, D)])})")
    return Algebra(setup, pair, det, [f"t{a}" for a in range(D)], factors, finish, stats)


def censored_per_sample(D: int) -> Algebra:
    """Per-sample noise with the last of the D values an upper limit l (the noise 'censored';
    lower limits are upper limits of -y). T = V_k + S_i is factorized over all D values as
    by :func:`full_per_sample`, with the limit in place of the last value; then, as L_cc^2
    is the conditional variance of the limited value given the others, y_c = (l - mu) / sd
    = z, the chi2 of the measured values is the sum of the other y_a^2, and log det T_OO
    drops l_cc. With lam = phi(z) / Phi(z) (:func:`~.lanes.lane_log_ndtr`): E y_c = l -
    sd (z + lam), Var y_c = sd^2 (1 - z lam - lam^2), so with M = L^-1 the statistics are
    u_a - (z + lam) M_ca and ub_a ub_b + (1 - z lam - lam^2) M_ca M_cb - T^-1_ab (the
    column of T^-1 at c is M_c. / l_cc; see :mod:`pygmmis_ng.kernels.censored`)."""
    base = full_per_sample(D)
    c = D - 1
    pair = base.pair[:-2]                   # without chi2 and lp0 over all D values
    pair.append(f"chi2 = {_dot([f'y{a} * y{a}' for a in range(c)])}")
    pair.append(f"zc, lam = lane_log_ndtr(y{c})")
    pair.append("lp0 = la + 0.5 * LOG_2PI - 0.5 * chi2 + zc")
    det = " * ".join(f"l{a}{a}" for a in range(c)) if c > 0 else "1.0"
    finish = list(base.finish)
    finish += [f"wz = y{c} + lam", f"vz = 1.0 - y{c} * lam - lam * lam"]
    finish += [f"ub{a} = u{a} - wz * i{c}{a}" for a in range(D)]
    stats = [f"ub{a}" for a in range(D)]
    for a, b in upper(D):
        tinv = _dot([f"i{e}{a} * i{e}{b}" for e in range(b, D)])
        stats.append(f"ub{a} * ub{b} + vz * i{c}{a} * i{c}{b} - ({tinv})")
    return Algebra(base.setup, pair, det, base.pivots, base.factors, finish, stats)


def censored_shared(D: int) -> Algebra:
    """No or one shared noise with the last value an upper limit (the noise
    'censored_shared'): C[k] = L_k^-1 of T_k = V_k (+ S), log_c[k] = log a_k - (D log 2pi +
    log det T_k) / 2, as :func:`full_shared`. y = L^-1 (x - m) gives z = y_c; statistics
    of s = x - m_k with the limit replaced by its truncated mean, s_c = d_c - sd (z + lam)
    (sd = L_cc = 1 / C_cc), and s s^T + sd^2 (1 - z lam - lam^2) at (c, c)."""
    base = full_shared(D)
    c = D - 1
    setup = base.setup + [f"sdc = 1.0 / p{c}{c}", "lsd = np.log(sdc)"]
    pair = base.pair[:-2]
    pair.append(f"chi2 = {_dot([f'y{a} * y{a}' for a in range(c)])}")
    pair.append(f"zc, lam = lane_log_ndtr(y{c})")
    pair.append("lp0 = la + 0.5 * LOG_2PI + lsd - 0.5 * chi2 + zc")
    finish = [f"s{a} = d{a}" for a in range(c)]
    finish += [f"s{c} = d{c} - sdc * (y{c} + lam)", f"vz = sdc * sdc * (1.0 - y{c} * lam - lam * lam)"]
    stats = [f"s{a}" for a in range(D)]
    stats += [f"s{a} * s{b}" + (" + vz" if a == b == c else "") for a, b in upper(D)]
    return Algebra(setup, pair, None, [], [], finish, stats)


def moments(D: int, family: str) -> int:
    """Columns of the moment sums: 1 + D + (second moments of the family)."""
    return 1 + D + {"full": D * (D + 1) // 2, "diag": D, "spherical": 1}[family]
