"""cutoff as a speed-up: components only evaluate the samples in their neighborhoods.

A cutoff large enough to hold every sample gives the exact fit bit for bit; a usual
cutoff on well-separated data gives the exact fit to far below the statistical error;
neighborhoods in shared memory keep the fit identical for any n_jobs."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_spd

import pygmmis_ng as ng
from pygmmis_ng.fitting.em import neighborhoods
from pygmmis_ng.tools import datasets


def separated(K=6, D=2, N=6000, noise="per_sample", seed=0):
    rng = np.random.default_rng(seed)
    truth = ng.GMM(K, D)
    truth.amp = np.full(K, 1.0 / K)
    truth.mean = np.stack([np.array([12.0 * k, 5.0 * (k % 2)] + [0.0] * (D - 2)) for k in range(K)])
    truth.covar = random_spd(rng, K, D, 0.5, 1.5)
    X = truth.draw(N, rng=rng)
    S = None
    if noise == "per_sample":
        S = random_spd(rng, N, D, 0.05, 0.4)
    elif noise == "shared":
        S = random_spd(rng, 1, D, 0.05, 0.4)[0]
    if S is not None:
        L = np.linalg.cholesky(np.broadcast_to(S, (N, D, D)))
        X = X + np.einsum("nij,nj->ni", L, rng.normal(size=(N, D)))
    init = ng.GMM(K, D)
    ng.init.init_kmeans(init, X, rng=1)
    return X, S, init


def fit(X, S, init, **kw):
    g = init.copy()
    r = ng.fit(g, X, covar=S, init_method="none", **kw)
    return g, r


@pytest.mark.parametrize("noise", ["none", "shared", "per_sample"])
def test_a_cutoff_holding_every_sample_is_the_exact_fit(noise):
    X, S, init = separated(noise=noise)
    # cutoff runs no Newton polish: compared with SQUAREM alone
    g0, r0 = fit(X, S, init, tol=1e-7, accelerate="squarem")
    g1, r1 = fit(X, S, init, tol=1e-7, cutoff=1e3)
    assert r1.n_iter == r0.n_iter
    # without cutoff the lane kernels serve, with it the per-sample skeleton: equal to rounding
    assert r1.logL == pytest.approx(r0.logL, rel=1e-13)
    np.testing.assert_allclose(g1.mean, g0.mean, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(g1.covar, g0.covar, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("noise", ["none", "per_sample"])
def test_a_usual_cutoff_matches_the_exact_fit_on_separated_data(noise):
    X, S, init = separated(noise=noise, D=3)
    g0, r0 = fit(X, S, init, tol=1e-10)
    g1, r1 = fit(X, S, init, tol=1e-10, cutoff=5.0)
    # the dropped pairs have chi2 > 5.0-sigma equivalents: their responsibilities are < 1e-6
    assert r1.logL == pytest.approx(r0.logL, abs=1e-7)
    np.testing.assert_allclose(g1.mean, g0.mean, atol=1e-5)
    np.testing.assert_allclose(g1.covar, g0.covar, atol=1e-5)
    np.testing.assert_allclose(g1.amp, g0.amp, atol=1e-7)


def test_stored_neighborhoods_hold_every_sample_within_the_cutoff():
    # the margin rule: a component that moved less than NB_SHIFT sigma and grew less than
    # NB_SCALE keeps a stored neighborhood that contains its current cutoff region
    D, cutoff = 3, 4.0
    r_cut = np.sqrt(ng.chi2_cutoff(D, cutoff))
    r_store = np.sqrt(neighborhoods.neighborhood_chi2(D, cutoff))
    rng = np.random.default_rng(0)
    V_ref = random_spd(rng, 1, D, 0.5, 2.0)[0]
    L_ref = np.linalg.cholesky(V_ref)
    for _ in range(200):
        shift = rng.normal(size=D)
        shift *= neighborhoods.NB_SHIFT * rng.uniform() / np.linalg.norm(shift)
        grow = rng.uniform(0.3, neighborhoods.NB_SCALE)
        V_new = grow**2 * V_ref
        m_new = L_ref @ shift
        # points on the new cutoff surface, in reference Mahalanobis units
        u = rng.normal(size=(500, D))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        pts = m_new + (np.linalg.cholesky(V_new) @ (r_cut * u).T).T
        dist = np.linalg.norm(np.linalg.solve(L_ref, pts.T), axis=0)
        assert dist.max() <= r_store + 1e-9


def test_cutoff_fit_is_identical_for_any_n_jobs():
    X, S, init = separated(noise="per_sample", N=30000)
    g1, r1 = fit(X, S, init, tol=1e-6, cutoff=4.0, n_jobs=1)
    g2, r2 = fit(X, S, init, tol=1e-6, cutoff=4.0, n_jobs=2)
    assert r1.logL == r2.logL
    np.testing.assert_array_equal(g1.mean, g2.mean)
    np.testing.assert_array_equal(g1.covar, g2.covar)


def test_cutoff_with_imputation():
    ds = datasets.paper_2d(N=2000, selection="box_with_hole", sigma=0.5, rng=3)
    fits = []
    for cutoff in (None, 5.0):
        g = ng.GMM(3, 2)
        r = ng.fit(g, ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
                   covar_callback=lambda c: ds.covar, w=0.1, cutoff=cutoff,
                   init_method="kmeans", tol=1e-4, rng=2)
        fits.append((g, r))
    (g0, r0), (g1, r1) = fits
    assert r1.logL == pytest.approx(r0.logL, abs=1e-4)
    assert r1.orig_size == pytest.approx(r0.orig_size, rel=1e-3)
    assert all(u is not None for u in r1.U)
