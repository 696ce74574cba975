"""Censored values (issue 35): the E-step's cost per pair, and what the naive fits miss.

1. Cost per sample-component pair of one E-step (log densities, responsibilities and
   sums; one chunk of 2*10^4 samples, K=10, D=3, one thread, best of 5): samples with one
   value missing (NaN: the lane kernels) against the same samples with that value an
   upper limit (the lane kernels of one limit), and with two and three limits (the
   general kernel: Genz's bivariate CDF, the trivariate integral); per-sample noise and
   none. Target (issue 35): one limit within 3x the NaN path.
2. Whole fits, N=2*10^4, D=2, K=2, per-sample noise, 40% of one band below a detection
   limit: ms per EM iteration of the censored fit against the fit of the same samples with
   the limited values missing (NaN), and against dropping them.
3. Bias against the truth (the mean and the variance of the censored band of the
   component most affected) of dropping, plugging in the limits, and the censored fit.

    python benchmarks/bench_censored.py [--quick]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_core import machine

import pygmmis_ng as ng
from pygmmis_ng.data.layout import make_layout, sorted_rows
from pygmmis_ng.data.observed import chunk_stats, group_components


def _pairs(n=20000, K=10, D=3, noise=True, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, D))
    B = rng.normal(size=(n, D, D)) * 0.3
    S = B @ B.transpose(0, 2, 1) + 0.05 * np.eye(D) if noise else None
    mean = rng.normal(size=(K, D))
    A = rng.normal(size=(K, D, D))
    covar = A @ A.transpose(0, 2, 1) + 0.3 * np.eye(D)
    return y, S, np.ones(K) / K, mean, covar


def _estep_ns(y, S, amp, mean, covar, censored=None, repeat=5):
    K, D = mean.shape
    lay = make_layout(y, None, S, K, D, censored=censored)
    Xs, Ss, _, _ = sorted_rows(lay.order, y, S)
    g = lay.groups[0]
    c = group_components(g, amp, mean, covar, S is not None and S.ndim == 3, False)
    chunk_stats(g, slice(0, 64), Xs, Ss, None, c, None, None, None, None)      # compile
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        chunk_stats(g, slice(0, len(y)), Xs, Ss, None, c, None, None, None, None)
        best = min(best, time.perf_counter() - t)
    return best / (len(y) * K) * 1e9


def per_pair(n: int) -> None:
    print("| noise | NaN (1 missing) | 1 limit | 2 limits | 3 limits | 1 limit / NaN |")
    print("|---|---|---|---|---|---|")
    for noise in (True, False):
        y, S, amp, mean, covar = _pairs(n=n, noise=noise)
        yn = y.copy()
        yn[:, 2] = np.nan
        t_nan = _estep_ns(yn, S, amp, mean, covar)
        row = []
        for lim in ([0, 0, -1], [0, 1, -1], [-1, 1, -1]):
            row.append(_estep_ns(y, S, amp, mean, covar,
                                 np.tile(np.array(lim, dtype=np.int8), (len(y), 1)),
                                 repeat=2 if sum(map(abs, lim)) == 3 else 5))
        print(f"| {'per-sample' if noise else 'none'} | {t_nan:.1f} ns | {row[0]:.0f} ns | "
              f"{row[1]:.0f} ns | {row[2]:.0f} ns | {row[0] / t_nan:.1f}x |")


def detection_limit(N=20000, seed=1):
    """Two populations in two bands; band 2 has a detection limit at 1.0 (noisy y)."""
    rng = np.random.default_rng(seed)
    comp = rng.random(N) < 0.5
    x = np.where(comp[:, None], rng.normal([0, 0], 1, (N, 2)), rng.normal([3, 2], [1, 0.5], (N, 2)))
    sig = rng.uniform(0.2, 0.6, (N, 2))
    y = x + sig * rng.normal(size=(N, 2))
    S = np.zeros((N, 2, 2))
    S[:, 0, 0], S[:, 1, 1] = sig[:, 0] ** 2, sig[:, 1] ** 2
    C = np.zeros((N, 2), dtype=np.int8)
    below = y[:, 1] < 1.0
    C[below, 1] = -1
    y[below, 1] = 1.0
    return y, S, C, below


def whole_fits(N: int) -> None:
    y, S, C, below = detection_limit(N)
    yn = y.copy()
    yn[below, 1] = np.nan
    truth_mean, truth_var = np.array([[0.0, 0.0], [3.0, 2.0]]), np.array([[1.0, 1.0], [1.0, 0.25]])
    print(f"\nN={len(y)}, {below.mean():.0%} of band 2 below its limit\n")
    print("| fit | ms/iteration | iterations | comp. 1 mean (band 2) | comp. 1 var (band 2) "
          "| amp 1 |")
    print("|---|---|---|---|---|---|")
    runs = {"censored": (y, S, C), "limits as NaN": (yn, S, None),
            "drop the limits": (y[~below], S[~below], None), "plug in the limits": (y, S, None)}
    for name, (d, s, c) in runs.items():
        g = ng.GMM(K=2, D=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            res = ng.fit(g, d, covar=s, censored=c, rng=0, tol=1e-6, accelerate=False)
            el = time.perf_counter() - t
        k = int(np.argmin(np.abs(g.mean[:, 0] - truth_mean[0, 0])))
        print(f"| {name} | {1e3 * el / max(res.n_iter, 1):.1f} | {res.n_iter} | "
              f"{g.mean[k, 1]:+.3f} (truth {truth_mean[0, 1]:+.1f}) | {g.covar[k, 1, 1]:.3f} "
              f"(truth {truth_var[0, 1]:.2f}) | {g.amp[k]:.3f} (truth 0.5) |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a check that it runs)")
    quick = ap.parse_args().quick
    print(machine())
    per_pair(2000 if quick else 20000)
    whole_fits(2000 if quick else 20000)
