"""Property tests of fit() and GMM.draw() on random small problems (hypothesis).

Each example draws K in 1..3, D in 1..3, N in 20..200 and a seed; the data
are a mixture of Gaussian blobs, observed with no noise, a shared noise
covariance, or per-sample noise covariances (some of them exactly zero).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import pygmmis_ng as ng

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

INIT_METHODS = ["random", "minmax", "kmeans", "gmm"]
NOISE_KINDS = ["none", "shared", "per_sample"]


def random_spd(rng: np.random.Generator, D: int, scale: float) -> np.ndarray:
    A = rng.normal(size=(D, D)) * scale
    return A @ A.T + 0.05 * scale**2 * np.eye(D)


def make_problem(K: int, D: int, N: int, seed: int, noise_kind: str):
    """Blobs of K components (plus noise); returns (X, noise covariance or None)."""
    rng = np.random.default_rng(seed)
    amp = rng.dirichlet(np.full(K, 2.0))
    centres = rng.normal(scale=4.0, size=(K, D))
    chols = np.linalg.cholesky(np.stack([random_spd(rng, D, 1.0) for _ in range(K)]))
    labels = rng.choice(K, size=N, p=amp)
    X = centres[labels] + np.einsum("nab,nb->na", chols[labels], rng.normal(size=(N, D)))
    if noise_kind == "none":
        S = None
    elif noise_kind == "shared":
        S = random_spd(rng, D, 0.5)
        X = X + rng.normal(size=(N, D)) @ np.linalg.cholesky(S).T
    else:
        S = np.stack([random_spd(rng, D, rng.uniform(0.1, 1.0)) for _ in range(N)])
        zero = rng.random(N) < 0.3
        zero[0] = True                      # always at least one exactly-zero noise matrix
        S[zero] = 0.0
        L = np.zeros_like(S)
        L[~zero] = np.linalg.cholesky(S[~zero])
        X = X + np.einsum("nab,nb->na", L, rng.normal(size=(N, D)))
    return X, S


problems = st.fixed_dictionaries({
    "K": st.integers(1, 3),
    "D": st.integers(1, 3),
    "N": st.integers(20, 200),
    "seed": st.integers(0, 2**32 - 1),
    "noise_kind": st.sampled_from(NOISE_KINDS),
})


def run_fit(problem: dict, init_method: str, w: float, fit_seed: int):
    X, S = make_problem(**problem)
    gmm = ng.GMM(problem["K"], problem["D"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ng.ConvergenceWarning)
        res = ng.fit(gmm, X, covar=S, init_method=init_method, rng=fit_seed, maxiter=30, w=w)
    return gmm, res, X, S


@SETTINGS
@given(problem=problems, init_method=st.sampled_from(INIT_METHODS), w=st.sampled_from([0.0, 0.1]),
       fit_seed=st.integers(0, 2**32 - 1))
def test_fit_invariants(problem, init_method, w, fit_seed):
    gmm, res, X, S = run_fit(problem, init_method, w, fit_seed)
    K, D = problem["K"], problem["D"]
    note(f"n_iter={res.n_iter} converged={res.converged} n_reseeded={res.n_reseeded}")

    # amplitudes: a probability vector
    assert gmm.amp.shape == (K,)
    assert np.all(gmm.amp >= 0)
    assert abs(gmm.amp.sum() - 1.0) <= 1e-12

    # every parameter finite
    assert np.isfinite(gmm.amp).all()
    assert np.isfinite(gmm.mean).all()
    assert np.isfinite(gmm.covar).all()
    assert gmm.mean.shape == (K, D) and gmm.covar.shape == (K, D, D)

    # covariances symmetric positive definite
    for C in gmm.covar:
        assert np.abs(C - C.T).max() <= 1e-12 * np.abs(C).max()
        np.linalg.cholesky(C)
        assert np.linalg.eigvalsh(C).min() > 0

    # the returned logL is the mean log-likelihood of the returned parameters
    assert np.isfinite(res.logL)
    expected = np.mean(gmm.logL(X, covar=S))
    assert abs(res.logL - expected) <= 1e-9 * max(1.0, abs(expected))
    logL, U = res
    assert logL == res.logL and len(U) == K

    # history
    h = np.asarray(res.history)
    assert h.shape == (res.n_iter + 1,)
    assert np.isfinite(h).all()
    assert h[-1] == res.logL
    if w == 0 and res.n_reseeded == 0:
        # plain EM never decreases the likelihood
        drops = np.diff(h) < -1e-9 * np.abs(h[1:])
        assert not drops.any(), f"logL decreased at iteration(s) {np.flatnonzero(drops)}: {h}"


@SETTINGS
@given(problem=problems, init_method=st.sampled_from(INIT_METHODS), w=st.sampled_from([0.0, 0.1]),
       fit_seed=st.integers(0, 2**32 - 1))
def test_fit_same_seed_same_result(problem, init_method, w, fit_seed):
    g1, r1, _, _ = run_fit(problem, init_method, w, fit_seed)
    g2, r2, _, _ = run_fit(problem, init_method, w, fit_seed)
    assert np.array_equal(g1.amp, g2.amp)
    assert np.array_equal(g1.mean, g2.mean)
    assert np.array_equal(g1.covar, g2.covar)
    assert r1.logL == r2.logL
    assert np.array_equal(r1.history, r2.history)
    assert r1.n_iter == r2.n_iter and r1.n_reseeded == r2.n_reseeded


@SETTINGS
@given(K=st.integers(1, 3), D=st.integers(1, 3), size=st.integers(0, 500),
       seed=st.integers(0, 2**32 - 1), draw_seed=st.integers(0, 2**32 - 1))
def test_draw_shape_finite_reproducible(K, D, size, seed, draw_seed):
    rng = np.random.default_rng(seed)
    gmm = ng.GMM(K, D)
    gmm.amp = rng.dirichlet(np.ones(K))
    gmm.mean = rng.normal(scale=3.0, size=(K, D))
    gmm.covar = np.stack([random_spd(rng, D, 1.0) for _ in range(K)])

    a = gmm.draw(size, rng=draw_seed)
    b = gmm.draw(size, rng=draw_seed)
    assert a.shape == (size, D)
    assert np.isfinite(a).all()
    assert np.array_equal(a, b)

    c, comp = gmm.draw(size, rng=draw_seed, return_component=True)
    assert np.array_equal(a, c)
    assert comp.shape == (size,)
    assert np.all((comp >= 0) & (comp < K))


@pytest.mark.parametrize("units", [[1e4, 1e-4], [1e-17, 1e3], [1e-6, 1e-6]])
@pytest.mark.parametrize("noise", [False, True])
def test_fit_does_not_depend_on_the_units_of_the_axes(units, noise):
    """Rescaling the axes (e.g. a flux in erg/s/cm^2 beside a magnitude) must give the
    rescaled fit: floors, collapse detection and the extrapolation use each axis's own
    data sigma. (These settings used to re-seed components every iteration.)"""
    rng = np.random.default_rng(3)
    g = ng.GMM(2, 2)
    g.amp, g.mean = [0.4, 0.6], [[0.0, 0.0], [3.0, 3.0]]
    g.covar = [np.eye(2) * 0.5, [[1.0, 0.5], [0.5, 1.0]]]
    X = g.draw(2000, rng=rng)
    S = np.tile(0.1 * np.eye(2), (2000, 1, 1)) if noise else None
    u = np.asarray(units)
    ref, scaled = ng.GMM(2, 2), ng.GMM(2, 2)
    r0 = ng.fit(ref, X, covar=S, init_method="kmeans", rng=1, tol=1e-8)
    r1 = ng.fit(scaled, X * u, covar=None if S is None else S * np.outer(u, u),
                init_method="kmeans", rng=1, tol=1e-8)
    assert r1.converged and r1.n_reseeded == 0
    assert r1.logL + np.log(u).sum() == pytest.approx(r0.logL, abs=1e-6)
    o0, o1 = np.argsort(ref.mean[:, 0]), np.argsort(scaled.mean[:, 0])
    np.testing.assert_allclose(scaled.mean[o1] / u, ref.mean[o0], atol=1e-3)
    np.testing.assert_allclose(scaled.covar[o1] / np.outer(u, u), ref.covar[o0], atol=1e-3)
