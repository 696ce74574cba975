"""GenerativeClassifier: sklearn's checks, closed-form Gaussian Bayes, digits, missing features,
the per-class dispersion floor chosen from the data (w="auto")."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as st
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from pygmmis_ng import GenerativeClassifier


@parametrize_with_checks([GenerativeClassifier()])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


@pytest.mark.parametrize("w", ["auto", 0.0])
def test_one_gaussian_per_class_is_closed_form_gaussian_bayes(w):
    """Data that need no floor: "auto" chooses none and the fit is the unregularized one."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.multivariate_normal([0, 0], [[1, 0.3], [0.3, 1]], 300),
                   rng.multivariate_normal([2, 1], [[0.5, 0], [0, 2]], 200)])
    y = np.array(["a"] * 300 + ["b"] * 200)
    clf = GenerativeClassifier(1, w=w, tol=1e-10, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.w_, [0.0, 0.0])
    Xt = rng.normal(0, 2, (100, 2))
    logs = []
    for c, prior in (("a", 0.6), ("b", 0.4)):
        Xc = X[y == c]
        mu, C = Xc.mean(axis=0), np.cov(Xc.T, bias=True)        # maximum likelihood
        logs.append(st.multivariate_normal(mu, C).logpdf(Xt) + np.log(prior))
    logs = np.column_stack(logs)
    post = np.exp(logs - logs.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(Xt), post, atol=1e-8)
    np.testing.assert_array_equal(clf.predict(Xt), np.array(["a", "b"])[post.argmax(axis=1)])
    np.testing.assert_allclose(clf.class_prior_, [0.6, 0.4])


def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=1)


def test_digits_beat_the_seed_kde_figure():
    """Seed 001: KDE per class 0.9907, GaussianNB 0.8315 on this split."""
    Xtr, Xte, ytr, yte = digits()
    clf = GenerativeClassifier(1, w=2.0, random_state=0).fit(Xtr, ytr)
    assert clf.score(Xte, yte) > 0.9907


def test_digits_with_missing_pixels_in_training_and_prediction():
    Xtr, Xte, ytr, yte = digits()
    rng = np.random.default_rng(1)
    Xtr, Xte = Xtr.copy(), Xte.copy()
    Xtr[rng.random(Xtr.shape) < 0.2] = np.nan
    Xte[rng.random(Xte.shape) < 0.2] = np.nan
    clf = GenerativeClassifier(1, w=2.0, random_state=0).fit(Xtr, ytr)
    assert clf.score(Xte, yte) > 0.97
    p = clf.predict_proba(Xte)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def missing_pixels(*arrays, fraction=0.3, seed=0):
    """Copies with each value set to NaN with probability ``fraction`` (independently)."""
    rng = np.random.default_rng(seed)
    out = []
    for a in arrays:
        a = a.copy()
        a[rng.random(a.shape) < fraction] = np.nan
        out.append(a)
    return out


def test_digits_with_default_parameters():
    """Untuned: w="auto" picks each class's floor (w=0.0 scores 0.789 here, w=2.0 0.998)."""
    Xtr, Xte, ytr, yte = digits()
    clf = GenerativeClassifier(random_state=0).fit(Xtr, ytr)
    assert clf.w_.shape == (10,) and (clf.w_ > 0).all()
    assert clf.score(Xte, yte) >= 0.99


def test_digits_with_30_percent_missing_pixels_and_default_parameters():
    """Untuned, 30% of the pixels missing in training and test (w=0.0: 0.60, w=2.0: 0.969)."""
    Xtr, Xte, ytr, yte = digits()
    Xtr, Xte = missing_pixels(Xtr, Xte)
    clf = GenerativeClassifier(random_state=0).fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.95


def two_classes(seed=3, n=200):
    """Class 0 a well-conditioned Gaussian; class 1 with a feature that is 0 but in 3 samples
    (like a border pixel of digits)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, 3)) * [1, 1.5, 2]
    B = rng.normal(size=(n, 3)) * [1, 1.5, 2] + 4
    B[:, 2] = 0.0
    B[:3, 2] = [2.0, 3.0, 1.5]
    return np.vstack([A, B]), np.repeat([0, 1], n)


def test_auto_floor_responds_to_the_data():
    X, y = two_classes()
    clf = GenerativeClassifier(random_state=0).fit(X, y)
    assert clf.w_.shape == (2,)
    assert clf.w_[0] < 0.1                      # smallest eigenvalue 1: nothing to regularize
    assert clf.w_[1] > 0.2                      # the nearly constant feature needs a floor
    for est, w in zip(clf.estimators_, clf.w_):
        assert est.w == w
        assert np.linalg.eigvalsh(est.covariances_[0]).min() >= w**2 * (1 - 1e-9)
    # deterministic, and the same for any order of the rows and any random_state
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_array_equal(GenerativeClassifier(random_state=0).fit(X, y).w_, clf.w_)
    np.testing.assert_array_equal(GenerativeClassifier(random_state=5).fit(X[perm], y[perm]).w_,
                                  clf.w_)


def test_auto_floor_with_missing_values_noise_and_weights():
    X, y = two_classes()
    rng = np.random.default_rng(4)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5
    clf = GenerativeClassifier(random_state=0).fit(X, y)
    assert clf.w_[0] < 0.1 and clf.w_[1] > 0.2
    # per-sample noise: the floor is on the deconvolved covariance
    S = np.einsum("i,jk->ijk", rng.uniform(0.1, 0.5, len(X)), np.eye(3))
    Xn = X + np.sqrt(S[:, 0, 0])[:, None] * rng.normal(size=X.shape)
    clf_n = GenerativeClassifier(random_state=0).fit(Xn, y, covar=S)
    assert clf_n.w_[0] ** 2 < 1.0 and clf_n.w_[1] > 0.1   # below class 0's smallest variance
    # an integer weight is the same as repeating the sample (zero: leaving it out)
    sw = rng.integers(0, 4, len(X))
    weighted = GenerativeClassifier(random_state=0).fit(X, y, sample_weight=sw)
    repeated = GenerativeClassifier(random_state=0).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    np.testing.assert_allclose(weighted.w_, repeated.w_, rtol=1e-12)


@pytest.mark.parametrize("w", [0.0, 0.7, 2])
def test_explicit_w_is_used_unchanged(w):
    X, y = two_classes()
    clf = GenerativeClassifier(w=w, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.w_, [w, w])
    assert [est.w for est in clf.estimators_] == [w, w]
    assert clf.get_params()["w"] == w


@pytest.mark.parametrize("w", ["none", -1.0, np.nan, True])
def test_invalid_w(w):
    X, y = two_classes()
    with pytest.raises(ValueError, match='w must be "auto" or a finite number >= 0'):
        GenerativeClassifier(w=w).fit(X, y)


def test_priors_and_errors():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 2)) + np.repeat([[0, 0], [3, 3]], 30, axis=0)
    y = np.repeat([0, 1], 30)
    clf = GenerativeClassifier(priors=[0.9, 0.1]).fit(X, y)
    assert clf.class_prior_.tolist() == [0.9, 0.1]
    with pytest.raises(ValueError, match="priors must be 2 non-negative numbers summing to 1"):
        GenerativeClassifier(priors=[0.5, 0.6]).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        GenerativeClassifier().fit(X, rng.normal(size=60))
