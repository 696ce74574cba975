"""pyGMMis code runs with ``import pygmmis_ng as pygmmis`` (issue 15, first part).

Every call of pyGMMis's own tests/test.py (without its plots) is exercised on the
paper's box-with-hole problem; the names are checked against their pyGMMis meanings.
"""
from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest

import pygmmis_ng as pygmmis
from pygmmis_ng import datasets

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_the_pygmmis_test_script_flow_runs_and_recovers_the_density():
    ds = datasets.paper_2d(N=400, selection="box_with_hole", sigma=0.5, rng=8365)
    covar = 0.25 * np.eye(2)
    rng = np.random.RandomState(8365)
    gmms = [pygmmis.GMM(K=3, D=2)]
    l = np.empty(1)                                                    # noqa: E741
    l[0], _ = pygmmis.fit(gmms[0], ds.data, w=0.1, cutoff=5, background=None, rng=rng)
    covar_cb = partial(pygmmis.covar_callback_default, default=np.eye(2) * 0.25)
    pygmmis.fit(gmms[0], ds.data, w=0.1, cutoff=5, background=None, rng=rng)
    l[0], _ = pygmmis.fit(gmms[0], ds.data, covar=covar, init_method="none", w=0.1, cutoff=5,
                          sel_callback=ds.sel_callback, oversampling=10, covar_callback=covar_cb,
                          background=None, rng=rng)
    with pytest.warns(UserWarning, match="negative"):
        avg = pygmmis.stack(gmms, l)
    test = ds.truth.draw(5000, rng=1)
    gap = np.mean(avg(test, as_log=True)) - np.mean(ds.truth(test, as_log=True))
    assert gap > -0.5                  # a density from 200 observed samples, not a toy value
    np.testing.assert_allclose(avg.amp, gmms[0].amp)


def test_stack_normalizes_negative_weights_as_pygmmis_and_refuses_mixed_signs():
    a, b = pygmmis.GMM(1, 2), pygmmis.GMM(2, 2)
    for g in (a, b):
        g.amp, g.mean = np.full(g.K, 1 / g.K), np.zeros((g.K, 2))
        g.covar = np.tile(np.eye(2), (g.K, 1, 1))
    with pytest.warns(UserWarning):
        s = pygmmis.stack([a, b], [-3.0, -1.0])
    # pyGMMis: amp_m * w_m, then divided by the sum: 0.75 for a's one component, 0.125 each for b's
    np.testing.assert_allclose(s.amp, [0.75, 0.125, 0.125])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(pygmmis.stack([a, b], [1.0, 3.0]).amp, [0.25, 0.375, 0.375])
    with pytest.raises(ValueError, match="non-negative"):
        pygmmis.stack([a, b], [-1.0, 2.0])


def test_covar_callback_default_returns_its_default_and_checks_it():
    S = np.array([[1.0, 0.2], [0.2, 2.0]])
    coords = np.zeros((7, 2))
    np.testing.assert_array_equal(pygmmis.covar_callback_default(coords, default=S), S)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        pygmmis.covar_callback_default(coords)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        pygmmis.covar_callback_default(coords, default=np.eye(3))


@pytest.mark.parametrize("name", ["initFromDataMinMax", "initFromDataAtRandom"])
def test_init_callbacks_keep_pygmmis_meaning_of_s_and_k(name):
    X = np.random.default_rng(0).uniform(0, 10, size=(500, 2))
    init = getattr(pygmmis, name)
    g = pygmmis.GMM(4, 2)
    init(g, X, s=0.5, rng=np.random.RandomState(1))
    np.testing.assert_array_equal(g.amp, np.full(4, 0.25))
    np.testing.assert_array_equal(g.covar, np.tile(0.25 * np.eye(2), (4, 1, 1)))
    if name == "initFromDataMinMax":
        assert ((g.mean >= X.min(axis=0)) & (g.mean <= X.max(axis=0))).all()
    before = g.mean.copy()
    init(g, X, s=2.0, k=[1, 3], rng=np.random.RandomState(2))      # only components 1 and 3
    np.testing.assert_array_equal(g.mean[[0, 2]], before[[0, 2]])
    assert not np.array_equal(g.mean[[1, 3]], before[[1, 3]])
    np.testing.assert_array_equal(g.covar[1], 4.0 * np.eye(2))
    np.testing.assert_array_equal(g.covar[0], 0.25 * np.eye(2))
    # as the init_method of a fit, with pyGMMis's signature (gmm, data, covar=None, rng=...)
    pygmmis.fit(pygmmis.GMM(2, 2), X, init_method=init, rng=0, maxiter=5)


def test_init_from_kmeans_finds_separated_clusters_reproducibly():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(10, 1, (100, 2))])
    g1, g2 = pygmmis.GMM(2, 2), pygmmis.GMM(2, 2)
    pygmmis.initFromKMeans(g1, X, rng=np.random.RandomState(0))
    pygmmis.initFromKMeans(g2, X, rng=np.random.RandomState(0))
    np.testing.assert_array_equal(g1.mean, g2.mean)
    order = np.argsort(g1.mean[:, 0])
    np.testing.assert_allclose(g1.amp[order], [0.75, 0.25])
    np.testing.assert_allclose(g1.mean[order], [X[:300].mean(0), X[300:].mean(0)])


def test_rng_none_and_numpy_random_follow_numpy_global_seed():
    X = np.random.default_rng(0).normal(size=(300, 2))
    fits = []
    for rng in (None, np.random, None):
        np.random.seed(0)
        g = pygmmis.GMM(2, 2)
        pygmmis.fit(g, X, init_method="random", rng=rng, maxiter=10)
        fits.append(g.mean)
    np.testing.assert_array_equal(fits[0], fits[1])
    np.testing.assert_array_equal(fits[0], fits[2])
    np.random.seed(1)
    g = pygmmis.GMM(2, 2)
    pygmmis.fit(g, X, init_method="random", maxiter=10)
    assert not np.array_equal(g.mean, fits[0])


def test_create_shared_is_a_plain_copy():
    a = np.arange(6).reshape(2, 3)
    out = pygmmis.createShared(a)
    np.testing.assert_array_equal(out, a)
    assert out.dtype == float and not np.shares_memory(out, a)


def test_logL_k_is_the_component_term_and_chi2_the_mahalanobis_distance():
    from scipy.stats import multivariate_normal

    g = pygmmis.GMM(2, 2)
    g.amp = [0.3, 0.7]
    g.mean = [[0.0, 0.0], [3.0, 1.0]]
    g.covar = [[[1.0, 0.3], [0.3, 2.0]], [[0.5, 0.0], [0.0, 0.2]]]
    X = np.random.default_rng(0).normal(size=(20, 2))
    S = np.array([[0.1, 0.02], [0.02, 0.3]])
    for k in range(2):
        T = g.covar[k] + S
        np.testing.assert_allclose(g.logL_k(k, X, covar=S),
                                   np.log(g.amp[k]) + multivariate_normal(g.mean[k], T).logpdf(X))
        d = X - g.mean[k]
        np.testing.assert_allclose(g.logL_k(k, X, covar=S, chi2_only=True),
                                   np.einsum("ni,ij,nj->n", d, np.linalg.inv(T), d))
    assert isinstance(g.logL_k(0, X[0]), float)
    n_chunks, chunksize = g._mp_chunksize()
    assert n_chunks >= 1 and chunksize >= 1 and n_chunks * chunksize <= max(g.K, 1)


def test_integral_floats_count_as_integers_and_fractions_do_not():
    ds = datasets.paper_2d(N=300, selection="box", sigma=0.5, rng=0)
    a, b = pygmmis.GMM(3, 2), pygmmis.GMM(3, 2)
    ra = pygmmis.fit(a, ds.data, split_n_merge=9 / 3, rng=0, maxiter=20)
    rb = pygmmis.fit(b, ds.data, split_n_merge=3, rng=0, maxiter=20)
    assert ra.logL == rb.logL
    np.testing.assert_array_equal(a.mean, b.mean)
    with pytest.raises(ValueError, match="split_n_merge must be an integer, got 1.5"):
        pygmmis.fit(pygmmis.GMM(3, 2), ds.data, split_n_merge=1.5)
    assert pygmmis.GMM(K=6 / 2, D=2.0).K == 3
