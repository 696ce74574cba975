"""Scale benchmarks of issue 5, each a ratio measured in one run on the same data.

    python benchmarks/bench_scale.py [--quick] [--only xd plain k50 scaling memory]

* ``xd``: extreme deconvolution with per-sample noise, fitted to tol=1e-6 from
  the same k-means initialization by pygmmis_ng (n_jobs 1 and 2) and pyGMMis
  1.2.3; N=100k D=3 K=10 and N=50k D=8 K=10. Final logL of both evaluated by
  one function.
* ``plain``: plain EM N=200k D=5 K=20 to convergence against scikit-learn's
  GaussianMixture from the same initial parameters.
* ``k50``: K=50 well separated components: time with cutoff=5 vs without.
* ``scaling``: 10 iterations of deconvolution (D=3, K=10) for N = 1e4, 1e5,
  1e6 with n_jobs=1 and 2.
* ``memory``: peak resident memory of a fit at N=1e6, D=3, K=20 with
  per-sample noise (in a fresh process), against the bytes of data + noise.

The paper 2D imputation test is ``bench_incompleteness.py``. ``--quick``
divides every N by 10 (a smoke run; its ratios are not the results).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np

import pygmmis_ng as ng

SCALE = 1


def spd(rng, n, D, lo, hi):
    Q, _ = np.linalg.qr(rng.standard_normal((n, D, D)))
    ev = rng.uniform(lo, hi, size=(n, D))
    return Q @ (ev[:, :, None] * np.eye(D)) @ Q.transpose(0, 2, 1)


def mixture_data(N, D, K, rng, noise=True, spread=4.0):
    truth = ng.GMM(K, D)
    truth.amp = rng.dirichlet(np.full(K, 5.0))
    truth.mean = rng.normal(0, spread, (K, D))
    truth.covar = spd(rng, K, D, 0.3, 1.5)
    X = truth.draw(N, rng=rng)
    S = None
    if noise:
        S = spd(rng, N, D, 0.05, 0.5)
        X = X + np.einsum("nij,nj->ni", np.linalg.cholesky(S), rng.standard_normal((N, D)))
    return X, S


def kmeans_init(X, K, D):
    g = ng.GMM(K, D)
    ng.init.init_kmeans(g, X, rng=0)
    return g


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench_xd(rows):
    import pygmmis
    for N, D, K in ((100_000, 3, 10), (50_000, 8, 10)):
        N //= SCALE
        X, S = mixture_data(N, D, K, np.random.default_rng(1))
        init = kmeans_init(X, K, D)
        res = {}
        for n_jobs in (1, 2):
            g = init.copy()
            r, t = timed(ng.fit, g, X, covar=S, init_method="none", tol=1e-6, n_jobs=n_jobs)
            res[n_jobs] = (t, float(np.mean(g.logL(X, covar=S))), r.n_eval)
            print(f"  ours n_jobs={n_jobs}: {t:.2f} s, {r.n_eval} E-steps, logL {res[n_jobs][1]:.6f}",
                  flush=True)
        theirs = pygmmis.GMM(K=K, D=D)
        theirs.amp, theirs.mean, theirs.covar = init.amp.copy(), init.mean.copy(), init.covar.copy()
        _, t_pg = timed(pygmmis.fit, theirs, X, covar=S, init_method="none", tol=1e-6,
                        rng=np.random.RandomState(0))
        pg = ng.GMM(K, D)
        pg.amp, pg.mean, pg.covar = theirs.amp / theirs.amp.sum(), theirs.mean, theirs.covar
        l_pg = float(np.mean(pg.logL(X, covar=S)))
        print(f"  pygmmis: {t_pg:.2f} s, logL {l_pg:.6f}", flush=True)
        for n_jobs in (1, 2):
            t, logL, n_eval = res[n_jobs]
            rows.append(f"| deconvolution N={N} D={D} K={K}, tol 1e-6, n_jobs={n_jobs} | pygmmis 1.2.3 "
                        f"| {t:.2f} ({n_eval} E-steps) | {t_pg:.2f} | {t_pg / t:.1f}x | {logL:.5f} "
                        f"| {l_pg:.5f} | {logL - l_pg:+.1e} |")
            print(rows[-1], flush=True)


def bench_plain(rows):
    from sklearn.mixture import GaussianMixture
    N, D, K = 200_000 // SCALE, 5, 20
    X, _ = mixture_data(N, D, K, np.random.default_rng(2), noise=False, spread=3.0)
    init = kmeans_init(X, K, D)
    for n_jobs in (1, 2):
        g = init.copy()
        r, t = timed(ng.fit, g, X, init_method="none", tol=1e-6, n_jobs=n_jobs)
        # sklearn stops on an absolute change of the mean logL; ours is relative to |logL| ~ 10
        sk = GaussianMixture(K, covariance_type="full", reg_covar=0, tol=1e-5, max_iter=5000,
                             weights_init=init.amp, means_init=init.mean,
                             precisions_init=np.linalg.inv(init.covar))
        _, t_sk = timed(sk.fit, X)
        l_sk = float(np.mean(sk.score_samples(X)))
        rows.append(f"| plain EM N={N} D={D} K={K} to convergence, n_jobs={n_jobs} | sklearn "
                    f"| {t:.2f} ({r.n_eval} E-steps) | {t_sk:.2f} ({sk.n_iter_} it) "
                    f"| {t_sk / t:.1f}x | {r.logL:.5f} | {l_sk:.5f} | {r.logL - l_sk:+.1e} |")
        print(rows[-1], flush=True)


def bench_k50(rows):
    N, D, K = 200_000 // SCALE, 3, 50
    X, S = mixture_data(N, D, K, np.random.default_rng(3), spread=25.0)
    init = kmeans_init(X, K, D)
    out = {}
    for cutoff in (None, 5.0):
        g = init.copy()
        r, t = timed(ng.fit, g, X, covar=S, init_method="none", tol=1e-5, cutoff=cutoff)
        out[cutoff] = (t, r.logL)
    (t0, l0), (t5, l5) = out[None], out[5.0]
    rows.append(f"| K=50 well separated, N={N} D=3 per-sample noise: cutoff=5 vs none | ours, "
                f"no cutoff | {t5:.2f} | {t0:.2f} | {t0 / t5:.2f}x | {l5:.5f} | {l0:.5f} "
                f"| {l5 - l0:+.1e} |")
    print(rows[-1], flush=True)


def bench_scaling(rows):
    D, K = 3, 10
    for N in (10_000, 100_000, 1_000_000):
        N //= SCALE
        X, S = mixture_data(N, D, K, np.random.default_rng(4))
        init = kmeans_init(X[:100_000], K, D)
        t = {}
        for n_jobs in (1, 2):
            g = init.copy()
            _, t[n_jobs] = timed(ng.fit, g, X, covar=S, init_method="none", tol=0, maxiter=10,
                                 accelerate=False, n_jobs=n_jobs)
        rows.append(f"| scaling: deconvolution N={N} D=3 K=10, 10 iterations | n_jobs=1 "
                    f"| {t[2]:.2f} (n_jobs=2) | {t[1]:.2f} | {t[1] / t[2]:.2f}x | | | |")
        print(rows[-1], flush=True)


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, warnings
    import numpy as np
    sys.path.insert(0, {here!r})
    from bench_scale import mixture_data, kmeans_init
    import pygmmis_ng as ng
    warnings.simplefilter("ignore")
    N, D, K, n_jobs = {N}, 3, 20, {n_jobs}
    X, S = mixture_data(N, D, K, np.random.default_rng(5))
    init = kmeans_init(X[:50000], K, D)
    ng.fit(init.copy(), X[:2000], covar=S[:2000], init_method="none", maxiter=1)  # warm-up
    def rss():
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) * 1024
    base = rss()
    # reset the peak counter to the current size, so that only the fit's peak is measured
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    ng.fit(init.copy(), X, covar=S, init_method="none", tol=0, maxiter=3, accelerate=False,
           n_jobs=n_jobs)
    with open("/proc/self/status") as fh:
        peak = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) * 1024
    print(json.dumps(dict(base=base, peak=peak, data=X.nbytes + S.nbytes)))
""")


def bench_memory(rows):
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    N = 1_000_000 // SCALE
    for n_jobs in (1, 2):
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(here=here, N=N,
                                                                         n_jobs=n_jobs)],
                             capture_output=True, text=True, check=True).stdout
        m = json.loads(out.strip().splitlines()[-1])
        extra = m["peak"] - m["base"]
        rows.append(f"| peak memory N={N} D=3 K=20 per-sample noise, n_jobs={n_jobs} "
                    f"(parent process) | data+noise {m['data'] / 2**20:.0f} MiB | "
                    f"+{extra / 2**20:.0f} MiB during the fit | | {extra / m['data']:.2f}x of "
                    f"data+noise | | | |")
        print(rows[-1], flush=True)


def main() -> None:
    global SCALE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+",
                        default=["xd", "plain", "k50", "scaling", "memory"])
    args = parser.parse_args()
    SCALE = 10 if args.quick else 1
    warnings.simplefilter("ignore")
    rows: list[str] = []
    print("| benchmark | other | time ours [s] | time other [s] | speed-up | mean logL ours "
          "| mean logL other | ours - other |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.only:
        globals()[f"bench_{name}"](rows)


if __name__ == "__main__":
    main()
