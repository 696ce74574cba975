"""Chunks of samples on threads inside one process (issue 18): the same bits for any count."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import random_spd

import pygmmis_ng as ng
from pygmmis_ng.execution import serial


def _fit(monkeypatch, threads, **kw):
    monkeypatch.setenv("PYGMMIS_NG_THREADS", str(threads))
    g = ng.GMM(4, 3)
    r = ng.fit(g, rng=2, **kw)
    return r, g


def _data(n=30000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) + rng.integers(0, 4, n)[:, None] * 3.0
    S = random_spd(rng, n, 3, 0.05, 0.5)
    return X, S, rng


@pytest.mark.parametrize("case", ["per_sample_cutoff", "missing", "projected", "shared"])
def test_any_number_of_threads_gives_the_same_bits(monkeypatch, case):
    X, S, rng = _data()
    kw = {"data": X, "covar": S, "sample_weight": rng.uniform(0.5, 2, len(X))}
    if case == "per_sample_cutoff":
        kw["cutoff"] = 3.0
    elif case == "missing":
        X = X.copy()
        X[rng.random(len(X)) < 0.3, 1] = np.nan
        kw["data"] = X
    elif case == "projected":
        R = rng.normal(size=(len(X), 2, 3))
        kw = {"data": np.einsum("nij,nj->ni", R, X), "R": R, "covar": S[:, :2, :2],
              "maxiter": 20}
    else:
        kw["covar"] = S[0]
    runs = [_fit(monkeypatch, t, **kw) for t in (1, 2, 5)]
    r1, g1 = runs[0]
    assert r1.n_iter > 1
    for r, g in runs[1:]:
        assert r.logL == r1.logL and np.array_equal(r.history, r1.history)
        assert np.array_equal(g.mean, g1.mean) and np.array_equal(g.covar, g1.covar)


def test_chunks_run_on_threads_and_callbacks_on_the_calling_thread(monkeypatch):
    X, S, _ = _data(60000, seed=1)      # more than one chunk after the selection
    seen_chunks, seen_callbacks = set(), set()
    task_fn = serial.SerialExecutor.map

    def spy_map(self, fn, tasks):
        tasks = list(tasks)
        if tasks and getattr(tasks[0], "sl", None) is not None:
            def wrapped(p, t):
                seen_chunks.add(threading.current_thread().name)
                return fn(p, t)
            return task_fn(self, wrapped, tasks)
        return task_fn(self, fn, tasks)

    monkeypatch.setattr(serial.SerialExecutor, "map", spy_map)

    def sel(coords):
        seen_callbacks.add(threading.current_thread().name)
        return (coords[:, 0] < 8.0).astype(float)
    keep = X[:, 0] < 8.0
    _fit(monkeypatch, 2, data=X[keep], sel_callback=sel, maxiter=3, tol=0)
    assert any(name.startswith("pygmmis_ng-chunk") for name in seen_chunks)
    assert seen_callbacks == {threading.main_thread().name}
    assert not [t for t in threading.enumerate() if t.name.startswith("pygmmis_ng-chunk")]
