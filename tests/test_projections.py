"""Projections R (extreme deconvolution): y_i = R_i x_i + noise, dy <= D.

Independent truth: scipy densities of N(y | R m, R V R^T + S); recovery of
a known 3D model from random 2x3 projections; agreement of the three kernel
paths that must give the same fit (shared R as a group, per-sample R, and
missing values dropping rows of R).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from conftest import make_3d_pair

import pygmmis_ng as ng
from pygmmis_ng.kernels import fused

D, K = 3, 2


def truth() -> ng.GMM:
    return make_3d_pair(seed=21, spread=0.5)


def project(X: np.ndarray, R: np.ndarray, s2: float, rng: np.random.Generator) -> np.ndarray:
    Y = np.einsum("nad,nd->na", R, X) if R.ndim == 3 else X @ R.T
    return Y + np.sqrt(s2) * rng.normal(size=Y.shape)


def brute_force(g: ng.GMM, Y: np.ndarray, R: np.ndarray, S) -> np.ndarray:
    out = np.empty(len(Y))
    for i, y in enumerate(Y):
        Ri = R if R.ndim == 2 else R[i]
        Si = 0.0 if S is None else (S if S.ndim == 2 else S[i])
        out[i] = np.log(sum(g.amp[k] * st.multivariate_normal(
            Ri @ g.mean[k], Ri @ g.covar[k] @ Ri.T + Si).pdf(y) for k in range(g.K)))
    return out


@pytest.mark.parametrize("shared_R", [False, True])
@pytest.mark.parametrize("noise", ["none", "shared", "per-sample"])
def test_density_with_projections_matches_brute_force(shared_R, noise):
    rng = np.random.default_rng(0)
    g = truth()
    n = 200
    R = rng.normal(size=(2, D)) if shared_R else rng.normal(size=(n, 2, D))
    Y = project(g.draw(n, rng=rng), R, 0.1, rng)
    S = {"none": None, "shared": np.array([[0.2, 0.05], [0.05, 0.1]]),
         "per-sample": np.einsum("n,ab->nab", rng.uniform(0.05, 0.5, n), np.eye(2))}[noise]
    np.testing.assert_allclose(g.logL(Y, covar=S, R=R), brute_force(g, Y, R, S), atol=1e-10)
    # a single point with its projection
    Ri = R if shared_R else R[0]
    Si = None if S is None else (S if S.ndim == 2 else S[0])
    assert g.logL(Y[0], covar=Si, R=Ri) == pytest.approx(brute_force(g, Y[:1], Ri, Si)[0],
                                                          abs=1e-10)


def test_missing_values_drop_rows_of_R():
    rng = np.random.default_rng(1)
    g = truth()
    R = rng.normal(size=(50, 3, D))
    Y = project(g.draw(50, rng=rng), R, 0.1, rng)
    Y[::3, 1] = np.nan
    S = 0.1 * np.eye(3)
    got = g.logL(Y, covar=S, R=R)
    for i in range(50):
        o = ~np.isnan(Y[i])
        expected = brute_force(g, Y[i:i + 1, o], R[i][o], S[np.ix_(o, o)])[0]
        assert got[i] == pytest.approx(expected, abs=1e-10)


def test_random_2x3_projections_recover_a_known_3d_model():
    rng = np.random.default_rng(2)
    g = truth()
    N = 10000
    R = rng.normal(size=(N, 2, D))
    S = np.einsum("n,ab->nab", rng.uniform(0.02, 0.1, N), np.eye(2))
    X = g.draw(N, rng=rng)
    Y = np.einsum("nad,nd->na", R, X) + np.einsum("nab,nb->na", np.sqrt(S), rng.normal(size=(N, 2)))
    fitted = ng.GMM(K, D)
    res = ng.fit(fitted, Y, covar=S, R=R, init_method="kmeans", rng=0, tol=1e-7)
    assert res.converged
    order = np.argsort(fitted.mean[:, 0])
    np.testing.assert_allclose(fitted.amp[order], g.amp, atol=0.03)
    np.testing.assert_allclose(fitted.mean[order], g.mean, atol=0.15)
    np.testing.assert_allclose(fitted.covar[order], g.covar, atol=0.3)
    # the reported logL is the mean projected log-likelihood (brute force on a subset)
    sub = slice(0, 300)
    direct = fitted.logL(Y, covar=S, R=R)
    np.testing.assert_allclose(direct[sub], brute_force(fitted, Y[sub], R[sub], S[sub]), atol=1e-9)
    assert res.logL == pytest.approx(direct.mean(), abs=1e-9)
    # a fit started at the truth ends at the same likelihood
    start = g.copy()
    res_t = ng.fit(start, Y, covar=S, R=R, init_method="none", tol=1e-7)
    assert res.logL == pytest.approx(res_t.logL, abs=1e-5)


@pytest.mark.parametrize("noise", ["shared", "per-sample"])
def test_shared_R_group_path_equals_per_sample_R_path(noise):
    """A shared R runs as a projected group (compiled kernels in dy dims); the same R
    given per sample runs through the per-sample kernel: the fits must agree. NaN in the
    data exercise the row dropping in both."""
    rng = np.random.default_rng(3)
    g = truth()
    N = 3000
    R = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -0.3], [0.4, 0.0, 1.0]])
    Y = project(g.draw(N, rng=rng), R, 0.1, rng)
    Y[rng.random(Y.shape) < 0.15] = np.nan
    Y[np.isnan(Y).all(axis=1), 0] = 0.0
    S = 0.1 * np.eye(3) if noise == "shared" else np.einsum(
        "n,ab->nab", rng.uniform(0.05, 0.2, N), np.eye(3))
    start = truth()
    start.mean = start.mean + 0.7
    a, b = start.copy(), start.copy()
    ra = ng.fit(a, Y, covar=S, R=R, init_method="none", tol=1e-9)
    rb = ng.fit(b, Y, covar=S, R=np.tile(R, (N, 1, 1)), init_method="none", tol=1e-9)
    assert ra.logL == pytest.approx(rb.logL, abs=1e-9)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-6)
    np.testing.assert_allclose(a.covar, b.covar, atol=1e-6)


def test_identity_projection_equals_no_projection():
    rng = np.random.default_rng(4)
    g = truth()
    X = g.draw(2000, rng=rng)
    S = np.einsum("n,ab->nab", rng.uniform(0.05, 0.3, 2000), np.eye(D))
    start = truth()
    start.mean = start.mean - 0.8
    a, b = start.copy(), start.copy()
    ra = ng.fit(a, X, covar=S, init_method="none", tol=1e-13, maxiter=2000)
    rb = ng.fit(b, X, covar=S, R=np.eye(D), init_method="none", tol=1e-13, maxiter=2000)
    # the same optimum (the paths centre the data differently, so they stop a hair apart)
    assert ra.logL == pytest.approx(rb.logL, abs=1e-10)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-5)


def test_latent_points_are_conditional_means():
    """Missing values are filled with their conditional mean given the measured ones
    under the one-Gaussian fit; measured values are kept (no noise)."""
    from pygmmis_ng.data.latent import fill_latent

    rng = np.random.default_rng(12)
    mu = np.array([1.0, -2.0, 0.5])
    Sigma = np.array([[2.0, 0.8, 0.3], [0.8, 1.0, -0.4], [0.3, -0.4, 1.5]])
    X = rng.multivariate_normal(mu, Sigma, size=40000)
    Xn = X.copy()
    Xn[rng.random(X.shape) < 0.3] = np.nan
    Xn[np.isnan(Xn).all(axis=1), 0] = X[np.isnan(Xn).all(axis=1), 0]
    Z = fill_latent(Xn, None, None, None, D)
    obs = ~np.isnan(Xn)
    np.testing.assert_allclose(Z[obs], Xn[obs], atol=1e-8)
    # mu and Sigma are estimated (from 5000 evenly spaced rows): compare with the truth's
    # conditional means up to that estimation error
    errors = []
    for i in range(400):
        o, m = obs[i], ~obs[i]
        if not m.any():
            continue
        cond = mu[m] + Sigma[np.ix_(m, o)] @ np.linalg.solve(Sigma[np.ix_(o, o)], Xn[i, o] - mu[o])
        errors.extend(np.abs(Z[i, m] - cond))
    assert max(errors) < 0.2 and np.mean(errors) < 0.05
    # (the column mean, the naive fill, is far worse)
    assert np.mean(np.abs(np.where(obs, 0, Z - X))) * X.size / (~obs).sum() < \
        0.9 * np.mean(np.abs(np.where(obs, 0, mu - X))) * X.size / (~obs).sum()
    # projections: an ill-conditioned R_i does not blow the noise up (unlike R^+ y)
    R = rng.normal(size=(40000, 3, 3))
    R[0] = np.diag([1.0, 1.0, 1e-6])
    Y = np.einsum("nad,nd->na", R, X) + 0.1 * rng.normal(size=(40000, 3))
    Z = fill_latent(Y, R, 0.01 * np.eye(3), None, D)
    assert np.abs(Z[0] - mu).max() < 10
    assert np.mean(np.linalg.norm(Z - X, axis=1)) < 0.5


@pytest.mark.skipif(not fused.enabled(), reason="bit-identity across workers needs the numba kernels")
def test_projected_fit_across_n_jobs_and_with_cutoff():
    rng = np.random.default_rng(5)
    g = truth()
    N = 4000
    R = rng.normal(size=(N, 2, D))
    Y = project(g.draw(N, rng=rng), R, 0.05, rng)
    a, b, c = ng.GMM(K, D), ng.GMM(K, D), ng.GMM(K, D)
    ra = ng.fit(a, Y, covar=0.05 * np.eye(2), R=R, init_method="kmeans", rng=6)
    rb = ng.fit(b, Y, covar=0.05 * np.eye(2), R=R, init_method="kmeans", rng=6, n_jobs=2)
    rc = ng.fit(c, Y, covar=0.05 * np.eye(2), R=R, init_method="kmeans", rng=6, cutoff=30.0)
    rd = ng.fit(ng.GMM(K, D), Y, covar=0.05 * np.eye(2), R=R, init_method="kmeans", rng=6,
                accelerate="squarem")
    # compiled kernels: the same fixed chunks summed in the same order by any number of workers
    # (the Newton polish's Hessian passes too)
    assert ra.n_hessian > 0 and rb.logL == ra.logL
    assert np.array_equal(b.mean, a.mean) and np.array_equal(b.covar, a.covar)
    # cutoff has no Newton polish: it equals SQUAREM alone, which stops within tol of the top
    assert rc.logL == pytest.approx(rd.logL, abs=1e-10)
    assert -1e-12 <= ra.logL - rc.logL < 2e-4
    assert all(len(u) == N for u in rc.U)           # a huge cutoff holds every sample


@pytest.mark.parametrize("dy, D_", [(1, 3), (2, 3), (3, 3), (2, 5)])
@pytest.mark.parametrize("noise", ["none", "shared", "per-sample"])
def test_compiled_projected_kernel_equals_numpy(settings, monkeypatch, dy, D_, noise):
    from pygmmis_ng.kernels import projected
    from pygmmis_ng.kernels.stats import Components

    assert fused.enabled(), "numba is a dependency: the two kernels must differ"
    rng = np.random.default_rng(dy * 10 + D_)
    Kc, n = 4, 2000
    R = rng.normal(size=(n, dy, D_))
    y = rng.normal(size=(n, dy)) * 3
    A = rng.normal(size=(Kc, D_, D_))
    covar = A @ A.transpose(0, 2, 1) + 0.3 * np.eye(D_)
    mean = rng.normal(size=(Kc, D_))
    S = {"none": None, "shared": 0.2 * np.eye(dy),
         "per-sample": np.einsum("n,ab->nab", rng.uniform(0.05, 1, n), np.eye(dy))}[noise]
    if noise == "none" and dy > D_:
        pytest.skip("singular without noise")
    weight = rng.uniform(0, 2, n)
    weight[::5] = 0.0
    log_bg = np.full(n, np.log(0.1 / 50))
    comps = Components(np.log(rng.dirichlet(np.ones(Kc)) * 0.9), mean, covar,
                               None, None, None, None)
    out = {}
    for on in (True, False):
        settings(compiled_kernels=on)
        out[on] = projected.chunk_stats(y, R, S, comps, weight, log_bg)
    a, b = out[True], out[False]
    np.testing.assert_allclose(a.A, b.A, rtol=1e-10)
    np.testing.assert_allclose(a.Mc, b.Mc, rtol=1e-8, atol=1e-9 * np.abs(b.Mc).max())
    np.testing.assert_allclose(a.Cc, b.Cc, rtol=1e-8, atol=1e-9 * np.abs(b.Cc).max())
    assert a.logL == pytest.approx(b.logL, rel=1e-12)
    assert a.B == pytest.approx(b.B, rel=1e-10)
    assert a.weight == b.weight


def test_projected_groups_with_and_without_compiled_kernels(settings, monkeypatch):
    """Missing values + shared noise: projected groups through the compiled shared kernel
    (dy <= 3) and the rectangular lift, against the numpy kernels."""
    rng = np.random.default_rng(9)
    g = truth()
    X = g.draw(3000, rng=rng) + 0.3 * rng.normal(size=(3000, D))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0
    res = {}
    for on in (True, False):
        settings(compiled_kernels=on)
        fitted = truth()
        fitted.mean = fitted.mean + 0.5
        res[on] = (ng.fit(fitted, X, covar=0.09 * np.eye(D), init_method="none", tol=1e-9),
                   fitted)
    assert res[True][0].logL == pytest.approx(res[False][0].logL, abs=1e-10)
    np.testing.assert_allclose(res[True][1].covar, res[False][1].covar, atol=1e-7)


def test_cv_fit_splits_projections_and_missing_values_with_the_samples():
    rng = np.random.default_rng(13)
    g = truth()
    N, L = 900, 3
    R = rng.normal(size=(N, 2, D))
    Y = project(g.draw(N, rng=rng), R, 0.1, rng)
    Y[::7, 1] = np.nan
    S = 0.1 * np.eye(2)
    lcv = ng.cv_fit(g.copy(), Y, L=L, covar=S, R=R, rng=5, init_method="kmeans", tol=1e-6)
    seed = int(np.random.default_rng(5).integers(2**62))
    fold = np.arange(N) % L
    for i in range(L):
        test = fold == i
        work = g.copy()
        ng.fit(work, Y[~test], covar=S, R=R[~test], init_method="kmeans", tol=1e-6,
               rng=np.random.default_rng(seed))
        expected = [brute_force(work, Y[j:j + 1, ~np.isnan(Y[j])], R[j][~np.isnan(Y[j])],
                                S[np.ix_(~np.isnan(Y[j]), ~np.isnan(Y[j]))])[0]
                    for j in np.flatnonzero(test)[:40]]
        np.testing.assert_allclose(lcv[np.flatnonzero(test)[:40]], expected, atol=1e-9)


def test_single_point_inputs_with_missing_values_and_projections():
    g = truth()
    x = np.array([1.0, np.nan, -0.5])
    # a (D, D) noise for a single point is that point's own: NaN at its missing value is fine
    S = np.array([[0.2, np.nan, 0.0], [np.nan, np.nan, np.nan], [0.0, np.nan, 0.3]])
    S_ok = np.nan_to_num(S)
    assert g.logL(x, covar=S) == pytest.approx(g.logL(x[None], covar=S_ok[None])[0], abs=1e-12)
    with pytest.raises(ValueError, match=r"a single point takes a single projection R of shape"):
        g.logL(np.array([1.0]), R=np.array([1.0, 0.0, 0.0]))
    assert g.logL(np.array([1.0]), R=np.array([[1.0, 0.5, 0.0]]), covar=[[0.1]]) == pytest.approx(
        brute_force(g, np.array([[1.0]]), np.array([[1.0, 0.5, 0.0]]), np.array([[0.1]]))[0])


def test_identifiability_does_not_depend_on_units():
    rng = np.random.default_rng(17)
    X = rng.normal(size=(500, 2)) * [1e4, 1e-4]
    ng.latent.fill_latent(X @ np.diag([1e-4, 1e4]).T, np.diag([1e-4, 1e4]), None, None, 2)
    with pytest.raises(ValueError, match="unobserved by every sample"):
        ng.latent.fill_latent(X[:, :1], np.array([[1e4, 0.0]]), None, None, 2)


def test_density_with_R_and_noise_skips_the_no_noise_rank_check():
    g = truth()
    R = np.array([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])          # dependent rows
    y = np.array([[0.5, 0.7]])
    S = np.array([[[0.1, 0.0], [0.0, 0.2]]])
    assert np.isfinite(g.logL(y, covar=S, R=R)[0])
    assert g.logL(y, covar=S, R=R)[0] == pytest.approx(brute_force(g, y, R, S)[0], abs=1e-10)
    with pytest.raises(ValueError, match="linearly dependent"):
        g.logL(y, R=R)
