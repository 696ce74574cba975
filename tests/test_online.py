"""Online (stepwise) EM: ``fit(batch_size=...)``, ``partial_fit`` (issue 20).

Checked against independent truth: the full-batch optimum of the same data
(reached online, and exactly with the finishing full-batch EM), the same
minibatches through ``partial_fit`` and ``fit``, the running statistics
against sums taken from scratch, and bitwise equality across ``n_jobs``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import add_noise, make_truth, random_spd
from sklearn.exceptions import ConvergenceWarning

import pygmmis_ng as ng
from pygmmis_ng.fitting.em.mstep import constrain
from pygmmis_ng.fitting.online.passes import blend, pass_gap, recentre, start_stats
from pygmmis_ng.fitting.online.schedule import (
    eval_units,
    learning_rate,
    pass_batches,
    unit_bounds,
    windows,
)
from pygmmis_ng.fitting.partial import partial_fit
from pygmmis_ng.fitting.problem.options import OnlineOptions
from pygmmis_ng.fitting.problem.problem import State
from pygmmis_ng.kernels.stats import SufficientStats

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def noisy():
    """6000 draws of the 3-component truth with per-sample noise, in random order."""
    rng = np.random.default_rng(7)
    truth = make_truth()
    x = truth.draw(6000, rng=rng)
    S = random_spd(rng, 6000, 2, 0.05, 0.4)
    return add_noise(rng, x, S), S


def exact_logL(gmm, X, **kw) -> float:
    """The mean logL of all rows at ``gmm`` (a fit of 0 iterations from it)."""
    return ng.fit(gmm.copy(), X, init_method="none", maxiter=0, **kw).logL


def full_batch(X, K=3, **kw):
    gmm = ng.GMM(K, X.shape[1])
    res = ng.fit(gmm, X, tol=1e-9, rng=0, **kw)
    return gmm, res


# -- the algebra ---------------------------------------------------------------------------


def _raw_sums(x, q, centre):
    """A, Mc, Cc of points x (n, D) with responsibilities q (n, K) about ``centre`` (K, D)."""
    d = x[None] - centre[:, None]                         # (K, n, D)
    return q.sum(0), np.einsum("nk,knd->kd", q, d), np.einsum("nk,kna,knb->kab", q, d, d)


def test_recentre_equals_sums_taken_about_the_new_centre():
    rng = np.random.default_rng(0)
    x, q = rng.normal(size=(50, 3)), rng.dirichlet(np.ones(4), size=50)
    m_old, m_new = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    A, Mc, Cc = _raw_sums(x, q, m_old)
    moved = recentre(SufficientStats(A, Mc, Cc, 0.0, 50.0), m_old - m_new)
    A2, Mc2, Cc2 = _raw_sums(x, q, m_new)
    np.testing.assert_allclose(moved.Mc, Mc2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(moved.Cc, Cc2, rtol=1e-12, atol=1e-12)


def test_start_stats_give_back_the_state_and_blend_is_a_weighted_mean():
    truth = make_truth()
    st = State(truth.amp, truth.mean, truth.covar, 0.2, 100.0)
    s = start_stats(st)
    assert s.A.sum() + s.B == pytest.approx(1.0)
    np.testing.assert_allclose(s.Cc / s.A[:, None, None], truth.covar)
    batch = SufficientStats(np.array([2.0, 4.0, 2.0]), np.ones((3, 2)), np.ones((3, 2, 2)), -5.0,
                            10.0, 2.0)
    b = blend(s, batch, 0.25)
    np.testing.assert_allclose(b.A, 0.75 * s.A + 0.25 * batch.A / 10)
    assert b.B == pytest.approx(0.75 * 0.2 + 0.25 * 0.2)
    np.testing.assert_allclose(b.Cc, 0.75 * s.Cc + 0.025)


def test_schedule():
    opts = OnlineOptions(100, 3, 0.6, 2.0)
    assert learning_rate(1, opts) == pytest.approx(3 ** -0.6)
    # a minibatch moves the statistics by its weight against a full one's, at most to 1
    assert learning_rate(1, opts, weight=50, nominal=100) == pytest.approx(0.5 * 3 ** -0.6)
    assert learning_rate(1, opts, weight=150, nominal=100) == pytest.approx(1.5 * 3 ** -0.6)
    assert learning_rate(1, opts._replace(learning_offset=0.0), 300, 100) == 1.0
    chunks = [slice(0, 4), slice(4, 8), slice(8, 10), slice(10, 14), slice(14, 15)]
    assert unit_bounds(chunks, (10, 5)) == [[0, 1, 2], [3, 4]]
    assert windows(25, 10) == (10, 10, 5)
    # units are gathered whole up to batch_size rows; an oversize unit is cut by its chunks
    units = [[0], [1, 2, 3], [4], [5]]
    rows = np.array([40, 30, 30, 30, 50, 20])
    assert pass_batches(units, rows, 100, None) == [[0], [1, 2, 3], [4, 5]]
    # a unit of more than batch_size rows is cut into pieces shuffled into the pass on their own
    assert pass_batches(units, rows, 60, None) == [[0], [1, 2], [3], [4], [5]]
    assert pass_batches(units, rows, 75, None) == [[0], [1, 2], [3], [4, 5]]
    shuffled = pass_batches(units, rows, 100, np.random.default_rng(0))
    assert sorted(sum(shuffled, [])) == list(range(6))         # every chunk once per pass
    assert all(rows[b].sum() <= 100 for b in shuffled)
    ev = eval_units(np.array([30.0] * 9 + [10.0]), 65, np.random.default_rng(1))
    assert len(ev) == 3


def test_convergence_between_passes():
    assert pass_gap([-3.0, -2.0]) == np.inf
    # rising by shrinking steps: the change plus the geometric tail
    assert pass_gap([-3.0, -2.0, -1.5]) == pytest.approx(0.5 + 0.5 * 0.5 / 0.5)
    # not rising steadily: the larger of the last two changes (one small drop is not enough)
    assert pass_gap([-2.0, -1.0, -1.00001]) == pytest.approx(1.0)
    assert pass_gap([-1.0, -1.00001, -1.00002]) == pytest.approx(1e-5)


def test_start_stats_give_back_the_parameters_through_the_m_step():
    from pygmmis_ng.fitting.em.mstep import m_step

    truth = make_truth()
    masks = {k: np.zeros(3, bool) for k in ("amp", "mean", "covar")}
    for ct in ("full", "diag", "spherical"):
        covar = constrain(truth.covar, truth.amp, ct)
        st = State(truth.amp, truth.mean, covar, 0.1, 1.0)
        amp, mean, V = m_step(start_stats(st, 0.05), st.amp, st.mean, st.covar, 0.0, masks, ct,
                              reg_covar=0.05)
        np.testing.assert_allclose(V, covar, atol=1e-12)
        np.testing.assert_allclose(amp, truth.amp)
        np.testing.assert_allclose(mean, truth.mean)


# -- reaching the optimum ------------------------------------------------------------------


def test_online_em_reaches_the_full_batch_optimum(noisy):
    X, S = noisy
    _, full = full_batch(X, covar=S)
    gmm = ng.GMM(3, 2)
    res = ng.fit(gmm, X, covar=S, batch_size=300, n_passes=40, tol=1e-6, rng=1)
    assert res.online.converged and res.converged
    assert res.online.n_passes < 40 and res.online.n_batches == res.online.n_passes * 20
    # the data are smaller than the evaluation slice: its logL is the exact one
    assert res.online.eval_rows == len(X) and res.logL_se == 0.0
    assert res.logL == pytest.approx(exact_logL(gmm, X, covar=S), abs=1e-12)
    assert abs(res.logL - full.logL) < 1e-4
    assert len(res.history) == res.online.n_passes + 1 == res.n_iter + 1


def test_finish_lands_on_the_exact_optimum(noisy):
    X, S = noisy
    ref, full = full_batch(X, covar=S)
    gmm = ng.GMM(3, 2)
    res = ng.fit(gmm, X, covar=S, batch_size=500, n_passes=3, rng=2, finish=True, tol=1e-9)
    assert res.converged and res.online.finish_iter > 0
    assert res.logL == pytest.approx(full.logL, abs=1e-8)
    perm = ng.match_components(gmm, ref)
    np.testing.assert_allclose(gmm.mean[perm], ref.mean, atol=1e-3)
    assert res.n_iter == res.online.n_passes + res.online.finish_iter
    assert len(res.history) == res.n_iter + 1
    # finish=n: n full-batch updates after the passes
    two = ng.fit(ng.GMM(3, 2), X, covar=S, batch_size=500, n_passes=3, rng=2, finish=2, tol=0)
    assert two.online.finish_iter == 2 and two.n_eval == 3 + 3


@pytest.mark.parametrize("kind", ["missing", "projected", "weighted", "background"])
def test_online_em_with_every_kind_of_data(kind):
    rng = np.random.default_rng(11)
    truth = make_truth()
    x = truth.draw(3000, rng=rng)
    kw = {}
    if kind == "missing":
        x[rng.random(x.shape) < 0.15] = np.nan
        x[np.isnan(x).all(axis=1), 0] = 1.0
    elif kind == "projected":
        R = rng.normal(size=(3000, 2, 2))
        x = np.einsum("nij,nj->ni", R, x) + rng.normal(0, 0.1, x.shape)
        kw = dict(R=R, covar=np.broadcast_to(0.01 * np.eye(2), (3000, 2, 2)).copy())
    elif kind == "weighted":
        kw = dict(sample_weight=rng.integers(0, 4, 3000).astype(float))
    else:
        lo, hi = np.array([-6.0, -6.0]), np.array([12.0, 12.0])
        x = np.concatenate([x, rng.uniform(lo, hi, (600, 2))])
        rng.shuffle(x)
        kw = dict(background=ng.Background((lo, hi)))
    _, full = full_batch(x, **kw)
    if kind == "background":
        kw["background"] = ng.Background(kw["background"].footprint)
    gmm = ng.GMM(3, 2)
    res = ng.fit(gmm, x, batch_size=200, n_passes=60, tol=1e-6, rng=3, **kw)
    assert res.converged
    assert abs(res.logL - full.logL) < 2e-4
    if kind == "background":
        assert kw["background"].amp == pytest.approx(600 / 3600, abs=0.02)


# -- the same minibatches, the same answer -------------------------------------------------


def _init_gmm(X):
    g = ng.GMM(3, 2)
    ng.init.init_kmeans(g, X, rng=np.random.default_rng(0))
    return g


def test_partial_fit_over_a_split_equals_fit_of_the_same_batches(noisy):
    X, S = noisy
    init = _init_gmm(X)
    whole = init.copy()
    with pytest.warns(ConvergenceWarning):      # one pass cannot show convergence
        ng.fit(whole, X, covar=S, init_method="none", batch_size=1000, n_passes=1,
               shuffle=False, tol=1e-4, rng=1)
    pieces, state = init.copy(), None
    for lo in range(0, len(X), 1000):
        out = partial_fit(pieces, X[lo:lo + 1000], covar=S[lo:lo + 1000], state=state,
                          batch_size=1000, init_method="none", rng=1)
        state = out.state
    assert state.t == 6
    for a in ("amp", "mean", "covar"):
        np.testing.assert_allclose(getattr(pieces, a), getattr(whole, a), rtol=1e-10, atol=1e-12)
    assert not np.allclose(pieces.mean, init.mean, atol=1e-3)       # the pieces did move it


def test_estimator_partial_fit_equals_fit_and_continues(noisy):
    X, S = noisy
    kw = dict(means_init=[[0, 0], [6, 1], [2, 7.0]], weights_init=[0.3, 0.3, 0.4],
              precisions_init=np.array([np.eye(2)] * 3), random_state=0, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = ng.IncompleteGaussianMixture(3, batch_size=1500, n_passes=1, shuffle=False,
                                         **kw).fit(X, covar=S)
    b = ng.IncompleteGaussianMixture(3, batch_size=1500, **kw)
    for lo in range(0, len(X), 1500):
        b.partial_fit(X[lo:lo + 1500], covar=S[lo:lo + 1500])
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-10)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-10)
    assert a.n_steps_ == b.n_steps_ == 4 and len(b.lower_bounds_) == 4
    # later pieces may be smaller than K; the updates continue (also after fit)
    b.partial_fit(X[:2], covar=S[:2])
    assert b.n_steps_ == 5
    a.partial_fit(X[:100], covar=S[:100])
    assert a.n_steps_ == 5
    with pytest.raises(ValueError, match="features"):
        b.partial_fit(X[:10, :1])
    with pytest.raises(ValueError, match="N >= K"):
        ng.IncompleteGaussianMixture(3).partial_fit(X[:2])


def test_partial_fit_after_a_full_batch_fit_continues_from_it(noisy):
    X, S = noisy
    est = ng.IncompleteGaussianMixture(3, random_state=0, tol=1e-6).fit(X, covar=S)
    before = est.means_.copy()
    est.partial_fit(X[:500], covar=S[:500])
    # the counter of one pass of 500-row minibatches over the 6000 fitted rows, then one step:
    # a small move towards the piece, not a new initialization
    assert est.n_steps_ == 6000 // 500 + 1
    shift = np.abs(est.means_ - before).max()
    assert 0 < shift < 0.1


@pytest.mark.parametrize("kind", ["noise", "missing"])
def test_a_fixed_seed_gives_bitwise_the_same_fit_for_any_n_jobs(noisy, kind):
    X, S = noisy
    X = X.copy()
    if kind == "missing":
        X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
        X[np.isnan(X).all(axis=1), 0] = 0.5
    fits = []
    for n_jobs in (1, 2):
        g = ng.GMM(3, 2)
        res = ng.fit(g, X, covar=S, batch_size=700, n_passes=3, rng=5, n_jobs=n_jobs, tol=0)
        fits.append((g, res))
    (g1, r1), (g2, r2) = fits
    assert np.array_equal(g1.mean, g2.mean) and np.array_equal(g1.covar, g2.covar)
    assert np.array_equal(r1.online.pass_logL, r2.online.pass_logL)
    g3 = ng.GMM(3, 2)
    ng.fit(g3, X, covar=S, batch_size=700, n_passes=3, rng=6, tol=0)
    assert not np.array_equal(g3.mean, g1.mean)             # the seed orders the minibatches


def _mapped(tmp_path, name, a):
    """``a`` written to an .npy file and opened again memory-mapped (read-only)."""
    path = tmp_path / f"{name}.npy"
    np.save(path, a)
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_memory_mapped_data_give_the_numpy_fit(noisy, tmp_path, n_jobs):
    X, S = noisy
    mX, mS = _mapped(tmp_path, "X", X), _mapped(tmp_path, "S", S)
    a, b = ng.GMM(3, 2), ng.GMM(3, 2)
    ra = ng.fit(a, X, covar=S, batch_size=1000, n_passes=2, rng=4, tol=0)
    rb = ng.fit(b, mX, covar=mS, batch_size=1000, n_passes=2, rng=4, tol=0, n_jobs=n_jobs)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.covar, b.covar)
    assert ra.logL == rb.logL


def test_memory_mapped_rows_travel_as_the_file_not_the_rows(tmp_path):
    import pickle

    from pygmmis_ng.data.mapped import CentredRows, is_memory_mapped

    X = np.random.default_rng(0).normal(size=(100000, 3))
    mX = _mapped(tmp_path, "X", X)
    rows = CentredRows(mX[1000:], np.array([0.5, -1.0, 2.0]))
    blob = pickle.dumps(rows)
    assert len(blob) < 2000                          # the file's name and layout, no rows
    back = pickle.loads(blob)
    assert is_memory_mapped(back.base) and back.shape == (99000, 3)
    np.testing.assert_array_equal(back[10:20], X[1010:1020] - [0.5, -1.0, 2.0])
    for view in (mX[::-1], mX[::-3, ::-1], mX[50:7:-2, 1:]):      # strides of either sign
        again = pickle.loads(pickle.dumps(CentredRows(view, np.zeros(view.shape[1]))))
        np.testing.assert_array_equal(again[:], view)
    # a copy-on-write mapping may differ from its file: it travels as the rows
    cow = np.load(tmp_path / "X.npy", mmap_mode="c")
    cow[0] = 99.0
    assert pickle.loads(pickle.dumps(CentredRows(cow, np.zeros(3))))[0][0] == 99.0
    assert not is_memory_mapped(X) and is_memory_mapped(mX[5:])


def test_memory_mapped_data_are_never_copied_whole(tmp_path):
    import tracemalloc

    rng = np.random.default_rng(1)
    N = 1_500_000
    X = rng.normal(size=(N, 3)) + 4.0 * rng.integers(0, 3, N)[:, None]
    mX = _mapped(tmp_path, "X", X)
    mS = _mapped(tmp_path, "S", np.broadcast_to(0.1 * np.eye(3), (N, 3, 3)))
    del X
    data_bytes = mX.nbytes + mS.nbytes                  # 144 MB
    tracemalloc.start()
    try:
        res = ng.fit(ng.GMM(3, 3), mX, covar=mS, batch_size=250000, n_passes=1, rng=0, tol=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(res.logL)
    # the checks, the initialization sample (2^18 rows) and the chunks; no copy of the data
    assert peak < 0.5 * data_bytes, f"peak {peak / 2**20:.0f} MiB of {data_bytes / 2**20:.0f}"


# -- what the result says ------------------------------------------------------------------


def test_result_reports_the_passes_and_warns_when_they_did_not_settle(noisy):
    X, S = noisy
    with pytest.warns(ConvergenceWarning, match="n_passes=2"):
        res = ng.fit(ng.GMM(3, 2), X, covar=S, batch_size=500, n_passes=2, rng=1, tol=1e-12)
    on = res.online
    assert not res.converged and on.n_passes == 2 and on.n_batches == 24
    assert on.pass_logL.shape == (3,) and on.running_logL.shape == (2,)
    assert on.pass_logL[-1] > on.pass_logL[0]
    # the minibatches were scored before their own update: below the end-of-pass value
    assert on.running_logL[0] < on.pass_logL[1]
    assert 0 < on.learning_rate < learning_rate(1, OnlineOptions(500, 2))
    logL, U = res                                               # still pyGMMis's pair
    assert logL == res.logL and U == [None] * 3


def test_a_slice_smaller_than_the_data_is_an_estimate_with_its_error(settings, monkeypatch):
    rng = np.random.default_rng(3)
    X = make_truth().draw(40000, rng=rng)
    settings(eval_rows=4000)
    g = ng.GMM(3, 2)
    res = ng.fit(g, X, batch_size=2000, n_passes=3, rng=0, tol=0)
    assert 4000 <= res.online.eval_rows < 40000
    exact = exact_logL(g, X)
    assert 0 < res.logL_se < 0.05
    assert abs(res.logL - exact) < 4 * res.logL_se            # an estimate within its error


def test_sample_weights_count_across_minibatches():
    # heavy rows first, light rows last: each minibatch must move the statistics by its
    # weight (a minibatch of light rows far less than one of heavy rows; counted by rows,
    # the amplitudes came out [0.48, 0.52])
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (5000, 1)), rng.normal(6, 1, (5000, 1))])
    weight = np.r_[np.full(5000, 9.0), np.ones(5000)]
    full = ng.GMM(2, 1)
    ng.fit(full, X, sample_weight=weight, rng=0, tol=1e-8)
    gmm = ng.GMM(2, 1)
    ng.fit(gmm, X, sample_weight=weight, batch_size=500, n_passes=20, rng=0, tol=0)
    np.testing.assert_allclose(np.sort(gmm.amp), np.sort(full.amp), atol=0.01)
    assert np.sort(full.amp)[0] == pytest.approx(0.1, abs=0.01)


def test_a_slice_without_weight_falls_back_to_all_rows(settings, monkeypatch):
    settings(eval_rows=1000)
    rng = np.random.default_rng(1)
    X = make_truth().draw(20000, rng=rng)
    weight = np.zeros(20000)
    weight[-500:] = 1.0
    for seed in range(3):
        res = ng.fit(ng.GMM(2, 2), X, sample_weight=weight, batch_size=500, n_passes=2,
                     rng=seed, tol=0)
        assert np.isfinite(res.logL) and np.isfinite(res.online.pass_logL).all()


def test_every_minibatch_holds_every_missingness_pattern_in_row_order(noisy):
    from pygmmis_ng.data.layout import windowed_layout

    X, S = noisy
    X = X.copy()
    X[::2, 1] = np.nan                                  # every other row misses feature 1
    layout = windowed_layout(X, None, S, 3, 2, 1000)
    for lo in range(0, len(X), 1000):                   # each window: its own rows, both patterns
        groups = [g for g in layout.groups if lo <= g.rows.start < lo + 1000]
        assert sorted(len(range(*g.rows.indices(len(X)))) for g in groups) == [500, 500]
        assert set(layout.order[lo:lo + 1000]) == set(range(lo, lo + 1000))
    # so partial_fit over the pieces still equals fit in row order
    init = _init_gmm(np.nan_to_num(X))
    whole = init.copy()
    ng.fit(whole, X, covar=S, init_method="none", batch_size=1000, n_passes=1, shuffle=False,
           tol=0, rng=1)
    pieces, state = init.copy(), None
    for lo in range(0, len(X), 1000):
        state = partial_fit(pieces, X[lo:lo + 1000], covar=S[lo:lo + 1000], state=state,
                            batch_size=1000, init_method="none", rng=1).state
    np.testing.assert_allclose(pieces.mean, whole.mean, rtol=1e-10)
    np.testing.assert_allclose(pieces.covar, whole.covar, rtol=1e-10)


# -- what online EM refuses ----------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=1.5), "batch_size"),
    (dict(batch_size=100, n_passes=0), "n_passes"),
    (dict(n_passes=3), "needs batch_size"),
    (dict(finish=True), "needs batch_size"),
    (dict(batch_size=100, learning_decay=0.5), "learning_decay"),
    (dict(batch_size=100, learning_decay=1.2), "learning_decay"),
    (dict(batch_size=100, learning_offset=-1), "learning_offset"),
    (dict(batch_size=100, finish=-1), "finish"),
    (dict(batch_size=100, cutoff=3.0), "cutoff"),
    (dict(batch_size=100, split_n_merge=2), "split_n_merge"),
    (dict(batch_size=100, sel_callback=lambda c: np.ones(len(c)), oversampling=0), "oversampling"),
])
def test_bad_online_options_are_refused_before_anything_changes(noisy, kw, match):
    X, _ = noisy
    gmm = make_truth()
    before = gmm.copy()
    with pytest.raises((ValueError, TypeError), match=match):
        ng.fit(gmm, X, **kw)
    for a in ("amp", "mean", "covar"):
        assert np.array_equal(getattr(gmm, a), getattr(before, a))
    with pytest.raises(TypeError, match="shuffle"):
        ng.fit(gmm, X, batch_size=10, shuffle="yes")


def test_the_info_table_has_a_row_per_pass(noisy, caplog):
    X, S = noisy
    with caplog.at_level("INFO", logger="pygmmis_ng"):
        res = ng.fit(ng.GMM(3, 2), X, covar=S, batch_size=1000, n_passes=3, rng=1, tol=0,
                     progress=False)
    lines = [r.getMessage() for r in caplog.records]
    header = [m for m in lines if m.split()[:3] == ["PASS", "BATCHES", "SAMPLES"]]
    rows = [r for r in caplog.records if getattr(r, "iteration", None) is not None]
    assert len(header) == 1 and len(rows) == res.online.n_passes + 1
    assert [int(r.getMessage().split()[1]) for r in rows] == [0, 6, 12, 18]   # minibatches


def test_a_held_background_enters_online_em_as_it_enters_full_batch_em():
    # amp 0 raised to amp_min and held there (adjust_amp False): a background member of
    # fraction 0.2 in both (online EM judged the raw amp and left the member out)
    rng = np.random.default_rng(4)
    lo, hi = np.array([-6.0, -6.0]), np.array([12.0, 12.0])
    X = np.concatenate([make_truth().draw(3000, rng=rng), rng.uniform(lo, hi, (750, 2))])
    rng.shuffle(X)
    fits = []
    for kw in (dict(tol=1e-9), dict(batch_size=250, n_passes=60, tol=1e-6)):
        bg = ng.Background((lo, hi))
        bg.adjust_amp, bg.amp_min = False, 0.2
        res = ng.fit(ng.GMM(3, 2), X, background=bg, rng=0, **kw)
        fits.append((res.logL, bg.amp))
    assert fits[0][1] == pytest.approx(0.2) and fits[1][1] == pytest.approx(0.2)
    # the online passes alone (no finish; the slice is all rows: their logL is exact)
    assert abs(fits[1][0] - fits[0][0]) < 2e-4


def test_online_starts_go_through_the_one_driver_of_the_starts():
    """n_init online starts: each scored on the same evaluation slice, the best one chosen
    (as full-batch starts are), its passes the returned history; re-seeds of every start
    counted."""
    rng = np.random.default_rng(7)
    truth = make_truth()
    X = truth.draw(3000, rng=rng)
    res = ng.fit(ng.GMM(3, 2), X, batch_size=300, n_passes=3, n_init=3, init_method="random",
                 rng=1)
    assert res.restarts_logL.shape == (3,) and res.chosen == int(np.argmax(res.restarts_logL))
    assert res.logL == res.restarts_logL[res.chosen] == res.online.pass_logL[-1]
    single = ng.fit(ng.GMM(3, 2), X, batch_size=300, n_passes=3, n_init=1,
                    init_method="random", rng=1)
    assert single.restarts_logL[0] == res.restarts_logL[0]      # start 0: the same seed
    assert res.n_reseeded >= 0 and res.n_ghosts == 0
