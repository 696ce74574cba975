"""The fast paths give the answers of the slow ones: SQUAREM acceleration against plain EM,
the compiled (numba) kernels against the numpy reference kernels, the oversampling ramp."""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from conftest import random_spd

import pygmmis_ng as ng
from pygmmis_ng.fitting.em import acceleration
from pygmmis_ng.fitting.em.acceleration import Params
from pygmmis_ng.kernels import dense, fused
from pygmmis_ng.kernels.stats import prepare_components
from pygmmis_ng.selection.imputation import ImputationSampler, block_sizes
from pygmmis_ng.tools import datasets
from pygmmis_ng.tools.compare import match_components

# ---------------------------------------------------------------------------
# SQUAREM step
# ---------------------------------------------------------------------------

def _linear_iterates(rate: float, theta0: np.ndarray, fixed: np.ndarray) -> list[np.ndarray]:
    """theta_{t+1} = fixed + rate (theta_t - fixed): the model of EM's slow direction."""
    out = [theta0]
    for _ in range(2):
        out.append(fixed + rate * (out[-1] - fixed))
    return out


def _as_params(v: np.ndarray) -> Params:
    return Params(np.array([0.5, 0.5]), v.reshape(1, 2), np.eye(2)[None], 0.0)


def test_squarem_solves_a_linear_contraction_in_one_step():
    # for iterates of a map with one rate, scheme S3 lands exactly on the fixed point
    fixed = np.array([1.0, -2.0])
    t0, t1, t2 = _linear_iterates(0.9, np.array([3.0, 4.0]), fixed)
    cand = acceleration.extrapolate(_as_params(t0), _as_params(t1), _as_params(t2), 1.0,
                                    lambda p: True)
    np.testing.assert_allclose(cand.mean[0], fixed, atol=1e-12)
    # plain EM would need log(1e-12) / log(0.9) ~ 260 steps for the same precision
    assert np.abs(t2 - fixed).max() > 1.0


def test_squarem_shortens_invalid_steps_and_falls_back_to_em():
    fixed = np.array([1.0, -2.0])
    t0, t1, t2 = (_as_params(t) for t in _linear_iterates(0.9, np.array([3.0, 4.0]), fixed))
    # an extrapolation more than 3 EM steps long is "invalid": it is shortened, not dropped
    dist = np.abs(t2.mean - t0.mean).max()
    cand = acceleration.extrapolate(t0, t1, t2, 1.0,
                                    lambda p: np.abs(p.mean - t0.mean).max() < 3 * dist)
    assert cand is not None and np.abs(cand.mean - t0.mean).max() < 3 * dist
    assert np.abs(cand.mean - fixed).max() < np.abs(t2.mean - fixed).max()
    # nothing valid: None (the caller takes the plain EM step)
    assert acceleration.extrapolate(t0, t1, t2, 1.0, lambda p: False) is None
    # no curvature (v = 0): the EM step itself
    assert acceleration.extrapolate(t0, t0, t0, 1.0, lambda p: True) is None


def test_step_length_is_in_data_units():
    # the same iterates in data scaled by 10 (means x10, covariances x100) give the same alpha
    rng = np.random.default_rng(0)
    its = [Params(rng.dirichlet([1, 1, 1]), rng.normal(size=(3, 2)),
                  random_spd(rng, 3, 2, 0.5, 2.0), 0.0) for _ in range(3)]
    scaled = [Params(p.amp, 10 * p.mean, 100 * p.covar, 0.0) for p in its]
    a = acceleration.step_length(*its, scale2=1.0)
    b = acceleration.step_length(*scaled, scale2=100.0)
    assert a == pytest.approx(b, rel=1e-12)


# ---------------------------------------------------------------------------
# accelerated fits reach the plain-EM optimum in fewer evaluations
# ---------------------------------------------------------------------------

def _overlapping(rng, N=3000):
    truth = ng.GMM(K=2, D=2)
    truth.amp = [0.5, 0.5]
    truth.mean = [[0.0, 0.0], [1.5, 0.5]]
    truth.covar = [[[1.0, 0.2], [0.2, 0.7]], [[0.8, -0.1], [-0.1, 1.1]]]
    return truth, truth.draw(N, rng=rng)


@pytest.mark.parametrize("noise", [None, "shared", "per_sample"])
def test_accelerated_fit_reaches_the_plain_em_optimum(noise):
    rng = np.random.default_rng(1)
    truth, X = _overlapping(rng)
    S = None
    if noise == "shared":
        S = np.array([[0.5, 0.1], [0.1, 0.4]])
    elif noise == "per_sample":
        S = random_spd(rng, len(X), 2, 0.2, 0.8)
    init = ng.GMM(K=2, D=2)
    ng.init.init_kmeans(init, X, rng=0)
    fits = {}
    for acc in (False, True):
        g = init.copy()
        fits[acc] = (g, ng.fit(g, X, covar=S, init_method="none", tol=1e-10, maxiter=5000,
                               accelerate=acc))
    (g0, r0), (g1, r1) = fits[False], fits[True]
    assert r0.converged and r1.converged
    # the same optimum; plain EM stops a little short of it along its slow direction
    assert r1.logL == pytest.approx(r0.logL, abs=1e-6)
    # ... up to the known early stop of SQUAREM on a flat ridge: with tol=1e-10 the
    # accelerated run may stop a few 1e-9 short (2.8e-9 measured for 'shared')
    assert r1.logL >= r0.logL - 5e-9
    perm = match_components(g1, g0)
    np.testing.assert_allclose(g1.mean[perm], g0.mean, atol=2e-3)
    np.testing.assert_allclose(g1.covar[perm], g0.covar, atol=5e-3)
    # overlapping components make plain EM slow; the accelerated run needs far fewer E-steps
    assert r1.n_eval < 0.6 * r0.n_eval, (r1.n_eval, r0.n_eval)
    assert r1.n_eval >= r1.n_iter + 1
    assert r0.n_eval == r0.n_iter + 1
    # the accepted path is monotone, like EM's
    assert np.all(np.diff(r1.history) >= -1e-12)


def test_accelerate_must_be_a_bool():
    X = np.random.default_rng(0).normal(size=(50, 2))
    gmm = ng.GMM(K=1, D=2)
    before = gmm.copy()
    with pytest.raises(TypeError, match="accelerate"):
        ng.fit(gmm, X, accelerate="yes")
    np.testing.assert_array_equal(gmm.mean, before.mean)


def test_imputation_ramp_is_logged_and_ends_with_all_draws(caplog):
    ds = datasets.paper_2d(N=1500, selection="box", sigma=0.0, rng=3)
    g_acc, g_plain = ng.GMM(K=3, D=2), ng.GMM(K=3, D=2)
    with caplog.at_level(logging.INFO, logger="pygmmis_ng"):
        r = ng.fit(g_acc, ds.data, sel_callback=ds.sel_callback, init_method="kmeans",
                   oversampling=8, tol=1e-4, rng=5)
    assert any("continuing with 8" in rec.getMessage() for rec in caplog.records)
    assert r.converged
    # the final phase uses oversampling draws per original sample, as plain EM does
    r_plain = ng.fit(g_plain, ds.data, sel_callback=ds.sel_callback, init_method="kmeans",
                     oversampling=8, tol=1e-4, rng=5, accelerate=False)
    assert r.orig_size == pytest.approx(r_plain.orig_size, rel=0.03)
    assert r.logL == pytest.approx(r_plain.logL, abs=2e-3)
    test = ds.truth.draw(20000, rng=1)
    s_acc = np.mean(g_acc(test, as_log=True)) - np.mean(ds.truth(test, as_log=True))
    s_plain = np.mean(g_plain(test, as_log=True)) - np.mean(ds.truth(test, as_log=True))
    assert s_acc > s_plain - 0.02 and s_acc > -0.1


# ---------------------------------------------------------------------------
# compiled kernels equal the numpy reference
# ---------------------------------------------------------------------------

def test_numba_is_there():
    # numba is a dependency: the comparisons below must compare two different kernels
    assert fused.numba is not None and fused.enabled()


@pytest.fixture
def numpy_kernels(settings):
    """``switch(on)``: the compiled kernels on or off for the rest of the test."""
    def switch(on: bool) -> None:
        settings(compiled_kernels=on)
    return switch


@pytest.mark.parametrize("D", range(1, 9))
@pytest.mark.parametrize("variant", ["plain", "shared_noise", "weights_bg", "per_sample",
                                     "per_sample_weights_bg"])
def test_fused_chunk_stats_equal_numpy(numpy_kernels, D, variant):
    rng = np.random.default_rng(D)
    K, n = 4, 3000
    x = rng.normal(size=(n, D)) * 2
    mean = rng.normal(size=(K, D))
    covar = random_spd(rng, K, D, 0.3, 1.5)
    amp = rng.dirichlet(np.ones(K))
    noise = random_spd(rng, 1, D, 0.1, 0.5)[0] if variant == "shared_noise" else None
    S = random_spd(rng, n, D, 0.05, 2.0) if variant.startswith("per_sample") else None
    weight = log_bg = None
    if variant.endswith("weights_bg"):
        weight = rng.uniform(0, 2, n)
        weight[::7] = 0.0                       # zero weights are skipped, not mis-summed
        log_bg = np.log(0.2 / 40.0) + np.zeros(n)
        amp = amp * 0.8
    comps = prepare_components(amp, mean, covar, noise if S is None else S)
    out = {}
    for on in (True, False):
        numpy_kernels(on)
        out[on] = dense.chunk_stats(x, comps, S, weight, log_bg)
    a, b = out[True], out[False]
    # the per-sample kernel drops responsibilities below Q_NEGLIGIBLE = 1e-13: at most that
    # much of each sample's weight and moments
    drop = fused.Q_NEGLIGIBLE * n if S is not None else 0.0
    scale = np.abs(x).max() + np.abs(mean).max()
    np.testing.assert_allclose(a.A, b.A, rtol=1e-11, atol=drop)
    np.testing.assert_allclose(a.Mc, b.Mc, rtol=1e-10,
                               atol=max(1e-10 * np.abs(b.Mc).max(), drop * scale))
    np.testing.assert_allclose(a.Cc, b.Cc, rtol=1e-10,
                               atol=max(1e-10 * np.abs(b.Cc).max(), drop * scale**2))
    assert a.logL == pytest.approx(b.logL, rel=1e-12)
    assert a.weight == pytest.approx(b.weight, rel=1e-12)
    assert a.B == pytest.approx(b.B, rel=1e-11, abs=1e-12)


def test_fused_kernel_reports_impossible_samples_as_minus_infinity(numpy_kernels):
    # all amplitudes 0: no component can produce the samples, log p = -inf (as in numpy)
    comps = prepare_components(np.zeros(2), np.zeros((2, 2)), np.stack([np.eye(2)] * 2))
    x = np.array([[0.0, 0.0], [1e3, 1e3]])
    for on in (True, False):
        numpy_kernels(on)
        with np.errstate(invalid="ignore"):
            assert dense.chunk_stats(x, comps).logL == -np.inf
    # far-out samples are not impossible: log space keeps their density finite
    comps = prepare_components(np.array([1.0]), np.zeros((1, 2)), np.eye(2)[None] * 1e-4)
    numpy_kernels(True)
    assert dense.chunk_stats(x, comps).logL == pytest.approx(-1e10, rel=1e-8)


@pytest.mark.parametrize("background", [False, True])
def test_compiled_draws_equal_numpy_draws(numpy_kernels, background):
    rng = np.random.default_rng(2)
    K, D = 3, 2
    amp = rng.dirichlet(np.ones(K))
    mean = rng.normal(size=(K, D))
    chol = np.linalg.cholesky(random_spd(rng, K, D, 0.2, 1.0))
    bg = ng.Background(np.array([[-5.0, -5.0], [5.0, 5.0]])) if background else None
    sampler = ImputationSampler(11, D, background, noise=True)
    out = {}
    for on in (True, False):
        numpy_kernels(on)
        blocks = [sampler.block(b, n, amp, mean, chol, bg, 0.3 if background else 0.0,
                                lambda c: 0.1 * np.eye(D),
                                lambda c: (np.abs(c[:, 0]) < 1).astype(float))
                  for b, n in block_sizes(20000)]
        out[on] = np.concatenate([b.coords for b in blocks])
    np.testing.assert_allclose(out[True], out[False], rtol=0, atol=1e-12)


def test_imputation_fit_is_the_same_with_and_without_compiled_kernels(numpy_kernels):
    ds = datasets.paper_2d(N=1000, selection="box_with_hole", sigma=0.5, rng=4)
    fits = {}
    for on in (True, False):
        numpy_kernels(on)
        g = ng.GMM(K=3, D=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = ng.fit(g, ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
                       covar_callback=lambda c: ds.covar, init_method="kmeans", w=0.1,
                       oversampling=4, tol=1e-4, maxiter=30, rng=9)
        fits[on] = (g, r)
    (g1, r1), (g0, r0) = fits[True], fits[False]
    # same draws, same iterations: equal up to the summation order of the kernels
    assert r1.n_iter == r0.n_iter
    assert r1.logL == pytest.approx(r0.logL, abs=1e-8)
    np.testing.assert_allclose(g1.mean, g0.mean, atol=1e-6)


def test_fused_per_sample_kernel_reports_non_positive_definite_noise(numpy_kernels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 2))
    S = np.stack([np.eye(2)] * 10)
    S[6] = [[-3.0, 0.0], [0.0, 1.0]]                # V + S_6 is indefinite
    comps = prepare_components(np.array([1.0]), np.zeros((1, 2)), np.eye(2)[None], S)
    for on in (True, False):
        numpy_kernels(on)
        with pytest.raises(np.linalg.LinAlgError):
            dense.chunk_stats(x, comps, S)
