"""cv_fit, stack, stack_fit: held-out likelihoods against closed-form fold fits, stacking
weights that find the better model, the GMM left untouched, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import make_truth
from scipy import stats

import pygmmis_ng as ng
from pygmmis_ng.fitting.stacking import stack_weights
from pygmmis_ng.tools import datasets


def test_cv_fit_of_one_gaussian_equals_closed_form_folds():
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([0.5, -1.0], [[1.5, 0.4], [0.4, 0.8]], 600)
    gmm = ng.GMM(1, 2)
    before = gmm.copy()
    L = 5
    lcv = ng.cv_fit(gmm, X, L=L, init_method="kmeans", tol=1e-12, rng=1)
    fold = np.arange(len(X)) % L
    expected = np.empty(len(X))
    for i in range(L):
        train = X[fold != i]
        mu, Sigma = train.mean(axis=0), np.cov(train.T, bias=True)   # the fold's MLE
        expected[fold == i] = stats.multivariate_normal(mu, Sigma).logpdf(X[fold == i])
    np.testing.assert_allclose(lcv, expected, atol=1e-7)
    np.testing.assert_array_equal(gmm.mean, before.mean)             # left as it was


def test_cv_fit_with_noise_splits_the_noise_with_the_samples():
    rng = np.random.default_rng(1)
    truth = make_truth()
    X = truth.draw(900, rng=rng)
    S = np.stack([np.eye(2) * s for s in rng.uniform(0.05, 0.5, len(X))])
    X = X + rng.normal(size=X.shape) * np.sqrt(S[:, 0, 0])[:, None]
    lcv = ng.cv_fit(ng.GMM(3, 2), X, L=3, covar=S, init_method="kmeans", rng=2)
    # held-out density of a good model: close to the in-sample one, and finite everywhere
    g = ng.GMM(3, 2)
    res = ng.fit(g, X, covar=S, init_method="kmeans", rng=2)
    assert np.isfinite(lcv).all()
    assert res.logL - 0.05 < lcv.mean() < res.logL


def test_cv_fit_with_selection_is_the_observed_data_density():
    ds = datasets.paper_2d(N=3000, selection="box", sigma=0.0, rng=3)
    lcv = ng.cv_fit(ng.GMM(3, 2), ds.data, L=4, sel_callback=ds.sel_callback,
                    init_method="kmeans", tol=1e-4, rng=4)
    # the truth's observed-data density: Omega p / Z with Z from a large draw
    draws = ds.truth.draw(400000, rng=5)
    Z = ds.sel_callback(draws).mean()
    truth_lcv = ds.truth(ds.data, as_log=True) + np.log(ds.sel_callback(ds.data)) - np.log(Z)
    assert abs(lcv.mean() - truth_lcv.mean()) < 0.05


def test_stack_concatenates_and_weights():
    a, b = make_truth(), ng.GMM(1, 2)
    b.mean, b.covar, b.amp = [[3.0, 3.0]], [np.eye(2) * 4], [1.0]
    s = ng.stack([a, b], [0.75, 0.25])
    assert s.K == 4
    np.testing.assert_allclose(s.amp, np.append(0.75 * a.amp, 0.25))
    x = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_allclose(s(x), 0.75 * a(x) + 0.25 * b(x))
    with pytest.raises(ValueError, match="weights"):
        ng.stack([a, b], [1.0])
    with pytest.raises(ValueError, match="weights"):
        ng.stack([a, b], [-1.0, 2.0])


def test_stack_fit_puts_the_weight_on_the_better_model():
    truth = make_truth()
    X = truth.draw(1500, rng=6)
    good, poor = ng.GMM(3, 2), ng.GMM(1, 2)
    kw = [dict(init_method="kmeans", tol=1e-5), dict(init_method="kmeans", tol=1e-5)]
    stacked = ng.stack_fit([good, poor], X, kw, L=5, rng=7)
    assert stacked.K == 4
    assert stacked.amp[:3].sum() > 0.9                   # the 3-component model dominates
    # both models were fitted to all data in place
    assert good.amp.min() > 0.1 and np.isfinite(poor.mean).all()
    test = truth.draw(5000, rng=8)
    assert np.mean(stacked(test, as_log=True)) > np.mean(poor(test, as_log=True)) + 0.1


def test_stacking_weights_maximize_the_heldout_likelihood():
    rng = np.random.default_rng(9)
    lcvs = rng.normal(-2, 0.5, size=(3, 400))
    beta = stack_weights(lcvs, tol=1e-12)
    assert beta.sum() == pytest.approx(1.0) and (beta >= 0).all()

    def obj(b):
        return np.mean(np.log(np.exp(lcvs).T @ b))

    # no direction on the simplex improves it (first-order optimality)
    best = obj(beta)
    for d in np.eye(3):
        for eps in (1e-3, -1e-3):
            b = np.clip(beta + eps * (d - beta), 0, None)
            assert obj(b / b.sum()) <= best + 1e-9


@pytest.mark.parametrize("L, match", [(1, "L"), (10000, "folds")])
def test_cv_fit_rejects_bad_folds(L, match):
    with pytest.raises(ValueError, match=match):
        ng.cv_fit(ng.GMM(1, 2), np.random.default_rng(0).normal(size=(30, 2)), L=L)
