"""covariance_type 'full', 'diag', 'tied', 'spherical' on every fit path (issue 15).

Independent truths: scikit-learn's GaussianMixture from the same start (complete
data), closed forms of the constrained maximum-likelihood estimates (one Gaussian
with shared noise, missing features), a direct numerical maximization of the
likelihood with per-sample noise, GaussianNB for one diagonal Gaussian per class,
and recovery of a known model under a selection.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.naive_bayes import GaussianNB

import pygmmis_ng as ng
from pygmmis_ng import GenerativeClassifier, IncompleteGaussianMixture

TYPES = ("full", "diag", "tied", "spherical")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def blobs(seed=0, n=(300, 200)):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n[0], 3)) @ np.array([[1.0, 0.3, 0], [0, 2.0, 0.2], [0, 0, 0.5]])
    return np.vstack([a, rng.normal(4.0, 1.0, size=(n[1], 3))])


def start(ct, X):
    w, m = np.array([0.5, 0.5]), X[[0, 400]]
    prec = {"full": np.array([np.eye(3)] * 2), "diag": np.ones((2, 3)), "tied": np.eye(3),
            "spherical": np.ones(2)}[ct]
    return w, m, prec


def in_family(covar, ct):
    K, D = covar.shape[:2]
    off = covar - np.array([np.diag(np.diag(c)) for c in covar])
    if ct in ("diag", "spherical"):
        assert np.all(off == 0)
    if ct == "spherical":
        d = np.diagonal(covar, axis1=1, axis2=2)
        np.testing.assert_allclose(d, d[:, :1].repeat(D, axis=1), rtol=1e-12)
    if ct == "tied":
        np.testing.assert_allclose(covar, np.broadcast_to(covar[0], covar.shape), rtol=1e-12)


@pytest.mark.parametrize("ct", TYPES)
def test_equal_starts_give_sklearns_iterates(ct):
    X = blobs()
    w, m, prec = start(ct, X)
    sk = GaussianMixture(2, covariance_type=ct, reg_covar=1e-6, tol=0, max_iter=25,
                         weights_init=w, means_init=m, precisions_init=prec).fit(X)
    ours = IncompleteGaussianMixture(2, covariance_type=ct, reg_covar=1e-6, tol=0, max_iter=25,
                                     weights_init=w, means_init=m, precisions_init=prec,
                                     accelerate=False).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-9, atol=1e-11,
                                   err_msg=name)
    assert ours.n_iter_ == sk.n_iter_ == 25
    assert ours.score(X) == pytest.approx(sk.score(X), abs=1e-12)
    assert ours._n_parameters() == sk._n_parameters()
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-12)
    in_family(ours.gmm_.covar, ct)


@pytest.mark.parametrize("ct", TYPES)
def test_converged_fits_reach_sklearns_optimum_and_are_monotone(ct):
    X = blobs(1)
    w, m, prec = start(ct, X)
    sk = GaussianMixture(2, covariance_type=ct, reg_covar=0, tol=1e-12, max_iter=5000,
                         weights_init=w, means_init=m, precisions_init=prec).fit(X)
    gmm = ng.GMM(2, 3)
    gmm.amp, gmm.mean = w.copy(), m.copy()
    gmm.covar = np.array([np.eye(3)] * 2)
    res = ng.fit(gmm, X, init_method="none", covariance_type=ct, tol=1e-10, maxiter=5000)
    assert res.converged
    assert res.logL == pytest.approx(sk.score(X), abs=1e-7)
    np.testing.assert_allclose(gmm.mean, sk.means_, atol=1e-4)
    plain = ng.GMM(2, 3)
    plain.amp, plain.mean, plain.covar = w.copy(), m.copy(), np.array([np.eye(3)] * 2)
    r = ng.fit(plain, X, init_method="none", covariance_type=ct, accelerate=False, tol=0,
               maxiter=40)
    assert np.all(np.diff(r.history) >= -1e-12)          # EM: never a step down


def test_diag_and_spherical_deconvolution_have_their_closed_forms():
    """One Gaussian, shared diagonal noise S: V + S is the sample covariance's projection."""
    rng = np.random.default_rng(3)
    V, S = np.diag([2.0, 0.5, 1.0]), np.diag([0.3, 0.2, 0.4])
    X = rng.multivariate_normal([1, 2, 3], V + S, size=4000)
    C = np.cov(X.T, bias=True)
    for ct, expect in (("diag", np.diag(np.diag(C) - np.diag(S))),
                       ("spherical", (np.trace(C) - np.trace(S)) / 3 * np.eye(3))):
        if ct == "spherical":
            S_ = 0.3 * np.eye(3)
            expect = (np.trace(C) / 3 - 0.3) * np.eye(3)
        else:
            S_ = S
        g = ng.GMM(1, 3)
        res = ng.fit(g, X, covar=S_, covariance_type=ct, tol=1e-13, maxiter=20000)
        assert res.converged
        np.testing.assert_allclose(g.covar[0], expect, atol=1e-6)
        np.testing.assert_allclose(g.mean[0], X.mean(axis=0), atol=1e-8)


def test_diag_with_missing_features_is_the_per_feature_mle():
    """Independent features: each one's MLE uses the samples that measured it, alone."""
    rng = np.random.default_rng(4)
    X = rng.normal([0, 5, -2], [1.0, 3.0, 0.5], size=(3000, 3))
    X[rng.random(3000) < 0.3, 1] = np.nan
    X[rng.random(3000) < 0.2, 2] = np.nan
    g = ng.GMM(1, 3)
    ng.fit(g, X, covariance_type="diag", tol=1e-13, maxiter=20000)
    np.testing.assert_allclose(g.mean[0], np.nanmean(X, axis=0), atol=1e-8)
    np.testing.assert_allclose(np.diag(g.covar[0]), np.nanvar(X, axis=0), rtol=1e-7)


def _neg_loglike(theta, X, S, ct):
    """-sum log p(x_i) of a 2-component mixture in 2D with per-sample noise (brute force,
    checked against scipy's multivariate normal in the test)."""
    a = 1 / (1 + np.exp(-theta[0]))
    m = theta[1:5].reshape(2, 2)
    if ct == "tied":
        L = np.array([[np.exp(theta[5]), 0], [theta[6], np.exp(theta[7])]])
        V = [L @ L.T] * 2
    else:                                              # diag
        V = [np.diag(np.exp(theta[5:7])), np.diag(np.exp(theta[7:9]))]
    p = np.zeros(len(X))
    for k, amp in enumerate((a, 1 - a)):
        M = V[k] + S                                   # (N, 2, 2), each sample's own covariance
        d = X - m[k]
        chi2 = np.einsum("ni,nij,nj->n", d, np.linalg.inv(M), d)
        p += amp * np.exp(-0.5 * chi2) / (2 * np.pi * np.sqrt(np.linalg.det(M)))
    return -np.log(p).sum()


@pytest.mark.parametrize("ct", ["diag", "tied"])
def test_heteroscedastic_deconvolution_reaches_the_brute_force_maximum(ct):
    rng = np.random.default_rng(5)
    N = 120
    X = np.vstack([rng.normal([0, 0], [1.0, 0.5], (N // 2, 2)),
                   rng.normal([4, 3], [0.6, 1.2], (N // 2, 2))])
    S = np.einsum("n,ab->nab", rng.uniform(0.05, 0.5, N), np.eye(2))
    S[:, 0, 1] = S[:, 1, 0] = 0.02
    X = X + np.einsum("nab,nb->na", np.linalg.cholesky(S), rng.normal(size=(N, 2)))
    g = ng.GMM(2, 2)
    res = ng.fit(g, X, covar=S, covariance_type=ct, tol=1e-12, maxiter=20000, rng=0)
    in_family(g.covar, ct)
    ours = -res.logL * N
    k = np.argsort(g.mean[:, 0])
    m = g.mean[k].ravel()
    if ct == "tied":
        L = np.linalg.cholesky(g.covar[0])
        theta0 = np.r_[np.log(g.amp[k[0]] / g.amp[k[1]]), m, np.log(L[0, 0]), L[1, 0],
                       np.log(L[1, 1])]
    else:
        theta0 = np.r_[np.log(g.amp[k[0]] / g.amp[k[1]]), m,
                       np.log(np.diag(g.covar[k[0]])), np.log(np.diag(g.covar[k[1]]))]
    assert _neg_loglike(theta0, X, S, ct) == pytest.approx(ours, abs=1e-8)   # same likelihood
    p0 = sum(a * multivariate_normal.pdf(X[0], g.mean[j], g.covar[j] + S[0])
             for j, a in enumerate(g.amp))
    assert -np.log(p0) == pytest.approx(_neg_loglike(theta0, X[:1], S[:1], ct), rel=1e-12)
    best = minimize(_neg_loglike, theta0 + 0.05, args=(X, S, ct), method="Nelder-Mead",
                    options={"maxiter": 20000, "xatol": 1e-9, "fatol": 1e-11})
    assert ours <= best.fun + 1e-6            # no point of the family is better
    assert best.fun == pytest.approx(ours, abs=1e-4)


@pytest.mark.parametrize("ct", ["diag", "spherical", "tied"])
def test_selection_fit_recovers_a_constrained_truth(ct):
    rng = np.random.default_rng(6)
    truth = ng.GMM(2, 2)
    truth.amp = np.array([0.6, 0.4])
    truth.mean = np.array([[-1.5, 0.0], [2.0, 1.0]])
    truth.covar = {"diag": np.array([np.diag([1.0, 0.3]), np.diag([0.4, 1.5])]),
                   "spherical": np.array([0.8 * np.eye(2), 0.5 * np.eye(2)]),
                   "tied": np.array([[[1.0, 0.4], [0.4, 0.8]]] * 2)}[ct]
    Y = truth.draw(6000, rng=rng)
    sel = lambda c: (c[:, 1] < 0.8).astype(float)                            # noqa: E731
    X = Y[sel(Y) > 0]
    g = ng.GMM(2, 2)
    ng.fit(g, X, sel_callback=sel, covariance_type=ct, rng=1, tol=1e-5)
    in_family(g.covar, ct)
    k = np.argsort(g.mean[:, 0])
    np.testing.assert_allclose(g.mean[k], truth.mean, atol=0.15)
    np.testing.assert_allclose(g.covar[k], truth.covar, atol=0.2)
    naive = ng.GMM(2, 2)
    ng.fit(naive, X, covariance_type=ct, rng=1)
    assert np.abs(naive.mean[np.argsort(naive.mean[:, 0])] - truth.mean).max() > 0.3


@pytest.mark.parametrize("ct", TYPES)
def test_projections_keep_the_family_and_the_em_monotone(ct):
    rng = np.random.default_rng(7)
    Y = np.vstack([rng.normal([0, 0, 0], 1, (200, 3)), rng.normal([4, 1, -2], 0.7, (200, 3))])
    R = rng.normal(size=(400, 2, 3))
    X = np.einsum("nij,nj->ni", R, Y) + rng.normal(0, 0.1, (400, 2))
    g = ng.GMM(2, 3)
    res = ng.fit(g, X, R=R, covar=0.01 * np.eye(2), covariance_type=ct, accelerate=False,
                 tol=0, maxiter=30, rng=0)
    in_family(g.covar, ct)
    assert np.all(np.diff(res.history) >= -1e-10)


def test_one_diagonal_gaussian_per_class_is_gaussian_naive_bayes():
    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal(0, [1, 2, 0.5], (150, 3)), rng.normal(1, [0.5, 1, 1], (100, 3))])
    y = np.repeat([0, 1], [150, 100])
    ours = GenerativeClassifier(1, covariance_type="diag", w=0.0).fit(X, y)
    nb = GaussianNB(var_smoothing=0.0).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), nb.predict_proba(X), atol=1e-10)
    np.testing.assert_allclose(ours.estimators_[0].covariances_[0], nb.var_[0], rtol=1e-10)


def test_tied_refuses_what_would_untie_it():
    X = blobs()
    with pytest.raises(ValueError, match="split_n_merge is not available with covariance_type='tied'"):
        ng.fit(ng.GMM(3, 3), X, covariance_type="tied", split_n_merge=2)
    g = ng.GMM(2, 3)
    g.amp, g.mean, g.covar = np.array([0.5, 0.5]), X[[0, 400]], np.array([np.eye(3)] * 2)
    with pytest.raises(ValueError, match="freeze the covariances of all components or of none"):
        ng.fit(g, X, covariance_type="tied", frozen={"covar": [0]}, init_method="none")
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        ng.fit(g, X, covariance_type="Diag")
    with pytest.raises(ValueError, match="reg_covar must be >= 0"):
        ng.fit(g, X, reg_covar=-1.0)


@pytest.mark.parametrize("ct", ["diag", "spherical"])
def test_split_n_merge_keeps_the_family(ct):
    rng = np.random.default_rng(9)
    X = np.vstack([rng.normal(m, 0.5, (150, 2)) for m in ([0, 0], [3, 0], [0, 3], [3, 3])])
    g = ng.GMM(4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ng.fit(g, X, covariance_type=ct, split_n_merge=2, init_method="random", rng=2)
    in_family(g.covar, ct)
