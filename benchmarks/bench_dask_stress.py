"""Stress: many fits with dask-array input and imputation on one LocalCluster (issue 31).

A fit on Dask hung twice, in the test with dask-array input and imputation
(the cause found then: a worker fetching the problem from another raced with
unpickling callbacks; the problem now travels as bytes). This runs ``--fits``
(default 240) such fits back to back on a ``LocalCluster`` of 2 worker
processes x 1 thread, alternating kept and streamed rows, with and without a
background and per-sample noise, each watched by the stall watchdog (dask
config ``pygmmis_ng.stall-timeout``, here 60 s), and counts the outcomes:
finished, ClusterStalled, other errors. Every 20th fit is also run on numpy
in this process and must give the same bits.

    python benchmarks/bench_dask_stress.py [--quick] [--fits 240]
"""
from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter

import numpy as np

import pygmmis_ng as ng


def problem(seed: int, N: int):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (N // 2, 3)), rng.normal(4, 1, (N - N // 2, 3))])
    S = np.einsum("n,ab->nab", rng.uniform(0.1, 0.5, N), np.eye(3))
    X = X + np.einsum("nij,nj->ni", np.linalg.cholesky(S), rng.standard_normal((N, 3)))
    keep = X[:, 0] < 5.0
    return X[keep], S[keep]


def sel(c):
    return (c[:, 0] < 5.0).astype(float)


def one_fit(i: int, client, N: int, check: bool) -> str:
    import dask.array as da

    X, S = problem(i, N)
    noise = i % 2 == 0
    kw = dict(sel_callback=sel, maxiter=8, tol=0, rng=i)
    if noise:
        kw.update(covar_callback=lambda c: np.eye(3) * 0.3)
    if i % 3 == 0:
        kw["background"] = ng.Background(np.array([[-6.0] * 3, [10.0] * 3]))
    chunks = 2500 + 500 * (i % 4)
    data = [da.from_array(X, chunks=(chunks, 3))] + \
        ([da.from_array(S, chunks=(chunks, 3, 3))] if noise else [])
    streamed = i % 4 == 1
    ng.config.set_settings(persist_share=0.0 if streamed else 0.5,
                           stream_batch_bytes=1 << 18 if streamed else 64 << 20)
    g = ng.GMM(3, 3)
    bg = kw.pop("background", None)
    try:
        ng.fit(g, *data, client=client, background=bg and bg.copy(), **kw)
    except ng.ClusterStalled:
        return "stalled"
    except Exception as exc:                   # noqa: BLE001 - counted
        return f"error: {type(exc).__name__}: {exc}"
    if check:
        h = ng.GMM(3, 3)
        ng.fit(h, X, *([S] if noise else []), background=bg and bg.copy(), **kw)
        if not (np.array_equal(g.mean, h.mean) and np.array_equal(g.covar, h.covar)):
            return "differs from numpy"
    return "finished"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fits", type=int, default=240)
    ap.add_argument("--quick", action="store_true", help="20 smaller fits")
    args = ap.parse_args()
    import dask
    import distributed

    n_fits, N = (20, 4000) if args.quick else (args.fits, 20000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    client = distributed.Client(cluster)
    counts: Counter = Counter()
    times = []
    try:
        with dask.config.set({"pygmmis_ng.stall-timeout": 60}), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(n_fits):
                t = time.perf_counter()
                counts[one_fit(i, client, N, check=i % 20 == 0)] += 1
                times.append(time.perf_counter() - t)
        deadline = time.monotonic() + 10          # releases reach the scheduler asynchronously
        while (left := client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.close()
        cluster.close()
    print(f"{n_fits} fits with dask-array input and imputation (N~{N * 0.8:.0f} selected, K=3, "
          "D=3, 8 iterations each; kept and streamed rows, +-noise, +-background), "
          "LocalCluster 2 workers x 1 thread, stall-timeout 60 s")
    print()
    print("| outcome | fits |")
    print("|---|---|")
    for outcome, n in sorted(counts.items()):
        print(f"| {outcome} | {n} |")
    print()
    print(f"per fit: median {np.median(times):.2f} s, longest {max(times):.2f} s; "
          f"total {sum(times):.0f} s; tasks left on the scheduler after the last fit: {left}")


if __name__ == "__main__":
    main()
