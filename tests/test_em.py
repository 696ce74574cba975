"""fit(): EM against independent truth (sklearn, brute force, known models)."""
import logging
import warnings

import numpy as np
import pytest
from conftest import add_noise, make_truth, random_spd
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

import pygmmis_ng as ng
from pygmmis_ng.tools.compare import match_components


def brute_force_logL(gmm, X, S=None):
    """Mean of log sum_k a_k N(x_i | m_k, V_k + S_i), one scipy call per sample and component."""
    N = len(X)
    S = np.zeros((N, gmm.D, gmm.D)) if S is None else np.broadcast_to(S, (N, gmm.D, gmm.D))
    total = 0.0
    for i in range(N):
        p = sum(gmm.amp[k] * multivariate_normal.pdf(X[i], gmm.mean[k], gmm.covar[k] + S[i])
                for k in range(gmm.K))
        total += np.log(p)
    return total / N


def brute_force_em_step(gmm, X, S):
    """One EM update of extreme deconvolution written sample by sample with explicit inverses."""
    N, K = len(X), gmm.K
    p = np.array([[gmm.amp[k] * multivariate_normal.pdf(X[i], gmm.mean[k], gmm.covar[k] + S[i])
                   for k in range(K)] for i in range(N)])
    q = p / p.sum(axis=1, keepdims=True)
    amp, mean, covar = np.empty(K), np.empty((K, gmm.D)), np.empty((K, gmm.D, gmm.D))
    for k in range(K):
        V, m = gmm.covar[k], gmm.mean[k]
        b = np.empty((N, gmm.D))
        B = np.empty((N, gmm.D, gmm.D))
        for i in range(N):
            Tinv = np.linalg.inv(V + S[i])
            b[i] = m + V @ Tinv @ (X[i] - m)
            B[i] = V - V @ Tinv @ V
        A = q[:, k].sum()
        amp[k] = A / N
        mean[k] = q[:, k] @ b / A
        d = b - mean[k]
        covar[k] = (np.einsum("n,ni,nj->ij", q[:, k], d, d) + np.einsum("n,nij->ij", q[:, k], B)) / A
    return amp, mean, covar


def test_plain_em_matches_sklearn_with_same_init():
    rng = np.random.default_rng(0)
    truth = make_truth()
    X = truth.draw(3000, rng=rng)
    gmm = ng.GMM(3, 2)
    ng.init.init_random(gmm, X, rng=1)
    amp0, mean0, covar0 = gmm.amp.copy(), gmm.mean.copy(), gmm.covar.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ng.fit(gmm, X, init_method="none", tol=0, maxiter=40)
        sk = GaussianMixture(3, covariance_type="full", reg_covar=0, tol=0, max_iter=40,
                             weights_init=amp0, means_init=mean0,
                             precisions_init=np.linalg.inv(covar0)).fit(X)
    assert res.n_iter == 40
    np.testing.assert_allclose(gmm.amp, sk.weights_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gmm.mean, sk.means_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gmm.covar, sk.covariances_, rtol=1e-6, atol=1e-9)
    assert res.logL == pytest.approx(sk.score(X), rel=1e-9)


def test_plain_em_far_from_origin_uses_exact_centred_moments():
    """Components narrow relative to their distance from the data centre: raw moments
    would cancel catastrophically; the fit must still match sklearn."""
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 1e-3, (500, 2)), rng.normal(0, 1e-3, (500, 2)) + 10.0]) + 1e4
    gmm = ng.GMM(2, 2)
    gmm.amp = [0.5, 0.5]
    gmm.mean = [X[:500].mean(0) + 1e-4, X[500:].mean(0) - 1e-4]
    gmm.covar = np.tile(4e-6 * np.eye(2), (2, 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = GaussianMixture(2, covariance_type="full", reg_covar=0, tol=0, max_iter=5,
                             weights_init=gmm.amp.copy(), means_init=gmm.mean.copy(),
                             precisions_init=np.linalg.inv(gmm.covar)).fit(X)
        ng.fit(gmm, X, init_method="none", tol=0, maxiter=5)
    np.testing.assert_allclose(gmm.covar, sk.covariances_, rtol=1e-6)


def test_deconvolution_logL_monotonic_and_equal_to_brute_force(noisy_data):
    truth, y, S, _ = noisy_data
    gmm = ng.GMM(3, 2)
    res = ng.fit(gmm, y, covar=S, init_method="random", tol=1e-7, rng=5)
    assert res.converged
    assert np.all(np.diff(res.history) >= -1e-12 * abs(res.logL))
    assert res.logL == pytest.approx(brute_force_logL(gmm, y, S), rel=1e-10)
    assert res.history[-1] == res.logL


def test_one_deconvolution_step_matches_explicit_formulas():
    rng = np.random.default_rng(7)
    truth = make_truth()
    X = add_noise(rng, truth.draw(300, rng=rng), random_spd(rng, 300, 2, 0.05, 1.0))
    S = random_spd(rng, 300, 2, 0.05, 1.0)
    start = truth.copy()
    start.mean = truth.mean + 0.3
    expected = brute_force_em_step(start, X, S)
    gmm = start.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ng.fit(gmm, X, covar=S, init_method="none", tol=0, maxiter=1)
    for got, want in zip((gmm.amp, gmm.mean, gmm.covar), expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("D", [1, 3, 5])
def test_shared_and_tiled_noise_give_same_fit(D):
    rng = np.random.default_rng(D)
    N, K = 1500, 2
    X = np.concatenate([rng.normal(0, 1, (N // 2, D)), rng.normal(4, 0.7, (N - N // 2, D))])
    S = random_spd(rng, 1, D, 0.2, 0.6)[0]
    X = add_noise(rng, X, S)
    g1, g2 = ng.GMM(K, D), ng.GMM(K, D)
    r1 = ng.fit(g1, X, covar=S, init_method="kmeans", rng=3, tol=1e-6)
    r2 = ng.fit(g2, X, covar=np.tile(S, (N, 1, 1)), init_method="kmeans", rng=3, tol=1e-6)
    assert r1.n_iter == r2.n_iter
    assert r1.logL == pytest.approx(r2.logL, rel=1e-10)
    for a, b in ((g1.amp, g2.amp), (g1.mean, g2.mean), (g1.covar, g2.covar)):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


def test_zero_noise_equals_plain_em(truth):
    X = truth.draw(1000, rng=3)
    g1, g2, g3 = ng.GMM(3, 2), ng.GMM(3, 2), ng.GMM(3, 2)
    ng.fit(g1, X, init_method="kmeans", rng=0, tol=1e-8)
    ng.fit(g2, X, covar=np.zeros((2, 2)), init_method="kmeans", rng=0, tol=1e-8)
    ng.fit(g3, X, covar=np.zeros((1000, 2, 2)), init_method="kmeans", rng=0, tol=1e-8)
    for g in (g2, g3):
        np.testing.assert_allclose(g.mean, g1.mean, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(g.covar, g1.covar, rtol=1e-7, atol=1e-10)


def test_known_model_recovered_from_noisy_draws():
    rng = np.random.default_rng(11)
    truth = make_truth()
    N = 20000
    x = truth.draw(N, rng=rng)
    S = random_spd(rng, N, 2, 0.2, 1.5)   # noise comparable to the component widths
    y = add_noise(rng, x, S)
    gmm = ng.GMM(3, 2)
    res = ng.fit(gmm, y, covar=S, init_method="kmeans", rng=0, tol=1e-7)
    assert res.converged
    perm = match_components(gmm, truth)
    np.testing.assert_allclose(gmm.amp[perm], truth.amp, atol=0.02)
    np.testing.assert_allclose(gmm.mean[perm], truth.mean, atol=0.06)
    # intrinsic covariances within 15% of the truth's scale
    for k, j in enumerate(perm):
        scale = np.sqrt(np.outer(np.diag(truth.covar[k]), np.diag(truth.covar[k])))
        assert np.all(np.abs(gmm.covar[j] - truth.covar[k]) < 0.15 * scale)
    # ignoring the noise gives visibly inflated covariances: the test can tell them apart
    plain = ng.GMM(3, 2)
    ng.fit(plain, y, init_method="kmeans", rng=0)
    perm_p = match_components(plain, truth)
    assert np.trace(plain.covar[perm_p].sum(0)) > 1.5 * np.trace(truth.covar.sum(0))


def test_frozen_list_keeps_components_and_renormalizes(noisy_data):
    truth, y, S, _ = noisy_data
    gmm = truth.copy()
    gmm.mean[0] += 0.5
    before = gmm.copy()
    ng.fit(gmm, y, covar=S, init_method="random", frozen=[0], rng=2, maxiter=50)
    assert gmm.amp[0] == before.amp[0]
    np.testing.assert_array_equal(gmm.mean[0], before.mean[0])
    np.testing.assert_array_equal(gmm.covar[0], before.covar[0])
    assert gmm.amp.sum() == pytest.approx(1.0)
    assert not np.allclose(gmm.mean[1:], before.mean[1:])


def test_frozen_dict_freezes_single_parameters(noisy_data):
    truth, y, S, _ = noisy_data
    gmm = truth.copy()
    before = gmm.copy()
    ng.fit(gmm, y, covar=S, init_method="none", frozen={"mean": [1, 2], "covar": [0]}, maxiter=30)
    np.testing.assert_array_equal(gmm.mean[1:], before.mean[1:])
    np.testing.assert_array_equal(gmm.covar[0], before.covar[0])
    assert not np.array_equal(gmm.mean[0], before.mean[0])
    assert not np.array_equal(gmm.covar[1], before.covar[1])
    assert not np.array_equal(gmm.amp, before.amp)


def test_regularization_w_bounds_component_width():
    """w is a lower bound on the dispersion: a point-like cluster gets exactly w^2 I."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (500, 2)), np.tile([8.0, 8.0], (100, 1))])
    gmm = ng.GMM(2, 2)
    ng.fit(gmm, X, init_method="kmeans", w=0.1, rng=0)
    k = np.argmin(np.linalg.norm(gmm.mean - 8.0, axis=1))
    np.testing.assert_allclose(gmm.covar[k], 0.1**2 * np.eye(2), atol=1e-12)


def test_regularization_w_does_not_bias_wide_components():
    """Components wider than w get the unregularized maximum-likelihood fit."""
    X = np.random.default_rng(3).normal(size=(2000, 2)) * [1.0, 2.0]
    plain, floored = ng.GMM(1, 2), ng.GMM(1, 2)
    ng.fit(plain, X, init_method="kmeans", rng=0)
    ng.fit(floored, X, init_method="kmeans", w=0.5, rng=0)
    np.testing.assert_allclose(floored.covar, plain.covar, rtol=1e-12)
    np.testing.assert_allclose(plain.covar[0], np.cov(X.T, bias=True), rtol=1e-10)


def test_collapsing_component_is_reseeded_not_nan(caplog):
    """A component started far from all data gets no responsibility: re-seeded, no NaN."""
    X = np.random.default_rng(1).normal(size=(400, 2))
    gmm = ng.GMM(2, 2)
    gmm.amp = [0.5, 0.5]
    gmm.mean = [[0.0, 0.0], [1e4, 1e4]]
    gmm.covar = np.tile(np.eye(2), (2, 1, 1))
    with caplog.at_level(logging.WARNING, logger="pygmmis_ng"):
        res = ng.fit(gmm, X, init_method="none", rng=0, maxiter=100)
    assert res.n_reseeded >= 1
    assert "collapsed" in caplog.text
    assert np.isfinite(gmm.mean).all() and np.isfinite(gmm.covar).all()
    assert np.all(np.linalg.norm(gmm.mean, axis=1) < 5)
    np.linalg.cholesky(gmm.covar)


def test_sample_weights_equal_repeated_samples(truth):
    rng = np.random.default_rng(4)
    X = truth.draw(600, rng=rng)
    S = random_spd(rng, 600, 2, 0.1, 0.5)
    counts = rng.integers(0, 4, size=600)
    g_w, g_r = ng.GMM(3, 2), ng.GMM(3, 2)
    ng.init.init_random(g_w, X, rng=0)
    g_r = g_w.copy()
    # plain EM: both follow the same path, update by update
    r_w = ng.fit(g_w, X, covar=S, sample_weight=counts, init_method="none", tol=1e-8,
                 accelerate=False)
    r_r = ng.fit(g_r, np.repeat(X, counts, axis=0), covar=np.repeat(S, counts, axis=0),
                 init_method="none", tol=1e-8, accelerate=False)
    assert r_w.logL == pytest.approx(r_r.logL, rel=1e-9)
    np.testing.assert_allclose(g_w.mean, g_r.mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(g_w.covar, g_r.covar, rtol=1e-7, atol=1e-9)


def test_convergence_warning_and_result_fields(truth):
    X = truth.draw(500, rng=0)
    gmm = ng.GMM(3, 2)
    with pytest.warns(ng.ConvergenceWarning, match="maxiter=2"):
        res = ng.fit(gmm, X, rng=0, maxiter=2, tol=1e-12)
    logL, U = res
    assert logL == res.logL and U == [None, None, None]
    assert res.n_iter == 2 and not res.converged and len(res.history) == 3


def test_info_table_is_logged(truth, caplog):
    X = truth.draw(500, rng=0)
    with caplog.at_level(logging.INFO, logger="pygmmis_ng"):
        res = ng.fit(ng.GMM(3, 2), X, rng=0)
    lines = [r.getMessage() for r in caplog.records if r.name == "pygmmis_ng"]
    assert lines[0].split() == ["ITER", "SAMPLES", "LOG_L", "DELTA", "STABLE", "ELAPSED"]
    rows = [line.split() for line in lines[1:] if line.split()[0].isdigit()]
    assert len(rows) == res.n_iter + 1
    assert float(rows[-1][2]) == pytest.approx(res.logL, abs=5e-6)   # printed to 5 decimals


def test_same_seed_same_fit_for_every_rng_kind(truth):
    X = truth.draw(800, rng=0)
    fits = []
    for rng in (7, np.random.default_rng(7), 7, np.random.RandomState(7), np.random.RandomState(7)):
        g = ng.GMM(3, 2)
        ng.fit(g, X, rng=rng, init_method="random")
        fits.append(g)
    np.testing.assert_array_equal(fits[0].mean, fits[1].mean)   # int seed == Generator(seed)
    np.testing.assert_array_equal(fits[0].mean, fits[2].mean)
    np.testing.assert_array_equal(fits[3].mean, fits[4].mean)   # same RandomState state


def test_cutoff_returns_neighborhoods(truth):
    X = truth.draw(1000, rng=0)
    gmm = ng.GMM(3, 2)
    logL, U = ng.fit(gmm, X, rng=0, cutoff=3, init_method="kmeans")
    limit = ng.chi2_cutoff(2, 3)
    for k in range(3):
        d = X - gmm.mean[k]
        chi2 = np.einsum("ni,ij,nj->n", d, np.linalg.inv(gmm.covar[k]), d)
        np.testing.assert_array_equal(U[k], np.flatnonzero(chi2 < limit))
    # the fit neglects only pairs beyond the cutoff: close to the exact one (cutoff=None)
    g2 = ng.GMM(3, 2)
    logL2, _ = ng.fit(g2, X, rng=0, init_method="kmeans")
    assert logL == pytest.approx(logL2, abs=1e-4)
    np.testing.assert_allclose(gmm.mean, g2.mean, atol=1e-3)


def test_chi2_cutoff_closed_form():
    # in 1D a 1-sigma cut is chi2 < 1; in 2D P(chi2 < q) = 1 - exp(-q/2)
    assert ng.chi2_cutoff(1, 1.0) == pytest.approx(1.0)
    q = ng.chi2_cutoff(2, 2.0)
    assert 1 - np.exp(-q / 2) == pytest.approx(0.9544997361, rel=1e-8)
