"""pyGMMis code runs with ``import pygmmis_ng as pygmmis`` (issue 15).

Every call of pyGMMis's own tests/test.py (without its plots) is exercised on the
paper's box-with-hole problem, and every call of its tests/test_3D.py (name and keyword
set) on small problems of our own; the names are checked against their pyGMMis meanings.
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
    assert pygmmis.GMM(K=6 / 2, D=2.0).K == 3


# -- tests/test_3D.py --------------------------------------------------------------------------
# Its calls: chi2_cutoff(D, cutoff=); GMM(K=, D=) set in place (amp[:], mean[:, :], covar[k]) and
# resized (amp = amp[safe]; amp /= amp.sum(); mean = ...; covar = ...); gmm.draw(N, rng=);
# fit(gmm, data, init_method='minmax', w=, cutoff=, split_n_merge=K/3, rng=) and
# fit(gmm, data, sel_callback=, init_method='none', w=, cutoff=, split_n_merge=K/3, rng=), both
# unpacked as logL, U; gmm._mp_chunksize() and gmm.logL_k(k, coords, covar=None, chi2_only=True)
# on a GMM sent to worker processes (parmap). rng is a numpy RandomState throughout.

def _cube_mixture(K: int, rng: np.random.RandomState) -> pygmmis.GMM:
    """A K-component 3D mixture inside the unit cube, set in place as test_3D.py does."""
    g = pygmmis.GMM(K=K, D=3)
    g.amp[:] = rng.dirichlet(np.full(K, 5.0))
    g.mean[:, :] = 0.2 + 0.6 * rng.rand(K, 3)
    for k in range(K):
        Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        g.covar[k] = Q @ np.diag((0.02 + rng.rand(3) / 15) ** 2) @ Q.T
    return g


def _slope_omega(coords: np.ndarray) -> np.ndarray:
    """Selection probability falling linearly in x: the one test_3D.py draws from."""
    return np.clip(1 - coords[:, 0], 0, 1)


def test_chi2_cutoff_is_the_chi2_quantile_of_the_1d_sigma_interval():
    from scipy.stats import chi2, norm

    assert pygmmis.chi2_cutoff(1, cutoff=2.5) == pytest.approx(2.5**2)
    for D, c in ((2, 1.0), (3, 1.0), (3, 3.0), (5, 5.0)):
        q = pygmmis.chi2_cutoff(D, cutoff=c)
        assert chi2.cdf(q, D) == pytest.approx(norm.cdf(c) - norm.cdf(-c), rel=1e-9)
    assert pygmmis.chi2_cutoff(3) == pytest.approx(chi2.ppf(norm.cdf(3) - norm.cdf(-3), 3))


def test_logL_k_chi2_inside_chi2_cutoff_holds_the_1d_sigma_fraction():
    # test_3D.py's insideComponent: the samples of component k within 1 sigma (in 3D) of it
    g = pygmmis.GMM(K=2, D=3)
    g.amp[:] = [0.5, 0.5]
    g.mean[:, :] = [[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]
    g.covar[0] = [[1.0, 0.4, 0.0], [0.4, 2.0, 0.3], [0.0, 0.3, 0.5]]
    g.covar[1] = np.eye(3)
    X = np.random.RandomState(4).multivariate_normal(g.mean[0], g.covar[0], size=40000)
    inside = g.logL_k(0, X, covar=None, chi2_only=True) < pygmmis.chi2_cutoff(3, cutoff=1.0)
    assert inside.mean() == pytest.approx(0.6827, abs=0.01)       # P(|z| < 1), 4 sigma wide
    assert (g.logL_k(1, X, covar=None, chi2_only=True) > 10).all()  # far from component 1


def test_gmm_set_in_place_then_resized_to_a_subset_is_that_submixture():
    from scipy.stats import multivariate_normal

    rng = np.random.RandomState(2)
    g = _cube_mixture(5, rng)
    full = g.copy()
    safe = np.array([True, False, True, True, False])
    g.amp = g.amp[safe]
    g.amp /= g.amp.sum()
    g.mean = g.mean[safe]
    g.covar = g.covar[safe]
    assert (g.K, g.D) == (3, 3)
    amp = full.amp[safe] / full.amp[safe].sum()
    np.testing.assert_allclose(g.amp, amp)
    X = rng.rand(50, 3)
    expect = sum(a * multivariate_normal(m, C).pdf(X)
                 for a, m, C in zip(amp, full.mean[safe], full.covar[safe]))
    np.testing.assert_allclose(g(X), expect, rtol=1e-10)
    np.testing.assert_allclose(g.logL_k(1, X), np.log(amp[1]) + multivariate_normal(
        full.mean[2], full.covar[2]).logpdf(X), rtol=1e-10)


def test_draw_with_a_randomstate_is_reproducible_and_has_the_mixture_moments():
    g = _cube_mixture(4, np.random.RandomState(3))
    a = g.draw(30000, rng=np.random.RandomState(5))
    b = g.draw(30000, rng=np.random.RandomState(5))
    np.testing.assert_array_equal(a, b)
    rs = np.random.RandomState(5)
    g.draw(10, rng=rs)
    assert not np.array_equal(g.draw(30000, rng=rs), a)             # the RandomState advanced
    mu = g.amp @ g.mean
    cov = np.einsum("k,kij->ij", g.amp, g.covar + np.einsum("ki,kj->kij", g.mean, g.mean))
    cov -= np.outer(mu, mu)
    np.testing.assert_allclose(a.mean(axis=0), mu, atol=0.005)
    np.testing.assert_allclose(np.cov(a.T), cov, atol=0.003)


def test_the_3D_script_flow_corrects_for_the_selection_and_returns_neighborhoods():
    rng = np.random.RandomState(0)
    truth = _cube_mixture(6, rng)
    X0 = truth.draw(4000, rng=rng)
    data = X0[rng.rand(len(X0)) < _slope_omega(X0)]
    K_ = truth.K
    gmm = pygmmis.GMM(K=K_, D=3)
    logL, U = pygmmis.fit(gmm, data, init_method="minmax", w=1e-3, cutoff=5,
                          split_n_merge=K_ / 3, rng=rng)
    gmm_ = pygmmis.GMM(K=K_, D=3)
    gmm_.amp[:] = gmm.amp[:]
    gmm_.mean[:, :] = gmm.mean[:, :]
    gmm_.covar[:, :, :] = 2 * gmm.covar[:, :, :]
    logL_, U_ = pygmmis.fit(gmm_, data, sel_callback=_slope_omega, init_method="none", w=1e-3,
                            cutoff=5, split_n_merge=K_ / 3, rng=rng)
    assert np.isfinite(logL) and np.isfinite(logL_)
    # U: per component, the samples within the 5-sigma-equivalent chi^2 of the fitted component
    q = pygmmis.chi2_cutoff(3, cutoff=5)
    for fit_gmm, nbh in ((gmm, U), (gmm_, U_)):
        assert len(nbh) == K_
        for k in range(K_):
            inside = np.zeros(len(data), dtype=bool)
            inside[nbh[k]] = True
            np.testing.assert_array_equal(inside, fit_gmm.logL_k(k, data, chi2_only=True) < q)

    # the selection falls with x: the plain fit misses mass at large x, the imputation fit not
    def mass(g):
        return np.mean(g.draw(20000, rng=np.random.RandomState(1))[:, 0] > 0.5)
    assert mass(gmm) < mass(truth) - 0.08
    assert mass(gmm_) == pytest.approx(mass(truth), abs=0.05)


def test_a_gmm_sent_to_worker_processes_evaluates_as_the_original(monkeypatch):
    import os
    import pickle

    g = _cube_mixture(10, np.random.RandomState(6))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert g._mp_chunksize() == (4, 2)          # pyGMMis: chunksize K // cpus, n_chunks <= cpus
    g3 = pygmmis.GMM(3, 3)
    assert g3._mp_chunksize() == (3, 1)
    copy = pickle.loads(pickle.dumps(g))         # parmap pickles the GMM for its workers
    X = np.random.RandomState(7).rand(30, 3)
    for k in range(g.K):
        np.testing.assert_array_equal(copy.logL_k(k, X, covar=None, chi2_only=True),
                                      g.logL_k(k, X, covar=None, chi2_only=True))


def _selected_sample(rng: np.random.RandomState) -> tuple[pygmmis.GMM, np.ndarray]:
    g = _cube_mixture(3, rng)
    X = g.draw(1500, rng=rng)
    return g, X[rng.rand(len(X)) < _slope_omega(X)]


def test_a_random_draw_as_sel_callback_is_refused_before_the_model_is_touched():
    # test_3D.py passes its selection *draw* rng.rand(N) > x as the fit's sel_callback; at the
    # observed samples it is then often False (Omega = 0), on which pyGMMis 1.2.3 warns and
    # fills the model with NaN (and the script's try_forever retries for ever)
    rng = np.random.RandomState(8)
    g, data = _selected_sample(rng)
    before = g.copy()
    with pytest.raises(ValueError, match="Omega = 0"):
        pygmmis.fit(g, data, sel_callback=lambda c: rng.rand(len(c)) > c[:, 0], init_method="none",
                    w=1e-3, cutoff=5, rng=rng)
    for name in ("amp", "mean", "covar"):
        np.testing.assert_array_equal(getattr(g, name), getattr(before, name))


def test_the_refusal_of_a_random_draw_says_to_return_the_probability():
    rng = np.random.RandomState(8)
    g, data = _selected_sample(rng)
    with pytest.raises(ValueError, match=r"random draw.*return the selection probability"):
        pygmmis.fit(g, data, sel_callback=lambda c: rng.rand(len(c)) > c[:, 0], init_method="none",
                    w=1e-3, cutoff=5, rng=rng)


def test_a_fractional_split_n_merge_makes_as_many_attempts_as_pygmmis_while_positive():
    # test_3D.py passes K/3 (Python 2 division when written). pyGMMis 1.2.3 under Python 3
    # never counts down to 0 and goes on until an attempt is rejected; ceil(K/3) attempts are
    # the ones it makes while its count is positive
    rng = np.random.RandomState(9)
    _, data = _selected_sample(rng)
    a, b = pygmmis.GMM(4, 3), pygmmis.GMM(4, 3)
    ra = pygmmis.fit(a, data, split_n_merge=4 / 3, rng=0, maxiter=20)
    rb = pygmmis.fit(b, data, split_n_merge=2, rng=0, maxiter=20)
    assert ra.logL == rb.logL
    np.testing.assert_array_equal(a.mean, b.mean)
