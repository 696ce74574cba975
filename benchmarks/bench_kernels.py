"""The generated kernel family against its targets (issue 33), one run per row.

1. XD, N=10^5, D=3, K=10, full per-sample noise, from one k-means start: ms per plain EM
   iteration (E-step and M-step; 25 iterations minus 5, best of 3, so the start-up cancels)
   with the per-sample skeleton (D=3 written out: the closed form of before) and with the
   lane skeleton (a block of samples in SIMD lanes), on 1 thread and on one per core;
   GFLOP/s at ~120 flops per pair. Target: <= 15 ms per E-step on 2 threads.
2. Plain EM, N=2*10^5, D=5, K=20, 50 iterations from the same start, against
   scikit-learn (equal work); ours also with the quadratic-feature GEMMs of before.
   Target: >= 30x scikit-learn.
3. 'diag' and 'spherical', N=10^5, D=5 and 50, K=10, 30 iterations from the same start
   against scikit-learn (equal work); ours also with the full-covariance kernels of
   before. Target: >= 3x scikit-learn.
4. Lines of pygmmis_ng/kernels/.

    python benchmarks/bench_kernels.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from bench_core import bench_plain, clustered_data, machine
from bench_scale import spd

import pygmmis_ng as ng
from pygmmis_ng.kernels import fused, stats
from pygmmis_ng.kernels.skeletons import Spec

FLOPS_PER_PAIR = 120


@contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def xd_rows(N: int) -> list[str]:
    D, K = 3, 10
    rng = np.random.default_rng(1)
    truth = ng.GMM(K, D)
    truth.amp, truth.mean, truth.covar = np.ones(K) / K, rng.normal(0, 4, (K, D)), spd(rng, K, D, 0.3, 2.0)
    S = spd(rng, N, D, 0.05, 0.5)
    X = truth.draw(N, rng=rng) + np.einsum("nij,nj->ni", np.linalg.cholesky(S),
                                            rng.standard_normal((N, D)))
    start = ng.GMM(K, D)
    ng.init.init_kmeans(start, X, rng=0)
    cores = len(os.sched_getaffinity(0))
    rows = ["| kernel | threads | ms per iteration | ns per pair | GFLOP/s (120 flops/pair) "
            "| logL after 25 iterations |", "|---|---|---|---|---|---|"]
    skeleton = {"per-sample skeleton (D=3 written out)": lambda *a: Spec("sample", "per_sample", "full", 3),
                "lane skeleton": fused.spec_for}
    kw = dict(covar=S, init_method="none", tol=0, accelerate=False)
    for name, choose in skeleton.items():
        for threads in sorted({1, cores}):
            with patched(fused, "spec_for", choose):
                os.environ["PYGMMIS_NG_THREADS"] = str(threads)
                ng.fit(start.copy(), X[:2000], covar=S[:2000], init_method="none", maxiter=2)
                best = {}
                for iters in (5, 25) * 3:
                    g = start.copy()
                    t = time.perf_counter()
                    r = ng.fit(g, X, maxiter=iters, **kw)
                    best[iters] = min(best.get(iters, np.inf), time.perf_counter() - t)
                per = (best[25] - best[5]) / 20
            rows.append(f"| {name} | {threads} | {1e3 * per:.1f} | {1e9 * per / (N * K):.1f} | "
                        f"{FLOPS_PER_PAIR * N * K / per / 1e9:.2f} | {r.logL:.12f} |")
    os.environ.pop("PYGMMIS_NG_THREADS", None)
    return rows


def plain_rows(N: int, iters: int) -> list[str]:
    rows = ["| path | ours [s] | scikit-learn [s] | ratio | logL ours − sklearn |", "|---|---|---|---|---|"]
    for name, top in (("lane kernel", fused.LANES_MAX_D["shared"]), ("quadratic GEMMs (before)", 0)):
        with patched(fused, "LANES_MAX_D", {**fused.LANES_MAX_D, "shared": top}):
            bench_plain(3000, 5, 20, 2)                 # load the kernels first
            r = bench_plain(N, 5, 20, iters)
        rows.append(f"| {name} | {r['t_ours']:.2f} | {r['t_other']:.2f} | "
                    f"**{r['t_other'] / r['t_ours']:.1f}×** | {r['logL_ours'] - r['logL_other']:+.1e} |")
    return rows


def _sk_precisions(covar: np.ndarray, ct: str) -> np.ndarray:
    var = np.einsum("kaa->ka", covar)
    return 1.0 / (var if ct == "diag" else var[:, 0])


def constrained_rows(N: int, iters: int) -> list[str]:
    from sklearn.mixture import GaussianMixture

    rows = ["| type | D | ours [s] | full kernels (before) [s] | scikit-learn [s] | ratio "
            "| logL ours − sklearn |", "|---|---|---|---|---|---|---|"]
    K = 10
    for D in (5, 50):
        X = clustered_data(N, D, K, np.random.default_rng(D))
        km = ng.GMM(K, D)
        ng.init.init_kmeans(km, X, rng=0)
        for ct in ("diag", "spherical"):
            start = km.copy()
            var = np.einsum("kaa->ka", start.covar)
            var = var if ct == "diag" else np.repeat(var.mean(1, keepdims=True), D, 1)
            start.covar = np.einsum("ka,ab->kab", var, np.eye(D))
            kw = dict(init_method="none", tol=0, maxiter=iters, accelerate=False,
                      covariance_type=ct, reg_covar=1e-6)
            times = {}
            for label, fam in (("ours", stats.kernel_family), ("full", lambda c, n, f: "full")):
                with patched(stats, "kernel_family", fam):
                    ng.fit(start.copy(), X[:3000], **{**kw, "maxiter": 2})
                    g = start.copy()
                    t = time.perf_counter()
                    ng.fit(g, X, **kw)
                    times[label] = (time.perf_counter() - t, g)
            sk = GaussianMixture(K, covariance_type=ct, reg_covar=1e-6, tol=0, max_iter=iters,
                                 weights_init=start.amp, means_init=start.mean,
                                 precisions_init=_sk_precisions(start.covar, ct))
            t = time.perf_counter()
            sk.fit(X)
            t_sk = time.perf_counter() - t
            t_ours, g = times["ours"]
            rows.append(f"| {ct} | {D} | {t_ours:.2f} | {times['full'][0]:.2f} | {t_sk:.2f} | "
                        f"**{t_sk / t_ours:.1f}×** | {np.mean(g.logL(X)) - sk.score(X):+.1e} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    q = a.quick
    print(f"# {machine()}\n\n## XD N={10**4 if q else 10**5} D=3 K=10, per-sample noise, plain EM iterations")
    print("\n".join(xd_rows(10**4 if q else 10**5)))
    print(f"\n## Plain EM N={2 * 10**4 if q else 2 * 10**5} D=5 K=20, {5 if q else 50} iterations")
    print("\n".join(plain_rows(2 * 10**4 if q else 2 * 10**5, 5 if q else 50)))
    print(f"\n## 'diag' and 'spherical', N={10**4 if q else 10**5}, K=10, {3 if q else 30} iterations")
    print("\n".join(constrained_rows(10**4 if q else 10**5, 3 if q else 30)))
    kernels = Path(fused.__file__).parent
    lines = sum(len(p.read_text().splitlines()) for p in kernels.glob("*.py"))
    print(f"\nkernels/: {lines} lines in {len(list(kernels.glob('*.py')))} modules")


if __name__ == "__main__":
    main()
