"""Censored values (upper / lower limits) against independent truth.

Everything "true" in this file is computed with scipy only (never pygmmis_ng code):

* ``exact_censored_loglik``: per-sample log-likelihood of a Gaussian mixture for noisy
  observations y = x + eps (eps ~ N(0, S_i)) with measured, censored (-1: y below the
  value, an upper limit; +1: y above the value, a lower limit) and missing (NaN)
  coordinates. Measured coordinates enter through their marginal density under
  N(m_k, V_k + S_i), censored ones through the probability, under the conditional
  Gaussian given the measured ones, that they lie beyond their limits. That orthant
  probability is computed by nested adaptive quadrature (scipy.integrate.quad), with a
  change of variables u = Phi(z_1 / s_1) that makes every integral finite and smooth.
  It is itself checked against closed forms, scipy's multivariate_normal.cdf, Monte Carlo
  simulation of the generative model and importance-sampling integration of the *joint*
  density (no conditional formulas), and in the far tails against reference values
  computed once with mpmath at 30-40 digits (hard-coded in TAIL_CASES).
* Maximum-likelihood fits by scipy.optimize.minimize on that exact likelihood, compared
  with ng.fit(..., censored=...).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import add_noise, random_spd
from scipy import integrate, optimize, special
from scipy.stats import multivariate_normal, norm

import pygmmis_ng as ng


# --------------------------------------------------------------------------- brute force
def _orthant_prob(a: np.ndarray, C: np.ndarray) -> float:
    """P(z < a) (elementwise) for z ~ N(0, C), by nested adaptive quadrature.

    P = int_{-inf}^{a_1/s_1} phi(t) P(z_rest < a_rest - beta s_1 t | z_1 = s_1 t) dt with
    s_1 = sqrt(C_11), beta = C_rest,1 / C_11; the conditional is again Gaussian (recursion
    on the dimension). The integrand is smooth and log-concave; the lower end is cut where
    it is below ~1e-22 of its peak (10 sd below 0, the limit and the points where the
    conditional probabilities saturate, but no further than 40 below min(limit, 0)).
    """
    n = len(a)
    if n == 1:
        return float(special.ndtr(a[0] / np.sqrt(C[0, 0])))
    s1 = np.sqrt(C[0, 0])
    beta = C[1:, 0] / C[0, 0]
    Cc = C[1:, 1:] - np.outer(C[1:, 0], C[1:, 0]) / C[0, 0]
    sc = np.sqrt(np.diag(Cc))
    top = a[0] / s1
    gam = beta * s1 / sc                           # conditional z_j / sc_j = (a_j/sc_j) - gam t
    lo = min(top, 0.0)                             # phi(t) itself is centred at 0
    pts = []
    for j in range(n - 1):
        if gam[j] != 0:
            tc, w = a[1 + j] / (beta[j] * s1), 1 / abs(gam[j])   # sigmoid centre, width
            lo = min(lo, tc - 10 * w)
            pts += [tc + w * k for k in (-3, -1, 0, 1, 3)]
    # below min(top, 0) - 40 the integrand (<= phi(t)) is negligible for any probability
    # that matters here; cutting there keeps a nearly flat sigmoid from spreading the range
    lo = max(lo - 10, min(top, 0.0) - 40)
    pts += [0.0, top - 1, top - 3, top - 6]
    pts = sorted(set(p for p in pts if lo < p < top))

    if n == 2:
        def integrand(t):
            return special.ndtr((a[1] - beta[0] * s1 * t) / sc[0]) * np.exp(-0.5 * t * t)
    else:
        def integrand(t):
            return _orthant_prob(a[1:] - beta * (s1 * t), Cc) * np.exp(-0.5 * t * t)
    epsrel = 1e-12 if n == 2 else 1e-10
    val, err = integrate.quad(integrand, lo, top, epsabs=0.0, epsrel=epsrel, limit=500,
                              points=pts or None)
    val /= np.sqrt(2 * np.pi)
    assert err / np.sqrt(2 * np.pi) <= 10 * epsrel * val + 1e-300, (val, err)
    return float(val)


def censored_logprob(mu, Sig, lim, sign) -> float:
    """log P(y_d beyond lim_d for all d) for y ~ N(mu, Sig): sign -1 means y < lim, +1 y > lim."""
    f = -np.asarray(sign, float)                       # f y < f lim for both kinds
    a = f * (np.asarray(lim, float) - np.asarray(mu, float))
    C = np.asarray(Sig) * np.outer(f, f)
    if len(a) == 1:
        return float(special.log_ndtr(a[0] / np.sqrt(C[0, 0])))
    with np.errstate(divide="ignore"):
        return float(np.log(_orthant_prob(a, C)))


def censored_prob(mu, Sig, lim, sign) -> float:
    return float(np.exp(censored_logprob(mu, Sig, lim, sign)))


def exact_censored_loglik(amp, mean, covar, y, S, censored) -> np.ndarray:
    """Per-sample log-likelihood (N,) of the censored, noisy, partly missing samples y.

    amp (K,), mean (K, D), covar (K, D, D): the mixture of the noise-free x.
    y (N, D): values (NaN: missing; at censored entries: the limit).
    S: None, (D, D) or (N, D, D) noise covariance of y = x + eps.
    censored (N, D) in {0, -1, +1}.
    """
    amp, mean, covar = np.asarray(amp, float), np.asarray(mean, float), np.asarray(covar, float)
    y = np.atleast_2d(np.asarray(y, float))
    N, D = y.shape
    cens = np.zeros((N, D), int) if censored is None else np.asarray(censored).reshape(N, D)
    if S is None:
        S = np.zeros((N, D, D))
    S = np.broadcast_to(np.asarray(S, float), (N, D, D))
    out = np.empty(N)
    for i in range(N):
        o = (cens[i] == 0) & ~np.isnan(y[i])
        c = cens[i] != 0
        terms = []
        for k in range(len(amp)):
            T = covar[k] + S[i]
            lt = np.log(amp[k])
            mu_c, T_cc = mean[k][c], T[np.ix_(c, c)]
            if o.any():
                T_oo = T[np.ix_(o, o)]
                r = y[i, o] - mean[k][o]
                lt += multivariate_normal.logpdf(y[i, o], mean[k][o], T_oo)
                if c.any():
                    G = np.linalg.solve(T_oo, T[np.ix_(o, c)])         # T_oo^-1 T_oc
                    mu_c = mu_c + G.T @ r
                    T_cc = T_cc - T[np.ix_(c, o)] @ G
            if c.any():
                lt += censored_logprob(mu_c, T_cc, y[i, c], cens[i, c])
            terms.append(lt)
        out[i] = special.logsumexp(terms)
    return out


# ------------------------------------------------------------------------------ helpers
def random_mixture(rng, K, D):
    amp = rng.dirichlet(np.full(K, 3.0))
    mean = rng.normal(0, 2.0, (K, D))
    covar = random_spd(rng, K, D, 0.3, 2.0)
    return amp, mean, covar


def draw_noisy(rng, amp, mean, covar, S, N):
    """y = x + eps for x from the mixture and eps ~ N(0, S_i) (S None, (D,D) or (N,D,D))."""
    D = mean.shape[1]
    k = rng.choice(len(amp), size=N, p=amp)
    x = mean[k] + np.einsum("nij,nj->ni", np.linalg.cholesky(covar[k]), rng.standard_normal((N, D)))
    return x if S is None else add_noise(rng, x, S)


def make_gmm(amp, mean, covar) -> ng.GMM:
    K, D = np.shape(mean)
    g = ng.GMM(K=K, D=D)
    g.amp, g.mean, g.covar = np.array(amp, float), np.array(mean, float), np.array(covar, float)
    return g


def noise_for(kind, rng, N, D):
    if kind == "none":
        return None
    if kind == "shared":
        return random_spd(rng, 1, D, 0.05, 0.5)[0]
    return random_spd(rng, N, D, 0.05, 0.8)


def censor_rows(rng, y, n_cens, frac_rows=0.8):
    """Censor n_cens random coordinates in ~frac_rows of the rows, random signs, limits put
    beyond the observed value by U(0, 1) (so the noisy y does lie beyond each limit)."""
    N, D = y.shape
    data = y.copy()
    cens = np.zeros((N, D), int)
    for i in range(N):
        if rng.random() > frac_rows:
            continue
        for d in rng.choice(D, n_cens, replace=False):
            s = rng.choice([-1, 1])
            cens[i, d] = s
            data[i, d] = y[i, d] - s * rng.uniform(0, 1)     # -1: limit above y; +1: below
    return data, cens


# ------------------------------------------------------------- 1. the brute force itself
def test_orthant_probability_against_closed_forms_and_scipy_cdf():
    # 1-D closed form and independence
    assert censored_prob([1.0], [[4.0]], [0.5], [-1]) == pytest.approx(norm.cdf(-0.25), rel=1e-14)
    assert censored_prob([1.0], [[4.0]], [0.5], [+1]) == pytest.approx(norm.sf(-0.25), rel=1e-14)
    p = censored_prob([0.0, 1.0], np.diag([1.0, 4.0]), [0.3, 2.0], [-1, +1])
    assert p == pytest.approx(norm.cdf(0.3) * norm.sf(0.5), rel=1e-11)
    # bivariate closed form at the origin: P(z1<0, z2<0) = 1/4 + arcsin(rho) / (2 pi)
    for rho in (-0.9, -0.3, 0.5, 0.95):
        C = np.array([[2.0, rho * np.sqrt(6)], [rho * np.sqrt(6), 3.0]])
        assert censored_prob([0, 0], C, [0, 0], [-1, -1]) == pytest.approx(
            0.25 + np.arcsin(rho) / (2 * np.pi), rel=1e-11)
        # lower limits on both: same as upper limits of -z (symmetry)
        assert censored_prob([0, 0], C, [0, 0], [1, 1]) == pytest.approx(
            0.25 + np.arcsin(rho) / (2 * np.pi), rel=1e-11)
    # trivariate closed form at the origin: 1/8 + (asin r12 + asin r13 + asin r23) / (4 pi)
    R = np.array([[1, 0.4, -0.3], [0.4, 1, 0.6], [-0.3, 0.6, 1]])
    sd = np.array([0.5, 2.0, 1.3])
    C = R * np.outer(sd, sd)
    expect = 1 / 8 + (np.arcsin(0.4) + np.arcsin(-0.3) + np.arcsin(0.6)) / (4 * np.pi)
    assert censored_prob([0, 0, 0], C, [0, 0, 0], [-1, -1, -1]) == pytest.approx(expect, rel=1e-9)
    for r in (0.9, 0.99, 0.999, -0.45):                     # equicorrelated, incl. near-singular
        C = np.full((3, 3), r) + (1 - r) * np.eye(3)
        expect = 1 / 8 + 3 * np.arcsin(r) / (4 * np.pi)
        assert censored_prob([0, 0, 0], C, [0, 0, 0], [-1, -1, -1]) == pytest.approx(expect, rel=1e-9)
    # general limits and mixed signs vs scipy's QMC cdf (with lower_limit for the +1 ones)
    rng = np.random.default_rng(0)
    for D in (2, 3):
        for _ in range(4):
            mu = rng.normal(0, 1, D)
            Sig = random_spd(rng, 1, D, 0.3, 2.0)[0]
            lim = rng.normal(0, 1, D)
            sign = rng.choice([-1, 1], D)
            upper = np.where(sign < 0, lim, np.inf)
            lower = np.where(sign > 0, lim, -np.inf)
            ref = multivariate_normal.cdf(upper, mu, Sig, lower_limit=lower, abseps=1e-10,
                                          releps=1e-10, maxpts=2_000_000 * D,
                                          rng=np.random.default_rng(1))
            assert censored_prob(mu, Sig, lim, sign) == pytest.approx(ref, rel=1e-5, abs=1e-8)


def test_bivariate_quadrature_against_plackett_identity():
    """Two independent quadratures of the bivariate orthant probability agree to ~1e-12:
    the nested quadrature over z_1 and Plackett's integral over the correlation,
    Phi2(a1, a2; rho) = Phi(a1) Phi(a2) + int_0^rho phi2(a1, a2; r) dr (adaptive quad)."""
    rng = np.random.default_rng(3)
    worst = 0.0
    for rho in [-0.98, -0.7, -0.2, -1e-4, 0.0, 3e-5, 0.3, 0.8, 0.97]:
        for _ in range(5):
            a1, a2 = rng.normal(0, 2, 2)
            sd = rng.uniform(0.3, 3, 2)
            C = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])

            def phi2(r, a1=a1, a2=a2):
                q = 1 - r * r
                return np.exp(-(a1 * a1 - 2 * r * a1 * a2 + a2 * a2) / (2 * q)) / (
                    2 * np.pi * np.sqrt(q))
            pl = special.ndtr(a1) * special.ndtr(a2) + integrate.quad(
                phi2, 0, rho, epsabs=0, epsrel=1e-13, limit=200)[0]
            got = censored_prob([0, 0], C, [a1 * sd[0], a2 * sd[1]], [-1, -1])
            worst = max(worst, abs(got - pl) / (pl + 1e-5))
    assert worst < 1e-10, worst


def test_brute_force_1d_mixture_closed_form_and_simulation():
    """D=1: P(y < l) = sum_k a_k Phi((l - m_k) / sqrt(V_k + S)); and the fraction of
    simulated noisy draws below l agrees within Monte Carlo error."""
    amp, mean, covar = np.array([0.3, 0.7]), np.array([[-1.0], [2.0]]), np.array([[[0.5]], [[2.0]]])
    S = np.array([[0.7]])
    for lim, s in [(0.5, -1), (0.5, +1), (-2.0, -1), (3.0, +1)]:
        closed = sum(a * (norm.cdf if s < 0 else norm.sf)((lim - m[0]) / np.sqrt(v[0, 0] + S[0, 0]))
                     for a, m, v in zip(amp, mean, covar))
        ll = exact_censored_loglik(amp, mean, covar, [[lim]], S, [[s]])[0]
        assert ll == pytest.approx(np.log(closed), abs=1e-13)
        rng = np.random.default_rng(5)
        y = draw_noisy(rng, amp, mean, covar, S, 400_000)[:, 0]
        frac = np.mean(y < lim) if s < 0 else np.mean(y > lim)
        se = np.sqrt(closed * (1 - closed) / len(y))
        assert abs(frac - closed) < 4 * se


@pytest.mark.parametrize("D, cens_row", [(2, [-1, -1]), (3, [1, -1, 1])])
def test_brute_force_fully_censored_row_against_simulation(D, cens_row):
    """All coordinates censored: the likelihood is the probability that the noisy
    observation lies in the orthant; compare with the fraction of simulated y."""
    rng = np.random.default_rng(7 + D)
    amp, mean, covar = random_mixture(rng, 2, D)
    S = random_spd(rng, 1, D, 0.1, 0.5)[0]
    lim = mean.T @ amp + rng.normal(0, 0.5, D)
    sign = np.array(cens_row)
    p = np.exp(exact_censored_loglik(amp, mean, covar, lim[None], S, sign[None])[0])
    y = draw_noisy(rng, amp, mean, covar, S, 400_000)
    frac = np.mean(np.all(np.where(sign < 0, y < lim, y > lim), axis=1))
    se = np.sqrt(p * (1 - p) / len(y))
    assert 0.02 < p < 0.98
    assert abs(frac - p) < 4 * se


@pytest.mark.parametrize("D, pattern", [(2, [0, -1]), (2, [1, 0]), (3, [0, -1, 1]),
                                        (3, [-1, 0, np.nan]), (3, [1, -1, -1])])
def test_brute_force_partial_row_against_importance_sampling_of_joint(D, pattern):
    """Measured + censored (+ missing) coordinates: the likelihood equals the integral of
    the *joint* density of (y_measured, y_censored) (missing ones marginalised) over the
    censored region. Estimate that integral by importance sampling with a broad Gaussian
    proposal for y_censored: no conditional Gaussian formulas involved."""
    rng = np.random.default_rng(100 + D + len(str(pattern)))
    amp, mean, covar = random_mixture(rng, 2, D)
    S = random_spd(rng, 1, D, 0.1, 0.5)[0]
    pattern = np.array(pattern, float)
    miss = np.isnan(pattern)
    cens = np.where(miss, 0, pattern).astype(int)
    o, c = (cens == 0) & ~miss, cens != 0
    row = draw_noisy(rng, amp, mean, covar, S, 1)[0]
    row[c] = row[c] - cens[c] * 0.4                        # limits beyond the observation
    row[miss] = np.nan
    ll = exact_censored_loglik(amp, mean, covar, row[None], S, cens[None])[0]
    keep = o | c                                          # marginalise missing coords
    n = 400_000
    mu_q = (mean.T @ amp)[c]
    sd_q = 2.0 * np.sqrt(np.diag(covar.max(axis=0) + S)[c])
    z = mu_q + sd_q * rng.standard_normal((n, c.sum()))
    logq = norm.logpdf(z, mu_q, sd_q).sum(axis=1)
    inside = np.all(np.where(cens[c] < 0, z < row[c], z > row[c]), axis=1)
    full = np.empty((n, keep.sum()))
    idx_o = np.flatnonzero(o[keep])
    idx_c = np.flatnonzero(c[keep])
    full[:, idx_o] = row[o]
    full[:, idx_c] = z
    joint = sum(a * multivariate_normal.pdf(full, m[keep], (V + S)[np.ix_(keep, keep)])
                for a, m, V in zip(amp, mean, covar))
    w = np.where(inside, joint / np.exp(logq), 0.0)
    est, se = w.mean(), w.std() / np.sqrt(n)
    assert se < 0.01 * est
    assert abs(est - np.exp(ll)) < 4 * se


# Far tails: log P(z < h) for z ~ N(0, R), R equicorrelated with r, from mpmath quadrature at
# 30-40 significant digits (nested mpmath.quad over the conditional normal CDFs; the
# (-9,-9,-9), r=0 entry is 3 log Phi(-9)). Probabilities 1e-30 .. 1e-82: tiny, but well
# inside double range, and what a censored row far from a component (or an outlier) needs.
TAIL_CASES = [
    ((-15, -15), 0.5, -156.3186412090096),
    ((-8, -8), -0.5, -135.2520398464743),
    ((-15, -15), 0.95, -120.2760289258298),
    ((-2, -2), -0.95, -88.07019390210117),
    ((-3, -3), -0.95, -188.8709400985428),
    ((-9, -9, -9), 0.0, -130.8844473399963),
    ((-6, -6, -6), -0.3, -145.7103433569804),
    ((-9, -9, -9), 0.5, -67.80246545353529),
    ((-11, -11, -11), 0.9, -70.32178174285711),
    ((-12, -12, -12), 0.5, -115.8624859912),
    ((-11, -2, 1), 0.6, -63.82493409761),
]


def _equicorr(r, n):
    return np.full((n, n), r) + (1 - r) * np.eye(n)


@pytest.mark.parametrize("h, r, ref", TAIL_CASES)
def test_brute_force_far_tails_against_mpmath(h, r, ref):
    n = len(h)
    got = censored_logprob(np.zeros(n), _equicorr(r, n), np.array(h, float), -np.ones(n))
    assert got == pytest.approx(ref, rel=1e-7)


# ---------------------------------------------------- 2. gmm.logL against the brute force
CASES = [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3)]


@pytest.mark.parametrize("noise", ["none", "shared", "per-sample"])
@pytest.mark.parametrize("D, n_cens", CASES)
def test_logL_matches_brute_force(D, n_cens, noise):
    rng = np.random.default_rng(1000 * D + 10 * n_cens + len(noise))
    K = 2 if D < 3 else 3
    amp, mean, covar = random_mixture(rng, K, D)
    N = 24 if n_cens < 3 else 8
    S = noise_for(noise, rng, N, D)
    y = draw_noisy(rng, amp, mean, covar, S, N)
    data, cens = censor_rows(rng, y, n_cens)
    assert (cens != 0).any() and (cens == 0).all(axis=1).any()
    if n_cens == 1:                                       # both kinds of limit present
        assert (cens < 0).any() and (cens > 0).any()
    g = make_gmm(amp, mean, covar)
    expect = exact_censored_loglik(amp, mean, covar, data, S, cens)
    got = g.logL(data, covar=S, censored=cens)
    atol = 1e-6 if n_cens == 3 else 1e-8
    np.testing.assert_allclose(got, expect, rtol=0, atol=atol)
    got_call = g(data, covar=S, censored=cens, as_log=True)
    np.testing.assert_allclose(got_call, expect, rtol=0, atol=atol)
    # rows in any order come back where they were
    perm = rng.permutation(N)
    Sp = S[perm] if S is not None and S.ndim == 3 else S
    np.testing.assert_allclose(g.logL(data[perm], covar=Sp, censored=cens[perm]), got[perm],
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("noise", ["none", "shared", "per-sample"])
def test_logL_with_nan_in_the_same_row_as_censored(noise):
    rng = np.random.default_rng(77 + len(noise))
    D, K, N = 3, 2, 30
    amp, mean, covar = random_mixture(rng, K, D)
    S = noise_for(noise, rng, N, D)
    y = draw_noisy(rng, amp, mean, covar, S, N)
    data, cens = y.copy(), np.zeros((N, D), int)
    for i in range(N):
        miss, c1, c2 = rng.permutation(D)
        data[i, miss] = np.nan
        kind = i % 3            # 0: 1 censored + 1 measured, 1: 2 censored, 2: 1 censored only
        for d in ([c1] if kind != 1 else [c1, c2]):
            s = rng.choice([-1, 1])
            cens[i, d] = s
            data[i, d] = y[i, d] - s * rng.uniform(0, 1)
        if kind == 2:
            data[i, c2] = np.nan
    g = make_gmm(amp, mean, covar)
    expect = exact_censored_loglik(amp, mean, covar, data, S, cens)
    np.testing.assert_allclose(g.logL(data, covar=S, censored=cens), expect, rtol=0, atol=1e-8)


@pytest.mark.parametrize("h, r, ref", TAIL_CASES)
def test_logL_far_tails_of_censored_rows(h, r, ref):
    """A row whose limits lie far in the tail of the (only) component: log P must be right
    to 1e-7 relative (P itself to ~1e-5), not -inf or off by orders of magnitude. Upper
    limits at h and (mirrored) lower limits at -h give the same probability."""
    n = len(h)
    g = make_gmm([1.0], np.zeros((1, n)), _equicorr(r, n)[None])
    got_up = g.logL(np.array([h], float), censored=-np.ones((1, n), int))[0]
    got_lo = g.logL(-np.array([h], float), censored=np.ones((1, n), int))[0]
    assert got_up == pytest.approx(ref, rel=1e-7)
    assert got_lo == pytest.approx(ref, rel=1e-7)


def test_fit_accepts_a_far_but_possible_censored_row():
    """One row with three upper limits 12 sd below a 3-D component (P ~ 1e-50 under the
    truth): the fit must not declare it impossible, and its logL is the exact one."""
    rng = np.random.default_rng(0)
    N = 500
    R = _equicorr(0.5, 3)
    X = rng.multivariate_normal(np.zeros(3), R, N)
    C = np.zeros((N, 3), int)
    X[0], C[0] = [-12.0, -12.0, -12.0], -1
    g = ng.GMM(K=1, D=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ng.fit(g, X, censored=C, rng=0, tol=1e-8)
    assert np.isfinite(res.logL)
    expect = exact_censored_loglik(g.amp, g.mean, g.covar, X, None, C).mean()
    assert res.logL == pytest.approx(expect, abs=1e-8)


# -------------------------------------------------------------- 3./4. brute-force ML fits
def _fit_ng(data, S, cens, K, D, **kw):
    g = ng.GMM(K=K, D=D)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ng.fit(g, data, covar=S, censored=cens, tol=1e-11, maxiter=100_000, rng=0, **kw)
    return g, res


def _minimize(fun, x0):
    r = optimize.minimize(fun, x0, method="BFGS", options=dict(gtol=1e-10, maxiter=10_000))
    r = optimize.minimize(fun, r.x, method="Nelder-Mead",
                          options=dict(xatol=1e-10, fatol=1e-15, maxiter=20_000, maxfev=40_000))
    return r


def test_1d_ml_fit_matches_brute_force_optimum():
    rng = np.random.default_rng(11)
    N = 400
    x = rng.normal(1.0, 2.0, N)
    s = rng.uniform(0.3, 1.0, N)
    y = x + s * rng.normal(size=N)
    data, cens = y.copy(), np.zeros(N, int)
    up, lo = y < 0.5, y > 4.5
    data[up], cens[up] = 0.5, -1
    data[lo], cens[lo] = 4.5, +1
    assert 0.25 < up.mean() < 0.45 and 0.03 < lo.mean() < 0.15
    meas = cens == 0

    def nll(p):
        m, sd = p[0], np.exp(p[1])
        t = np.sqrt(sd**2 + s**2)
        ll = np.where(meas, norm.logpdf(data, m, t), 0.0)
        ll += np.where(cens < 0, norm.logcdf((data - m) / t), 0.0)
        ll += np.where(cens > 0, norm.logsf((data - m) / t), 0.0)
        return -ll.mean()

    r = _minimize(nll, [data.mean(), np.log(data.std())])
    m_bf, sd_bf, logL_bf = r.x[0], np.exp(r.x[1]), -r.fun
    S = (s**2)[:, None, None]
    g, res = _fit_ng(data[:, None], S, cens[:, None], 1, 1)
    assert res.converged
    assert g.mean[0, 0] == pytest.approx(m_bf, abs=1e-3)
    assert np.sqrt(g.covar[0, 0, 0]) == pytest.approx(sd_bf, abs=1e-3)
    assert res.logL == pytest.approx(logL_bf, abs=1e-6)
    # the reported logL is the exact censored likelihood at the returned parameters
    assert res.logL == pytest.approx(-nll([g.mean[0, 0], 0.5 * np.log(g.covar[0, 0, 0])]), abs=1e-9)
    assert res.logL <= logL_bf + 1e-9


def _chol_params(p):
    m = p[:2]
    L = np.array([[np.exp(p[2]), 0.0], [p[3], np.exp(p[4])]])
    return m, L @ L.T


def _bvn_upper_prob(a1, a2, rho, n=40):
    """P(z1 < a1, z2 < a2) for standard bivariate normals of correlation rho (vectorised),
    by Plackett's identity  d/drho Phi2 = phi2:  Phi(a1) Phi(a2) + int_0^rho phi2(a1, a2; r) dr
    (Gauss-Legendre in r). Checked against the quadrature brute force in the 2-D test."""
    x, w = np.polynomial.legendre.leggauss(n)
    r = 0.5 * rho[:, None] * (x[None] + 1)                 # nodes on [0, rho]
    q = 1 - r**2
    a1, a2 = a1[:, None], a2[:, None]
    phi2 = np.exp(-(a1**2 - 2 * r * a1 * a2 + a2**2) / (2 * q)) / (2 * np.pi * np.sqrt(q))
    return norm.cdf(a1[:, 0]) * norm.cdf(a2[:, 0]) + 0.5 * rho * (phi2 @ w)


def censored_loglik_2d_vectorised(m, V, data, s2, cens):
    """Exact log-likelihood (N,) for K=1, D=2, diagonal noise s2 (N, 2), any censoring
    pattern in {0,-1,+1}^2 (used as the fast objective of the brute-force ML fit)."""
    T = V[None] + s2[:, :, None] * np.eye(2)[None]          # (N, 2, 2)
    out = np.empty(len(data))
    c0, c1 = cens[:, 0] != 0, cens[:, 1] != 0
    # both measured
    b = ~c0 & ~c1
    if b.any():
        r = data[b] - m
        Tb = T[b]
        det = Tb[:, 0, 0] * Tb[:, 1, 1] - Tb[:, 0, 1] ** 2
        q = (Tb[:, 1, 1] * r[:, 0] ** 2 - 2 * Tb[:, 0, 1] * r[:, 0] * r[:, 1]
             + Tb[:, 0, 0] * r[:, 1] ** 2) / det
        out[b] = -np.log(2 * np.pi) - 0.5 * np.log(det) - 0.5 * q
    # exactly one censored: marginal of the measured one times conditional tail
    for mc, cc in ((0, 1), (1, 0)):
        sel = (cens[:, mc] == 0) & (cens[:, cc] != 0)
        if not sel.any():
            continue
        Ts = T[sel]
        too, toc, tcc = Ts[:, mc, mc], Ts[:, mc, cc], Ts[:, cc, cc]
        r = data[sel, mc] - m[mc]
        mu = m[cc] + toc / too * r
        sd = np.sqrt(tcc - toc**2 / too)
        z = (data[sel, cc] - mu) / sd
        out[sel] = norm.logpdf(data[sel, mc], m[mc], np.sqrt(too)) + np.where(
            cens[sel, cc] < 0, norm.logcdf(z), norm.logsf(z))
    # both censored: orthant probability of the bivariate normal
    b = c0 & c1
    if b.any():
        Tb = T[b]
        f = -cens[b].astype(float)                            # f y < f l
        sd = np.sqrt(np.stack([Tb[:, 0, 0], Tb[:, 1, 1]], 1))
        a = f * (data[b] - m) / sd
        rho = f[:, 0] * f[:, 1] * Tb[:, 0, 1] / (sd[:, 0] * sd[:, 1])
        out[b] = np.log(_bvn_upper_prob(a[:, 0], a[:, 1], rho))
    return out


def _ml_2d(data, s2, cens):
    def nll(p):
        m, V = _chol_params(p)
        return -censored_loglik_2d_vectorised(m, V, data, s2, cens).mean()

    meas = (cens == 0).all(axis=1)
    C0 = np.cov(data[meas].T)
    L0 = np.linalg.cholesky(C0)
    p0 = [*data[meas].mean(0), np.log(L0[0, 0]), L0[1, 0], np.log(L0[1, 1])]
    r = _minimize(nll, p0)
    m, V = _chol_params(r.x)
    return m, V, -r.fun, nll


def _simulate_2d(seed, N, both):
    rng = np.random.default_rng(seed)
    m_true = np.array([1.0, -0.5])
    V_true = np.array([[2.0, -0.9], [-0.9, 1.5]])
    x = rng.multivariate_normal(m_true, V_true, N)
    s2 = rng.uniform(0.1, 0.6, (N, 2)) ** 2
    y = x + np.sqrt(s2) * rng.normal(size=(N, 2))
    data, cens = y.copy(), np.zeros((N, 2), int)
    up = y[:, 1] < -1.0                                     # detection limit on feature 1
    data[up, 1], cens[up, 1] = -1.0, -1
    if both:
        lo = y[:, 0] > 2.2                                  # and a lower limit on feature 0
        data[lo, 0], cens[lo, 0] = 2.2, +1
    return data, s2, cens


def test_2d_brute_force_objective_is_the_exact_likelihood():
    """The fast vectorised objective of the 2-D ML tests equals exact_censored_loglik."""
    data, s2, cens = _simulate_2d(3, 120, both=True)
    assert ((cens != 0).all(axis=1)).sum() >= 3
    m, V = np.array([0.8, -0.3]), np.array([[1.7, 0.6], [0.6, 1.2]])
    fast = censored_loglik_2d_vectorised(m, V, data, s2, cens)
    S = s2[:, :, None] * np.eye(2)
    exact = exact_censored_loglik([1.0], m[None], V[None], data, S, cens)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-11)


@pytest.mark.parametrize("both", [False, True], ids=["one-feature", "both-features"])
def test_2d_ml_fit_matches_brute_force_optimum(both):
    data, s2, cens = _simulate_2d(21, 500, both)
    frac1 = (cens[:, 1] != 0).mean()
    assert 0.2 < frac1 < 0.4
    if both:
        assert 0.1 < (cens[:, 0] != 0).mean() and ((cens != 0).all(axis=1)).sum() >= 5
    m_bf, V_bf, logL_bf, nll = _ml_2d(data, s2, cens)
    S = s2[:, :, None] * np.eye(2)
    g, res = _fit_ng(data, S, cens, 1, 2)
    assert res.converged
    np.testing.assert_allclose(g.mean[0], m_bf, rtol=0, atol=1e-3)
    np.testing.assert_allclose(g.covar[0], V_bf, rtol=0, atol=1e-3)
    assert res.logL == pytest.approx(logL_bf, abs=1e-6)
    exact_at_fit = censored_loglik_2d_vectorised(g.mean[0], g.covar[0], data, s2, cens).mean()
    assert res.logL == pytest.approx(exact_at_fit, abs=1e-9)
    assert res.logL <= logL_bf + 1e-9


def test_3d_fit_with_up_to_three_limits_is_a_stationary_point_of_exact_likelihood():
    """K=1, D=3, per-sample noise, limits of both kinds on all three features (rows with
    0, 1, 2 and 3 limited values). A brute-force optimiser would be slow here, so check
    the defining property instead: at the converged fit the exact likelihood's
    directional derivatives (central differences in mean and Cholesky parameters) vanish,
    while at the truth they do not."""
    rng = np.random.default_rng(5)
    N = 150
    m = np.array([0.0, 1.0, -1.0])
    V = np.array([[1.0, 0.5, 0.3], [0.5, 1.5, -0.4], [0.3, -0.4, 1.2]])
    x = rng.multivariate_normal(m, V, N)
    s2 = rng.uniform(0.1, 0.5, (N, 3)) ** 2
    y = x + np.sqrt(s2) * rng.normal(size=(N, 3))
    S = s2[:, :, None] * np.eye(3)
    data, cens = y.copy(), np.zeros((N, 3), int)
    for d, (lim, s) in enumerate([(-0.3, -1), (1.6, 1), (-1.3, -1)]):
        sel = y[:, d] < lim if s < 0 else y[:, d] > lim
        data[sel, d], cens[sel, d] = lim, s
    assert (np.bincount((cens != 0).sum(1), minlength=4) >= 10).all()
    g = ng.GMM(K=1, D=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ng.fit(g, data, covar=S, censored=cens, rng=0, tol=1e-13, maxiter=100_000)
    assert res.converged

    def pack(mm, VV):
        L = np.linalg.cholesky(VV)
        return np.r_[mm, np.log(np.diag(L)), L[1, 0], L[2, 0], L[2, 1]]

    def f(p):
        L = np.diag(np.exp(p[3:6]))
        L[1, 0], L[2, 0], L[2, 1] = p[6:9]
        return exact_censored_loglik([1.0], p[None, :3], (L @ L.T)[None], data, S, cens).mean()

    def dderiv(p, u, h=1e-5):
        return (f(p + h * u) - f(p - h * u)) / (2 * h)

    p_fit = pack(g.mean[0], g.covar[0])
    assert res.logL == pytest.approx(f(p_fit), abs=1e-9)
    dirs = rng.normal(size=(3, 9))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    at_fit = [dderiv(p_fit, u) for u in dirs]
    assert np.abs(at_fit).max() < 1e-5, at_fit
    assert abs(dderiv(pack(m, V), dirs[0])) > 1e-3


# ------------------------------------------------------------------------- 5. recovery
def test_recovery_with_detection_limit_beats_dropping_censored_rows():
    rng = np.random.default_rng(2024)
    N = 4000
    amp = np.array([0.5, 0.5])
    mean = np.array([[0.0, 0.0], [6.0, 4.0]])
    covar = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 1.0]]])
    S = rng.uniform(0.05, 0.3, (N, 2)) ** 2
    S = S[:, :, None] * np.eye(2)
    y = draw_noisy(rng, amp, mean, covar, S, N)
    limit = np.quantile(y[:, 1], 0.4)                       # detection limit on feature 1
    up = y[:, 1] < limit
    data, cens = y.copy(), np.zeros((N, 2), int)
    data[up, 1], cens[up, 1] = limit, -1
    assert abs(up.mean() - 0.4) < 0.01

    def sorted_fit(X, SS, C):
        g = ng.GMM(K=2, D=2)
        kw = {} if C is None else {"censored": C}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ng.fit(g, X, covar=SS, init_method="kmeans", tol=1e-8, maxiter=5000, rng=0, **kw)
        o = np.argsort(g.mean[:, 0])
        return g.amp[o], g.mean[o], g.covar[o]

    a_c, m_c, V_c = sorted_fit(data, S, cens)
    a_d, m_d, V_d = sorted_fit(y[~up], S[~up], None)
    err_c = np.abs(m_c - mean).max()
    err_d = np.abs(m_d - mean).max()
    assert err_c < 0.1, (m_c, mean)
    assert np.abs(a_c - amp).max() < 0.03
    assert np.abs(V_c - covar).max() < 0.2
    assert err_d > 0.5 and err_d > 5 * err_c


# ---------------------------------------------------------------------- 6. monotone EM
@pytest.mark.parametrize("accelerate", [False, True])
def test_logL_history_is_monotone(accelerate):
    rng = np.random.default_rng(8)
    N, D = 1500, 2
    amp = np.array([0.4, 0.6])
    mean = np.array([[0.0, 0.0], [3.0, 2.0]])
    covar = np.array([[[1.0, 0.4], [0.4, 0.8]], [[0.7, -0.2], [-0.2, 1.2]]])
    S = rng.uniform(0.1, 0.4, (N, 2)) ** 2
    S = S[:, :, None] * np.eye(2)
    y = draw_noisy(rng, amp, mean, covar, S, N)
    data, cens = y.copy(), np.zeros((N, D), int)
    up = y[:, 1] < 0.5
    lo = y[:, 0] > 3.5
    data[up, 1], cens[up, 1] = 0.5, -1
    data[lo, 0], cens[lo, 0] = 3.5, +1
    assert (up & lo).sum() > 10
    g = ng.GMM(K=2, D=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ng.fit(g, data, covar=S, censored=cens, init_method="random", tol=1e-10,
                     maxiter=300, rng=3, accelerate=accelerate)
    h = np.asarray(res.history)
    assert len(h) > 5
    steps = np.diff(h)
    assert steps.min() >= -1e-10 * np.abs(h).max(), steps.min()
    assert res.logL == pytest.approx(h[-1], abs=1e-12)
    expect = exact_censored_loglik(g.amp, g.mean, g.covar, data, S, cens).mean()
    assert res.logL == pytest.approx(expect, abs=1e-8)
