"""Per-E-step time of the XD kernels against the flop count (issue 18).

XD with full per-sample noise, N=10^5, D=3, K=10: the fit of one problem from one
k-means start to tol=1e-6, with the general compiled kernel and with the closed
form for D=3, on 1 thread and on one per core. Reports ms per E-step, ns per
sample-component pair and GFLOP/s at the issue's ~120 flops per pair (an E+M
step at D=3), so that the distance to the hardware limit is visible. The logL must
be the same for every variant.

    python benchmarks/bench_kernels.py [N]
"""
from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np
from bench_core import machine
from bench_scale import spd

import pygmmis_ng as ng
from pygmmis_ng.kernels import compiled

FLOPS_PER_PAIR = 120


def _general(*args):
    """The general kernel with the closed form's signature (drops its q_negligible)."""
    return compiled._stats_per_sample_jit(*args[:11], *args[12:])


def main() -> None:
    warnings.simplefilter("ignore")
    N = int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000
    D, K = 3, 10
    rng = np.random.default_rng(1)
    truth = ng.GMM(K, D)
    truth.amp, truth.mean, truth.covar = np.ones(K) / K, rng.normal(0, 4, (K, D)), spd(rng, K, D, 0.3, 2.0)
    S = spd(rng, N, D, 0.05, 0.5)
    X = truth.draw(N, rng=rng) + np.einsum("nij,nj->ni", np.linalg.cholesky(S),
                                            rng.standard_normal((N, D)))
    start = ng.GMM(K, D)
    ng.init.init_kmeans(start, X, rng=0)
    closed = compiled.stats_per_sample_d3
    cores = len(os.sched_getaffinity(0))
    rows = []
    for name, kernel in (("general compiled", _general), ("closed form D=3", closed)):
        for threads in sorted({1, cores}):
            compiled.stats_per_sample_d3 = kernel
            os.environ["PYGMMIS_NG_THREADS"] = str(threads)
            ng.fit(start.copy(), X[:2000], covar=S[:2000], init_method="none", maxiter=2)
            g = start.copy()
            t = time.perf_counter()
            r = ng.fit(g, X, covar=S, init_method="none", tol=1e-6)
            t = time.perf_counter() - t
            per = t / r.n_eval
            rows.append((name, threads, 1e3 * per, 1e9 * per / (N * K),
                         FLOPS_PER_PAIR * N * K / per / 1e9, r.n_eval, r.logL))
    compiled.stats_per_sample_d3 = closed
    os.environ.pop("PYGMMIS_NG_THREADS", None)
    print(f"# XD N={N} D={D} K={K}, per-sample noise, to tol=1e-6 ({machine()})")
    print("| kernel | threads | ms per E-step | ns per pair | GFLOP/s (120 flops/pair) "
          "| E-steps | logL |\n|---|---|---|---|---|---|---|")
    for row in rows:
        print("| {} | {} | {:.1f} | {:.1f} | {:.2f} | {} | {:.10f} |".format(*row))


if __name__ == "__main__":
    main()
