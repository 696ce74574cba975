"""Censored values: the orthant kernels, the E-step against the missing-value path, what a
censored fit composes with and what it refuses (brute-force maximum likelihood:
tests/test_censored_truth.py)."""
import warnings

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import multivariate_normal as mvn
from scipy.stats import norm

import pygmmis_ng as ng
from pygmmis_ng.data.layout import make_layout, sorted_rows
from pygmmis_ng.data.observed import chunk_stats, group_components
from pygmmis_ng.kernels import censored as cz
from pygmmis_ng.kernels import normal_cdf, orthant
from pygmmis_ng.kernels.stats import Components


def _corr(rng, n):
    A = rng.normal(size=(n, n))
    C = A @ A.T + 0.1 * np.eye(n)
    d = np.sqrt(np.diag(C))
    return C / np.outer(d, d)


def test_log_ndtr_both_tails():
    from scipy.special import log_ndtr
    for x in (-80.0, -37.5, -37.0, -20.0, -5.0, -1.0, 0.0, 2.0, 9.0, 30.0):
        assert normal_cdf.log_ndtr(x) == pytest.approx(log_ndtr(x), rel=1e-12, abs=1e-300)


def test_bivariate_cdf_against_scipy():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h = rng.normal(size=2) * 2.5
        r = rng.uniform(-0.995, 0.995)
        ref = mvn.cdf(h, np.zeros(2), [[1, r], [r, 1]], abseps=1e-12, releps=1e-12)
        assert abs(orthant.orthant_probability(h, [[1, r], [r, 1]]) - ref) < 1e-12


def test_trivariate_cdf_against_adaptive_quadrature():
    """Phi_3 = int phi(t) Phi_2(conditional limits) dt, integrated adaptively by scipy."""
    rng = np.random.default_rng(1)
    for _ in range(15):
        h, R = rng.normal(size=3) * 2, _corr(rng, 3)
        s1, s2 = np.sqrt(1 - R[0, 1] ** 2), np.sqrt(1 - R[0, 2] ** 2)
        rc = (R[1, 2] - R[0, 1] * R[0, 2]) / (s1 * s2)

        def f(t, h=h, R=R, s1=s1, s2=s2, rc=rc):
            return norm.pdf(t) * mvn.cdf([(h[1] - R[0, 1] * t) / s1, (h[2] - R[0, 2] * t) / s2],
                                         np.zeros(2), [[1, rc], [rc, 1]], abseps=1e-13,
                                         releps=1e-13)
        ref = quad(f, -np.inf, h[0], epsabs=1e-13, limit=200)[0]
        assert abs(orthant.orthant_probability(h, R) - ref) < 1e-9


@pytest.mark.parametrize("n", [1, 2, 3])
def test_truncated_moments_against_numerical_integration(n):
    """E[z], E[z z^T] of z < h by importance-free quadrature: one dimension by quad, two and
    three by the identity with a finite difference of log P (d log P / d h_j = F_j)."""
    rng = np.random.default_rng(2 + n)
    h, R = rng.normal(size=n) + 1.0, _corr(rng, n) if n > 1 else np.ones((1, 1))
    lp, mz, Mzz = orthant.truncated_moments(h, R)
    P = np.exp(lp)
    if n == 1:
        m1 = quad(lambda z: z * norm.pdf(z), -np.inf, h[0])[0] / P
        m2 = quad(lambda z: z * z * norm.pdf(z), -np.inf, h[0])[0] / P
        assert mz[0] == pytest.approx(m1, abs=1e-10)
        assert Mzz[0, 0] == pytest.approx(m2, abs=1e-10)
        return
    # E[z] = -R grad log P (Tallis): check with a central difference of the exact log P
    eps = 1e-5
    grad = np.array([(orthant.truncated_moments(h + eps * e, R)[0]
                      - orthant.truncated_moments(h - eps * e, R)[0]) / (2 * eps)
                     for e in np.eye(n)])
    np.testing.assert_allclose(mz, -R @ grad, atol=1e-7)
    # and the second moments against a large Monte-Carlo sample (its error ~ 2e-3)
    z = np.random.default_rng(9).multivariate_normal(np.zeros(n), R, size=2_000_000)
    zz = z[(z < h).all(axis=1)]
    np.testing.assert_allclose(Mzz, zz.T @ zz / len(zz), atol=1e-2)
    assert lp == pytest.approx(np.log(len(zz) / len(z)), abs=1e-2)


def _problem(rng, n=60, K=3, D=3):
    mean = rng.normal(size=(K, D))
    A = rng.normal(size=(K, D, D))
    covar = A @ A.transpose(0, 2, 1) + 0.3 * np.eye(D)
    amp = rng.dirichlet(np.ones(K))
    y = rng.normal(size=(n, D)) * 1.5
    B = rng.normal(size=(n, D, D)) * 0.3
    S = B @ B.transpose(0, 2, 1) + 0.05 * np.eye(D)
    return amp, mean, covar, y, S


def _nan_stats(y, S, amp, mean, covar):
    K, D = mean.shape
    lay = make_layout(y, None, S, K, D)
    Xs, Ss, _, _ = sorted_rows(lay.order, y, S)
    total = None
    for g in lay.groups:
        c = group_components(g, amp, mean, covar, True, False)
        for sl in g.chunks:
            part = chunk_stats(g, sl, Xs, Ss, None, c, None, None, None, None)
            total = part if total is None else total.__iadd__(part)
    return total


@pytest.mark.parametrize("cens", [[0, -1, 0], [1, 0, -1], [-1, -1, 0]])
def test_far_limits_are_missing_values(cens):
    """Limits far beyond every component carry no information: the log densities and the
    E-step sums equal those of the samples with those values missing (NaN path)."""
    rng = np.random.default_rng(4)
    amp, mean, covar, y, S = _problem(rng)
    cens = np.array(cens)
    yl, yn = y.copy(), y.copy()
    yl[:, cens != 0] = -1e3 * cens[cens != 0]          # far below an upper limit's side
    yn[:, cens != 0] = np.nan
    comps = Components(np.log(amp), mean, covar, None, None, covar, covar)
    st = cz.chunk_stats(yl, S, cens.astype(np.int8), comps)
    ref = _nan_stats(yn, S, amp, mean, covar)
    assert st.logL == pytest.approx(ref.logL, rel=1e-12)
    np.testing.assert_allclose(st.A, ref.A, rtol=1e-11)
    np.testing.assert_allclose(st.Mc, ref.Mc, atol=1e-10)
    np.testing.assert_allclose(st.Cc, ref.Cc, atol=1e-10)


def test_three_far_limits_carry_no_information():
    rng = np.random.default_rng(4)
    amp, mean, covar, y, S = _problem(rng)
    cens = np.array([-1, 1, -1], dtype=np.int8)
    comps = Components(np.log(amp), mean, covar, None, None, covar, covar)
    st = cz.chunk_stats(-1e3 * cens * np.ones_like(y), S, cens, comps)
    assert abs(st.logL) < 1e-12
    np.testing.assert_allclose(st.A, amp * len(y), rtol=1e-12)
    np.testing.assert_allclose(st.Mc, 0, atol=1e-9)


def test_log_density_against_scipy():
    rng = np.random.default_rng(5)
    amp, mean, covar, y, S = _problem(rng, n=8)
    g = ng.GMM(K=3, D=3)
    g.amp, g.mean, g.covar = amp, mean, covar
    C = np.tile([0, -1, 1], (8, 1))
    got = g.logL(y, covar=S, censored=C)
    for i in range(8):
        tot = 0.0
        for k in range(3):
            T = covar[k] + S[i]
            A = np.linalg.solve(T[:1, :1], T[:1, 1:])
            mu = mean[k, 1:] + A.T @ (y[i, :1] - mean[k, :1])
            Sc = T[1:, 1:] - T[1:, :1] @ A
            sg = np.array([1.0, -1.0])
            P = mvn.cdf(sg * y[i, 1:], sg * mu, Sc * np.outer(sg, sg), abseps=1e-13,
                        releps=1e-13)
            tot += amp[k] * norm.pdf(y[i, 0], mean[k, 0], np.sqrt(T[0, 0])) * P
        assert got[i] == pytest.approx(np.log(tot), rel=1e-10)


def _censored_data(N=1500, seed=1, noise=True):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(N)[:, None] < 0.5, rng.normal([0, 0], 1, (N, 2)),
                 rng.normal([3, 2], [1, 0.5], (N, 2)))
    sig = rng.uniform(0.2, 0.6, (N, 2))
    y = x + sig * rng.normal(size=(N, 2)) if noise else x
    S = np.zeros((N, 2, 2))
    S[:, 0, 0], S[:, 1, 1] = sig[:, 0] ** 2, sig[:, 1] ** 2
    C = np.zeros((N, 2), dtype=int)
    below = y[:, 1] < 1.0
    C[below, 1] = -1
    y[below, 1] = 1.0
    return y, (S if noise else None), C


def test_no_censoring_is_the_uncensored_fit_bitwise():
    y, S, _ = _censored_data()
    g1, g2 = ng.GMM(K=2, D=2), ng.GMM(K=2, D=2)
    r1 = ng.fit(g1, y, covar=S, rng=3)
    r2 = ng.fit(g2, y, covar=S, rng=3, censored=np.zeros(y.shape, dtype=int))
    assert r1.logL == r2.logL
    assert (g1.mean == g2.mean).all() and (g1.covar == g2.covar).all()


def test_void_limits_are_missing_values():
    y, S, C = _censored_data(N=600)
    y_inf, y_nan = y.copy(), y.copy()
    C2 = C.copy()
    C2[:50, 0] = -1
    y_inf[:50, 0], y_nan[:50, 0] = np.inf, np.nan
    g1, g2 = ng.GMM(K=2, D=2), ng.GMM(K=2, D=2)
    r1 = ng.fit(g1, y_inf, covar=S, censored=C2, rng=0)
    r2 = ng.fit(g2, y_nan, covar=S, censored=C, rng=0)
    assert r1.logL == r2.logL and (g1.mean == g2.mean).all()


def test_fit_is_monotone_and_above_the_truth():
    y, S, C = _censored_data()
    g = ng.GMM(K=2, D=2)
    res = ng.fit(g, y, covar=S, censored=C, rng=0, tol=1e-8, accelerate=False)
    h = np.asarray(res.history)
    assert (np.diff(h) >= -1e-12 * abs(h[-1])).all()
    truth = ng.GMM(K=2, D=2)
    truth.amp, truth.mean = [0.5, 0.5], [[0, 0], [3, 2]]
    truth.covar = np.array([np.eye(2), np.diag([1, 0.25])])
    assert res.logL == pytest.approx(g.logL(y, covar=S, censored=C).mean(), rel=1e-12)
    assert res.logL > truth.logL(y, covar=S, censored=C).mean()


@pytest.mark.parametrize("kw", [dict(n_jobs=2), dict(covariance_type="diag"),
                                dict(covariance_type="tied"), dict(frozen={"mean": [0]}),
                                dict(sample_weight=np.linspace(0.5, 2, 1500))])
def test_composes(kw):
    """n_jobs is bitwise; the covariance families, frozen parameters and weights run and land
    at least as high as their start (a common monotone check)."""
    y, S, C = _censored_data()
    g = ng.GMM(K=2, D=2)
    if "frozen" in kw:
        g.amp, g.mean, g.covar = [0.4, 0.6], [[0.5, 0.5], [2, 2]], np.array([np.eye(2)] * 2)
        kw = dict(kw, init_method="none")
    res = ng.fit(g, y, covar=S, censored=C, rng=0, **kw)
    if "n_jobs" in kw:
        g1 = ng.GMM(K=2, D=2)
        r1 = ng.fit(g1, y, covar=S, censored=C, rng=0)
        assert r1.logL == res.logL and (g1.covar == g.covar).all()
    else:
        assert res.logL >= res.history[0]
    if "frozen" in kw:
        assert (g.mean[0] == [0.5, 0.5]).all() and (g.mean[1] != [2, 2]).all()
    if kw.get("covariance_type") == "diag":
        assert (g.covar[:, 0, 1] == 0).all()


def test_background_fraction_of_a_limit():
    """The censored term of the background: the probability that a uniform value plus noise
    lies beyond the limit, against numerical integration."""
    bg = ng.Background([[-2.0, 0.0], [3.0, 4.0]])
    x = np.array([[0.5, 1.0], [1.0, 3.5], [0.0, -1.0]])
    s = np.array([0.3, 0.5])
    S = np.diag(s**2)
    got = bg.log_density(x, S, censored=np.array([0, -1]))
    for i in range(3):
        frac = quad(lambda t, i=i: norm.cdf((x[i, 1] - t) / s[1]), 0.0, 4.0)[0] / 4.0
        dens = (norm.cdf((x[i, 0] + 2) / s[0]) - norm.cdf((x[i, 0] - 3) / s[0])) / 5.0
        assert got[i] == pytest.approx(np.log(frac * dens), rel=1e-9)
    up = bg.log_density(x, None, censored=np.array([0, 1]))
    np.testing.assert_allclose(np.exp(up), [(4 - 1) / 4 / 5, (4 - 3.5) / 4 / 5, 1 / 5])


def test_background_and_imputation_compose():
    y, S, C = _censored_data(N=1200)
    bg = ng.Background([[-5.0, -5.0], [8.0, 6.0]], amp=0.05)
    g = ng.GMM(K=2, D=2)
    res = ng.fit(g, y, covar=S, censored=C, background=bg, rng=0)
    assert np.isfinite(res.logL) and 0 <= bg.amp < 0.05
    sel = lambda X: (X[:, 0] > -1.5).astype(float)      # noqa: E731
    keep = sel(y) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g2 = ng.GMM(K=2, D=2)
        r2 = ng.fit(g2, y[keep], covar=S[keep], censored=C[keep], sel_callback=sel,
                    covar_callback=lambda X: np.diag([0.16, 0.16]), rng=0, maxiter=60)
    assert np.isfinite(r2.logL) and r2.orig_size > keep.sum()


def test_refused_combinations_say_why():
    y, S, C = _censored_data(N=100)
    g = ng.GMM(K=2, D=2)
    g.amp, g.mean, g.covar = [0.5, 0.5], [[0, 0], [1, 1]], np.array([np.eye(2)] * 2)
    with pytest.raises(ValueError, match="cutoff"):
        ng.fit(g, y, covar=S, censored=C, cutoff=3)
    with pytest.raises(ValueError, match="R \\(projections\\)"):
        ng.fit(g, y, covar=S, censored=C, R=np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        ng.fit(g, y, censored=C[:, :1])
    with pytest.raises(ValueError, match="censored\\[0, 0\\] = 2"):
        ng.fit(g, y, censored=np.full(y.shape, 2))
    bad = y.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ng.fit(g, bad, censored=np.full(y.shape, -1))
    bad[0, 1] = -np.inf
    with pytest.raises(ValueError, match="upper limit of -inf"):
        ng.fit(g, bad, censored=np.full(y.shape, -1))
    with pytest.raises(ValueError, match="dtype bool"):
        ng.fit(g, y, censored=np.zeros(y.shape, dtype=bool))
    assert (g.mean == [[0, 0], [1, 1]]).all()            # the GMM was not touched


def test_estimator_and_cross_validation():
    y, S, C = _censored_data(N=900)
    est = ng.IncompleteGaussianMixture(2, random_state=0).fit(y, covar=S, censored=C)
    g = est.gmm_
    np.testing.assert_allclose(est.score_samples(y, covar=S, censored=C),
                               g.logL(y, covar=S, censored=C))
    q = est.predict_proba(y[:5], covar=S[:5], censored=C[:5])
    np.testing.assert_allclose(q, g.responsibilities(y[:5], covar=S[:5], censored=C[:5]))
    lcv = ng.cv_fit(ng.GMM(K=2, D=2), y, L=3, covar=S, censored=C, rng=0)
    assert lcv.shape == (900,) and np.isfinite(lcv).all()
    # a held-out sample's value is its censored likelihood: below the full-data fit's on average
    assert lcv.mean() < g.logL(y, covar=S, censored=C).mean()


@pytest.mark.parametrize("dy, noise", [(d, n) for d in (1, 2, 3, 4) for n in
                                       ("per_sample", "shared", None)] + [(6, "shared"),
                                                                          (8, None)])
@pytest.mark.parametrize("side", [-1, 1])
def test_lane_kernel_of_one_limit_equals_the_general_kernel(dy, side, noise):
    """The lane kernels of one limit, the last value (erfcx by a Chebyshev series, lower
    limits as upper limits of -y; per-sample noise up to dy = 4, shared or none up to 8)
    against the general kernel (math.erfc, any pattern, no lanes)."""
    from pygmmis_ng.kernels.compiled_transforms import deconvolve

    rng = np.random.default_rng(dy * 10 + side + 3)
    amp, mean, covar, y, S = _problem(rng, n=300, K=4, D=dy)
    y = y + rng.normal(size=y.shape)                 # limits on both sides of the components
    S = {"per_sample": S, "shared": S[0], None: None}[noise]
    weight = rng.uniform(0.5, 2.0, len(y))
    log_bg = np.log(0.05) + rng.normal(size=len(y))
    cens = np.zeros(dy, dtype=np.int8)
    cens[-1] = side
    comps = Components(np.log(amp), mean, covar, None, None, covar, covar)
    got = cz.chunk_stats(y, S, cens, comps, weight, log_bg)
    _, _, A, SU, SW, sums = cz._run(y, S, cens, comps, weight, log_bg, True)
    Mc, Cc = deconvolve(covar, covar, A, SU, 0.5 * (SW + np.swapaxes(SW, 1, 2)))
    assert got.logL == pytest.approx(sums[0], rel=1e-11)
    assert got.B == pytest.approx(sums[1], rel=1e-9)
    # (the lane kernels drop members below 1e-13 of a sample's total: A to ~1e-13 per sample)
    np.testing.assert_allclose(got.A, A, rtol=1e-9, atol=1e-11 * len(y))
    np.testing.assert_allclose(got.Mc, Mc, rtol=1e-8, atol=1e-9 * np.abs(Mc).max())
    np.testing.assert_allclose(got.Cc, Cc, rtol=1e-8, atol=1e-9 * np.abs(Cc).max())


def test_the_lane_kernel_of_one_limit_is_simd(monkeypatch):
    """Packed square roots or divisions in its compiled code (not one value at a time)."""
    import platform
    import re

    from pygmmis_ng.kernels import fused
    from pygmmis_ng.kernels.algebra import Spec

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("reads x86 assembly")
    monkeypatch.setattr(fused, "_cache_dir", lambda: None)
    spec = Spec("lanes", "censored", "full", 3)
    kernel = fused._load(spec)
    monkeypatch.setattr(fused, "kernel", lambda s: kernel)
    rng = np.random.default_rng(0)
    amp, mean, covar, y, S = _problem(rng, n=70, K=2, D=3)
    fused.stats_censored(y, S, None, None, mean, covar, np.log(amp), covar, covar)
    asm = "\n".join(kernel.inspect_asm().values())
    assert re.search(r"v?(sqrt|div)pd\s+%[xyz]mm", asm)


def test_partial_fit_pieces_with_limits_equal_one_online_pass():
    """partial_fit takes the limits of each piece; the pieces equal fit with batch_size over
    the same minibatches in row order (as without limits), and the estimator's partial_fit
    keeps the limits of every call."""
    from pygmmis_ng.fitting.partial import partial_fit

    y, S, C = _censored_data(N=3000)
    init = ng.GMM(K=2, D=2)
    init.amp, init.mean, init.covar = [0.5, 0.5], [[0.5, 0.5], [2.5, 1.5]], np.array([np.eye(2)] * 2)
    whole = init.copy()
    ng.fit(whole, y, covar=S, censored=C, init_method="none", batch_size=1000, n_passes=1,
           shuffle=False, tol=0, rng=1)
    pieces, state = init.copy(), None
    for lo in range(0, len(y), 1000):
        sl = slice(lo, lo + 1000)
        state = partial_fit(pieces, y[sl], covar=S[sl], censored=C[sl], state=state,
                            batch_size=1000, init_method="none", rng=1).state
    np.testing.assert_allclose(pieces.mean, whole.mean, rtol=1e-10)
    np.testing.assert_allclose(pieces.covar, whole.covar, rtol=1e-10)
    plain = init.copy()                                  # the limits did change the updates
    ng.fit(plain, y, covar=S, init_method="none", batch_size=1000, n_passes=1,
           shuffle=False, tol=0, rng=1)
    assert np.abs(plain.mean - whole.mean).max() > 0.05
    est = ng.IncompleteGaussianMixture(2, batch_size=1000, random_state=0)
    for lo in range(0, len(y), 1000):
        sl = slice(lo, lo + 1000)
        est.partial_fit(y[sl], covar=S[sl], censored=C[sl])
    assert est.n_steps_ == 3 and np.isfinite(est.score(y, covar=S, censored=C))


def test_generative_classifier_with_limits():
    """Two classes that differ in the limited band: with the limits the classifier is the
    Bayes rule of its per-class censored densities, and classifies fresh censored samples
    better than one fitted and evaluated with the limits taken as values."""
    rng = np.random.default_rng(5)
    # class 1: shifted down in band 2, so more of its samples are limits
    labels = (rng.random(3000) < 0.5).astype(int)
    x2 = rng.normal(0, 1, (3000, 2)) + np.where(labels[:, None] == 1, [0.0, -0.5], [0.0, 1.5])
    y2 = x2 + 0.3 * rng.normal(size=x2.shape)
    C2 = np.zeros((3000, 2), dtype=int)
    below = y2[:, 1] < 1.0
    C2[below, 1], y2[below, 1] = -1, 1.0
    train, test = slice(0, 2000), slice(2000, None)
    Sd = np.diag([0.09, 0.09])
    clf = ng.GenerativeClassifier(1, random_state=0).fit(y2[train], labels[train], covar=Sd,
                                                         censored=C2[train])
    proba = clf.predict_proba(y2[test], covar=Sd, censored=C2[test])
    joint = np.column_stack([est.score_samples(y2[test], covar=Sd, censored=C2[test])
                             for est in clf.estimators_]) + np.log(clf.class_prior_)
    np.testing.assert_allclose(proba, np.exp(joint - np.logaddexp.reduce(joint, axis=1)[:, None]))
    naive = ng.GenerativeClassifier(1, random_state=0).fit(y2[train], labels[train], covar=Sd)
    acc = (clf.predict(y2[test], covar=Sd, censored=C2[test]) == labels[test]).mean()
    acc_naive = (naive.predict(y2[test], covar=Sd) == labels[test]).mean()
    assert acc >= acc_naive and acc > 0.7
