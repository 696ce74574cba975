"""The Dask executor's watchdog (issue 31): a fit on a cluster that stops making progress raises
ClusterStalled within the configured time, names what it waited for, and leaves nothing behind.

A real ``LocalCluster`` of worker processes; the stall is a task that blocks on
a worker (a selection callback waiting for a file that appears only after
the fit gave up), so the worker is alive and idle for the scheduler's eyes
but never finishes the fit's task.
"""
from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

import pygmmis_ng as ng
from pygmmis_ng.execution import cluster_watch

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

STALL = 3.0
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


def _blocking_selection(flag: str):
    """Selected where x < 5; on a worker, it first waits until ``flag`` exists."""
    def sel(coords):
        try:
            distributed.get_worker()
        except ValueError:
            pass                                        # on the client: no wait
        else:
            while not os.path.exists(flag):
                time.sleep(0.02)
        return (coords[:, 0] < 5).astype(float)
    return sel


def _data():
    X = np.random.default_rng(0).normal(size=(2000, 2)) * 2
    return X[X[:, 0] < 5]


def test_a_task_blocked_on_a_worker_raises_ClusterStalled_in_time(client, tmp_path):
    flag = str(tmp_path / "go")
    g = ng.GMM(2, 2)
    g.amp, g.mean, g.covar = np.array([0.5, 0.5]), np.array([[0.0, 0], [2, 2]]), \
        np.array([np.eye(2)] * 2)
    before = g.copy()
    with dask.config.set({cluster_watch.STALL_KEY: STALL}):
        t0 = time.monotonic()
        with pytest.raises(ng.ClusterStalled) as info:
            ng.fit(g, _data(), sel_callback=_blocking_selection(flag), init_method="none",
                   rng=0, client=client)
        waited = time.monotonic() - t0
    assert STALL <= info.value.waited and waited < STALL + 2 * cluster_watch.WAIT_POLL + 10
    message = str(info.value)
    assert "no task of this fit finished" in message and "pygmmis_ng-impute" in message
    workers = set(client.scheduler_info()["workers"])
    on = {w for ws in info.value.tasks.values() for w in ws}
    assert on and on <= workers and any(w in message for w in on)     # it names the workers
    for name in ("amp", "mean", "covar"):                            # the GMM: untouched
        assert np.array_equal(getattr(g, name), getattr(before, name))
    open(flag, "w").close()                   # the blocked callbacks return; nothing remains
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and client.run_on_scheduler(
            lambda dask_scheduler: len(dask_scheduler.tasks)):
        time.sleep(0.05)
    assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
    from pygmmis_ng.execution import cluster_tasks
    assert not any(client.run(lambda: len(cluster_tasks._PROBLEMS)).values())
    # and the cluster is fine for the next fit
    res = ng.fit(g, _data(), sel_callback=_blocking_selection(flag), init_method="none",
                 rng=0, client=client, maxiter=5)
    assert np.isfinite(res.logL)


@pytest.mark.parametrize("value", ["soon", -1, 0, "-5s", [3]])
def test_a_bad_stall_timeout_is_refused_before_the_fit(client, value):
    g = ng.GMM(2, 2)
    with dask.config.set({cluster_watch.STALL_KEY: value}):
        with pytest.raises(ValueError, match="stall-timeout"):
            ng.fit(g, _data(), rng=0, client=client)
    assert not np.any(g.amp)


@pytest.mark.parametrize("value, seconds", [(None, None), (False, None), ("2 minutes", 120.0),
                                            (45, 45.0), ("300ms", 0.3)])
def test_stall_timeout_reads_dask_durations(value, seconds):
    with dask.config.set({cluster_watch.STALL_KEY: value}):
        assert cluster_watch.stall_timeout() == seconds


def test_within_gives_up_on_a_call_that_does_not_return():
    assert cluster_watch.within(1.0, lambda: 7) == (True, 7)
    t0 = time.monotonic()
    assert cluster_watch.within(0.2, time.sleep, 5) == (False, None)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(ZeroDivisionError):
        cluster_watch.within(1.0, lambda: 1 / 0)
