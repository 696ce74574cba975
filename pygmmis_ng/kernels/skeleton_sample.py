"""The per-sample skeleton: one sample at a time, with neighborhoods (see :mod:`.skeletons`).

Every component per sample; with the neighborhoods of a ``cutoff`` fit a pair outside
is skipped and a sample outside every neighborhood is evaluated against all
components; per-pair factors are kept until the responsibilities say which pairs
matter. It serves neighborhoods, dimensions beyond those the lanes write out, samples
with their own projection, and values missing in many patterns (:mod:`.patterns`).
"""
from __future__ import annotations

from . import algebra
from .algebra import Spec, indent, lower_pairs, substitute

SAMPLE = """
def kernel(x, S, weight, log_bg, has_bg, mean, C, log_c, q_negligible, sums, nbr, redo, c2, R):
    n = x.shape[0]
    D = x.shape[1]
    K = mean.shape[0]
    Dm = mean.shape[1]
    lp = np.empty(K + 2)
{alloc}
    logL = 0.0
    B = 0.0
    use_nbr = nbr.shape[0] > 0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
{load}
        attempt = 0
        while True:
            mx = -np.inf
            for k in range(K):
                if use_nbr and attempt == 0 and redo[k] == 0 and nbr[i, k] == 0:
                    lp[k] = -np.inf
                    continue
{pair}
                mx = keep_member(lp, k, log_p, chi2, use_nbr, redo, nbr, i, c2, attempt, mx)
            if mx > -np.inf or not use_nbr or attempt == 1:
                break
            attempt = 1                 # outside every neighborhood: evaluate all components
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, wi, logL, B)
        if tot == 0.0:                  # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] < q_negligible * tot:
                continue
            q = lp[k] * scale
{accum}
{final}
    return logL, B, 0
"""

#: per-pair factors of the loops over D: T_ik, its Cholesky factor, the residual, L^-1 r
_FACTORS = ("T = np.empty((D, D))\nLs = np.empty((K, D, D))\nres = np.empty(D)\n"
            "ys = np.empty((K, D))\nu = np.empty(D)\nLi = np.empty((D, D))")
#: T_ik (lower triangle) and the residual res made: factor, solve, log density
_SOLVE = """
logdet = factor(T, D, Ls[k])
if logdet == -np.inf:
    return logL, B, i + 1
chi2 = forward_chi2(Ls[k], res, D, ys[k])
log_p = log_c[k] - 0.5 * chi2 - logdet"""
_GENERAL = {
    "shared": ("d = np.empty((K, D))", """\
chi2 = 0.0
for a in range(D):
    d[k, a] = x[i, a] - mean[k, a]
for a in range(D):
    s = 0.0
    for b in range(a + 1):
        s += C[k, a, b] * d[k, b]
    chi2 += s * s
log_p = log_c[k] - 0.5 * chi2""", """\
u = d[k]"""),
    "per_sample": (_FACTORS + "\nTinv = np.empty((D, D))", """\
for a in range(D):
    res[a] = x[i, a] - mean[k, a]
    for b in range(a + 1):
        T[a, b] = C[k, a, b] + S[i, a, b]""" + _SOLVE, """\
lower_inverse(Ls[k], D, Li)
back_solve(Li, ys[k], D, u)
inverse_gram(Li, D, Tinv)"""),
}
_PROJECTED = (_FACTORS + "\nRV = np.empty((D, Dm))\nW = np.empty((D, Dm))\nRu = np.empty(Dm)\n"
              "WtW = np.empty((Dm, Dm))", """\
for a in range(D):
    for b in range(Dm):
        s = 0.0
        for c in range(Dm):
            s += R[i, a, c] * C[k, c, b]
        RV[a, b] = s
for a in range(D):
    s = x[i, a]
    for c in range(Dm):
        s -= R[i, a, c] * mean[k, c]
    res[a] = s
    for b in range(a + 1):
        s = S[i, a, b]
        for c in range(Dm):
            s += RV[a, c] * R[i, b, c]
        T[a, b] = s""" + _SOLVE, """\
lower_inverse(Ls[k], D, Li)
back_solve(Li, ys[k], D, u)
for a in range(D):
    for b in range(Dm):
        s = 0.0
        for c in range(a + 1):
            s += Li[a, c] * R[i, c, b]
        W[a, b] = s
for a in range(Dm):
    s = 0.0
    for c in range(D):
        s += R[i, c, a] * u[c]
    Ru[a] = s
    for b in range(a, Dm):
        s = 0.0
        for c in range(D):
            s += W[c, a] * W[c, b]
        WtW[a, b] = s""")
#: the moments of a pair: q, q u, q (u u^T - T^-1) (upper triangle) in {dim} dimensions
_GENERAL_ACCUM = """\
sums[k, 0] += q
r = 1 + {dim}
for a in range({dim}):
    qa = q * {u}[a]
    sums[k, 1 + a] += qa
    for b in range(a, {dim}):
        sums[k, r] += qa * {u}[b]{minus}
        r += 1"""


_MASKED_LOAD = """\
dy, same = pattern(x, i, o, o_prev, dy_prev)
if not same:
    if dy_prev >= 0:
        {flush}
    for k in range(K):
        for a in range(dy):
            mo[k, a] = mean[k, o[a]]
            for b in range(a + 1):
                T[a, b] = C[k, o[a], o[b]] + {shared_S}
{prepare}
    dy_prev = dy
    o_prev[:dy] = o[:dy]"""
_MASKED = {     # (alloc, prepare per pattern and component, pair, accum, flush)
    "masked": (_FACTORS + "\nVo = np.empty((K, D, D))\nTinv = np.empty((D, D))", """\
        for a in range(dy):
            for b in range(a + 1):
                Vo[k, a, b] = T[a, b]""", """\
for a in range(dy):
    for b in range(a + 1):
        T[a, b] = Vo[k, a, b] + S[i, o[a], o[b]]
logdet = factor(T, dy, Ls[k])
if logdet == -np.inf:
    return logL, B, i + 1
for a in range(dy):
    res[a] = x[i, o[a]] - mo[k, a]
chi2 = forward_chi2(Ls[k], res, dy, ys[k])
log_p = log_c[k] - 0.5 * (dy * LOG_2PI + 2.0 * logdet + chi2)""", """\
lower_inverse(Ls[k], dy, Li)
inverse_gram(Li, dy, Tinv)
back_solve(Li, ys[k], dy, u)
Ao[k] += q
for a in range(dy):
    qa = q * u[a]
    SUo[k, a] += qa
    for b in range(a, dy):
        Go[k, a, b] += qa * u[b] - q * Tinv[a, b]""", "scatter(o_prev, dy_prev, K, D, Ao, SUo, Go, sums)"),
    "masked_shared": ("T = np.empty((D, D))\nL = np.empty((D, D))\nP = np.empty((K, D, D))\n"
                      "Tinv = np.empty((K, D, D))\nlogdets = np.empty(K)\nd = np.empty((K, D))\n"
                      "SDo = np.zeros((K, D))\n"
                      "DDo = np.zeros((K, D, D))\nW = np.empty((D, D))", """\
        logdets[k] = factor(T, dy, L)
        if logdets[k] == -np.inf:
            return logL, B, i + 1
        lower_inverse(L, dy, P[k])
        inverse_gram(P[k], dy, Tinv[k])
        for a in range(dy):
            for b in range(a):
                Tinv[k, a, b] = Tinv[k, b, a]""", """\
for a in range(dy):
    d[k, a] = x[i, o[a]] - mo[k, a]
chi2 = 0.0
for a in range(dy):
    s = 0.0
    for c in range(a + 1):
        s += P[k, a, c] * d[k, c]
    chi2 += s * s
log_p = log_c[k] - 0.5 * (dy * LOG_2PI + 2.0 * logdets[k] + chi2)""", """\
Ao[k] += q
for a in range(dy):
    qa = q * d[k, a]
    SDo[k, a] += qa
    for b in range(a, dy):
        DDo[k, a, b] += qa * d[k, b]""",
                      "flush_shared(o_prev, dy_prev, K, D, Ao, SDo, DDo, Tinv, W, SUo, Go, sums)"),
}


def _masked_source(spec: Spec) -> str:
    """Values missing in many patterns, samples sorted by pattern (see :mod:`.patterns`):
    per-sample noise S (n, D, D), or one shared S (1, D, D), over the measured values."""
    alloc, prepare, pair, accum, flush = _MASKED[spec.noise]
    alloc += ("\nmo = np.empty((K, D))\nAo = np.zeros(K)\n"
              "SUo = np.zeros((K, D))\nGo = np.zeros((K, D, D))\no = np.empty(D, np.int64)\n"
              "o_prev = np.empty(D, np.int64)\ndy_prev = -1")
    shared = "S[0, o[a], o[b]]" if spec.noise == "masked_shared" else "0.0"
    load = _MASKED_LOAD.format(flush=flush, shared_S=shared, prepare=prepare)
    final = ["if dy_prev >= 0:", "    " + flush]
    return SAMPLE.format(alloc=indent(alloc.split("\n"), 4), load=indent(load.split("\n"), 8),
                         pair=indent(pair.split("\n"), 16), accum=indent(accum.split("\n"), 12),
                         final=indent(final, 4))


def sample_source(spec: Spec) -> str:
    if spec.noise.startswith("masked"):
        return _masked_source(spec)
    if spec.noise == "projected":       # y = R_i x + noise: T = R_i V_k R_i^T + S_i, lifted by R_i
        alloc, pair, finish = _PROJECTED   # moments of R^T u, R^T (u u^T - T^-1) R in Dm dims
        accum = finish + "\n" + _GENERAL_ACCUM.format(dim="Dm", u="Ru", minus=" - q * WtW[a, b]")
        return SAMPLE.format(alloc=indent(alloc.split("\n"), 4), load="", final="",
                             pair=indent(pair.split("\n"), 16), accum=indent(accum.split("\n"), 12))
    if spec.dim == 0:
        alloc, pair, finish = _GENERAL[spec.noise]
        minus = " - q * Tinv[a, b]" if spec.noise == "per_sample" else ""
        accum = finish.split("\n") + _GENERAL_ACCUM.format(dim="D", u="u", minus=minus).split("\n")
        return SAMPLE.format(alloc=indent(alloc.split("\n"), 4), load="", final="",
                             pair=indent(pair.split("\n"), 16), accum=indent(accum, 12))
    D = spec.dim
    al = (algebra.full_per_sample if spec.noise == "per_sample" else algebra.full_shared)(D)
    load = [f"x{a} = x[i, {a}]" for a in range(D)]
    if spec.noise == "per_sample":
        load += [f"s{a}{b} = S[i, {a}, {b}]" for a, b in lower_pairs(D)]
    pair = al.setup + [substitute(line, "x{a}", "s{a}{b}") for line in al.pair]
    if al.pivots:
        pair.append(f"if not ({' and '.join(p + ' > 0.0' for p in al.pivots)}):")
        pair.append("    return logL, B, i + 1")
    pair += [f"F[k, {f}] = {name}" for f, name in enumerate(al.factors)]
    pair.append("log_p = lp0" + (f" - np.log({al.det})" if al.det else ""))
    accum = [f"{name} = F[k, {f}]" for f, name in enumerate(al.factors)] + al.finish
    accum += ["sums[k, 0] += q"] + [f"sums[k, {1 + s}] += q * ({e})" for s, e in enumerate(al.stats)]
    return SAMPLE.format(alloc=indent([f"F = np.empty((K, {len(al.factors)}))"], 4),
                         load=indent(load, 8), pair=indent(pair, 16), accum=indent(accum, 12),
                         final="")
