"""Dask LocalCluster against the n_jobs=2 process pool (issue 17), same data, same fit.

N samples (default 10^6), D=3, K=10, per-sample noise; 10 plain EM iterations
(``tol=0``) with each executor, so both do the same work; the logL must be equal
bitwise. Reports the seconds of each and their ratio (the goal: Dask at most
1.3x the pool's time).

Usage::

    python benchmarks/bench_dask.py [N]
"""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from bench_core import machine

import pygmmis_ng as ng


def main() -> None:
    from distributed import Client, LocalCluster

    warnings.simplefilter("ignore")
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    K, D = 10, 3
    rng = np.random.default_rng(0)
    X = rng.normal(0, 3, (K, D))[rng.integers(K, size=N)] + rng.normal(size=(N, D))
    S = np.einsum("n,ab->nab", rng.uniform(0.1, 0.5, N), np.eye(D))
    kw = dict(covar=S, rng=1, maxiter=10, tol=0)
    t = time.perf_counter()
    pool = ng.fit(ng.GMM(K, D), X, n_jobs=2, **kw)
    t_pool = time.perf_counter() - t
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        t = time.perf_counter()
        dask = ng.fit(ng.GMM(K, D), X, client=client, **kw)
        t_dask = time.perf_counter() - t
    print(f"# Dask vs pool, N={N}, D={D}, K={K}, per-sample noise, 10 EM iterations ({machine()})")
    print(f"| pool n_jobs=2 | LocalCluster 2 workers | ratio | logL equal |\n|---|---|---|---|\n"
          f"| {t_pool:.2f} s | {t_dask:.2f} s | {t_dask / t_pool:.2f}x | {pool.logL == dask.logL} |")


if __name__ == "__main__":
    main()
