"""Online EM under a selection (issue 36): each minibatch imputes its share of the unselected
samples, with running averages of the imputed sums and of the selected fraction.

Checked against independent truth: the full-batch fit of the same data (online passes that
settle land on it; with ``finish=True`` exactly), the closed-form truncated-normal maximum,
the full-batch log-likelihood at the online parameters, bitwise equality across ``n_jobs``
and between ``partial_fit`` pieces and one fit over the same minibatches, and the errors and
warnings of a fit that cannot be right.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from conftest import make_truth
from scipy.special import log_ndtr

import pygmmis_ng as ng
from pygmmis_ng.fitting.em.diagnostics import ReseedWarning, RunawayError
from pygmmis_ng.fitting.online.imputed import Imputed, complete
from pygmmis_ng.fitting.partial import partial_fit
from pygmmis_ng.kernels.stats import SufficientStats

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CUT = 7.0


def cut(coords):
    """Keep x0 < CUT: removes the upper tail of the truth's second component."""
    return (coords[:, 0] < CUT).astype(float)


@pytest.fixture(scope="module")
def selected():
    """The 3-component truth, 12000 draws before the cut (about 11000 after), shuffled."""
    rng = np.random.default_rng(3)
    x = make_truth().draw(12000, rng=rng)
    return x[cut(x) > 0]


@pytest.fixture(scope="module")
def full_batch(selected):
    gmm = ng.GMM(3, 2)
    res = ng.fit(gmm, selected, sel_callback=cut, rng=4, tol=1e-6)
    return gmm, res


def online(X, **kw):
    gmm = ng.GMM(3, 2)
    kw = dict(dict(batch_size=1000, n_passes=8, rng=4, sel_callback=cut), **kw)
    return gmm, ng.fit(gmm, X, **kw)


def _order(gmm):
    return np.argsort(gmm.mean[:, 0] + 10 * gmm.mean[:, 1])


def _assert_close(a, b, mean_tol, amp_tol=0.01):
    ia, ib = _order(a), _order(b)
    np.testing.assert_allclose(a.mean[ia], b.mean[ib], atol=mean_tol)
    np.testing.assert_allclose(a.amp[ia], b.amp[ib], atol=amp_tol)
    np.testing.assert_allclose(a.covar[ia], b.covar[ib], atol=3 * mean_tol)


def test_online_passes_land_on_the_full_batch_fit(selected, full_batch):
    g_full, r_full = full_batch
    assert r_full.orig_size > 1.02 * len(selected)          # the cut removed something
    gmm, res = online(selected)
    _assert_close(gmm, g_full, mean_tol=0.03)
    assert res.orig_size == pytest.approx(r_full.orig_size, rel=0.01)
    # the reported logL is the full-batch logL at the online parameters, within its error
    at = gmm.copy()
    check = ng.fit(at, selected, sel_callback=cut, init_method="warm", maxiter=0, rng=4)
    assert abs(res.logL - check.logL) < 4 * np.hypot(res.logL_se, check.logL_se) + 1e-4
    assert res.logL <= r_full.logL + 4 * np.hypot(res.logL_se, r_full.logL_se)


def test_finish_true_reaches_the_full_batch_optimum(selected, full_batch):
    g_full, r_full = full_batch
    gmm, res = online(selected, n_passes=2, finish=True, tol=1e-6)
    assert res.converged
    _assert_close(gmm, g_full, mean_tol=5e-3, amp_tol=2e-3)
    assert res.logL == pytest.approx(r_full.logL, abs=5e-4)


def test_logL_se_holds_the_slice_and_the_monte_carlo_error(selected):
    _, res = online(selected, n_passes=2)
    assert res.online.eval_rows == len(selected)            # the slice is exact ...
    assert res.logL_se > 0                                  # ... yet log Z is estimated
    M = 10 * res.orig_size                                  # the evaluation's draws
    Z = len(selected) / res.orig_size
    assert res.logL_se == pytest.approx(np.sqrt((1 - Z) / (Z * M)), rel=0.2)
    with ng.config.settings(eval_rows=2000):                       # a slice: its error joins
        _, sliced = online(selected, n_passes=2)
    assert sliced.online.eval_rows < len(selected)
    assert sliced.logL_se > 2 * res.logL_se


def test_truncated_normal_reaches_the_closed_form_maximum():
    """One component, a hard cut: the maximum of the truncated-normal likelihood."""
    mu, sd, c = 0.3, 1.2, 0.8
    rng = np.random.default_rng(0)
    x = rng.normal(mu, sd, 30000)
    x = x[x < c][:, None]

    def nll(theta):
        m, s = theta
        return -(scipy.stats.norm.logpdf(x[:, 0], m, s).sum() - len(x) * log_ndtr((c - m) / s))

    best = scipy.optimize.minimize(nll, [0.0, 1.0], method="Nelder-Mead",
                                   options=dict(xatol=1e-9, fatol=1e-10)).x
    gmm = ng.GMM(1, 1)
    res = ng.fit(gmm, x, sel_callback=lambda z: (z[:, 0] < c).astype(float), batch_size=2000,
                 n_passes=3, finish=True, tol=1e-7, rng=1)
    assert gmm.mean[0, 0] == pytest.approx(best[0], abs=0.01)
    assert np.sqrt(gmm.covar[0, 0, 0]) == pytest.approx(best[1], abs=0.01)
    N0 = len(x) / np.exp(log_ndtr((c - best[0]) / best[1]))
    assert res.orig_size == pytest.approx(N0, rel=0.01)


def test_the_running_sums_make_the_full_batch_scaling():
    """s_obs + s_imp / z is the full-batch S_obs + (N0 / M) S_imp per unit observed weight."""
    rng = np.random.default_rng(1)
    K, D, N_w, M, Z = 2, 3, 500.0, 4000, 0.4
    obs = SufficientStats(rng.random(K), rng.random((K, D)), rng.random((K, D, D)), 0.0, N_w, 2.0)
    imp = SufficientStats(rng.random(K), rng.random((K, D)), rng.random((K, D, D)), 0.0, M, 7.0)
    total = complete(obs.scaled(1 / N_w), Imputed(imp.scaled(1 / M), Z))
    full = obs.scaled(1.0)
    full += imp.scaled((N_w / Z) / M)
    for name in ("A", "Mc", "Cc", "B"):
        np.testing.assert_allclose(getattr(total, name), getattr(full, name) / N_w, rtol=1e-12)


def test_every_n_jobs_gives_the_same_bits(selected):
    kw = dict(n_passes=2, covar_callback=None)
    g1, r1 = online(selected, n_jobs=1, **kw)
    g2, r2 = online(selected, n_jobs=2, **kw)
    for a in ("amp", "mean", "covar"):
        assert np.array_equal(getattr(g1, a), getattr(g2, a))
    assert np.array_equal(r1.online.pass_logL, r2.online.pass_logL)
    assert r1.orig_size == r2.orig_size and r1.logL_se == r2.logL_se


def test_partial_fit_pieces_equal_one_fit_over_the_same_minibatches(selected):
    X = selected[:6000]
    init = make_truth()
    whole = init.copy()
    res = ng.fit(whole, X, sel_callback=cut, init_method="warm", batch_size=1000, n_passes=1,
                 shuffle=False, tol=0, rng=5)
    pieces, state = init.copy(), None
    sizes = []
    for lo in range(0, len(X), 2000):
        piece = partial_fit(pieces, X[lo:lo + 2000], state=state, batch_size=1000,
                            init_method="warm", sel_callback=cut, rng=5)
        state = piece.state
        sizes.append(piece.orig_size)
    assert isinstance(state.imputed, Imputed) and state.t == res.online.n_batches
    np.testing.assert_allclose(pieces.mean, whole.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pieces.covar, whole.covar, rtol=1e-9, atol=1e-12)
    # the last piece's N0 follows the running selected fraction, as the fit's does
    assert sizes[-1] == pytest.approx(res.orig_size * 2000 / len(X), rel=1e-9)


def test_the_estimator_partial_fit_imputes():
    rng = np.random.default_rng(2)
    x = make_truth().draw(8000, rng=rng)
    x = x[cut(x) > 0]
    est = ng.IncompleteGaussianMixture(3, sel_callback=cut, batch_size=1000, random_state=0)
    for piece in np.array_split(x, 4):
        est.partial_fit(piece)
    seen = len(x)
    assert est.fit_result_.orig_size > 1.02 * seen
    assert est.fit_result_.n_imputed == pytest.approx(est.fit_result_.orig_size - seen)


def test_a_selection_that_cannot_describe_the_data_runs_away(selected):
    with pytest.raises(RunawayError, match="ran away"):
        online(selected, sel_callback=lambda c: np.full(len(c), 1e-4))


def test_a_ghost_component_is_reseeded_where_the_data_are():
    """A start with one component far outside the box (where Omega = 0): re-seeded."""
    rng = np.random.default_rng(6)
    truth = ng.GMM(2, 2)
    truth.amp, truth.mean = [0.5, 0.5], [[2.0, 2.0], [7.0, 7.0]]
    truth.covar = np.array([np.eye(2), np.eye(2)]) * 0.5
    box = lambda c: np.all((c > 0) & (c < 10), axis=1).astype(float)   # noqa: E731
    x = truth.draw(8000, rng=rng)
    x = x[box(x) > 0]
    gmm = truth.copy()
    gmm.mean = [[2.0, 2.0], [40.0, 40.0]]
    with pytest.warns(ReseedWarning, match="ghost"):
        res = ng.fit(gmm, x, sel_callback=box, init_method="warm", batch_size=1000,
                     n_passes=4, rng=1)
    assert res.n_ghosts >= 1
    assert np.all((gmm.mean > 0) & (gmm.mean < 10))


def test_the_kmeans_start_competes_unless_warm(selected):
    _, res = online(selected, n_passes=1, init_method="random")
    assert len(res.restarts_logL) == 2                      # 'random' and the k-means start
    start = make_truth()
    res = ng.fit(start, selected, sel_callback=cut, init_method="warm", batch_size=1000,
                 n_passes=1, rng=4)
    assert len(res.restarts_logL) == 1


def test_background_noise_nan_and_weights_compose():
    """A background, per-sample noise with covar_callback, NaN and integer weights: the
    online fit (finished by full-batch EM) lands on the full-batch fit of the same data, up to
    the Monte-Carlo error of the imputation (the two fits draw different numbers of samples:
    each fixed point is that of its own draws)."""
    rng = np.random.default_rng(9)
    ds = ng.datasets.paper_2d(N=3000, selection="cut", sigma=0.3, bg_amp=0.1, rng=rng)
    X = ds.data.copy()
    X[rng.random(len(X)) < 0.1, 1] = np.nan             # the cut is on x0: Omega is known
    weight = rng.integers(1, 3, len(X)).astype(float)
    kw = dict(covar=ds.covar, sel_callback=ds.sel_callback, covar_callback=lambda c: ds.covar,
              sample_weight=weight, w=0.1, rng=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReseedWarning)
        bg_full, bg_online = ng.Background(ds.background.footprint), \
            ng.Background(ds.background.footprint)
        g_full, g_online = ng.GMM(3, 2), ng.GMM(3, 2)
        r_full = ng.fit(g_full, X, background=bg_full, **kw)
        r_online = ng.fit(g_online, X, background=bg_online, batch_size=800, n_passes=3,
                          finish=True, **kw)
    assert r_full.converged and r_online.converged
    assert r_online.orig_size == pytest.approx(r_full.orig_size, rel=0.03)
    assert bg_online.amp == pytest.approx(bg_full.amp, abs=0.01)
    assert abs(r_online.logL - r_full.logL) < 3 * np.hypot(r_online.logL_se, r_full.logL_se)


def test_the_info_table_shows_the_imputed_count(selected, caplog):
    with caplog.at_level("INFO", logger="pygmmis_ng"):
        _, res = online(selected, n_passes=2, tol=0, progress=False)
    header = next(r.getMessage().split() for r in caplog.records
                  if r.getMessage().split()[:3] == ["PASS", "BATCHES", "SAMPLES"])
    assert header[3] == "IMPUTED"
    rows = [r.getMessage().split() for r in caplog.records
            if getattr(r, "iteration", None) is not None]
    assert float(rows[-1][3]) == pytest.approx(res.orig_size - len(selected), abs=1)


def test_settled_passes_under_a_selection_do_not_claim_convergence(selected):
    """The slice's logL settles while EM under a selection still crawls: not converged, and a
    ConvergenceWarning that says why; the finishing full-batch EM's test decides instead."""
    from sklearn.exceptions import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="under a selection"):
        _, res = online(selected, n_passes=30, tol=1e-3)
    assert res.online.converged and res.online.n_passes < 30       # the passes settled ...
    assert not res.converged                                       # ... which proves nothing
    _, done = online(selected, n_passes=30, tol=1e-3, finish=True)
    assert done.converged and done.online.finish_iter > 0
    # without a selection settled passes still count (the stepwise fixed point is EM's)
    gmm = ng.GMM(3, 2)
    plain = ng.fit(gmm, selected, batch_size=1000, n_passes=30, tol=1e-3, rng=4)
    assert plain.online.converged and plain.converged
