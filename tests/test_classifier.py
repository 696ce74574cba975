"""GenerativeClassifier: sklearn's checks, closed-form Gaussian Bayes, digits, missing features."""
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


def test_one_gaussian_per_class_is_closed_form_gaussian_bayes():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.multivariate_normal([0, 0], [[1, 0.3], [0.3, 1]], 300),
                   rng.multivariate_normal([2, 1], [[0.5, 0], [0, 2]], 200)])
    y = np.array(["a"] * 300 + ["b"] * 200)
    clf = GenerativeClassifier(1, tol=1e-10, random_state=0).fit(X, y)
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
