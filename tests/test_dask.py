"""Fits on a real Dask cluster (issue 17): the same answer as one process.

A ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` -- real
worker processes, no mocks. Every fit through ``client=`` must equal the
``n_jobs=1`` fit bitwise, and leave no task, future or data on the cluster.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

import pygmmis_ng as ng
from pygmmis_ng import IncompleteGaussianMixture
from pygmmis_ng.tools import datasets

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def scheduler_tasks(client) -> list:
    return client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])


def assert_nothing_left(client) -> None:
    deadline = time.monotonic() + 5
    while scheduler_tasks(client) and time.monotonic() < deadline:
        time.sleep(0.05)                      # releases reach the scheduler asynchronously
    assert scheduler_tasks(client) == []


def our_segments() -> set:
    shm = "/dev/shm"
    return {f for f in os.listdir(shm) if f.startswith("pygmmis_ng")} if os.path.isdir(shm) \
        else set()


@pytest.fixture(autouse=True)
def nothing_left_on_the_cluster(client):
    before = our_segments()
    yield
    assert_nothing_left(client)
    assert our_segments() <= before                 # no shared-memory segment either
    assert not any(client.run(_problems_held).values())     # nor a problem on a worker


def _problems_held():
    from pygmmis_ng.execution import cluster as cluster_module
    return len(cluster_module._PROBLEMS)


@contextlib.contextmanager
def once_iterating(action):
    """Run ``action`` in a thread as soon as the fit logs its iteration table; join on exit."""
    iterating = threading.Event()
    handler = logging.Handler(level=logging.INFO)
    handler.emit = lambda record: iterating.set() if "ITER" in record.getMessage() else None
    logger = logging.getLogger("pygmmis_ng")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    def run():
        iterating.wait(60)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        thread.join()
        logger.removeHandler(handler)
        logger.setLevel(level)


def blobs(n=4000, D=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (n // 2, D)), rng.normal(4, 1, (n - n // 2, D))])
    S = np.einsum("n,ab->nab", rng.uniform(0.1, 0.5, n), np.eye(D))
    return X, S, rng


def both(client, K, D, **kw):
    a, b = ng.GMM(K, D), ng.GMM(K, D)
    ra = ng.fit(a, rng=1, **kw)
    rb = ng.fit(b, rng=1, client=client, **kw)
    assert ra.logL == rb.logL and np.array_equal(ra.history, rb.history)
    assert (ra.n_hessian, ra.n_eval) == (rb.n_hessian, rb.n_eval)
    assert ra.gap == rb.gap or np.isnan(ra.gap) and np.isnan(rb.gap)
    for name in ("amp", "mean", "covar"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    return rb


def test_plain_and_deconvolution_with_missing_values_equal_one_process(client):
    X, S, rng = blobs()
    both(client, 3, 3, data=X)
    Xn = X.copy()
    Xn[rng.random(len(X)) < 0.2, 1] = np.nan
    both(client, 3, 3, data=Xn, covar=S, sample_weight=rng.integers(1, 3, len(X)).astype(float))


def test_the_newton_polish_on_the_cluster_equals_one_process(client):
    """The Hessian passes run as tasks on the workers and are summed in chunk order: the
    polished fit (its Newton steps, gap and Hessian count) is the one-process fit's bits."""
    X, S, rng = blobs(3000)
    Xn = X.copy()
    Xn[rng.random(len(X)) < 0.1, 0] = np.nan
    r = both(client, 2, 3, data=Xn, covar=S, sample_weight=rng.uniform(0.5, 2, len(X)))
    assert r.n_hessian > 0
    assert r.converged and 0 <= r.gap < 1e-7
    assert_nothing_left(client)


def test_projections_equal_one_process(client):
    X, _, rng = blobs(3000)
    R = rng.normal(size=(len(X), 2, 3))
    Y = np.einsum("nij,nj->ni", R, X) + rng.normal(0, 0.1, (len(X), 2))
    both(client, 2, 3, data=Y, R=R, covar=0.01 * np.eye(2), maxiter=30)


def test_imputation_with_background_equals_one_process(client):
    ds = datasets.paper_2d(N=1500, selection="box_with_hole", sigma=0.5, rng=3)
    kw = dict(data=ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
              covar_callback=lambda c: ds.covar)             # a lambda: sent by cloudpickle
    a, b = ng.GMM(3, 2), ng.GMM(3, 2)
    bga, bgb = (ng.Background(np.array([[-5.0, -5.0], [15.0, 15.0]])) for _ in range(2))
    ra = ng.fit(a, rng=2, background=bga, **kw)
    rb = ng.fit(b, rng=2, background=bgb, client=client, **kw)
    assert ra.logL == rb.logL and bga.amp == bgb.amp
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.covar, b.covar)
    assert rb.n_imputed > 0


def test_runtime_settings_travel_to_the_workers(client):
    """The settings in force when a fit starts go to the workers with its problem: imputation
    blocks of 1024 draws (other variates than the default's) on the cluster equal those of one
    process under the same settings, and the numpy kernels serve there when switched off."""
    ds = datasets.paper_2d(N=600, selection="box_with_hole", sigma=0.5, rng=3)
    kw = dict(data=ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
              covar_callback=lambda c: ds.covar, maxiter=5, tol=0, oversampling=4)
    default = ng.fit(ng.GMM(2, 2), rng=2, **kw)
    with ng.config.settings(imputation_block=1024, compiled_kernels=False):
        here = ng.fit(ng.GMM(2, 2), rng=2, **kw)
        there = ng.fit(ng.GMM(2, 2), rng=2, client=client, **kw)
    assert here.logL == there.logL and np.array_equal(here.history, there.history)
    assert here.logL != default.logL


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_problem_moves_between_workers_as_bytes(client):
    # regression: a worker pickling the problem object to hand it to another raced with a
    # task unpickling callbacks into the same globals; the fetch failed and the other
    # worker's imputation tasks waited for it forever (a fit hung at random)
    ds = datasets.paper_2d(N=1500, selection="box_with_hole", sigma=0.5, rng=3)
    held = {}

    def problem_types(dask_worker):
        return [type(v).__name__ for k, v in dask_worker.data.items()
                if str(k).startswith("pygmmis_ng-problem")]

    def look():
        deadline = time.monotonic() + 10
        while not held.get("types") and time.monotonic() < deadline:
            held["types"] = [t for types in client.run(problem_types).values() for t in types]
            time.sleep(0.01)

    with once_iterating(look):
        g = ng.GMM(3, 2)
        ng.fit(g, ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
               covar_callback=lambda c: ds.covar, rng=2, client=client, maxiter=40, tol=0)
    assert held["types"] and set(held["types"]) == {"bytes"}


def lazy(*arrays, rows=5000):
    da = pytest.importorskip("dask.array")
    return [None if a is None else da.from_array(a, chunks=(rows,) + a.shape[1:]) for a in arrays]


def same_fit(client, data, lazy_data, K=3, **kw):
    """The fit of numpy ``data`` (one process) and of dask ``lazy_data`` (on the cluster)."""
    a, b = ng.GMM(K, 3), ng.GMM(K, 3)
    bg = kw.pop("background", None)            # the fit adjusts its amp: one each
    ra = ng.fit(a, *data, rng=4, background=bg and bg.copy(), **kw)
    rb = ng.fit(b, *lazy_data, rng=4, client=client, background=bg and bg.copy(), **kw)
    assert ra.logL == rb.logL and np.array_equal(ra.history, rb.history)
    for name in ("amp", "mean", "covar"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    return rb


def test_dask_array_input_equals_numpy_input(client):
    X, S, rng = blobs(2000)
    same_fit(client, (X, S), lazy(X, S, rows=500), K=2)


def test_float32_storage_on_the_cluster_equals_one_process(client):
    X, S, _ = blobs(3000, seed=3)
    X32, S32 = X.astype(np.float32), S.astype(np.float32)
    r = same_fit(client, (X32, S32), lazy(X32, S32, rows=1000), K=2, dtype=np.float32)
    r64 = ng.fit(ng.GMM(2, 3), X32, covar=S32, rng=4)
    assert r.logL != r64.logL and abs(r.logL - r64.logL) < 1e-6     # stored as float32
    both(client, 2, 3, data=X32, covar=S32, dtype=np.float32)


@pytest.mark.parametrize("streamed", [False, True], ids=["kept-on-workers", "streamed"])
def test_dask_arrays_kept_or_streamed_equal_numpy_with_weights_and_imputation(
        settings,         client, monkeypatch, streamed):

    if streamed:     # every E-step reads the rows again, in batches of ~1 MB (many batches)
        settings(persist_share=0.0)
        settings(stream_batch_bytes=1 << 20)
    X, S, rng = blobs(60000, seed=11)
    weight = rng.uniform(0.5, 2.0, len(X))
    r = same_fit(client, (X, S), lazy(X, S), sample_weight=weight, maxiter=15, tol=0)
    assert r.n_iter == 15
    keep = X[:, 0] < 5.0                                      # a selection, with imputation
    Xs, Ss = X[keep], S[keep]

    def sel(c):
        return (c[:, 0] < 5.0).astype(float)
    kw = dict(sel_callback=sel, covar_callback=lambda c: np.eye(3) * 0.3, maxiter=6, tol=0,
              background=ng.Background(np.array([[-6.0] * 3, [10.0] * 3])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same_fit(client, (Xs, Ss), lazy(Xs, Ss), **kw)


def test_a_sample_of_large_data_starts_the_fit_the_same_from_numpy_and_dask(settings, client, monkeypatch):

    settings(init_sample_rows=3000)   # "large": more rows than that
    X, S, _ = blobs(20000, seed=12)
    same_fit(client, (X, S), lazy(X, S), maxiter=10)


def _on_a_worker_only(block):
    distributed.get_worker()           # raises ValueError outside a worker
    return block


def test_cluster_data_are_read_on_the_workers_only(settings, client, monkeypatch):

    settings(persist_share=0.0)
    X, S, _ = blobs(30000, seed=13)
    Xd, Sd = lazy(X, S)
    Xd = Xd.map_blocks(_on_a_worker_only, dtype=float)
    with pytest.raises(ValueError, match="No worker found"):
        np.asarray(Xd[:10].compute(scheduler="sync"))          # the guard works here
    g = ng.GMM(3, 3)
    r = ng.fit(g, Xd, covar=Sd, rng=0, client=client, maxiter=5)
    assert r.n_iter >= 1 and np.isfinite(r.logL)


def test_bad_values_in_a_dask_array_are_found_on_the_workers(client):
    X, S, _ = blobs(4000, seed=14)
    bad = X.copy()
    bad[3210, 1] = np.inf
    g = ng.GMM(2, 3)
    before = g.copy()
    with pytest.raises(ValueError, match=r"inf.*rows 0\.\.3999"):
        ng.fit(g, *lazy(bad, S, rows=1000), client=client)
    bad[3210, 1] = np.nan
    with pytest.raises(ValueError, match="NaN .*pass data.compute"):
        ng.fit(g, *lazy(bad, S, rows=1000), client=client)
    S_bad = S.copy()
    S_bad[17] = -np.eye(3)
    with pytest.raises(ValueError, match="covar"):
        ng.fit(g, *lazy(X, S_bad, rows=1000), client=client)
    with pytest.raises(ValueError, match="negative"):
        ng.fit(g, *lazy(X, S), sample_weight=lazy(-np.ones(len(X)))[0], client=client)
    with pytest.raises(ValueError, match=r"covar .*got shape \(10, 3, 3\)"):
        ng.fit(g, lazy(X)[0], covar=S[:10], client=client)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4000,\)"):
        ng.fit(g, lazy(X)[0], covar=S, sample_weight=np.ones(7), client=client)
    for kw in (dict(cutoff=3.0), dict(split_n_merge=2), dict(R=np.eye(3))):
        with pytest.raises(ValueError, match="cannot be used with data that stay on the Dask"):
            ng.fit(ng.GMM(3, 3), *lazy(X, S), client=client, **kw)
    assert np.array_equal(g.mean, before.mean, equal_nan=True)


def test_cutoff_on_the_cluster_equals_one_process(client):
    X, S, _ = blobs(40000, seed=15)
    both(client, 4, 3, data=X, covar=S, cutoff=3.0, maxiter=25, tol=0)
    assert not any(client.run(_flags_held).values())            # the flags left with the fit


def _flags_held():
    from pygmmis_ng.execution import cluster as cluster_module
    return len(cluster_module._FLAGS)


def _forget_flags():
    from pygmmis_ng.execution import cluster as cluster_module
    cluster_module._FLAGS.clear()


def test_neighborhood_flags_lost_mid_fit_are_made_again_the_same(client):
    X, S, _ = blobs(60000, seed=16)
    ref = ng.GMM(4, 3)
    ng.fit(ref, X, covar=S, cutoff=3.0, rng=3, maxiter=25, tol=0)
    with once_iterating(lambda: (time.sleep(0.3), client.run(_forget_flags))):
        g = ng.GMM(4, 3)
        ng.fit(g, X, covar=S, cutoff=3.0, rng=3, maxiter=25, tol=0, client=client)
    assert np.array_equal(g.mean, ref.mean) and np.array_equal(g.covar, ref.covar)


def test_a_callback_error_on_a_worker_arrives_as_callback_error(client):
    ds = datasets.paper_2d(N=500, selection="box_with_hole", sigma=0.5, rng=4)
    calls = {"n": 0}

    def sel(coords):
        calls["n"] += 1                       # the check on the observed samples runs here
        if calls["n"] > 1:
            raise RuntimeError("selection lookup failed")
        return ds.sel_callback(coords)

    g = ng.GMM(3, 2)
    before = g.copy()
    with pytest.raises(ng.CallbackError, match="selection lookup failed"):
        ng.fit(g, ds.data, sel_callback=sel, rng=0, client=client)
    assert np.array_equal(g.mean, before.mean, equal_nan=True)


def test_estimator_on_the_cluster_equals_the_local_one(client):
    X, _, _ = blobs(2000, seed=5)
    local = IncompleteGaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
    remote = IncompleteGaussianMixture(2, covariance_type="diag", random_state=0,
                                       client=client).fit(X)
    assert np.array_equal(local.means_, remote.means_)
    assert local.lower_bound_ == remote.lower_bound_
    from_dask = IncompleteGaussianMixture(2, covariance_type="diag", random_state=0,
                                          client=client).fit(*lazy(X, rows=500))
    assert np.array_equal(local.means_, from_dask.means_) and from_dask.n_features_in_ == 3
    assert np.array_equal(local.predict(X), from_dask.predict(X))


def test_a_client_that_is_not_one_is_refused_clearly(client):
    X, _, _ = blobs(500)
    with pytest.raises(ValueError, match="client must be a dask.distributed.Client"):
        ng.fit(ng.GMM(2, 3), X, client="tcp://localhost:8786")


def test_a_worker_killed_mid_fit_does_not_change_the_answer(client):
    X, S, _ = blobs(60000, seed=7)
    ref = ng.GMM(3, 3)
    ng.fit(ref, X, covar=S, rng=3, maxiter=30, tol=0)
    victim = list(client.run(os.getpid).values())[0]
    killed_at: list = []

    def kill():                     # SIGKILL a worker once the EM iterates (its data are there)
        time.sleep(0.2)
        os.kill(victim, signal.SIGKILL)
        killed_at.append(time.monotonic())

    with once_iterating(kill):
        g = ng.GMM(3, 3)
        ng.fit(g, X, covar=S, rng=3, maxiter=30, tol=0, client=client)
        done_at = time.monotonic()
    assert killed_at and killed_at[0] < done_at           # the worker died during the fit
    assert np.array_equal(g.mean, ref.mean) and np.array_equal(g.covar, ref.covar)
    client.wait_for_workers(2, timeout=60)                 # the nanny restarts it
    assert victim not in client.run(os.getpid).values()


def test_a_worker_killed_mid_fit_with_dask_array_data_does_not_change_the_answer(client):
    X, S, _ = blobs(60000, seed=17)
    ref = ng.GMM(3, 3)
    ng.fit(ref, X, covar=S, rng=3, maxiter=30, tol=0)
    victim = list(client.run(os.getpid).values())[1]

    def kill():                     # the batches it keeps are read again from the dask arrays
        time.sleep(0.2)
        os.kill(victim, signal.SIGKILL)

    with once_iterating(kill):
        g = ng.GMM(3, 3)
        ng.fit(g, *lazy(X, S), rng=3, maxiter=30, tol=0, client=client)
    assert np.array_equal(g.mean, ref.mean) and np.array_equal(g.covar, ref.covar)
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.run(os.getpid).values()


def test_a_cluster_without_workers_ends_the_fit_with_a_clear_error(settings, monkeypatch):
    from pygmmis_ng.execution import cluster_watch

    settings(no_worker_timeout=1.0)
    monkeypatch.setattr(cluster_watch, "WAIT_POLL", 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=None)
    c = distributed.Client(lc)
    try:
        X, S, _ = blobs(60000, seed=8)
        g = ng.GMM(3, 3)
        before = g.copy()
        # every worker leaves once the EM iterates, and none comes back
        with once_iterating(lambda: lc.scale(0)):
            with pytest.raises(ng.ClusterLost, match="no worker"):
                ng.fit(g, X, covar=S, rng=3, maxiter=10**4, tol=0, client=c)
        assert np.array_equal(g.mean, before.mean, equal_nan=True)    # the GMM: untouched
        assert_nothing_left(c)
    finally:
        c.close()
        lc.close()


def test_censored_fit_equals_one_process(client):
    """Censored values (issue 35) on the cluster: the limits travel as the groups' patterns
    and the values as the chunks' rows, so the fit equals n_jobs=1 bit for bit."""
    rng = np.random.default_rng(7)
    N = 3000
    x = np.where(rng.random(N)[:, None] < 0.5, rng.normal([0, 0], 1, (N, 2)),
                 rng.normal([3, 2], [1, 0.5], (N, 2)))
    y = x + 0.3 * rng.normal(size=(N, 2))
    C = np.zeros((N, 2), dtype=int)
    below = y[:, 1] < 1.0
    C[below, 1], y[below, 1] = -1, 1.0
    y[::7, 0] = np.nan                                   # a missing value beside a limit
    S = np.diag([0.09, 0.09])
    g1, g2 = ng.GMM(K=2, D=2), ng.GMM(K=2, D=2)
    r1 = ng.fit(g1, y, covar=S, censored=C, rng=1)
    r2 = ng.fit(g2, y, covar=S, censored=C, rng=1, client=client)
    assert r1.logL == r2.logL
    assert (g1.mean == g2.mean).all() and (g1.covar == g2.covar).all()
