"""Online EM on a real Dask cluster (issue 20): the answer of one process, each storage chunk
of a dask array read once per pass.

The ``LocalCluster(n_workers=2, processes=True)`` and the check that nothing of a fit is
left on it come from :mod:`test_dask`.
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import test_dask
from conftest import add_noise, make_truth, random_spd

import pygmmis_ng as ng

da = pytest.importorskip("dask.array")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: the cluster of test_dask and its check that nothing of a fit is left on it
client = test_dask.client
nothing_left_on_the_cluster = test_dask.nothing_left_on_the_cluster

N, BLOCK = 6000, 1000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(8)
    S = random_spd(rng, N, 2, 0.05, 0.4)
    return add_noise(rng, make_truth().draw(N, rng=rng), S), S


class CountingArray:
    """An array whose reads (row ranges) are appended to a file: read on the workers."""

    def __init__(self, values: np.ndarray, log: str) -> None:
        self.values, self.log = values, log
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        with open(self.log, "a") as f:
            f.write(f"{rows.start} {rows.stop}\n")
        return self.values[key]


def online(X, S, **kw):
    gmm = ng.GMM(3, 2)
    res = ng.fit(gmm, X, covar=S, batch_size=BLOCK, n_passes=3, rng=9, tol=0, **kw)
    return gmm, res


def test_online_fit_on_the_cluster_equals_one_process(client, data):
    X, S = data
    g1, r1 = online(X, S)
    g2, r2 = online(X, S, client=client)
    assert np.array_equal(g1.mean, g2.mean) and np.array_equal(g1.covar, g2.covar)
    assert np.array_equal(r1.online.pass_logL, r2.online.pass_logL)


def test_dask_array_chunks_are_read_once_per_pass(settings, client, data, tmp_path, monkeypatch):

    settings(persist_share=0.0)      # streamed from the source
    X, S = data
    log = str(tmp_path / "reads.txt")
    lazy = da.from_array(CountingArray(X, log), chunks=(BLOCK, 2), asarray=True)
    g_lazy, res = online(lazy, da.from_array(S, chunks=(BLOCK, 2, 2)), client=client)
    reads = Counter(tuple(map(int, line.split())) for line in open(log))
    reads.pop((0, 0), None)             # dask's meta inference reads an empty slice, no rows
    blocks = {(lo, lo + BLOCK) for lo in range(0, N, BLOCK)}
    assert set(reads) == blocks                                  # whole chunks, never parts
    passes = res.online.n_passes
    # checks, the initialization rows, each pass, and the evaluation slice (here all rows)
    # before the passes and after each
    assert set(reads.values()) == {2 + passes + passes + 1}
    g_np, _ = online(X, S)                                      # the same units and batches
    # (to rounding: at D = 2 dask-array and numpy input differ by an ulp, full-batch too)
    np.testing.assert_allclose(g_lazy.mean, g_np.mean, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(g_lazy.covar, g_np.covar, rtol=1e-13, atol=1e-13)
    os.remove(log)


def test_large_chunks_warn_and_the_estimator_fits_on_the_cluster(client, data):
    X, S = data
    lazy = da.from_array(X, chunks=(3000, 2))
    est = ng.IncompleteGaussianMixture(3, batch_size=500, n_passes=2, client=client,
                                       random_state=0)
    with pytest.warns(UserWarning, match="rechunk"):
        est.fit(lazy, covar=S)
    assert est.n_steps_ == 2 * 12        # each chunk of 3000 rows cut into minibatches of 500
    assert np.isfinite(est.lower_bound_)


def test_uneven_chunks_do_not_bias_the_fit(client):
    # two equal clusters, one of them all in one large chunk: every row must count the same
    # (counting minibatches, not rows, gave amplitudes [0.07, 0.93])
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (5000, 1)), rng.normal(8, 1, (5000, 1))])
    lazy = da.from_array(X, chunks=((500,) * 10 + (5000,), 1))
    gmm, ref = ng.GMM(2, 1), ng.GMM(2, 1)
    with pytest.warns(UserWarning, match="rechunk"):
        ng.fit(gmm, lazy, batch_size=500, n_passes=30, rng=0, tol=0, client=client)
    np.testing.assert_allclose(gmm.amp, [0.5, 0.5], atol=0.02)
    # the large chunk is cut into pieces of 500 rows that enter the pass like the others:
    # the minibatches of numpy input (windows of 500 rows), in the same order
    ng.fit(ref, X, batch_size=500, n_passes=30, rng=0, tol=0)
    np.testing.assert_allclose(gmm.amp, ref.amp, rtol=1e-10)


def test_online_fit_under_a_selection_on_the_cluster_equals_one_process(client, data):
    """Issue 36: the minibatches' imputation draws run on the workers. Bitwise the fit of one
    process over the same minibatches; from a dask array (its rows read on the workers, the
    data centred there: the centre's rounding differs) equal to rounding."""
    X, S = data
    keep = X[:, 0] < 5.0
    X, S = X[keep], S[keep]
    kw = dict(sel_callback=lambda c: (c[:, 0] < 5.0).astype(float),
              covar_callback=lambda c: np.broadcast_to(0.1 * np.eye(2), (len(c), 2, 2)).copy())
    g1, r1 = online(X, S, **kw)
    g2, r2 = online(X, S, client=client, **kw)
    assert r1.orig_size > 1.01 * len(X)
    assert np.array_equal(g1.mean, g2.mean) and np.array_equal(g1.covar, g2.covar)
    assert np.array_equal(r1.online.pass_logL, r2.online.pass_logL)
    assert r1.orig_size == r2.orig_size
    g3, r3 = online(da.from_array(X, chunks=(BLOCK, 2)), da.from_array(S, chunks=(BLOCK, 2, 2)),
                    client=client, **kw)
    np.testing.assert_allclose(g3.mean, g1.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g3.covar, g1.covar, rtol=1e-10, atol=1e-12)
    assert r3.orig_size == pytest.approx(r1.orig_size, rel=1e-10)
