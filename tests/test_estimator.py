"""IncompleteGaussianMixture: sklearn's estimator checks, and agreement with fit() and sklearn."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

import pygmmis_ng as ng
from pygmmis_ng import IncompleteGaussianMixture


@parametrize_with_checks([IncompleteGaussianMixture(n_components=k) for k in (1, 2, 3)]
                         + [IncompleteGaussianMixture(n_components=2, covariance_type=ct)
                            for ct in ("diag", "tied", "spherical")])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def blobs(n=1500, seed=0):
    g = ng.GMM(3, 2)
    g.amp = [0.3, 0.3, 0.4]
    g.mean = [[0, 0], [6, 0], [0, 6]]
    g.covar = [np.eye(2), [[1.5, 0.5], [0.5, 1.0]], 0.5 * np.eye(2)]
    return g, g.draw(n, rng=seed)


def test_matches_sklearn_gaussian_mixture_on_complete_data():
    _, X = blobs()
    ours = IncompleteGaussianMixture(3, random_state=0, tol=1e-8).fit(X)
    sk = GaussianMixture(3, tol=1e-10, reg_covar=0, random_state=0, max_iter=1000).fit(X)
    o, s = np.argsort(ours.means_[:, 0] + 10 * ours.means_[:, 1]), \
        np.argsort(sk.means_[:, 0] + 10 * sk.means_[:, 1])
    np.testing.assert_allclose(ours.means_[o], sk.means_[s], atol=1e-5)
    np.testing.assert_allclose(ours.covariances_[o], sk.covariances_[s], atol=1e-5)
    np.testing.assert_allclose(ours.weights_[o], sk.weights_[s], atol=1e-6)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), atol=1e-5)
    assert ours.score(X) == pytest.approx(ours.lower_bound_, abs=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X)[:, o], sk.predict_proba(X)[:, s], atol=1e-5)
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-6)
    assert ours.aic(X) == pytest.approx(sk.aic(X), rel=1e-6)
    assert ours.bic(X) == pytest.approx(ours.fit_result_.bic, rel=1e-10)


def test_missing_features_noise_and_weights_go_through():
    g, X = blobs(seed=1)
    rng = np.random.default_rng(2)
    S = np.einsum("n,ab->nab", rng.uniform(0.1, 0.4, len(X)), np.eye(2))
    Xn = X + np.einsum("nab,nb->na", np.sqrt(S), rng.normal(size=X.shape))
    Xn[rng.random(len(X)) < 0.2, 1] = np.nan
    w = rng.integers(1, 3, len(X)).astype(float)
    est = IncompleteGaussianMixture(3, random_state=4, tol=1e-7).fit(Xn, covar=S,
                                                                   sample_weight=w)
    ref = ng.GMM(3, 2)
    res = ng.fit(ref, Xn, covar=S, sample_weight=w, init_method="kmeans",
                 rng=np.random.RandomState(4), tol=1e-7, reg_covar=1e-6)
    np.testing.assert_array_equal(est.means_, ref.mean)
    assert est.lower_bound_ == res.logL
    # NaN in prediction too: marginal densities and responsibilities
    np.testing.assert_allclose(est.score_samples(Xn, covar=S), ref.logL(Xn, covar=S), atol=1e-12)
    np.testing.assert_allclose(est.predict_proba(Xn, covar=S), ref.responsibilities(Xn, covar=S),
                               atol=1e-12)
    assert (est.predict(Xn[:5]) == est.predict_proba(Xn[:5]).argmax(axis=1)).all()


def test_background_is_a_member_of_the_density_not_of_predict_proba():
    g, X = blobs(seed=3)
    bg = ng.Background([[-10, -10], [16, 16]])
    X = np.vstack([X, bg.draw(300, rng=5)])
    est = IncompleteGaussianMixture(3, background=bg, random_state=0, tol=1e-7).fit(X)
    assert bg.amp == 0.0                                 # the parameter is not changed
    assert est.background_amp_ == pytest.approx(300 / 1800, abs=0.03)
    p = est.predict_proba(X)
    assert p.shape == (1800, 3)
    assert (p.sum(axis=1) <= 1 + 1e-12).all() and p[-300:].sum(axis=1).mean() < 0.7
    expected = np.logaddexp(np.log1p(-est.background_amp_) + est.gmm_.logL(X),
                            np.log(est.background_amp_) + bg.log_density(X))
    np.testing.assert_allclose(est.score_samples(X), expected, atol=1e-10)
    assert est.score(X) == pytest.approx(est.lower_bound_, abs=1e-10)


def test_sample_and_errors():
    _, X = blobs(seed=4)
    est = IncompleteGaussianMixture(3, random_state=1)
    with pytest.raises(NotFittedError):
        est.predict(X)
    est.fit(X)
    Xs, ys = est.sample(500)
    assert Xs.shape == (500, 2) and ys.shape == (500,) and set(ys) <= {0, 1, 2}
    with pytest.raises(ValueError, match="X has 3 features"):
        est.score_samples(np.ones((4, 3)))
    with pytest.raises(ValueError, match="Invalid value for .n_samples."):
        est.sample(0)
    with pytest.raises(ValueError, match="K=3 components cannot be fitted to N=2 samples"):
        IncompleteGaussianMixture(3).fit(X[:2])


@pytest.mark.parametrize("K", [1, 2])
def test_a_constant_feature_is_pinned_not_reseeded_forever(K):
    """A feature constant in the data makes the likelihood unbounded; the fit pins its
    variance at 1e-6 of the axis unit (sklearn's reg_covar) and fits the rest exactly.
    (It used to re-seed every iteration and report the re-seeded scale as converged.)"""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) + np.repeat([[0, 0], [6, 0]], 200, axis=0)
    X[:, 1] = 3.0
    est = IncompleteGaussianMixture(K, random_state=0, tol=1e-9).fit(X)
    assert est.converged_ and est.fit_result_.n_reseeded == 0
    assert np.allclose(est.means_[:, 1], 3.0)
    sk = GaussianMixture(K, reg_covar=0, tol=1e-10, random_state=0).fit(X[:, :1])
    np.testing.assert_allclose(np.sort(est.covariances_[:, 0, 0]), np.sort(sk.covariances_[:, 0, 0]),
                               rtol=1e-4)
    assert (est.covariances_[:, 1, 1] < 1e-4 * est.covariances_[:, 0, 0]).all()


def test_bic_under_selection_is_the_fits_observed_data_criterion():
    g, X = blobs(seed=6)

    def sel(c):
        return (c[:, 0] < 4).astype(float)

    X = X[sel(X) > 0]
    est = IncompleteGaussianMixture(3, sel_callback=sel, random_state=0).fit(X)
    assert est.bic(X) == pytest.approx(est.fit_result_.bic, rel=1e-9)
    assert est.aic(X) == pytest.approx(est.fit_result_.aic, rel=1e-9)
    assert est.score(X) < est.lower_bound_                 # the density before selection


def test_scoring_without_the_fit_noise_warns():
    """Fitted with covar, scored without: the score of noise-free samples under the
    deconvolved density, too low for noisy data. It must say so (README's est.bic(X))."""
    import warnings

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) + rng.normal(scale=0.5, size=(400, 2))
    noise = 0.25 * np.eye(2)
    est = ng.IncompleteGaussianMixture(2, random_state=0).fit(X, covar=noise)
    assert est.fitted_with_noise_
    for call in (est.score, est.score_samples, est.bic, est.aic):
        with pytest.warns(ng.NoiseWarning, match="fitted with noise"):
            call(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right = est.score(X, covar=noise)
        bic = est.bic(X, covar=noise)
    assert right == pytest.approx(est.gmm_.logL(X, covar=noise).mean(), rel=1e-12)
    assert bic == pytest.approx(-2 * 400 * right + est._n_parameters() * np.log(400), rel=1e-12)
    with pytest.warns(ng.NoiseWarning):
        assert est.score(X) < right                  # the narrower density: a lower score
    plain = ng.IncompleteGaussianMixture(2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain.score(X)
        plain.bic(X)
    assert not plain.fitted_with_noise_
