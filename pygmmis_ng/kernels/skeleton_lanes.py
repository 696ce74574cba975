"""The lane skeleton: a block of samples in SIMD lanes (see :mod:`.skeletons`).

The samples of a chunk in blocks of :data:`~.lanes.BL`, copied into lane arrays; per
component, one loop over the lanes computes every pair's log density (and, with
per-sample noise, its statistics), so the compiler turns it into SIMD instructions;
the log-sum-exp and the responsibilities run over the lanes as well
(:func:`~.lanes.weigh_columns`), and the moments are added per lane, then over lanes in
a fixed order. No neighborhoods.
"""
from __future__ import annotations

import re

from . import algebra
from .algebra import Spec, indent, lower_pairs, substitute

LANES = """
def kernel(x, S, weight, log_bg, has_bg, mean, C, log_c, q_negligible, sums):
    n = x.shape[0]
    D = x.shape[1]
    K = mean.shape[0]
    NS = sums.shape[1]
    NC = NS - 1
    XL = np.empty((D, BL))
    SL = np.empty(({nsl}, BL))
    WL = np.empty(BL)
    BGL = np.empty(BL)
    MX = np.empty(BL)
    TOT = np.empty(BL)
    CH = np.empty(BL)
    DET = np.empty(BL)
    LD = np.empty(BL)
    BADL = np.zeros(BL, np.int64)
    RNG = np.zeros(BL, np.int64)
    lp = np.empty((K, BL))
    U = np.empty((K, {nu}, BL))
    acc = np.zeros((K, NS, BL))
    logL = 0.0
    B = 0.0
    for b0 in range(0, n, BL):
        nb = min(BL, n - b0)
        for j in range(BL):
            i = b0 + j if j < nb else b0
{load}
            WL[j] = weight[i] if j < nb else 0.0
            BGL[j] = log_bg[i] if has_bg else -np.inf
            MX[j] = BGL[j]
            BADL[j] = 0
            RNG[j] = 0
        for k in range(K):
            lpk = lp[k]
            Uk = U[k]
{pairs}
            for j in range(BL):
                MX[j] = max(MX[j], lpk[j])
        for j in range(BL):
            if BADL[j] > 0 or RNG[j] > 0:
                if j < nb and WL[j] != 0.0:
                    return logL, B, (b0 + j + 1) if BADL[j] > 0 else -1
                for k in range(K):
                    lp[k, j] = -np.inf
                    for s in range(U.shape[1]):
                        U[k, s, j] = 0.0
        logL, B = weigh_columns(lp, K, BL, nb, MX, BGL, has_bg, WL, TOT, q_negligible, logL, B)
        for k in range(K):
            lpk = lp[k]
            ak = acc[k]
{accum}
    add_lanes(acc, sums, K, NS)
    return logL, B, 0
"""

#: moments from the statistics the pair loop stored in U
_ACCUM_STORED = """\
for j in range(BL):
    q = lpk[j] * TOT[j] if lpk[j] >= MX[j] else 0.0
    lpk[j] = q
    ak[0, j] += q
for s in range(NC):
    aks = ak[s + 1]
    uks = U[k, s]
    for j in range(BL):
        aks[j] += lpk[j] * uks[j]"""
#: diagonal moments of d = x - m_k, recomputed (cheaper than storing 2 D values per pair)
_ACCUM_DIAG = """\
sq = ak[1 + D]
for j in range(BL):
    q = lpk[j] * TOT[j] if lpk[j] >= MX[j] else 0.0
    lpk[j] = q
    ak[0, j] += q
    CH[j] = 0.0
for a in range(D):
    ma = mean[k, a]
    xa = XL[a]
    s1 = ak[1 + a]
    s2 = ak[1 + D + a] if {diag} else CH
    for j in range(BL):
        qd = lpk[j] * (xa[j] - ma)
        s1[j] += qd
        s2[j] += qd * (xa[j] - ma)
if not {diag}:
    for j in range(BL):
        sq[j] += CH[j]"""

_LOG_DET = """\
for j in range(BL):
    RNG[j] += 0 if DET[j] > DET_LO else 1
    RNG[j] += 0 if DET[j] < DET_HI else 1
    lpk[j] -= lane_log(DET[j])"""


def _lanes_full(spec: Spec) -> tuple[str, str, str]:
    D = spec.dim
    per_sample = spec.noise in ("per_sample", "censored")
    al = {"per_sample": algebra.full_per_sample, "censored": algebra.censored_per_sample,
          "censored_shared": algebra.censored_shared}.get(spec.noise, algebra.full_shared)(D)
    tri = lower_pairs(D)
    load = [f"XL[{a}, j] = x[i, {a}]" for a in range(D)]
    if per_sample:
        load += [f"SL[{r}, j] = S[i, {a}, {b}]" for r, (a, b) in enumerate(tri)]
    body = [substitute(line, "XL[{a}, j]", "SL[" + "{a}{b}" + ", j]") for line in al.pair + al.finish]
    body = [re.sub(r"SL\[(\d)(\d), j\]", lambda m: f"SL[{tri.index((int(m[1]), int(m[2])))}, j]",
                   line) for line in body]
    body.append("lpk[j] = lp0")
    stored = al.det is not None or bool(al.finish)      # statistics kept per pair in U
    if stored:
        body += [f"Uk[{s}, j] = {e}" for s, e in enumerate(al.stats)]
    if al.det is not None:
        body.append(f"DET[j] = {al.det}")
        pv = al.pivots[0]
        for p in al.pivots[1:]:
            pv = f"min({pv}, {p})"
        body.append(f"BADL[j] += 0 if {pv} > 0.0 else 1")
    pairs = al.setup + ["for j in range(BL):"] + ["    " + line for line in body]
    if al.det is not None:
        pairs += _LOG_DET.split("\n")
    if stored:
        accum, nu = _ACCUM_STORED.split("\n"), "NC"
    else:                               # d = x - m_k again: cheaper than storing its moments
        accum = al.setup + ["for j in range(BL):", "    q = lpk[j] * TOT[j] if lpk[j] >= MX[j] else 0.0",
                            "    ak[0, j] += q"]
        accum += [f"    d{a} = XL[{a}, j] - m{a}" for a in range(D)]
        accum += [f"    ak[{1 + s}, j] += q * ({e})" for s, e in enumerate(al.stats)]
        nu = "1"
    nsl = str(len(tri) if per_sample else 1)
    return indent(load, 12), indent(pairs, 12), indent(accum, 12), nsl, nu


_DIAG_SHARED = """\
la = log_c[k]
for j in range(BL):
    CH[j] = 0.0
for a in range(D):
    ma = mean[k, a]
    pa = C[k, a]
    xa = XL[a]
    for j in range(BL):
        d = xa[j] - ma
        CH[j] += d * d * pa
for j in range(BL):
    lpk[j] = la - 0.5 * CH[j]"""

_DIAG_PER_SAMPLE = """\
la = log_c[k]
for j in range(BL):
    CH[j] = 0.0
    LD[j] = 0.0
    DET[j] = 1.0
for a in range(D):
    ma = mean[k, a]
    va = C[k, a]
    xa = XL[a]
    sa = SL[a]
    ua = Uk[a]
    for j in range(BL):
        t = va + sa[j]
        r = 1.0 / t
        u = (xa[j] - ma) * r
        ua[j] = u
        CH[j] += u * u * t
        DET[j] *= t
        BADL[j] += 0 if t > 0.0 else 1
    if a % 8 == 7 or a == D - 1:
        for j in range(BL):
            RNG[j] += 0 if DET[j] > DET_LO else 1
            RNG[j] += 0 if DET[j] < DET_HI else 1
            LD[j] += lane_log(DET[j])
            DET[j] = 1.0
{second}
for j in range(BL):
    lpk[j] = la - 0.5 * CH[j] - 0.5 * LD[j]"""

_SECOND = {
    ("per_sample", "diag"): "for a in range(D):\n    ua = Uk[a]\n    ga = Uk[D + a]\n"
                            "    va = C[k, a]\n    sa = SL[a]\n    for j in range(BL):\n"
                            "        ga[j] = ua[j] * ua[j] - 1.0 / (va + sa[j])",
    ("per_sample", "spherical"): "ga = Uk[D]\nfor j in range(BL):\n    ga[j] = 0.0\n"
                                 "for a in range(D):\n    ua = Uk[a]\n    va = C[k, a]\n"
                                 "    sa = SL[a]\n    for j in range(BL):\n"
                                 "        ga[j] += ua[j] * ua[j] - 1.0 / (va + sa[j])",
}


def _lanes_diag(spec: Spec) -> tuple[str, str, str]:
    load = ["for a in range(D):", "    XL[a, j] = x[i, a]"]
    if spec.noise == "per_sample":
        load += ["for a in range(D):", "    SL[a, j] = S[i, a, a]"]
    if spec.noise == "per_sample":
        pairs = _DIAG_PER_SAMPLE.format(second=_SECOND[(spec.noise, spec.family)])
        return indent(load, 12), indent(pairs.split("\n"), 12), indent(_ACCUM_STORED.split("\n"), 12), \
            "D", "NC"
    accum = _ACCUM_DIAG.format(diag=spec.family == "diag")
    return indent(load, 12), indent(_DIAG_SHARED.split("\n"), 12), indent(accum.split("\n"), 12), "1", "1"


def lanes_source(spec: Spec) -> str:
    load, pairs, accum, nsl, nu = (_lanes_full if spec.family == "full" else _lanes_diag)(spec)
    return LANES.format(load=load, pairs=pairs, accum=accum, nsl=nsl, nu=nu)
