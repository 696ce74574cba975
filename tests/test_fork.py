"""Fits inside processes forked after a fit in the parent (issue 31): they finish, and equal the
parent's.

Scientists parallelise bootstraps and per-field fits with ``multiprocessing``,
whose start method on Linux is ``fork``. scikit-learn's KMeans starts a GNU
OpenMP thread team that does not survive a fork: a child forked after it ran
hangs in its next OpenMP region. The parent here runs a fit and a KMeans of
its own (as a user's code would) before forking, so a k-means with more than
one OpenMP thread in a child would hang; every entry point must finish within
TIMEOUT seconds in a fork pool worker and give the parent's bits.
"""
from __future__ import annotations

import multiprocessing as mp
import time
import warnings

import numpy as np
import pytest
from conftest import make_truth

import pygmmis_ng as ng

pytestmark = pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork here")

#: seconds an entry point may take in a forked child before it counts as hung
TIMEOUT = 60
X = make_truth().draw(600, rng=1)
SEL = lambda c: (c[:, 0] < 5).astype(float)         # noqa: E731
XS = X[SEL(X) > 0]
S = np.tile(0.2 * np.eye(2), (len(X), 1, 1))
y = (X[:, 0] > 3).astype(int)


def _fit(init="auto", data=X, **kw):
    g = ng.GMM(3, 2)
    if init in ("none", "warm"):              # they continue from given parameters
        g.amp, g.mean, g.covar = make_truth().amp, make_truth().mean + 0.3, make_truth().covar
    res = ng.fit(g, data, init_method=init, rng=4, **kw)
    return (res.logL, g.amp, g.mean, g.covar)


INITS = ["auto", "random", "minmax", "kmeans", "gmm", "none", "warm", "k-means++",
         "random_from_data", "random_resp"]
CASES = {
    **{f"fit-{init}": (lambda init=init: _fit(init)) for init in INITS},
    "fit-noise": lambda: _fit(covar=S),
    "fit-selection": lambda: _fit(data=XS, sel_callback=SEL, maxiter=30),
    "fit-selection-random": lambda: _fit("random", data=XS, sel_callback=SEL, maxiter=30),
    "fit-n_jobs=2": lambda: _fit(n_jobs=2),
    "fit-online": lambda: _fit(batch_size=200, n_passes=2),
    "estimator": lambda: ng.IncompleteGaussianMixture(3, random_state=0).fit(X).means_,
    "estimator-selection": lambda: ng.IncompleteGaussianMixture(
        3, sel_callback=SEL, random_state=0, max_iter=30).fit(XS).means_,
    "classifier": lambda: ng.GenerativeClassifier(2, random_state=0).fit(X, y).predict_proba(X),
    "scan_K": lambda: [row.bic for row in ng.scan_K(X, [1, 2, 3], rng=0).rows],
    "cv_fit": lambda: ng.cv_fit(ng.GMM(3, 2), X, L=3, rng=0),
    "stack_fit": lambda: ng.stack_fit([ng.GMM(2, 2), ng.GMM(3, 2)], X,
                                      [{}, {"init_method": "random"}], L=3, rng=0).mean,
}


def _run(name):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        value = CASES[name]()
    return value, sorted({str(w.message) for w in seen if "daemonic" in str(w.message)})


def _warm_parent():
    """A fit, and a user's own multi-threaded KMeans, in the parent before it forks."""
    from sklearn.cluster import KMeans

    _fit()
    KMeans(8, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(20000, 3)))


def _same(a, b):
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return len(a) == len(b) and all(np.array_equal(np.asarray(u), np.asarray(v))
                                    for u, v in zip(a, b))


@pytest.fixture(scope="module")
def in_parent():
    """Each entry point's result in this process (run before any fork)."""
    out = {}
    for name in CASES:
        out[name] = _run(name)[0]
    _warm_parent()
    return out


def test_every_entry_point_finishes_in_a_fork_pool_and_equals_the_parent(in_parent):
    names = sorted(CASES)
    with mp.get_context("fork").Pool(2) as pool:
        pending = {name: pool.apply_async(_run, (name,)) for name in names}
        results, hung = {}, []
        deadline = time.monotonic() + 2 * TIMEOUT       # for all (together they take seconds)
        for name in names:
            try:
                results[name] = pending[name].get(timeout=max(deadline - time.monotonic(), 1))
            except mp.TimeoutError:
                hung.append(name)
        pool.terminate()
    assert not hung, f"hung in a forked child: {hung}"
    differ = [name for name in names if not _same(results[name][0], in_parent[name])]
    assert not differ, f"a forked child's result differs from the parent's: {differ}"
    # a pool worker may not start processes: n_jobs=2 ran on threads, and said so
    assert results["fit-n_jobs=2"][1] and "threads instead" in results["fit-n_jobs=2"][1][0]
    assert all(not results[name][1] for name in names if name != "fit-n_jobs=2")


def _child(conn, name):
    try:
        conn.send(("ok", _run(name)))
    except BaseException as exc:          # noqa: BLE001 - reported to the parent
        conn.send(("error", repr(exc)))


@pytest.mark.parametrize("name", ["fit-n_jobs=2", "fit-auto"])
def test_a_forked_non_daemonic_child_runs_its_own_process_pool(in_parent, name):
    """In a plain forked child (not a pool worker) n_jobs=2 starts a real process pool."""
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_child, args=(there, name), daemon=False)
    child.start()
    try:
        assert here.poll(TIMEOUT), f"{name} hung in a forked child"
        state, value = here.recv()
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    assert state == "ok", value
    assert _same(value[0], in_parent[name]) and not value[1]


def test_n_jobs_in_a_daemonic_worker_warns_and_gives_the_same_bits(in_parent):
    with mp.get_context("fork").Pool(1) as pool:
        value, said = pool.apply_async(_run, ("fit-n_jobs=2",)).get(timeout=TIMEOUT)
    assert said == [("n_jobs=2: this process is a daemonic worker (of a multiprocessing pool), "
                     "which may not start processes; the fit runs its chunks on 2 threads "
                     "instead (the same result)")]
    assert _same(value, in_parent["fit-n_jobs=2"]) and _same(value, in_parent["fit-auto"])
