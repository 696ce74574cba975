"""Core benchmarks: pygmmis_ng against sklearn (plain EM) and pygmmis 1.2.3 (deconvolution).

Run on demand (not part of the test suite)::

    pip install ".[bench]"          # pygmmis==1.2.3 for the comparison
    python benchmarks/bench_core.py [--quick] [--iters-plain 50] [--iters-xd 30] [--iters-xd8 10]

Each comparison uses the same data and the same initial parameters for both
libraries and runs the same number of plain EM iterations (tolerance 0, no
acceleration), so the times compare equal work. The final mean log-likelihood of both fits is
evaluated with the same function (pygmmis_ng's GMM.logL, which the tests
check against a brute-force scipy computation) and printed beside the time.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

import pygmmis_ng as ng


def clustered_data(N, D, K, rng, spread=5.0):
    centers = rng.normal(0, spread, (K, D))
    widths = rng.uniform(0.5, 1.5, K)
    lab = rng.integers(K, size=N)
    return centers[lab] + widths[lab, None] * rng.standard_normal((N, D))


def random_noise(N, D, rng, lo=0.1, hi=1.0):
    Q, _ = np.linalg.qr(rng.standard_normal((N, D, D)))
    ev = rng.uniform(lo, hi, (N, D))
    return Q @ (ev[:, :, None] * np.eye(D)) @ Q.transpose(0, 2, 1)


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, numpy {np.__version__}")


def fit_ours(X, S, K, iters, seed):
    """k-means initial parameters (returned for the other library) and our timed fit from them."""
    init = ng.GMM(K, X.shape[1])
    ng.init.init_kmeans(init, X, rng=np.random.default_rng(seed + 1))
    ours = init.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        ng.fit(ours, X, covar=S, init_method="none", tol=0, maxiter=iters, accelerate=False)
        return init, ours, time.perf_counter() - t


def bench_plain(N, D, K, iters, seed=0):
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    X = clustered_data(N, D, K, rng)
    init, ours, t_ours = fit_ours(X, None, K, iters, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = GaussianMixture(K, covariance_type="full", reg_covar=0, tol=0, max_iter=iters,
                             weights_init=init.amp, means_init=init.mean,
                             precisions_init=np.linalg.inv(init.covar))
        t = time.perf_counter()
        sk.fit(X)
        t_sk = time.perf_counter() - t
    theirs = ng.GMM(K, D)
    theirs.amp, theirs.mean, theirs.covar = sk.weights_ / sk.weights_.sum(), sk.means_, sk.covariances_
    return dict(name=f"plain EM N={N} D={D} K={K}, {iters} iterations", other="sklearn",
                t_ours=t_ours, t_other=t_sk,
                logL_ours=float(np.mean(ours.logL(X))), logL_other=float(np.mean(theirs.logL(X))))


def bench_xd(N, D, K, iters, seed=0):
    import pygmmis

    rng = np.random.default_rng(seed)
    x = clustered_data(N, D, K, rng)
    S = random_noise(N, D, rng)
    X = x + np.einsum("nij,nj->ni", np.linalg.cholesky(S), rng.standard_normal((N, D)))
    init, ours, t_ours = fit_ours(X, S, K, iters, seed)
    theirs = pygmmis.GMM(K=K, D=D)
    theirs.amp[:], theirs.mean[:], theirs.covar[:] = init.amp, init.mean, init.covar
    t = time.perf_counter()
    pygmmis.fit(theirs, X, covar=S, init_method="none", tol=0, maxiter=iters,
                rng=np.random.RandomState(seed))
    t_pg = time.perf_counter() - t
    theirs_ng = ng.GMM(K, D)
    theirs_ng.amp, theirs_ng.mean, theirs_ng.covar = theirs.amp / theirs.amp.sum(), theirs.mean, theirs.covar
    return dict(name=f"deconvolution N={N} D={D} K={K} per-sample noise, {iters} iterations",
                other="pygmmis 1.2.3", t_ours=t_ours, t_other=t_pg,
                logL_ours=float(np.mean(ours.logL(X, covar=S))),
                logL_other=float(np.mean(theirs_ng.logL(X, covar=S))))


def report(rows) -> str:
    lines = [f"machine: {machine()}", "",
             "| benchmark | other | time ours [s] | time other [s] | speed-up | mean logL ours "
             "| mean logL other | logL ours - other |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['other']} | {r['t_ours']:.2f} | {r['t_other']:.2f} | "
                     f"{r['t_other'] / r['t_ours']:.1f}x | {r['logL_ours']:.6f} | "
                     f"{r['logL_other']:.6f} | {r['logL_ours'] - r['logL_other']:+.2e} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10x smaller problems (a smoke run)")
    p.add_argument("--iters-plain", type=int, default=50)
    p.add_argument("--iters-xd", type=int, default=30)
    p.add_argument("--iters-xd8", type=int, default=10, help="iterations of XD at D=8")
    p.add_argument("--skip-pygmmis", action="store_true")
    args = p.parse_args(argv)
    f = 10 if args.quick else 1
    rows = [bench_plain(200_000 // f, 5, 20, args.iters_plain)]
    if not args.skip_pygmmis:
        rows.append(bench_xd(100_000 // f, 3, 10, args.iters_xd))
        rows.append(bench_xd(50_000 // f, 8, 10, args.iters_xd8))
    print(report(rows))


if __name__ == "__main__":
    main()
