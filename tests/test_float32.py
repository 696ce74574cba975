"""float32 storage of data, noise and projections (``dtype=``, issue 18).

The contract: the fit stores the per-sample arrays in float32 and computes
and accumulates in float64. So every kernel must give, bit for bit, what it
gives on a float64 copy of the same stored values, and a whole fit differs
from the float64 fit only by the rounding of the stored values.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import add_noise, random_spd

import pygmmis_ng as ng
from pygmmis_ng.data import covariances
from pygmmis_ng.data.arrays import as_float_array, check_dtype
from pygmmis_ng.data.observed import chunk_stats, group_components
from pygmmis_ng.data.validation import check_noise, check_observed
from pygmmis_ng.fitting.setup.checks import check_fit
from pygmmis_ng.fitting.setup.prepare import prepare_problem


def _problem(X, S, R, K=3, D=3):
    """The prepared Problem of a fit with float32 storage, and its Observations."""
    obs, opts, gen = check_fit(ng.GMM(K, D), X, S, R, None, 0, init_method="kmeans", w=0.0,
                               cutoff=None, sel_callback=None, oversampling=10,
                               covar_callback=None, background=None, tol=1e-4, miniter=None,
                               maxiter=100, frozen=None, split_n_merge=0, n_jobs=1, n_init=1,
                               accelerate=True, dtype=np.float32)
    return prepare_problem(obs, opts, K, D, gen), obs


def _mixture(rng, N=6000, D=3, K=3):
    truth = ng.GMM(K, D)
    truth.amp = rng.dirichlet(np.full(K, 3.0))
    truth.mean = rng.normal(size=(K, D)) * 4
    truth.covar = random_spd(rng, K, D, 0.3, 1.5)
    X = truth.draw(N, rng=rng)
    S = random_spd(rng, N, D, 0.05, 0.4)
    return add_noise(rng, X, S), S


@pytest.mark.parametrize("value", [np.float32, "float32", np.dtype("float32"), np.float64,
                                   "float64", float])
def test_storage_types_accepted(value):
    assert check_dtype(value) in (np.dtype(np.float32), np.dtype(np.float64))


@pytest.mark.parametrize("value", [None, np.float16, np.int64, "int32", np.longdouble, "x",
                                   np.complex128, 3])
def test_other_storage_types_are_refused_before_the_model_changes(value):
    rng = np.random.default_rng(0)
    X, _ = _mixture(rng, N=300)
    g = ng.GMM(2, 3)
    g.mean[:] = 7.0
    before = g.mean.copy()
    with pytest.raises(ValueError, match="dtype must be numpy.float64 or numpy.float32"):
        ng.fit(g, X, dtype=value, rng=0)
    assert np.array_equal(g.mean, before)


def test_float32_input_is_stored_without_a_copy_and_float64_input_is_cast():
    x32 = np.ones((5, 2), dtype=np.float32)
    assert as_float_array(x32, "data", np.float32) is x32
    x64 = np.arange(10.0).reshape(5, 2)
    got = as_float_array(x64, "data", np.float32)
    assert got.dtype == np.float32 and np.array_equal(got, x64)


def test_values_beyond_the_float32_range_are_a_clear_error():
    X = np.array([[1.0, 2.0], [1e39, 0.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="beyond the float32 range.*dtype=numpy.float64"):
        ng.fit(ng.GMM(1, 2), X, dtype=np.float32)
    ng.fit(ng.GMM(1, 2), X[[0, 2, 0, 2]] + [[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)


def test_the_problem_holds_the_per_sample_arrays_in_float32():
    rng = np.random.default_rng(1)
    X, S = _mixture(rng, N=2000)
    R = rng.normal(size=(2000, 2, 3))
    Y = np.einsum("nij,nj->ni", R, X)
    for args in ((X, S, None), (Y, S[:, :2, :2], R)):
        p, obs = _problem(*args)
        assert p.Xc.dtype == np.float32 and p.S.dtype == np.float32
        assert args[2] is None or p.R.dtype == np.float32
        assert obs.Z.dtype == np.float64            # the initialization sees float64
        # centred in float64, then rounded once
        shift = obs.X - (p.center if args[2] is None else np.einsum("nij,j->ni", obs.R, p.center))
        np.testing.assert_array_equal(p.Xc, shift.astype(np.float32))


def test_shared_noise_and_projections_stay_float64():
    X, R, S = check_observed(np.ones((4, 2)), np.eye(2), np.eye(2), 2, np.float32)
    assert X.dtype == np.float32 and R.dtype == np.float64 and S.dtype == np.float64


def _stats_pairs(variant, rng):
    """(group, stored arrays) of a float32 problem and the same values in float64."""
    N, D, K = 3000, 3, 4
    X, S = _mixture(rng, N=N, D=D, K=2)
    R = None
    if variant == "missing":
        X[::5, 1] = np.nan
        X[1::7, 0] = np.nan
    if variant == "projected":
        R = rng.normal(size=(N, 2, D))
        X = np.einsum("nij,nj->ni", R, X)
        S = S[:, :2, :2]
    if variant == "plain":
        S = None
    return _problem(X, S, R, K, D)[0]


@pytest.mark.parametrize("variant", ["plain", "per-sample noise", "missing", "projected"])
def test_kernels_on_float32_storage_equal_float64_copies_bit_for_bit(variant):
    rng = np.random.default_rng(2)
    p = _stats_pairs(variant, rng)
    K, D = 4, 3
    amp = rng.dirichlet(np.ones(K))
    mean = rng.normal(size=(K, D)) * 3
    covar = random_spd(rng, K, D, 0.3, 2.0)
    per_S, per_R = p.S is not None and p.S.ndim == 3, p.R is not None
    as64 = [None if a is None else a.astype(np.float64) for a in (p.Xc, p.S, p.R)]
    checked = 0
    for grp in p.groups:
        comps = group_components(grp, amp, mean, covar, per_S, per_R)
        for sl in grp.chunks:
            a = chunk_stats(grp, sl, p.Xc, p.S, p.R, comps, None, None, None, None)
            b = chunk_stats(grp, sl, *as64, comps, None, None, None, None)
            for name in ("A", "Mc", "Cc", "logL", "weight", "B"):
                assert np.array_equal(getattr(a, name), getattr(b, name)), name
            checked += 1
    assert checked >= 1


def test_a_float32_fit_is_close_to_the_float64_fit_and_the_same_for_any_n_jobs():
    rng = np.random.default_rng(3)
    X, S = _mixture(rng, N=8000)
    X32, S32 = X.astype(np.float32), S.astype(np.float32)
    fits = {}
    for dtype, n_jobs in ((np.float64, 1), (np.float32, 1), (np.float32, 2)):
        g = ng.GMM(3, 3)
        r = ng.fit(g, X32, covar=S32, dtype=dtype, n_jobs=n_jobs, rng=5, tol=1e-8)
        fits[dtype, n_jobs] = (r, g)
    (r64, g64), (r32, g32), (r32b, g32b) = fits.values()
    # the same bits for any number of processes
    assert r32.logL == r32b.logL and np.array_equal(g32.mean, g32b.mean)
    # float64 storage of the same float32 values: only the rounding after centring differs
    assert abs(r32.logL - r64.logL) < 1e-6
    np.testing.assert_allclose(g32.mean, g64.mean, atol=1e-4)
    np.testing.assert_allclose(g32.covar, g64.covar, atol=1e-4)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # maxiter=30, tol=0
def test_float32_with_imputation_and_background_fits():
    rng = np.random.default_rng(4)
    X, S = _mixture(rng, N=5000, D=2, K=2)
    keep = X[:, 0] < 2.0
    bg = ng.Background(footprint=[X.min(axis=0) - 1, X.max(axis=0) + 1])
    out = []
    for dtype in (np.float64, np.float32):
        g = ng.GMM(2, 2)
        r = ng.fit(g, X[keep].astype(np.float32), sel_callback=lambda c: (c[:, 0] < 2.0) * 1.0,
                   background=bg.copy(), dtype=dtype, rng=3, maxiter=30, tol=0)
        out.append((r.logL, g.mean))
    assert abs(out[0][0] - out[1][0]) < 1e-5
    np.testing.assert_allclose(out[0][1], out[1][1], atol=1e-3)


def test_noise_checks_run_in_float64_blocks_and_report_the_whole_stack(monkeypatch):
    monkeypatch.setattr(covariances, "CHECK_BLOCK", 7)
    rng = np.random.default_rng(5)
    S = random_spd(rng, 50, 3, 0.1, 1.0).astype(np.float32)
    got = check_noise(S, 50, 3, dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, S)         # symmetric float32 input: unchanged
    bad = S.copy()
    bad[[23, 40]] = -bad[[23, 40]]
    with pytest.raises(ValueError, match=r"2 matrix/matrices are not \(first: index 23"):
        check_noise(bad, 50, 3, dtype=np.float32)
    asym = S.copy()
    asym[31, 0, 1] += 1.0
    with pytest.raises(ValueError, match=r"not symmetric \(1 matrix/matrices, first: index 31"):
        check_noise(asym, 50, 3, dtype=np.float32)


def test_estimator_stores_float32_and_rejects_a_bad_dtype():
    rng = np.random.default_rng(6)
    X, S = _mixture(rng, N=3000)
    a = ng.IncompleteGaussianMixture(3, dtype=np.float32, random_state=0, tol=1e-8).fit(
        X.astype(np.float32), covar=S)
    b = ng.IncompleteGaussianMixture(3, random_state=0, tol=1e-8).fit(X.astype(np.float32),
                                                                       covar=S)
    assert abs(a.lower_bound_ - b.lower_bound_) < 1e-6
    np.testing.assert_allclose(a.means_, b.means_, atol=1e-4)
    with pytest.raises(ValueError, match="dtype"):
        ng.IncompleteGaussianMixture(3, dtype="int8").fit(X)


def test_nested_lists_and_missing_values_are_stored_as_float32_too():
    rng = np.random.default_rng(7)
    X, S = _mixture(rng, N=400)
    R = rng.normal(size=(400, 2, 3))
    Y = np.einsum("nij,nj->ni", R, X)
    _, R32, S32 = check_observed(Y.tolist(), S[:, :2, :2].tolist(), R.tolist(), 3, np.float32)
    assert R32.dtype == np.float32 and S32.dtype == np.float32
    X[::3, 2] = np.nan
    X32, _, S32 = check_observed(X, S, None, 3, np.float32)
    assert X32.dtype == np.float32 and S32.dtype == np.float32
