"""IncompleteGaussianMixture takes GaussianMixture code as it is (issue 15, part 2).

scikit-learn's own test module runs in tests/test_sklearn_suite.py; these tests
cover what it does not: our paths (missing values, selection) through the same
parameters, and the behaviours we chose where scikit-learn leaves room.
"""
from __future__ import annotations

import io
import logging
import re
import sys

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import pygmmis_ng as ng
from pygmmis_ng import IncompleteGaussianMixture

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal([0, 0], 1.0, (200, 2)), rng.normal([5, 3], 0.6, (150, 2))])


def test_max_iter_zero_returns_the_initialization():
    X = blobs()
    means = np.array([[1.0, 1.0], [4.0, 2.0]])
    est = IncompleteGaussianMixture(2, means_init=means, max_iter=0, random_state=0).fit(X)
    np.testing.assert_array_equal(est.means_, means)
    assert est.n_iter_ == 0 and not est.converged_
    assert est.lower_bound_ == pytest.approx(est.score(X), abs=1e-12)
    g = ng.GMM(2, 2)
    res = ng.fit(g, X, maxiter=0, rng=0)                   # no miniter needed
    assert res.n_iter == 0 and len(res.history) == 1
    with pytest.raises(ValueError, match="miniter=2 must not exceed maxiter=0"):
        ng.fit(g, X, maxiter=0, miniter=2)


def test_fit_predict_and_sample_as_sklearn():
    X = blobs(1)
    est = IncompleteGaussianMixture(2, random_state=3)
    labels = est.fit_predict(X)
    np.testing.assert_array_equal(labels, est.predict(X))
    Xs, ys = est.sample(3000)
    assert np.all(np.diff(ys) >= 0)                        # grouped by component
    for k in range(2):
        np.testing.assert_allclose(Xs[ys == k].mean(axis=0), est.means_[k], atol=0.1)
    Xs2, ys2 = est.sample(3000)                            # an int random_state: the same draws
    np.testing.assert_array_equal(Xs, Xs2)


@pytest.mark.parametrize("ct", ["full", "diag", "tied", "spherical"])
def test_precisions_are_the_inverse_covariances(ct):
    X = blobs(2)
    est = IncompleteGaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
    shape = {"full": (2, 2, 2), "diag": (2, 2), "tied": (2, 2), "spherical": (2,)}[ct]
    assert est.covariances_.shape == est.precisions_.shape == shape
    if ct in ("full", "tied"):
        np.testing.assert_allclose(np.linalg.inv(est.precisions_), est.covariances_, rtol=1e-10)
        P = est.precisions_cholesky_
        np.testing.assert_allclose(P @ np.swapaxes(P, -1, -2), est.precisions_, rtol=1e-10)
        assert np.allclose(np.tril(P, -1), 0)               # upper triangular, as sklearn's
    else:
        np.testing.assert_allclose(est.precisions_ * est.covariances_, 1.0, rtol=1e-12)


def test_warm_start_steps_add_up_also_with_acceleration():
    X = blobs(3)
    # no extrapolation into a fit's last iteration: 2 steps are 1 + 1 warm steps (as sklearn's
    # test_warm_start asks), with acceleration on
    g = IncompleteGaussianMixture(2, max_iter=2, random_state=1, tol=0).fit(X)
    h = IncompleteGaussianMixture(2, max_iter=1, random_state=1, tol=0, warm_start=True)
    h.fit(X)
    first = h.score(X)
    h.fit(X)
    assert h.score(X) > first
    np.testing.assert_allclose(h.means_, g.means_, rtol=1e-12)
    np.testing.assert_allclose(h.covariances_, g.covariances_, rtol=1e-12)


def test_warm_start_under_a_selection_continues_without_a_competing_start():
    rng = np.random.default_rng(4)
    Y = np.vstack([rng.normal([0, 0], 1.0, (1500, 2)), rng.normal([3, 2], 0.7, (1000, 2))])
    sel = lambda c: (c[:, 0] < 2.5).astype(float)          # noqa: E731
    X = Y[sel(Y) > 0]
    est = IncompleteGaussianMixture(2, sel_callback=sel, random_state=0, warm_start=True,
                                    init_params="random_from_data")
    est.fit(X)
    assert len(est.fit_result_.restarts_logL) == 2          # under a selection k-means competes
    means = est.means_.copy()
    est.fit(X)
    assert len(est.fit_result_.restarts_logL) == 1
    np.testing.assert_allclose(est.means_, means, atol=0.1)   # continued where it was


def test_verbose_writes_the_table_to_stdout_every_interval(monkeypatch):
    X = blobs(5)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    logger = logging.getLogger("pygmmis_ng")
    level = logger.level
    IncompleteGaussianMixture(2, verbose=2, verbose_interval=2, tol=0, max_iter=7,
                              accelerate=False, random_state=0).fit(X)
    rows = [int(line.split()[0]) for line in out.getvalue().splitlines()
            if re.match(r"\s+\d+\s+\d+", line)]
    assert rows == [0, 2, 4, 6]
    assert "ITER" in out.getvalue()
    out.truncate(0)
    IncompleteGaussianMixture(2, verbose=1, random_state=0).fit(X)
    assert not [line for line in out.getvalue().splitlines() if re.match(r"\s+\d+\s+\d+", line)]
    assert "converged" in out.getvalue()
    assert logger.level == level and not any(
        isinstance(h, logging.StreamHandler) and h.stream is out for h in logger.handlers)


def test_init_params_keep_sklearns_meanings():
    X = blobs(6)
    means = {}
    for name in ("kmeans", "k-means++", "random", "random_from_data"):
        est = IncompleteGaussianMixture(3, init_params=name, max_iter=0, random_state=0).fit(X)
        m = est.means_
        assert not np.allclose(m[0], m[1]) and not np.allclose(m[1], m[2])
        means[name] = m
    # 'random' (random responsibilities): every mean near the data mean
    assert np.abs(means["random"] - X.mean(axis=0)).max() < 0.5
    # 'random_from_data': means at samples
    assert all((np.abs(X - m).sum(axis=1) < 1e-12).any() for m in means["random_from_data"])
    fitted = IncompleteGaussianMixture(3, init_params="random", random_state=0).fit(X)
    assert fitted.converged_


def test_bad_init_arrays_raise_before_anything_is_fitted():
    X = blobs()
    for kw, msg in ((dict(weights_init=[0.2, 0.2]), "should be normalized"),
                    (dict(means_init=np.zeros((3, 2))), "'means' should have the shape"),
                    (dict(precisions_init=-np.ones(2), covariance_type="spherical"),
                     "'spherical precision' should be positive"),
                    (dict(precisions_init=np.ones((2, 2, 2))),
                     "'full precision' should be symmetric, positive-definite"),
                    (dict(covariance_type="banded"), "covariance_type must be one of")):
        est = IncompleteGaussianMixture(2, **kw)
        with pytest.raises(ValueError, match=msg):
            est.fit(X)
        assert not hasattr(est, "gmm_")


def test_init_arrays_on_the_missing_value_path():
    X = blobs(7)
    X[::5, 1] = np.nan
    est = IncompleteGaussianMixture(2, covariance_type="diag", means_init=[[0, 0], [5, 3]],
                                    precisions_init=np.ones((2, 2)), random_state=0).fit(X)
    k = np.argsort(est.means_[:, 0])
    np.testing.assert_allclose(est.means_[k], [[0, 0], [5, 3]], atol=0.25)
    assert est.converged_


def test_init_method_is_a_deprecated_alias_of_init_params():
    X = blobs(8)
    with pytest.warns(FutureWarning, match="init_params"):
        old = IncompleteGaussianMixture(2, init_method="minmax", random_state=0).fit(X)
    new = IncompleteGaussianMixture(2, init_params="minmax", random_state=0).fit(X)
    np.testing.assert_array_equal(old.means_, new.means_)


def test_degenerate_data_raise_sklearns_error_instead_of_reseeding_forever():
    X = np.vstack([np.ones((5, 3)), np.zeros((5, 3))])
    with pytest.raises(ng.CollapseError, match="ill-defined empirical covariance"):
        IncompleteGaussianMixture(10, reg_covar=0, random_state=0).fit(X)


def test_not_converged_warns_with_sklearns_sentence():
    X = blobs(9)
    with pytest.warns(ConvergenceWarning, match="Best performing initialization did not converge"):
        IncompleteGaussianMixture(2, max_iter=1, tol=1e-12, random_state=0).fit(X)
