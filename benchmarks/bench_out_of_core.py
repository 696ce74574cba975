"""Out-of-core fits from zarr on disk with a LocalCluster of capped workers (issue 17).

Writes N samples (D=3, K=10 clusters, per-sample noise) to a zarr store block by
block (the data never sit in this process as a whole), then fits them with
``client=`` on 2 workers of 1 thread, each capped at ``--memory`` (default 1 GB),
for a fixed number of EM iterations (``tol=0``). The samples take more than
half of the workers' memory, so every E-step streams them from disk.

Reported per N: the data's size, seconds of the checks and initialization
(one pass over the data and the sample), seconds per E-step, peak RSS of each
worker and of this process (sampled every 0.2 s). ``--sizes`` gives the
scaling series (default 1e5, 1e6, 5e6, 2e7).

Usage::

    python benchmarks/bench_out_of_core.py [--sizes 1e5,2e7] [--memory 1GB] [--dir /tmp/x] [--stream]

``--stream`` streams at every size (the cost of reading the data again each E-step).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import warnings

import numpy as np
from bench_core import machine

import pygmmis_ng as ng

K, D, ITERATIONS = 10, 3, 5
BLOCK = 1 << 18          # rows per zarr chunk (and per write)


def write_zarr(path: str, N: int, seed: int = 0, block: int = BLOCK) -> None:
    """N samples of a K-cluster mixture with per-sample noise, written block by block (zarr
    chunks of ``block`` rows)."""
    import zarr

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (K, D))
    X = zarr.open_array(f"{path}/X", mode="w", shape=(N, D), chunks=(block, D), dtype="f8")
    S = zarr.open_array(f"{path}/S", mode="w", shape=(N, D, D), chunks=(block, D, D), dtype="f8")
    for lo in range(0, N, block):
        n = min(block, N - lo)
        var = rng.uniform(0.05, 0.5, n)
        X[lo:lo + n] = (centres[rng.integers(K, size=n)] + rng.normal(size=(n, D))
                        + rng.normal(size=(n, D)) * np.sqrt(var)[:, None])
        S[lo:lo + n] = np.einsum("n,ab->nab", var, np.eye(D))


def rss() -> int:
    import psutil
    return psutil.Process().memory_info().rss


class PeakMemory:
    """Peak RSS of each worker and of this process, sampled in a thread."""

    def __init__(self, client) -> None:
        self.client, self.workers, self.local = client, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for w, m in self.client.run(rss).items():
                    self.workers[w] = max(self.workers.get(w, 0), m)
            except Exception:      # noqa: BLE001 - a worker restarting: sample again
                pass
            self.local = max(self.local, rss())
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def fit_once(client, path: str) -> dict:
    import dask.array as da

    X, S = da.from_zarr(f"{path}/X"), da.from_zarr(f"{path}/S")
    times: list[float] = []
    import logging

    class Stamp(logging.Handler):
        def emit(self, record):
            times.append(time.perf_counter())
    logger = logging.getLogger("pygmmis_ng")
    handler = Stamp(level=logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with PeakMemory(client) as peak:
            t0 = time.perf_counter()
            result = ng.fit(ng.GMM(K, D), X, covar=S, rng=1, maxiter=ITERATIONS, tol=0,
                            client=client)
            t1 = time.perf_counter()
    finally:
        logger.removeHandler(handler)
    # the INFO rows: header, then one per iteration; E-steps = n_eval
    start = times[0] if times else t0
    limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
    streamed = (X.nbytes + S.nbytes) > ng.config.get_settings().persist_share * sum(limits)
    return dict(N=X.shape[0], gb=(X.nbytes + S.nbytes) / 1e9, prep=start - t0,
                mode="streamed" if streamed else "kept on workers",
                per_estep=(t1 - start) / max(result.n_eval, 1), n_eval=result.n_eval,
                workers=sorted(peak.workers.values()), local=peak.local, logL=result.logL)


def main() -> None:
    from distributed import Client, LocalCluster

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1e5,1e6,5e6,2e7")
    ap.add_argument("--memory", default="1GB")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--stream", action="store_true", help="stream at every size")
    args = ap.parse_args()
    if args.stream:
        ng.config.set_settings(persist_share=0.0)
    warnings.simplefilter("ignore")
    base = args.dir or tempfile.mkdtemp(prefix="pygmmis_ng_zarr_")
    rows = []
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=args.memory, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            for N in (int(float(s)) for s in args.sizes.split(",")):
                path = os.path.join(base, f"n{N}")
                if not os.path.exists(path):
                    write_zarr(path, N)
                rows.append(fit_once(client, path))
                print(rows[-1], flush=True)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\n# Out-of-core fits from zarr, D={D}, K={K}, per-sample noise, {ITERATIONS} EM "
          f"iterations, LocalCluster 2 workers x 1 thread capped at {args.memory} ({machine()})")
    print("| N | data (GB) | data | checks + init (s) | s per E-step | peak worker RSS (MB) | "
          "peak client RSS (MB) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['N']:.0e} | {r['gb']:.2f} | {r['mode']} | {r['prep']:.1f} | "
              f"{r['per_estep']:.2f} | "
              f"{' / '.join(f'{m / 2**20:.0f}' for m in r['workers'])} | "
              f"{r['local'] / 2**20:.0f} |")


if __name__ == "__main__":
    main()
