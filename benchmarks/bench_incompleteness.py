"""Accuracy and speed on the pyGMMis paper's 2D test (issue 4).

The problem: K=3, selection box-with-hole, isotropic noise sigma=0.5, w=0.1,
cutoff=5, oversampling=10; N signal samples before selection (the paper's
convention). Score: mean log-density of 20k fresh noise-free truth draws
under the fit, minus the truth's own (0 is perfect, negative is worse).

pygmmis 1.2.3 runs the paper's own protocol (tests/test.py, method 4): a fit
without imputation, then the imputation fit from it (init_method='none').
pygmmis_ng runs ``fit(..., init_method='kmeans', n_init=5, tol=1e-4)``.
Both see the same data. Usage::

    python benchmarks/bench_incompleteness.py [--N 4000 40000] [--seeds 5] [--skip-pygmmis]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import pygmmis_ng as ng
from pygmmis_ng import datasets

SIGMA, W, CUTOFF, OVERSAMPLING = 0.5, 0.1, 5, 10


def score(gmm_logL, truth: ng.GMM, n_test: int = 20000) -> float:
    test = truth.draw(n_test, rng=12345)
    return float(np.mean(gmm_logL(test)) - np.mean(truth(test, as_log=True)))


def run_ours(ds: datasets.Dataset, seed: int) -> tuple[float, float, int]:
    gmm = ng.GMM(K=3, D=2)
    t0 = time.perf_counter()
    res = ng.fit(gmm, ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
                 covar_callback=lambda coords: ds.covar, w=W, cutoff=CUTOFF,
                 oversampling=OVERSAMPLING, init_method="kmeans", n_init=5, tol=1e-4, rng=seed)
    elapsed = time.perf_counter() - t0
    return score(lambda x: gmm(x, as_log=True), ds.truth), elapsed, res.n_iter


def run_pygmmis(ds: datasets.Dataset, seed: int) -> tuple[float, float]:
    from functools import partial

    import pygmmis

    rng = np.random.RandomState(seed)
    gmm = pygmmis.GMM(K=3, D=2)
    covar_cb = partial(pygmmis.covar_callback_default, default=ds.covar)
    t0 = time.perf_counter()
    pygmmis.fit(gmm, ds.data, covar=ds.covar, w=W, cutoff=CUTOFF, rng=rng)
    pygmmis.fit(gmm, ds.data, covar=ds.covar, init_method="none", w=W, cutoff=CUTOFF,
                sel_callback=ds.sel_callback, oversampling=OVERSAMPLING, covar_callback=covar_cb,
                rng=rng)
    elapsed = time.perf_counter() - t0
    return score(lambda x: gmm(x, as_log=True), ds.truth), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, nargs="+", default=[4000, 40000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--skip-pygmmis", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for N in args.N:
        rows = []
        for seed in range(args.seeds):
            ds = datasets.paper_2d(N=N, selection="box_with_hole", sigma=SIGMA, rng=seed)
            s_ng, t_ng, it = run_ours(ds, seed)
            s_pg, t_pg = (np.nan, np.nan) if args.skip_pygmmis else run_pygmmis(ds, seed)
            rows.append((s_ng, t_ng, s_pg, t_pg))
            print(f"N={N} seed={seed} N_obs={len(ds.data)}: pygmmis_ng {s_ng:+.4f} ({t_ng:.1f} s, "
                  f"{it} it)  pygmmis {s_pg:+.4f} ({t_pg:.1f} s)", flush=True)
        r = np.array(rows)
        print(f"N={N} mean: pygmmis_ng {r[:, 0].mean():+.4f} (worst {r[:, 0].min():+.4f}, "
              f"{r[:, 1].sum():.1f} s)  pygmmis {r[:, 2].mean():+.4f} (worst {r[:, 2].min():+.4f}, "
              f"{r[:, 3].sum():.1f} s)  speed-up {r[:, 3].sum() / r[:, 1].sum():.1f}x", flush=True)


if __name__ == "__main__":
    main()
