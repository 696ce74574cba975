"""The quadratic-feature E-step without per-sample noise, and its pieces (issue 18)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import random_spd
from scipy.stats import multivariate_normal

import pygmmis_ng as ng
from pygmmis_ng.data.lazy import stable_average
from pygmmis_ng.fitting.em.convergence import remaining_gain
from pygmmis_ng.kernels import compiled_transforms, dense, fused, quadratic
from pygmmis_ng.kernels.stats import prepare_components


def test_branch_free_exp_is_within_one_ulp_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-700, 0, 200001), -rng.random(100000) * 3, [0.0, -1e-300]])
    parts = [compiled_transforms.exp_parts(v) for v in x]
    p = np.array([a for a, _ in parts])
    bits = np.array([compiled_transforms.pow2_bits(k) for _, k in parts], dtype=np.int64)
    got = p * bits.view(np.float64)
    ref = np.exp(x)
    ulp = np.spacing(ref)
    assert np.abs(got - ref).max() / ulp[np.argmax(np.abs(got - ref))] <= 1.0
    assert np.all(np.abs(got - ref) <= ulp)


@pytest.mark.parametrize("D", range(1, 9))
def test_feature_weights_give_the_gaussian_log_density(D):
    # independent truth: scipy's multivariate normal, with and without a shared noise
    rng = np.random.default_rng(D)
    K = 3
    mean = rng.normal(size=(K, D)) * 2
    covar = random_spd(rng, K, D, 0.2, 3.0)
    amp = rng.dirichlet(np.ones(K))
    noise = random_spd(rng, 1, D, 0.1, 0.5)[0]
    x = rng.normal(size=(50, D)) * 3
    rows, cols = quadratic.pairs(D)
    z = np.hstack([np.ones((50, 1)), x, x[:, rows] * x[:, cols]])
    for S in (None, noise):
        comps = prepare_components(amp, mean, covar, S)
        T = covar if S is None else covar + S
        ref = np.stack([np.log(amp[k]) + multivariate_normal(mean[k], T[k]).logpdf(x)
                        for k in range(K)], axis=1)
        np.testing.assert_allclose(z @ comps.quad.T, ref, rtol=1e-12, atol=1e-12)


def _case(D, variant, rng, K=5, n=3000):
    x = rng.normal(size=(n, D)) * 2
    mean = rng.normal(size=(K, D))
    covar = random_spd(rng, K, D, 0.3, 1.5)
    amp = rng.dirichlet(np.ones(K))
    noise = random_spd(rng, 1, D, 0.1, 0.5)[0] if variant == "shared" else None
    weight = log_bg = None
    if variant == "weights_bg":
        weight = rng.uniform(0, 2, n)
        weight[::7] = 0.0
        log_bg = np.log(0.2 / 40.0) + rng.normal(size=n)
        amp = amp * 0.8
    if variant == "empty_member":
        amp[1] = 0.0                                # log a = -inf: a member that is never used
    return x, prepare_components(amp, mean, covar, noise), weight, log_bg


def _assert_stats_equal(a, b, family="full"):
    """a (A, Mc, Cc, logL, B) equals b to the raw form's accuracy ('diag'/'spherical': the
    diagonal / its mean of Cc, which is all those families' M-steps read)."""
    Ca, Cb = a[2], b[2]
    if family != "full":
        Ca, Cb = np.einsum("kaa->ka", Ca), np.einsum("kaa->ka", Cb)
        if family == "spherical":
            Ca, Cb = Ca.mean(1), Cb.mean(1)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-10 * np.abs(b[1]).max())
    np.testing.assert_allclose(Ca, Cb, rtol=1e-10, atol=1e-10 * np.abs(Cb).max())
    assert a[3] == pytest.approx(b[3], rel=1e-12)
    assert a[4] == pytest.approx(b[4], rel=1e-10, abs=1e-13)


def _as_tuple(st):
    return st.A, st.Mc, st.Cc, st.logL, st.B


@pytest.mark.parametrize("D", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("variant", ["plain", "shared", "weights_bg", "empty_member"])
def test_quadratic_and_lane_stats_equal_the_numpy_kernels(settings, monkeypatch, D, variant):
    x, comps, weight, log_bg = _case(D, variant, np.random.default_rng(10 * D))
    assert comps.quad is not None
    assert dense.kernel_path(D, False, True, False) == ("fused" if D <= 8 else "quadratic")
    out = {}
    for on in (True, False):
        settings(compiled_kernels=on)
        out[on] = _as_tuple(dense.chunk_stats(x, comps, None, weight, log_bg))
    _assert_stats_equal(out[True], out[False])
    raw = quadratic.central_stats(x, comps.mean, comps.quad, weight, log_bg)
    ref = _as_tuple(dense.chunk_stats(x, comps._replace(gain=None, post_covar=None), None,
                                      weight, log_bg))
    _assert_stats_equal(raw, ref)
    if variant == "empty_member":
        assert out[True][0][1] == 0.0 and raw[0][1] == 0.0


@pytest.mark.parametrize("D", [2, 9, 30])
@pytest.mark.parametrize("family", ["diag", "spherical"])
@pytest.mark.parametrize("variant", ["plain", "weights_bg"])
def test_diagonal_families_equal_the_numpy_kernels(settings, monkeypatch, D, family, variant):
    """The O(D) kernels of diagonal / isotropic components (lanes, GEMMs over 1 + 2D or
    D + 2 features) against the full numpy kernels on the same components."""
    rng = np.random.default_rng(D)
    K = 4
    x, _, weight, log_bg = _case(D, variant, rng)
    var = rng.uniform(0.3, 2.0, (K, D if family == "diag" else 1)) * np.ones((K, D))
    covar = np.einsum("ka,ab->kab", var, np.eye(D))
    mean = rng.normal(size=(K, D))
    comps = prepare_components(np.full(K, 0.8 / K), mean, covar, family=family)
    assert comps.family == family
    settings(compiled_kernels=False)
    ref = _as_tuple(dense.chunk_stats(x, comps, None, weight, log_bg))
    settings(compiled_kernels=True)
    _assert_stats_equal(_as_tuple(dense.chunk_stats(x, comps, None, weight, log_bg)), ref, family)
    _assert_stats_equal(quadratic.central_stats(x, mean, comps.quad, weight, log_bg, family),
                        ref, family)
    lanes = fused.stats_shared(x, weight, log_bg, mean, comps.prec_chol,
                               comps.log_amp - 0.5 * (D * np.log(2 * np.pi) + comps.log_det),
                               family=family)
    _assert_stats_equal(lanes, ref, family)


def test_far_components_use_the_centred_kernels(settings, monkeypatch):
    # |L^-1 m|^2 above RAW_LIMIT: the raw form would lose ~1e-7 of the variance; the
    # centred kernels serve instead, and agree with numpy to 1e-10
    rng = np.random.default_rng(3)
    D, K = 4, 3
    mean = rng.normal(size=(K, D))
    mean[0, 0] += 5e3                               # 5000 sigma from the origin
    covar = random_spd(rng, K, D, 0.5, 1.5)
    comps = prepare_components(np.ones(K) / K, mean, covar)
    assert comps.quad is None
    assert dense.kernel_path(D, False, False, False) == "fused"        # centred lanes
    assert dense.kernel_path(12, False, False, False) == "numpy"
    near_mean = mean.copy()
    near_mean[0, 0] = 300.0                         # 300 sigma: still accurate enough
    near = prepare_components(np.ones(K) / K, near_mean, covar)
    assert near.quad is not None
    x = np.vstack([rng.normal(size=(500, D)) + near_mean[k] for k in range(K)])
    settings(compiled_kernels=False)
    b = dense.chunk_stats(x, near)
    A, Mc, Cc, logL, B = quadratic.central_stats(x, near.mean, near.quad, None, None)
    # the documented bound: the cancellation costs < ~1e-10 of each component's variance
    var = np.einsum("kaa->ka", covar) * b.A[:, None]
    assert np.all(np.abs(np.einsum("kaa->ka", Cc - b.Cc)) < 1e-9 * var)
    assert logL == pytest.approx(b.logL, rel=1e-12)


def test_neighborhoods_keep_the_fused_kernel():
    # a cutoff fit at D <= 3 skips pairs: only the fused loops do that
    assert dense.kernel_path(3, False, True, True) == "fused"
    assert dense.kernel_path(5, False, True, True) == "quadratic"
    assert dense.kernel_path(5, False, False, True) == "numpy"
    assert dense.kernel_path(2, True, False, True) == "per_sample"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("runner", ["threads", "pool"])
def test_plain_em_at_d5_is_bitwise_the_same_on_threads_and_processes(monkeypatch, runner):
    rng = np.random.default_rng(5)
    D, K, n = 5, 4, 60000
    X = rng.normal(size=(n, D)) + rng.integers(0, K, n)[:, None] * 2.5
    w = rng.uniform(0.5, 2, n)
    runs = []
    for setting in (1, 2):
        g = ng.GMM(K, D)
        if runner == "threads":
            monkeypatch.setenv("PYGMMIS_NG_THREADS", str(setting))
            r = ng.fit(g, X, sample_weight=w, rng=3, maxiter=15, tol=0)
        else:
            monkeypatch.setenv("PYGMMIS_NG_THREADS", "1")
            r = ng.fit(g, X, sample_weight=w, rng=3, maxiter=15, tol=0, n_jobs=setting)
        runs.append((r, g))
    (r1, g1), (r2, g2) = runs
    assert r1.n_iter == 15 and np.array_equal(r1.history, r2.history)
    assert np.array_equal(g1.mean, g2.mean) and np.array_equal(g1.covar, g2.covar)


def test_stable_average_is_accurate_and_independent_of_memory_alignment():
    rng = np.random.default_rng(7)
    values = rng.normal(size=(10001, 3)) * 1e8 + 1e-3
    weight = rng.uniform(0, 3, len(values))
    ref = np.array([math.fsum(values[:, d] * weight) for d in range(3)]) / math.fsum(weight)
    got = stable_average(values, weight)
    np.testing.assert_allclose(got, ref, rtol=1e-15)
    raw = np.empty(values.nbytes + 8, dtype=np.uint8)            # the same rows, 8 bytes off
    shifted = np.frombuffer(raw[8:].data, dtype=float).reshape(values.shape)
    shifted[:] = values
    assert np.array_equal(stable_average(shifted, weight), got)
    assert np.array_equal(stable_average(values), stable_average(shifted))


def test_an_exact_fixed_point_has_no_gain_left_at_any_rate():
    # regression: a step of exactly 0 after iterates that looked divergent (rate inf) kept
    # a fit from converging until maxiter
    assert remaining_gain(0.0, np.inf) == 0.0
    assert remaining_gain(1e-3, np.inf) == np.inf
    assert remaining_gain(1e-3, 0.5) == pytest.approx(1e-3 / 3)
