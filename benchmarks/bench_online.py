"""Online (stepwise) EM against full-batch EM, out of core from zarr on a LocalCluster (issue 20).

Writes N samples (D=3, K=10 clusters, per-sample noise) to a zarr store in chunks
of ``--block`` rows, then fits them with ``client=`` on 2 workers of 1 thread,
each capped at ``--memory`` (default 1 GB, so the data are streamed from disk):

* **full batch**: ``fit(..., client=client, tol=--tol)`` from the same k-means
  start (SQUAREM on, the library's default); its history gives the exact mean
  logL after each iteration, and a logging handler the time of each;
* **online**: ``fit(..., batch_size=--batch, n_passes=p, tol=0)`` for p = 1 ...
  ``--passes`` (the same seed: the same first passes), each result scored
  exactly by one more full pass.

Reported: the mean logL per sample of each against the best one found (the
optimum), the passes over the data (E-steps) and wall time each needed, and
peak RSS of the workers and of this process (sampled every 0.2 s). The figure
(``--plot``) shows the distance to the optimum against the passes over the data.

Usage::

    python benchmarks/bench_online.py [--N 2e7] [--batch 131072] [--block 65536]
        [--passes 3] [--memory 1GB] [--tol 1e-6] [--dir /tmp/x] [--plot online.png]
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
import warnings

import numpy as np
from bench_core import machine
from bench_out_of_core import D, K, PeakMemory, write_zarr

import pygmmis_ng as ng


class Stamps(logging.Handler):
    """The time of every INFO row of a fit (one per iteration of the table)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "iteration", None) is not None:
            self.times.append(time.perf_counter())


def timed_fit(client, X, S, **kw) -> tuple:
    """A fit from k-means on the workers: its result, GMM, seconds, row times, peak memory."""
    logger = logging.getLogger("pygmmis_ng")
    stamps = Stamps()
    logger.addHandler(stamps)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with PeakMemory(client) as peak:
            gmm = ng.GMM(K, D)
            t0 = time.perf_counter()
            res = ng.fit(gmm, X, covar=S, rng=1, client=client, progress=False, **kw)
            seconds = time.perf_counter() - t0
    finally:
        logger.removeHandler(stamps)
        logger.setLevel(level)
    return res, gmm, seconds, [t - t0 for t in stamps.times], peak


def exact_logL(client, X, S, gmm) -> float:
    """The mean logL of all rows at ``gmm`` (one full pass on the cluster)."""
    return ng.fit(gmm.copy(), X, covar=S, init_method="none", maxiter=0, client=client,
                  progress=False).logL


def mem(peak) -> str:
    return f"{' / '.join(f'{m / 2**20:.0f}' for m in sorted(peak.workers.values()))} | " \
           f"{peak.local / 2**20:.0f}"


def main() -> None:
    import dask.array as da
    from distributed import Client, LocalCluster

    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=float, default=2e7)
    ap.add_argument("--batch", type=int, default=131072)
    ap.add_argument("--block", type=int, default=65536)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--memory", default="1GB")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--quick", action="store_true", help="N=2e5, batch 8192, block 4096")
    args = ap.parse_args()
    if args.quick:
        args.N, args.batch, args.block = 2e5, 8192, 4096
    N = int(args.N)
    warnings.simplefilter("ignore")
    base = args.dir or tempfile.mkdtemp(prefix="pygmmis_ng_online_")
    path = os.path.join(base, f"n{N}_b{args.block}")
    try:
        if not os.path.exists(path):
            write_zarr(path, N, block=args.block)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=args.memory, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            X, S = da.from_zarr(f"{path}/X"), da.from_zarr(f"{path}/S")
            full, _, full_s, full_t, full_peak = timed_fit(client, X, S, tol=args.tol)
            print(f"full batch: {full.n_iter} iterations, {full.n_eval} E-steps, {full_s:.1f} s, "
                  f"logL {full.logL:.6f}", flush=True)
            online = []
            for p in range(1, args.passes + 1):
                res, gmm, secs, _, peak = timed_fit(client, X, S, batch_size=args.batch,
                                                    n_passes=p, tol=0)
                online.append((p, secs, exact_logL(client, X, S, gmm), peak, res))
                print(f"online, {p} pass(es): {secs:.1f} s, {res.online.n_batches} minibatches, "
                      f"exact logL {online[-1][2]:.6f}", flush=True)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    report(args, N, full, full_s, full_t, full_peak, online)


def report(args, N, full, full_s, full_t, full_peak, online) -> None:
    best = max([full.logL] + [o[2] for o in online])
    hist = np.asarray(full.history)
    within = np.flatnonzero(best - hist <= 1e-3)
    print(f"\n# Online EM against full-batch EM, N={N:.0e}, D={D}, K={K}, per-sample noise, "
          f"zarr chunks of {args.block} rows, batch_size={args.batch}, LocalCluster 2 workers "
          f"x 1 thread capped at {args.memory} ({machine()})")
    print("| fit | passes over the data | wall time (s) | mean logL - optimum | peak worker RSS "
          "(MB) | peak client RSS (MB) |\n|---|---|---|---|---|---|")
    if within.size:
        i = int(within[0])
        print(f"| full batch, first within 1e-3 | {i} iterations | "
              f"{full_t[i] if i < len(full_t) else full_s:.1f} | {hist[i] - best:+.2e} | | |")
    print(f"| full batch to tol={args.tol:g} | {full.n_eval} E-steps | {full_s:.1f} | "
          f"{full.logL - best:+.2e} | {mem(full_peak)} |")
    for p, secs, logL, peak, res in online:
        print(f"| online, {p} pass(es) ({res.online.n_batches} minibatches) | {p} (+1 to score) | "
              f"{secs:.1f} | {logL - best:+.2e} | {mem(peak)} |")
    if args.plot:
        plot(args.plot, hist - best, [(p, logL - best) for p, _, logL, _, _ in online])


def plot(path: str, full_gap: np.ndarray, online_gap: list) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    # history[k]: after k iterations (each one E-step, a pass, plus rejected extrapolations)
    ax.semilogy(np.arange(len(full_gap)), np.maximum(-full_gap, 1e-7), "o-", ms=3,
                label="full-batch EM (SQUAREM), after each iteration (>= 1 pass each)")
    ax.semilogy([p for p, _ in online_gap], [max(-g, 1e-7) for _, g in online_gap], "s-",
                label="online EM, after each pass (exact logL)")
    ax.axhline(1e-3, color="grey", ls=":", label="1e-3")
    ax.set_xlabel("iterations (full batch) / passes (online)")
    ax.set_ylabel("optimum - mean logL per sample")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
