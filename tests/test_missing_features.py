"""Missing features (NaN in data): exact marginals in the density and in the fit.

Independent truth: per-sample marginal densities computed with scipy over
each sample's measured values; the same fit through explicit selection-row
projections (a different kernel path); recovery of a known model.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from conftest import make_3d_pair

import pygmmis_ng as ng
from pygmmis_ng import config
from pygmmis_ng.kernels import fused

D, K = 3, 2


def truth() -> ng.GMM:
    return make_3d_pair(seed=11, spread=0.6)


def with_missing(X: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    Xn = X.copy()
    Xn[rng.random(X.shape) < frac] = np.nan
    empty = np.isnan(Xn).all(axis=1)
    Xn[empty, 0] = X[empty, 0]                      # keep one value in every row
    return Xn


def brute_force_logL(g: ng.GMM, X: np.ndarray, S) -> np.ndarray:
    out = np.empty(len(X))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        Si = np.zeros((g.D, g.D)) if S is None else (S if S.ndim == 2 else S[i])
        out[i] = np.log(sum(g.amp[k] * st.multivariate_normal(
            g.mean[k][o], (g.covar[k] + Si)[np.ix_(o, o)]).pdf(x[o]) for k in range(g.K)))
    return out


@pytest.mark.parametrize("noise", ["none", "shared", "per-sample"])
def test_logL_is_the_marginal_over_measured_values(noise):
    rng = np.random.default_rng(0)
    g = truth()
    X = with_missing(g.draw(300, rng=rng), 0.3, rng)
    S = {"none": None, "shared": np.diag([0.2, 0.5, 0.1]),
         "per-sample": np.einsum("n,ab->nab", rng.uniform(0.1, 1, 300), np.eye(D))}[noise]
    assert np.isnan(X).any(axis=1).mean() > 0.5
    np.testing.assert_allclose(g.logL(X, covar=S), brute_force_logL(g, X, S), rtol=0, atol=1e-10)
    # rows in any order: the pattern grouping must return them where they were
    perm = rng.permutation(300)
    Sp = S[perm] if S is not None and S.ndim == 3 else S
    np.testing.assert_allclose(g.logL(X[perm], covar=Sp), g.logL(X, covar=S)[perm], atol=1e-12)


def test_single_point_and_ignored_noise_entries():
    g = truth()
    x = np.array([1.0, np.nan, -0.5])
    expected = brute_force_logL(g, x[None], None)[0]
    assert g.logL(x) == pytest.approx(expected, abs=1e-12)
    assert g(x) == pytest.approx(np.exp(expected), rel=1e-12)
    # per-sample noise at missing values is ignored (NaN allowed there)
    S = np.full((1, D, D), np.nan)
    S[0][np.ix_([0, 2], [0, 2])] = [[0.3, 0.1], [0.1, 0.2]]
    S_ok = np.zeros((1, D, D))
    S_ok[0][np.ix_([0, 2], [0, 2])] = [[0.3, 0.1], [0.1, 0.2]]
    assert g.logL(x[None], covar=S)[0] == pytest.approx(brute_force_logL(g, x[None], S_ok)[0],
                                                        abs=1e-12)


@pytest.mark.parametrize("noise", ["none", "per-sample"])
def test_fit_with_25_percent_missing_equals_fit_with_selection_projections(noise):
    """Every sample misses exactly one of 4 features (25% NaN): the same information as
    explicit per-sample projections onto the 3 measured features, with no NaN at all."""
    rng = np.random.default_rng(1)
    g4 = ng.GMM(2, 4)
    g4.amp = [0.5, 0.5]
    g4.mean = [[0, 0, 0, 0], [3, -2, 1, 2]]
    g4.covar = np.array([np.eye(4), 0.5 * np.eye(4) + 0.2])
    N = 3000
    X = g4.draw(N, rng=rng)
    miss = rng.integers(0, 4, N)
    Xn = X.copy()
    Xn[np.arange(N), miss] = np.nan
    assert np.isnan(Xn).mean() == 0.25
    keep = np.array([[j for j in range(4) if j != m] for m in miss])          # (N, 3)
    R = np.eye(4)[keep]                                                      # (N, 3, 4) rows
    Y = X[np.arange(N)[:, None], keep]
    S4 = S3 = None
    if noise == "per-sample":
        s = rng.uniform(0.05, 0.5, N)
        S4 = np.einsum("n,ab->nab", s, np.eye(4))
        S3 = np.einsum("n,ab->nab", s, np.eye(3))
        Xn = Xn + np.sqrt(s)[:, None] * rng.normal(size=(N, 4))
        Y = Xn[np.arange(N)[:, None], keep]
    start = ng.GMM(2, 4)
    start.amp, start.mean, start.covar = [0.5, 0.5], [[1, 1, 1, 1], [2, -1, 0, 1]], [np.eye(4)] * 2
    a, b = start.copy(), start.copy()
    ra = ng.fit(a, Xn, covar=S4, init_method="none", tol=1e-13, maxiter=1000)
    rb = ng.fit(b, Y, covar=S3, R=R, init_method="none", tol=1e-13, maxiter=1000)
    assert ra.converged and rb.converged
    # the same optimum (each stops within tol of it: the paths centre the data differently)
    assert ra.logL == pytest.approx(rb.logL, abs=1e-7)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-5)
    np.testing.assert_allclose(a.covar, b.covar, atol=1e-5)
    # and the fit recovers the model that made the data
    order = np.argsort(a.mean[:, 0])
    np.testing.assert_allclose(a.mean[order], g4.mean, atol=0.12)


def test_fit_recovers_model_and_matches_brute_force_logL():
    rng = np.random.default_rng(2)
    g = truth()
    X = with_missing(g.draw(4000, rng=rng), 0.25, rng)
    fitted = ng.GMM(K, D)
    res = ng.fit(fitted, X, init_method="kmeans", rng=3, tol=1e-8)
    order = np.argsort(fitted.mean[:, 0])
    np.testing.assert_allclose(fitted.mean[order], g.mean, atol=0.15)
    np.testing.assert_allclose(fitted.covar[order], g.covar, atol=0.35)
    # the reported logL is the mean marginal log-likelihood of the fitted model
    assert res.logL == pytest.approx(brute_force_logL(fitted, X, None).mean(), abs=1e-6)
    # the truth is no better than the fit
    assert brute_force_logL(g, X, None).mean() <= res.logL + 1e-9


def test_weights_with_missing_are_repeats():
    rng = np.random.default_rng(4)
    g = truth()
    X = with_missing(g.draw(600, rng=rng), 0.3, rng)
    counts = rng.integers(0, 3, 600)
    start = truth()
    start.mean = start.mean + 0.5
    a, b = start.copy(), start.copy()
    ra = ng.fit(a, X, sample_weight=counts, init_method="none", tol=1e-10, accelerate=False,
                maxiter=500)
    rb = ng.fit(b, np.repeat(X, counts, axis=0), init_method="none", tol=1e-10,
                accelerate=False, maxiter=500)
    assert ra.logL == pytest.approx(rb.logL, abs=1e-9)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-7)


def test_cutoff_neighborhoods_in_data_order():
    rng = np.random.default_rng(5)
    g = truth()
    X = with_missing(g.draw(2000, rng=rng), 0.3, rng)
    a, b = ng.GMM(K, D), ng.GMM(K, D)
    # cutoff runs no Newton polish: compared with SQUAREM alone
    ra = ng.fit(a, X, init_method="kmeans", rng=1, tol=1e-8, accelerate="squarem")
    rb = ng.fit(b, X, init_method="kmeans", rng=1, tol=1e-8, cutoff=20.0)
    assert rb.logL == pytest.approx(ra.logL, abs=1e-9)
    # U: the samples whose chi2 over their measured values is within the cutoff
    rb = ng.fit(b, X, init_method="none", cutoff=2.0, miniter=0, maxiter=0)
    for k in range(K):
        inside = []
        for x in X:
            o = ~np.isnan(x)
            d = x[o] - b.mean[k][o]
            chi2 = d @ np.linalg.solve(b.covar[k][np.ix_(o, o)], d)
            inside.append(chi2 < ng.chi2_cutoff(o.sum(), 2.0))
        np.testing.assert_array_equal(rb.U[k], np.flatnonzero(inside))


@pytest.mark.skipif(not fused.enabled(), reason="bit-identity across workers needs the numba kernels")
def test_missing_fit_is_identical_for_any_n_jobs():
    rng = np.random.default_rng(6)
    g = truth()
    X = with_missing(g.draw(3000, rng=rng), 0.3, rng)
    S = np.einsum("n,ab->nab", rng.uniform(0.1, 0.4, 3000), np.eye(D))
    a, b = ng.GMM(K, D), ng.GMM(K, D)
    ra = ng.fit(a, X, covar=S, init_method="kmeans", rng=7, n_jobs=1)
    rb = ng.fit(b, X, covar=S, init_method="kmeans", rng=7, n_jobs=2)
    assert ra.logL == rb.logL
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.covar, b.covar)


def test_background_marginal_density_and_fit():
    bg = ng.Background([[-10, -8, -6], [10, 8, 6]])
    x = np.array([[1.0, 2.0]])
    assert bg.log_density(x, dims=np.array([0, 2]))[0] == pytest.approx(-np.log(20 * 12))
    rng = np.random.default_rng(8)
    g = truth()
    signal = g.draw(3000, rng=rng)
    noise_pts = bg.draw(600, rng=rng)
    X = with_missing(np.vstack([signal, noise_pts]), 0.2, rng)
    fitted = ng.GMM(K, D)
    res = ng.fit(fitted, X, init_method="kmeans", rng=2, background=bg.copy(), tol=1e-7)
    assert res.bg_amp == pytest.approx(600 / 3600, abs=0.03)
    order = np.argsort(fitted.mean[:, 0])
    np.testing.assert_allclose(fitted.mean[order], g.mean, atol=0.2)


def test_imputation_with_missing_features():
    """Selection on feature 0 only (always measured); feature 2 missing in 30% of rows."""
    rng = np.random.default_rng(9)
    g = ng.GMM(1, D)
    g.amp, g.mean, g.covar = [1.0], [[0.0, 1.0, -1.0]], [[[1, 0.5, 0.3], [0.5, 1, 0.2], [0.3, 0.2, 1]]]
    X = g.draw(8000, rng=rng)
    X = X[X[:, 0] < 0.5]
    X[rng.random(len(X)) < 0.3, 2] = np.nan

    def sel(c):
        return (c[:, 0] < 0.5).astype(float)

    fitted = ng.GMM(1, D)
    res = ng.fit(fitted, X, sel_callback=sel, init_method="kmeans", rng=1, oversampling=20,
                 tol=1e-6)
    np.testing.assert_allclose(fitted.mean[0], g.mean[0], atol=0.08)
    np.testing.assert_allclose(fitted.covar[0], g.covar[0], atol=0.12)
    assert res.orig_size == pytest.approx(8000, rel=0.06)


def test_scan_K_with_missing_values_picks_the_true_K():
    rng = np.random.default_rng(10)
    g = truth()
    g.mean = [[0.0, 0.0, 0.0], [8.0, 6.0, -4.0]]
    X = with_missing(g.draw(1200, rng=rng), 0.25, rng)
    scan = ng.scan_K(X, [1, 2, 3], init_method="kmeans", n_init=2, rng=0)
    assert scan.best("bic") == 2
    # each row's BIC is computed from the marginal likelihood of its fitted model
    gmm2 = scan.gmms[2]
    logL = brute_force_logL(gmm2, X, None).mean()
    n = 1200
    bic = -2 * n * logL + (1 + 2 * D + 2 * D * (D + 1) // 2) * np.log(n)
    assert [r.bic for r in scan.rows if r.K == 2][0] == pytest.approx(bic, rel=1e-8)


def many_patterns(N, rng, D6=6):
    g = ng.GMM(3, D6)
    g.amp = [0.3, 0.3, 0.4]
    g.mean = rng.normal(0, 3, (3, D6))
    A = 0.5 * rng.normal(size=(3, D6, D6))
    g.covar = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D6)
    X = with_missing(g.draw(N, rng=rng), 0.3, rng)
    return g, X


@pytest.mark.parametrize("noise", ["none", "shared", "per-sample"])
def test_masked_kernel_for_many_patterns_equals_grouped_fit(settings, monkeypatch, noise):
    """With more than MASKED_PATTERNS patterns one compiled masked kernel serves all samples;
    the grouped path (one group per pattern) must give the same fit."""

    rng = np.random.default_rng(14)
    g, X = many_patterns(3000, rng)
    assert len(np.unique(np.isnan(X), axis=0)) > config.get_settings().masked_patterns
    S = {"none": None, "shared": 0.1 * np.eye(6),
         "per-sample": np.einsum("n,ab->nab", rng.uniform(0.05, 0.3, 3000), np.eye(6))}[noise]
    start = g.copy()
    start.mean = start.mean + 0.5
    out = {}
    for limit in (config.get_settings().masked_patterns, 10**6):
        settings(masked_patterns=limit)
        fitted = start.copy()
        res = ng.fit(fitted, X, covar=S, init_method="none", tol=1e-9)
        # neighborhoods at the truth (no iteration), reported in data order by both paths
        U = ng.fit(g.copy(), X, covar=S, init_method="none", cutoff=2.0, miniter=0,
                   maxiter=0).U
        out[limit] = (res, fitted, U)
    (ra, a, Ua), (rb, b, Ub) = out.values()
    assert ra.logL == pytest.approx(rb.logL, abs=1e-10)
    np.testing.assert_allclose(a.covar, b.covar, atol=1e-7)
    for ua, ub in zip(Ua, Ub):
        np.testing.assert_array_equal(ua, ub)
    assert 0 < len(Ua[0]) < len(X)
    assert ra.logL == pytest.approx(a.logL(X, covar=S).mean(), abs=1e-10)


@pytest.mark.skipif(not fused.enabled(), reason="bit-identity across workers needs the numba kernels")
def test_masked_fit_is_identical_for_any_n_jobs_and_works_with_split_n_merge():
    rng = np.random.default_rng(15)
    g, X = many_patterns(4000, rng)
    a, b = ng.GMM(3, 6), ng.GMM(3, 6)
    ra = ng.fit(a, X, init_method="kmeans", rng=3, split_n_merge=2)
    rb = ng.fit(b, X, init_method="kmeans", rng=3, split_n_merge=2, n_jobs=2)
    assert ra.logL == rb.logL and np.array_equal(a.covar, b.covar)
    assert mean_distance(a, g) < 0.3


def mean_distance(fitted, truth_gmm):
    d = np.linalg.norm(fitted.mean[:, None] - truth_gmm.mean[None], axis=2)
    return float(d.min(axis=0).max())


@pytest.mark.parametrize("noise", [False, True])
def test_background_with_many_patterns(settings, monkeypatch, noise):
    """The masked group (many patterns) must use the background's marginal over each
    sample's measured values, as the grouped path does."""

    rng = np.random.default_rng(16)
    g, X = many_patterns(3000, rng)
    bg = ng.Background([[-15] * 6, [15] * 6])
    outliers = bg.draw(300, rng=rng)
    outliers[rng.random(outliers.shape) < 0.3] = np.nan
    outliers[np.isnan(outliers).all(axis=1), 0] = 0.0
    X = np.vstack([X, outliers])
    S = 0.1 * np.eye(6) if noise else None
    out = {}
    for limit in (config.get_settings().masked_patterns, 10**6):
        settings(masked_patterns=limit)
        fitted = g.copy()
        out[limit] = ng.fit(fitted, X, covar=S, init_method="none", background=bg.copy(), tol=1e-9)
    ra, rb = out.values()
    assert ra.bg_amp == pytest.approx(rb.bg_amp, abs=1e-7)
    assert ra.logL == pytest.approx(rb.logL, abs=1e-9)
    assert ra.bg_amp == pytest.approx(300 / 3300, abs=0.02)
