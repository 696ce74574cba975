"""Per-pair time of the E-step kernels beyond the closed forms (issue 18): the general
per-sample-noise kernel (D >= 5), the missing-value kernel for many patterns and the
projected kernel (a projection R_i per sample).

Each kernel on one chunk of 2*10^4 samples, one thread, best of 5 calls: ns per
sample-component pair. Then whole fits with many missing-value patterns (D=10,
25% missing at random: ~1000 patterns, N=10^5, K=5, 5 plain EM iterations)
against the same fit on the complete data, with shared and per-sample noise.

    python benchmarks/bench_kernels_more.py
"""
from __future__ import annotations

import time
import warnings

import numpy as np
from bench_core import machine
from bench_scale import spd

import pygmmis_ng as ng
from pygmmis_ng.kernels import fused


def best_of(f, *args, reps=5):
    f(*args)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t)
    return min(times)


def with_missing(x, frac, rng):
    x = x.copy()
    x[rng.random(x.shape) < frac] = np.nan
    x[np.isnan(x).all(axis=1), 0] = 0.0
    return x


def kernel_rows(rng, n=20_000):
    rows = []
    for D in (5, 8):
        x, S = rng.normal(0, 3, (n, D)), spd(rng, n, D, 0.1, 0.5)
        mean, covar = rng.normal(0, 3, (10, D)), spd(rng, 10, D, 0.5, 2.0)
        t = best_of(fused.stats_per_sample, x, S, None, None, mean, covar,
                    np.full(10, -np.log(10)))
        rows.append((f"general D={D} K=10, per-sample noise", 1e9 * t / (n * 10)))
    for D, K, noise in ((10, 5, "shared"), (5, 10, "per-sample")):
        x = with_missing(rng.normal(0, 3, (n, D)), 0.25, rng)
        x = x[np.lexsort(np.packbits(np.isnan(x), axis=1).T[::-1])]      # sorted by pattern
        S = spd(rng, n, D, 0.1, 0.5) if noise == "per-sample" else spd(rng, 1, D, 0.1, 0.5)[0]
        mean, covar = rng.normal(0, 3, (K, D)), spd(rng, K, D, 0.5, 2.0)
        t = best_of(fused.stats_masked, x, S, None, None, mean, covar,
                    np.full(K, -np.log(K)))
        rows.append((f"masked D={D} K={K}, {noise} noise, 25% missing", 1e9 * t / (n * K)))
    for D, dy, K in ((3, 1, 10), (3, 2, 10), (5, 3, 10)):
        R, y = rng.normal(size=(n, dy, D)), rng.normal(size=(n, dy))
        S = spd(rng, n, dy, 0.1, 0.5)
        mean, covar = rng.normal(0, 1, (K, D)), spd(rng, K, D, 0.5, 2.0)
        t = best_of(fused.stats_projected, y, R, S, None, None, mean, covar,
                    np.full(K, -np.log(K)))
        rows.append((f"projected D={D} dy={dy} K={K}, per-sample R and noise", 1e9 * t / (n * K)))
    return rows


def fit_rows(rng, N=100_000, D=10, K=5, iters=5):
    truth = ng.GMM(K, D)
    truth.amp, truth.mean, truth.covar = np.ones(K) / K, rng.normal(0, 3, (K, D)), spd(rng, K, D, 0.5, 2.0)
    X = truth.draw(N, rng=rng)
    Xm = with_missing(X, 0.25, rng)
    S_per = spd(rng, N, D, 0.05, 0.3)
    rows = []
    for noise, S in (("none", None), ("per-sample", S_per)):
        for name, data in (("complete", X), ("25% missing", Xm)):
            start = truth.copy()
            start.mean = start.mean + 0.3
            ng.fit(start.copy(), data[:3000], covar=None if S is None else S[:3000],
                   init_method="none", maxiter=1)                          # compile first
            g = start.copy()
            t = time.perf_counter()
            r = ng.fit(g, data, covar=S, init_method="none", maxiter=iters, miniter=iters, tol=0)
            rows.append((f"fit D={D} K={K} N={N}, {noise} noise, {name}, {iters} iterations",
                         time.perf_counter() - t, r.logL))
    return rows


def main() -> None:
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(3)
    print(f"# {machine()}")
    print("| kernel (one chunk of 2e4, 1 thread) | ns per pair |\n|---|---|")
    for name, ns in kernel_rows(rng):
        print(f"| {name} | {ns:.1f} |")
    print("\n| fit | s | logL |\n|---|---|---|")
    for name, t, logL in fit_rows(rng):
        print(f"| {name} | {t:.2f} | {logL:.6f} |")


if __name__ == "__main__":
    main()
