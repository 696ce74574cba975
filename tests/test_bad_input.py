"""Bad input to the public API must fail early, with the right exception and a clear message.

For ``fit`` every failing call must also leave the GMM passed in unchanged
(docs/design.md, "Robustness": all checks run before the model is touched).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import pygmmis_ng as ng

K, D, N = 2, 2, 50


def make_gmm(K: int = K, D: int = D) -> ng.GMM:
    """A valid, initialized GMM with distinct parameters (so any change is visible)."""
    gmm = ng.GMM(K, D)
    gmm.amp = np.linspace(1.0, 2.0, K) / np.linspace(1.0, 2.0, K).sum()
    gmm.mean = np.arange(K * D, dtype=float).reshape(K, D) * 1.5 - 2.0
    covar = np.empty((K, D, D))
    for k in range(K):
        A = np.full((D, D), 0.1 * (k + 1)) + np.eye(D) * (1.0 + 0.5 * k)
        covar[k] = A
    gmm.covar = covar
    gmm.validate()
    return gmm


def snapshot(gmm: ng.GMM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return gmm.amp.copy(), gmm.mean.copy(), gmm.covar.copy()


def assert_unchanged(gmm: ng.GMM, before: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    amp, mean, covar = before
    assert np.array_equal(gmm.amp, amp)
    assert np.array_equal(gmm.mean, mean)
    assert np.array_equal(gmm.covar, covar)


@pytest.fixture
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(N, D))


def noise(n: int = N, d: int = D) -> np.ndarray:
    return np.tile(0.1 * np.eye(d), (n, 1, 1))


def _with(X: np.ndarray, row: int, col: int, value: float) -> np.ndarray:
    X = X.copy()
    X[row, col] = value
    return X


def _nan_at(row: int, a: int, b: int) -> np.ndarray:
    S = noise()
    S[row, a, b] = np.nan
    return S


def _non_symmetric_noise() -> np.ndarray:
    S = noise()
    S[3, 0, 1] = 0.05
    return S


def _negative_noise() -> np.ndarray:
    S = noise()
    S[7] = np.diag([0.1, -0.2])
    return S


def _nan_noise() -> np.ndarray:
    S = noise()
    S[5, 1, 1] = np.nan
    return S


def _bad_init(gmm, data, covar=None, rng=None):
    """A user init callback that sets a covariance that is not positive definite."""
    gmm.amp = np.full(gmm.K, 1.0 / gmm.K)
    gmm.mean = data[: gmm.K]
    gmm.covar = np.tile(np.diag([1.0, -1.0]), (gmm.K, 1, 1))


# (case id, function X -> (data, kwargs), exception, message fragment as regex)
FIT_CASES = [
    # ---- data ---------------------------------------------------------------
    ("data-1d", lambda X: (X[:, 0], {}), ValueError, r"data must have shape \(N, D\).*reshape"),
    ("data-3d", lambda X: (X[:, :, None], {}), ValueError, r"data must have shape \(N, D\) with D=2"),
    ("data-columns", lambda X: (np.hstack([X, X[:, :1]]), {}), ValueError,
     r"data has 3 columns but the model has D=2"),
    ("data-empty", lambda X: (np.empty((0, D)), {}), ValueError, r"data is empty"),
    ("data-row-all-nan", lambda X: (_with(_with(X, 4, 1, np.nan), 4, 0, np.nan), {}), ValueError,
     r"data has 1 row\(s\) with every value missing \(NaN\) \(first: row 4\)"),
    ("data-column-all-nan", lambda X: (np.c_[X[:, :1], np.full(N, np.nan)], {}), ValueError,
     r"feature\(s\) \[1\] are missing \(NaN\) in every sample"),
    ("data-inf", lambda X: (_with(X, 6, 0, np.inf), {}), ValueError, r"data contains inf.*row 6"),
    ("data-strings", lambda X: ([["a", "b"], ["c", "d"], ["e", "f"]], {}), ValueError,
     r"data must be numeric"),
    ("data-complex", lambda X: (X + 1j, {}), ValueError, r"data must be (numeric|real)"),
    # ---- noise covariances --------------------------------------------------
    ("covar-shape-DplusOne", lambda X: (X, {"covar": 0.1 * np.eye(D + 1)}), ValueError,
     r"covar \(noise covariance\) must be None.*got shape \(3, 3\)"),
    ("covar-shape-Nminus1", lambda X: (X, {"covar": noise(N - 1)}), ValueError,
     r"covar \(noise covariance\) must be None.*got shape \(49, 2, 2\)"),
    ("covar-non-symmetric", lambda X: (X, {"covar": _non_symmetric_noise()}), ValueError,
     r"covar \(noise covariance\) is not symmetric.*index 3"),
    ("covar-negative-eigenvalue", lambda X: (X, {"covar": _negative_noise()}), ValueError,
     r"covar \(noise covariance\) must be positive semi-definite.*index 7"),
    ("covar-nan", lambda X: (X, {"covar": _nan_noise()}), ValueError,
     r"covar \(noise covariance\) contains NaN"),
    # ---- sample weights -----------------------------------------------------
    ("weight-shape", lambda X: (X, {"sample_weight": np.ones(N + 1)}), ValueError,
     r"sample_weight must have shape \(50,\)"),
    ("weight-negative", lambda X: (X, {"sample_weight": np.r_[-1.0, np.ones(N - 1)]}), ValueError,
     r"sample_weight must be non-negative"),
    ("weight-nan", lambda X: (X, {"sample_weight": np.r_[np.nan, np.ones(N - 1)]}), ValueError,
     r"sample_weight contains NaN"),
    ("weight-all-zero", lambda X: (X, {"sample_weight": np.zeros(N)}), ValueError,
     r"sample_weight sums to zero"),
    # ---- init_method ---------------------------------------------------------
    ("init-unknown", lambda X: (X, {"init_method": "kmeans++"}), ValueError,
     r"unknown init_method 'kmeans\+\+'"),
    ("init-wrong-type", lambda X: (X, {"init_method": 3}), ValueError, r"unknown init_method 3"),
    ("init-invalid-result", lambda X: (X, {"init_method": _bad_init}), ValueError,
     r"initialization produced an invalid GMM.*positive definite"),
    # ---- scalar options -----------------------------------------------------
    ("w-negative", lambda X: (X, {"w": -0.1}), ValueError, r"w must be >= 0"),
    ("w-nan", lambda X: (X, {"w": np.nan}), ValueError, r"w must be finite"),
    ("tol-negative", lambda X: (X, {"tol": -1e-3}), ValueError, r"tol must be >= 0"),
    ("cutoff-zero", lambda X: (X, {"cutoff": 0}), ValueError, r"cutoff must be > 0"),
    ("cutoff-negative", lambda X: (X, {"cutoff": -3.0}), ValueError, r"cutoff must be > 0"),
    ("miniter-gt-maxiter", lambda X: (X, {"miniter": 10, "maxiter": 5}), ValueError,
     r"miniter=10 must not exceed maxiter=5"),
    ("maxiter-negative", lambda X: (X, {"maxiter": -1}), ValueError, r"maxiter must be >= 0"),
    ("miniter-non-integer", lambda X: (X, {"miniter": 1.5}), ValueError,
     r"miniter must be an integer, got 1\.5"),
    ("oversampling-zero", lambda X: (X, {"oversampling": 0}), ValueError, r"oversampling must be >= 1"),
    ("n_jobs-zero", lambda X: (X, {"n_jobs": 0}), ValueError, r"n_jobs must be a positive int or -1"),
    ("n_jobs-minus-two", lambda X: (X, {"n_jobs": -2}), ValueError,
     r"n_jobs must be a positive int or -1.*got -2"),
    # ---- frozen -------------------------------------------------------------
    ("frozen-index-K", lambda X: (X, {"frozen": [K]}), ValueError,
     r"frozen contains index 2, out of range for K=2"),
    ("frozen-index-minus-K-minus-1", lambda X: (X, {"frozen": [-K - 1]}), ValueError,
     r"frozen contains index -3, out of range for K=2"),
    ("frozen-non-integer", lambda X: (X, {"frozen": [0.5]}), ValueError,
     r"frozen must contain integer component indices"),
    ("frozen-unknown-key", lambda X: (X, {"frozen": {"amp": [0], "weights": [1]}}), ValueError,
     r"frozen dict has unknown key\(s\) \['weights'\]"),
    ("frozen-all-amps", lambda X: (X, {"frozen": {"amp": [0, 1]}}), ValueError,
     r"all amplitudes are frozen"),
    ("frozen-all-components", lambda X: (X, {"frozen": [0, 1]}), ValueError,
     r"all amplitudes are frozen"),
    # ---- rng ----------------------------------------------------------------
    ("rng-string", lambda X: (X, {"rng": "seed"}), ValueError, r"rng must be None.*got str"),
    ("rng-float", lambda X: (X, {"rng": 1.5}), ValueError, r"rng must be None.*got float"),
    ("rng-negative-seed", lambda X: (X, {"rng": -1}), ValueError, r"rng seed must be non-negative"),
    # ---- imputation and background (more in test_bad_callbacks.py) -----------
    ("covar_callback-without-sel_callback", lambda X: (X, {"covar_callback": lambda x: noise(len(x))}),
     ValueError, r"covar_callback is only used for imputation samples: it needs a sel_callback"),
    ("background-not-Background", lambda X: (X, {"background": 0.1}), TypeError,
     r"background must be a pygmmis_ng\.Background, got float"),
    # ---- projections -----------------------------------------------------------
    ("R-wrong-D", lambda X: (X, {"R": np.ones((1, D + 1))}), ValueError,
     r"R \(projection\) must have shape \(dy, 2\).*got shape \(1, 3\)"),
    ("R-wrong-N", lambda X: (X[:, :1], {"R": np.ones((N + 1, 1, D))}), ValueError,
     r"R \(projection\) must have shape .*\(50, dy, 2\).*got shape \(51, 1, 2\)"),
    ("R-1d", lambda X: (X, {"R": np.ones(D)}), ValueError, r"R \(projection\) must have shape"),
    ("R-nan", lambda X: (X[:, :1], {"R": np.array([[1.0, np.nan]])}), ValueError,
     r"R \(projection\) contains NaN or inf; mark a missing measurement by NaN in data"),
    ("R-columns-mismatch", lambda X: (X, {"R": np.ones((1, D))}), ValueError,
     r"data has 2 columns but R projects onto dy=1 values"),
    ("R-unobserved-direction", lambda X: (X[:, :1], {"R": np.array([[1.0, 0.0]])}), ValueError,
     r"leave some direction of the D=2-dimensional space unobserved"),
    ("R-noise-wrong-dy", lambda X: (X[:, :1], {"R": np.tile([[1.0, 0.5]], (N, 1, 1)),
                                               "covar": 0.1 * np.eye(D)}), ValueError,
     r"covar \(noise covariance\) must be None, shape \(1, 1\)"),
    ("R-dependent-rows-no-noise", lambda X: (np.c_[X, X[:, 0]], {"R": [[1, 0], [0, 1], [1, 0]]}),
     ValueError, r"measured rows of the projection of sample 0 are linearly dependent"),
    ("R-1d-data", lambda X: (X[:, 0], {"R": np.ones((N, 1, D))}), ValueError,
     r"data must have shape \(N, dy\) for projections R, got shape \(50,\)"),
    ("covar-nan-at-measured-value", lambda X: (_with(X, 3, 1, np.nan), {"covar": _nan_at(5, 0, 0)}),
     ValueError, r"NaN or inf at measured values of 1 sample\(s\) \(first: row 5\)"),
    ("R-with-background", lambda X: (X, {"R": np.eye(D), "background": ng.Background([[-9, -9], [9, 9]])}),
     ValueError, r"R \(projections\) with a background is not supported"),
    # ---- split'n'merge -------------------------------------------------------
    ("split_n_merge-K-below-3", lambda X: (X, {"split_n_merge": 3}), ValueError,
     r"split_n_merge needs K >= 3 components.*got K=2"),
    ("split_n_merge-true-K-below-3", lambda X: (X, {"split_n_merge": True}), ValueError,
     r"split_n_merge needs K >= 3 components.*got K=2"),
    ("split_n_merge-negative", lambda X: (X, {"split_n_merge": -1}), ValueError,
     r"split_n_merge must be >= 0, got -1"),
    ("split_n_merge-non-integer", lambda X: (X, {"split_n_merge": np.inf}), ValueError,
     r"split_n_merge must be an integer, got inf"),
]


@pytest.mark.parametrize("case, exc, match", [pytest.param(c[1], c[2], c[3], id=c[0]) for c in FIT_CASES])
def test_fit_bad_input(X, case, exc, match):
    gmm = make_gmm()
    before = snapshot(gmm)
    data, kwargs = case(X)
    with pytest.raises(exc, match=match):
        ng.fit(gmm, data, **kwargs)
    assert_unchanged(gmm, before)


def test_fit_fewer_samples_than_components(X):
    gmm = make_gmm(K=3)
    before = snapshot(gmm)
    with pytest.raises(ValueError, match=r"K=3 components cannot be fitted to N=2 samples"):
        ng.fit(gmm, X[:2])
    assert_unchanged(gmm, before)


def test_fit_frozen_amps_sum_to_one(X):
    gmm = make_gmm(K=3)
    gmm.amp = [0.5, 0.5, 0.0]
    before = snapshot(gmm)
    with pytest.raises(ValueError, match=r"frozen amplitudes must be .*sum to < 1"):
        ng.fit(gmm, X, frozen={"amp": [0, 1]})
    assert_unchanged(gmm, before)


def test_fit_init_none_uninitialized(X):
    gmm = ng.GMM(K, D)
    before = snapshot(gmm)
    with pytest.raises(ValueError, match=r"init_method='none' needs an initialized GMM.*not initialized"):
        ng.fit(gmm, X, init_method="none")
    assert_unchanged(gmm, before)


@pytest.mark.parametrize("not_a_gmm", [None, "gmm", {"amp": [1.0]}, np.ones(3)],
                         ids=["None", "str", "dict", "array"])
def test_fit_gmm_wrong_type(X, not_a_gmm):
    with pytest.raises(TypeError, match=r"gmm must be a pygmmis_ng\.GMM"):
        ng.fit(not_a_gmm, X)


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"K": 0, "D": 2}, r"K must be >= 1, got 0"),
    ({"K": 2.5, "D": 2}, r"K must be an integer, got 2\.5"),
    ({"K": True, "D": 2}, r"K must be an integer, got True"),
    ({"K": 2, "D": 0}, r"D must be >= 1, got 0"),
], ids=["K-zero", "K-float", "K-bool", "D-zero"])
def test_gmm_bad_shape_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ng.GMM(**kwargs)


@pytest.mark.parametrize("name, value, match", [
    ("amp", np.full((K, 1), 0.5), r"amp must have shape \(K,\).*got \(2, 1\)"),
    ("mean", np.zeros((K, D + 1)), r"mean must have shape \(K, 2\).*got \(2, 3\)"),
    ("mean", np.zeros(D), r"mean must have shape \(K, 2\).*got \(2,\)"),
    ("covar", np.eye(D), r"covar must have shape \(K, 2, 2\).*got \(2, 2\)"),
    ("covar", np.tile(np.eye(D + 1), (K, 1, 1)), r"covar must have shape \(K, 2, 2\).*got \(2, 3, 3\)"),
], ids=["amp-2d", "mean-columns", "mean-1d", "covar-2d", "covar-DplusOne"])
def test_gmm_set_wrong_shape(name, value, match):
    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(ValueError, match=match):
        setattr(gmm, name, value)
    assert_unchanged(gmm, before)


def test_gmm_half_resized_is_refused_until_all_three_agree():
    gmm = make_gmm()
    gmm.amp = np.full(K + 1, 1.0 / (K + 1))          # pyGMMis-style resize, one step at a time
    X = np.zeros((3, D))
    with pytest.raises(ValueError, match="disagree on K: amp has 3 components, mean 2, covar 2"):
        gmm(X)
    with pytest.raises(ValueError, match="disagree on K"):
        ng.fit(gmm, np.random.default_rng(0).normal(size=(50, D)), init_method="none")
    assert repr(gmm) == f"GMM(K=?, D={D}: amp 3, mean 2, covar 2 components)"
    gmm.mean = np.zeros((K + 1, D))
    gmm.covar = np.tile(np.eye(D), (K + 1, 1, 1))
    assert gmm.K == K + 1 and repr(gmm) == f"GMM(K=3, D={D})"
    np.testing.assert_allclose(gmm(X), np.full(3, 1 / (2 * np.pi)))


@pytest.mark.parametrize("use", [
    lambda g, X: g(X),
    lambda g, X: g.logL(X),
    lambda g, X: g.draw(5, rng=0),
    lambda g, X: g.responsibilities(X),
    lambda g, X: g.log_joint(X),
], ids=["call", "logL", "draw", "responsibilities", "log_joint"])
def test_gmm_not_initialized(X, use):
    with pytest.raises(ValueError, match=r"not initialized"):
        use(ng.GMM(K, D), X)


def test_gmm_amps_not_summing_to_one(X):
    gmm = make_gmm()
    gmm.amp = [0.3, 0.3]
    with pytest.raises(ValueError, match=r"GMM\.amp must sum to 1, sums to 0\.6"):
        gmm(X)


@pytest.mark.parametrize("covar, match", [
    (np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [2.0, 1.0]]]),
     r"GMM\.covar must be positive definite.*index 1"),
    (np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]]),
     r"GMM\.covar must be positive definite.*index 1"),
    (np.array([[[1.0, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]),
     r"GMM\.covar is not symmetric.*index 0"),
], ids=["indefinite", "singular", "non-symmetric"])
def test_gmm_user_covar_not_spd(X, covar, match):
    gmm = make_gmm()
    gmm.covar = covar
    with pytest.raises(ValueError, match=match):
        gmm(X)


@pytest.mark.parametrize("coords, kwargs, match", [
    (np.zeros((5, D + 1)), {}, r"coords has 3 columns but the model has D=2"),
    (np.zeros((5, D, 1)), {}, r"coords must have shape \(N, D\) with D=2"),
    (np.zeros(D + 1), {}, r"a single point must have 2 coordinates, got 3"),
    (np.array([[0.0, 1.0], [np.nan, np.nan]]), {}, r"coords has 1 row\(s\) with every value missing.*row 1"),
    (np.zeros((5, D)), {"covar": np.eye(D + 1)},
     r"covar \(noise covariance\) must be None.*got shape \(3, 3\)"),
    (np.zeros((5, D)), {"covar": np.tile(np.eye(D), (4, 1, 1))},
     r"covar \(noise covariance\) must be None.*got shape \(4, 2, 2\)"),
], ids=["columns", "3d", "single-point-length", "all-nan-row", "covar-DplusOne", "covar-wrong-N"])
def test_gmm_call_bad_coords(coords, kwargs, match):
    gmm = make_gmm()
    with pytest.raises(ValueError, match=match):
        gmm(coords, **kwargs)


@pytest.mark.parametrize("size, match", [
    (-1, r"size must be >= 0, got -1"),
    (2.5, r"size must be an integer, got 2\.5"),
], ids=["negative", "float"])
def test_gmm_draw_bad_size(size, match):
    with pytest.raises(ValueError, match=match):
        make_gmm().draw(size, rng=0)


def test_gmm_draw_bad_rng():
    with pytest.raises(ValueError, match=r"rng must be None.*got str"):
        make_gmm().draw(3, rng="seed")


def test_gmm_from_file_missing_keys(tmp_path):
    path = tmp_path / "not_a_gmm.npz"
    np.savez(path, amp=np.ones(1), something=np.zeros(3))
    with pytest.raises(ValueError, match=r"is not a saved GMM: missing \['covar', 'mean'\]"):
        ng.GMM.from_file(path)


def test_gmm_from_file_inconsistent_shapes(tmp_path):
    path = tmp_path / "inconsistent.npz"
    np.savez(path, amp=np.ones(1), mean=np.zeros((1, 2)), covar=np.eye(3)[None])
    with pytest.raises(ValueError, match=r"inconsistent shapes"):
        ng.GMM.from_file(path)


@pytest.mark.parametrize("name", ["amp", "mean", "covar"])
def test_gmm_save_reserved_name(tmp_path, name):
    gmm = make_gmm()
    path = tmp_path / "gmm.npz"
    with pytest.raises(ValueError, match=re.escape(f"cannot store extra arrays named ['{name}']")):
        gmm.save(path, **{name: np.zeros(3)})
    assert not path.exists()


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e80], ids=["huge", "tiny", "spread-1e80"])
def test_fit_data_scale_out_of_range(X, scale):
    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(ValueError, match=r"data (spread|has values up to) .* rescale"):
        ng.fit(gmm, X * scale, rng=0)
    assert_unchanged(gmm, before)


def test_fit_extreme_but_representable_scales_work(X):
    # 1e-90: SQUAREM's step norms once divided by the squared data variance (0: a raw error)
    for scale in (1e-95, 1e-90, 1e-30, 1e30, 1e70):
        gmm = ng.GMM(K, D)
        logL, _ = ng.fit(gmm, X * scale, rng=0)
        assert np.isfinite(logL) and np.isfinite(gmm.covar).all()


def test_fit_weights_overflowing_sum(X):
    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(ValueError, match="sample_weight sums to inf"):
        ng.fit(gmm, X, sample_weight=np.full(N, 1e308))
    assert_unchanged(gmm, before)


def test_gmm_load_invalid_values_leaves_model_unchanged(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, amp=[0.5], mean=[[0.0, 0.0]], covar=[-np.eye(2)])
    gmm = make_gmm()
    before = snapshot(gmm)
    with pytest.raises(ValueError, match="does not hold a valid mixture"):
        gmm.load(path)
    assert_unchanged(gmm, before)
