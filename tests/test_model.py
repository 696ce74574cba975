"""GMM: density, sampling, persistence; init strategies."""
import numpy as np
import pytest
from conftest import make_truth, random_spd
from scipy.stats import multivariate_normal

import pygmmis_ng as ng


def scipy_density(gmm, X, S=None):
    N = len(X)
    S = np.zeros((N, gmm.D, gmm.D)) if S is None else np.broadcast_to(S, (N, gmm.D, gmm.D))
    return np.array([sum(gmm.amp[k] * multivariate_normal.pdf(X[i], gmm.mean[k], gmm.covar[k] + S[i])
                         for k in range(gmm.K)) for i in range(N)])


@pytest.mark.parametrize("noise", ["none", "shared", "per_sample"])
def test_density_matches_scipy(truth, noise):
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 9, size=(200, 2))
    S = {"none": None, "shared": random_spd(rng, 1, 2)[0], "per_sample": random_spd(rng, 200, 2)}[noise]
    np.testing.assert_allclose(truth(X, covar=S), scipy_density(truth, X, S), rtol=1e-10)
    np.testing.assert_allclose(truth(X, covar=S, as_log=True), np.log(scipy_density(truth, X, S)),
                               rtol=1e-10)


def test_density_integrates_to_one(truth):
    g = np.linspace(-8, 14, 441)
    xx, yy = np.meshgrid(g, g)
    p = truth(np.column_stack([xx.ravel(), yy.ravel()]))
    assert p.sum() * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=1e-4)


def test_single_point_returns_float(truth):
    p = truth([1.0, 2.0])
    assert isinstance(p, float)
    assert p == pytest.approx(scipy_density(truth, np.array([[1.0, 2.0]]))[0])


def test_responsibilities_sum_to_one_and_match_bayes(truth):
    X = truth.draw(300, rng=1)
    q = truth.responsibilities(X)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    joint = np.exp(truth.log_joint(X))
    np.testing.assert_allclose(q, joint / joint.sum(axis=1, keepdims=True), rtol=1e-10)


def test_draw_reproduces_parameters(truth):
    X, comp = truth.draw(200000, rng=3, return_component=True)
    np.testing.assert_allclose(np.bincount(comp) / len(comp), truth.amp, atol=0.005)
    for k in range(truth.K):
        np.testing.assert_allclose(X[comp == k].mean(0), truth.mean[k], atol=0.02)
        np.testing.assert_allclose(np.cov(X[comp == k].T), truth.covar[k], atol=0.03)
    # samples come in random order, not grouped by component
    assert np.abs(np.diff(comp[:1000])).sum() > 100


def test_draw_is_reproducible_and_honours_randomstate(truth):
    np.testing.assert_array_equal(truth.draw(50, rng=9), truth.draw(50, rng=9))
    np.testing.assert_array_equal(truth.draw(50, rng=np.random.RandomState(2)),
                                  truth.draw(50, rng=np.random.RandomState(2)))
    assert not np.array_equal(truth.draw(50, rng=9), truth.draw(50, rng=10))
    assert truth.draw(0, rng=0).shape == (0, 2)


def test_save_load_round_trip_is_exact(truth, tmp_path):
    path = tmp_path / "model.npz"
    truth.save(path, note=np.array([1, 2, 3]))
    loaded = ng.GMM.from_file(path)
    for name in ("amp", "mean", "covar"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(truth, name))
    other = ng.GMM(5, 4)
    other.load(path)
    assert (other.K, other.D) == (3, 2)
    with np.load(path) as F:
        np.testing.assert_array_equal(F["note"], [1, 2, 3])


def test_copy_is_deep(truth):
    c = truth.copy()
    c.mean[0, 0] = 99.0
    assert truth.mean[0, 0] == 0.0


# ---------------------------------------------------------------------------
# init strategies
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["random", "minmax", "kmeans", "gmm"])
def test_init_honours_rng_and_gives_valid_model(method):
    X = make_truth().draw(1000, rng=0)
    inits = []
    for seed in (1, 1, 2):
        g = ng.GMM(3, 2)
        ng.INIT_METHODS[method](g, X, rng=np.random.default_rng(seed))
        g.validate()
        inits.append(g)
    np.testing.assert_array_equal(inits[0].mean, inits[1].mean)
    np.testing.assert_array_equal(inits[0].covar, inits[1].covar)
    if method in ("random", "minmax"):   # k-means based ones may land on the same clustering
        assert not np.array_equal(inits[0].mean, inits[2].mean)


def test_minmax_means_inside_bounding_box():
    X = make_truth().draw(500, rng=0)
    g = ng.GMM(10, 2)
    ng.INIT_METHODS["minmax"](g, X, rng=np.random.default_rng(0))
    assert np.all(g.mean >= X.min(0)) and np.all(g.mean <= X.max(0))


def test_kmeans_and_gmm_init_find_separated_clusters(truth):
    X = truth.draw(3000, rng=0)
    for method in ("kmeans", "gmm"):
        g = ng.GMM(3, 2)
        ng.INIT_METHODS[method](g, X, rng=np.random.default_rng(0))
        perm = ng.compare.match_components(g, truth)
        np.testing.assert_allclose(g.mean[perm], truth.mean, atol=0.2)
        np.testing.assert_allclose(g.amp[perm], truth.amp, atol=0.05)


def test_callable_init_and_none_init(truth):
    X = truth.draw(500, rng=0)
    calls = []

    def my_init(gmm, data, covar=None, rng=None):
        calls.append((data.shape, isinstance(rng, np.random.Generator)))
        gmm.amp, gmm.mean, gmm.covar = truth.amp, truth.mean, truth.covar

    g = ng.GMM(3, 2)
    ng.fit(g, X, init_method=my_init, miniter=0, maxiter=0)
    assert calls == [((500, 2), True)]
    np.testing.assert_array_equal(g.mean, truth.mean)   # maxiter=0: no update
    g2 = truth.copy()
    res = ng.fit(g2, X, init_method="NONE", miniter=0, maxiter=0)
    assert res.logL == pytest.approx(np.mean(truth.logL(X)))
