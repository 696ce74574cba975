"""n_jobs: a real process pool over real shared memory gives the serial result bit for bit,
and leaves no process and no shared-memory segment behind -- after success, after an
exception in a user callback, and after Ctrl-C."""
from __future__ import annotations

import glob
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import random_spd

import pygmmis_ng as ng
from pygmmis_ng import execution
from pygmmis_ng.data.layout import eval_chunks
from pygmmis_ng.execution import pool
from pygmmis_ng.tools import datasets


def our_segments(pid: int | None = None) -> list[str]:
    pattern = f"{pool.SEGMENT_PREFIX}{'' if pid is None else f'{pid}_'}*"
    return glob.glob(os.path.join("/dev/shm", pattern))


@pytest.fixture(autouse=True)
def nothing_left_behind():
    before = set(our_segments())
    yield
    assert multiprocessing.active_children() == []
    assert set(our_segments()) <= before


def xd_problem(N=20000, D=3, K=4, seed=0):
    rng = np.random.default_rng(seed)
    truth = ng.GMM(K, D)
    truth.amp = np.full(K, 1.0 / K)
    truth.mean = rng.normal(0, 4, (K, D))
    truth.covar = random_spd(rng, K, D, 0.3, 1.5)
    S = random_spd(rng, N, D, 0.1, 0.6)
    X = truth.draw(N, rng=rng)
    X = X + np.einsum("nij,nj->ni", np.linalg.cholesky(S), rng.normal(size=(N, D)))
    return X, S


def fit_both(data, K, **kw):
    out = []
    for n_jobs in (1, 2):
        g = ng.GMM(K, data.shape[1])
        out.append((g, ng.fit(g, data, n_jobs=n_jobs, **kw)))
    return out


@pytest.mark.parametrize("noise", ["none", "shared", "per_sample"])
def test_n_jobs_gives_bitwise_the_serial_fit(noise):
    X, S = xd_problem()
    covar = {"none": None, "shared": S[0], "per_sample": S}[noise]
    (g1, r1), (g2, r2) = fit_both(X, 4, covar=covar, init_method="kmeans", tol=1e-6, rng=3)
    assert len(eval_chunks(len(X), 4, 3, noise == "per_sample")) >= 2   # real split
    assert r1.logL == r2.logL and r1.n_iter == r2.n_iter
    np.testing.assert_array_equal(g1.mean, g2.mean)
    np.testing.assert_array_equal(g1.covar, g2.covar)
    np.testing.assert_array_equal(g1.amp, g2.amp)


@pytest.mark.parametrize("with_background", [False, True])
def test_n_jobs_gives_bitwise_the_serial_imputation_fit(settings, monkeypatch, with_background):
    # small blocks, so that the draws of every iteration are spread over both workers
    settings(imputation_block=2048)
    ds = datasets.paper_2d(N=2000, selection="box_with_hole", sigma=0.5,
                           bg_amp=0.1 if with_background else 0.0, rng=1)
    fits = []
    for n_jobs in (1, 2):
        g = ng.GMM(3, 2)
        bg = ng.Background(datasets.FOOTPRINT_2D) if with_background else None
        r = ng.fit(g, ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
                   covar_callback=lambda c: ds.covar, background=bg, w=0.1,
                   init_method="kmeans", tol=1e-4, rng=7, n_jobs=n_jobs)
        fits.append((g, r, bg))
    (g1, r1, b1), (g2, r2, b2) = fits
    assert 10 * r1.orig_size > 4 * 2048             # several blocks per full iteration
    assert r1.logL == r2.logL and r1.orig_size == r2.orig_size and r1.n_eval == r2.n_eval
    np.testing.assert_array_equal(g1.mean, g2.mean)
    np.testing.assert_array_equal(g1.covar, g2.covar)
    if with_background:
        assert b1.amp == b2.amp


def test_n_jobs_minus_one_uses_every_core():
    assert execution.resolve_n_jobs(-1) == os.cpu_count()
    assert execution.resolve_n_jobs(3) == 3


def test_exception_in_a_worker_callback_cleans_up(settings, monkeypatch):
    settings(imputation_block=2048)
    ds = datasets.paper_2d(N=2000, selection="box", sigma=0.0, rng=2)
    n_obs = len(ds.data)

    def sel_callback(coords):
        if len(coords) != n_obs:             # the observed samples pass; imputation draws fail
            raise RuntimeError("selection service unavailable")
        return ds.sel_callback(coords)

    gmm = ng.GMM(3, 2)
    before = gmm.copy()
    with pytest.raises(ng.CallbackError, match="selection service unavailable"):
        ng.fit(gmm, ds.data, sel_callback=sel_callback, init_method="kmeans", rng=0, n_jobs=2)
    np.testing.assert_array_equal(gmm.mean, before.mean)
    # the autouse fixture checks: no child process, no segment left


def test_ctrl_c_during_a_parallel_fit_leaves_nothing(tmp_path):
    script = tmp_path / "long_fit.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numpy as np
        import pygmmis_ng as ng
        from test_parallel import xd_problem
        X, S = xd_problem(N=60000)
        print("ready", flush=True)
        ng.fit(ng.GMM(8, 3), X, covar=S, tol=0, maxiter=100000, rng=0, n_jobs=2)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        workers: list[str] = []
        while not (our_segments(proc.pid) and len(workers) >= 2):   # wait until the pool is up
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
            workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)],
                                     capture_output=True, text=True).stdout.split()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:                       # never leave a process group behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "KeyboardInterrupt" in err
    assert our_segments(proc.pid) == []
    # every child (pool workers, multiprocessing's resource tracker) exits, within seconds
    deadline = time.time() + 15
    alive = list(workers)
    while alive and time.time() < deadline:
        alive = [pid for pid in alive if _running(pid)]
        time.sleep(0.1)
    assert alive == []


def _running(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "State:\tZ" not in fh.read()
    except FileNotFoundError:
        return False


def test_a_worker_killed_mid_fit_raises_instead_of_hanging(settings, monkeypatch):
    # the worker dies inside its task (as when the system kills it for memory): the task
    # is lost, and waiting for it would never end
    settings(imputation_block=2048)
    ds = datasets.paper_2d(N=2000, selection="box", sigma=0.0, rng=2)
    n_obs = len(ds.data)

    def sel_callback(coords):
        if len(coords) != n_obs:                 # in a worker, on imputation draws
            os.kill(os.getpid(), signal.SIGKILL)
        return ds.sel_callback(coords)

    gmm = ng.GMM(3, 2)
    before = gmm.copy()
    with pytest.raises(ng.WorkerDied, match="worker process"):
        ng.fit(gmm, ds.data, sel_callback=sel_callback, init_method="kmeans", rng=0, n_jobs=2)
    np.testing.assert_array_equal(gmm.mean, before.mean)         # untouched
    # the autouse fixture checks: no child process, no segment left
