"""Online EM under a selection (issue 36): accuracy on the pyGMMis paper test, cost at scale.

The problem is :mod:`bench_incompleteness`'s: the paper's 2D test (K=3, box-with-hole
selection, noise sigma=0.5, w=0.1, oversampling=10), N signal samples before selection.
Score: the truth gap, the mean log-density of 20k fresh truth draws under the fit minus the
truth's own (0 is perfect).

* ``--N`` (default 40000), ``--seeds``: per seed, the full-batch fit (the library's
  defaults, ``cutoff=5``) and online EM with ``batch_size`` (default 4000) after 1 and 3
  passes, and after 3 passes with ``finish=10`` and ``finish=True``: the gap of each, its
  excess over the full-batch gap, and the seconds.
* ``--large`` (default 4e6; 0 skips): the cost of one online pass against full-batch
  E-steps with imputation on the same data from the same start (the k-means fit of a
  subsample), timed as differences (passes 2 - 1, E-steps 3 - 1, so the start and the
  evaluation are not counted twice), and the peak of traced allocations (``tracemalloc``:
  numpy's buffers) of each beyond the data. pygmmis and scikit-learn have no counterpart
  (pygmmis does not stream, sklearn has no selection), so no ratio against them.

Usage::

    python benchmarks/bench_online_selection.py [--N 40000] [--seeds 5] [--batch 4000]
                                                [--large 4e6] [--large-batch 16384]
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from bench_core import machine
from bench_incompleteness import SIGMA, W, score

import pygmmis_ng as ng
from pygmmis_ng import datasets


def options(ds: datasets.Dataset, seed: int) -> dict:
    return dict(covar=ds.covar, sel_callback=ds.sel_callback,
                covar_callback=lambda coords: ds.covar, w=W, rng=seed)


def timed(ds: datasets.Dataset, seed: int, start: ng.GMM | None = None, **kw
          ) -> tuple[float, float, ng.GMM, object]:
    gmm = ng.GMM(K=3, D=2) if start is None else start.copy()
    if start is not None:
        kw = dict(kw, init_method="warm")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ng.fit(gmm, ds.data, **options(ds, seed), **kw)
    elapsed = time.perf_counter() - t0
    return score(lambda x: gmm(x, as_log=True), ds.truth), elapsed, gmm, res


VARIANTS = (("online, 1 pass", dict(n_passes=1)),
            ("online, 3 passes", dict(n_passes=3)),
            ("3 passes + finish=10", dict(n_passes=3, finish=10)),
            ("3 passes + finish=True", dict(n_passes=3, finish=True)))


def accuracy(N: int, seeds: int, batch: int) -> None:
    print(f"\n### The paper test at N = {N}: truth gap (online batch_size={batch})\n")
    print("| seed | full batch | " + " | ".join(name for name, _ in VARIANTS) + " |")
    print("|---" * (len(VARIANTS) + 2) + "|")
    worst = {name: -np.inf for name, _ in VARIANTS}
    for seed in range(seeds):
        ds = datasets.paper_2d(N=N, selection="box_with_hole", sigma=SIGMA, rng=seed)
        full, t_full, _, _ = timed(ds, seed, cutoff=5)
        cells = [f"{full:+.4f} ({t_full:.1f} s)"]
        for name, kw in VARIANTS:
            gap, t, _, _ = timed(ds, seed, batch_size=batch, **kw)
            worst[name] = max(worst[name], full - gap)
            cells.append(f"{gap:+.4f} (excess {full - gap:+.4f}, {t:.1f} s)")
        print(f"| {seed} | " + " | ".join(cells) + " |")
    print("\nworst excess over the full-batch gap: " +
          ", ".join(f"{name} {value:+.4f}" for name, value in worst.items()))


def traced(fn) -> tuple[float, float]:
    """Seconds and peak traced bytes of ``fn()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak


def cost(N: int, batch: int) -> None:
    ds = datasets.paper_2d(N=N, selection="box_with_hole", sigma=SIGMA, rng=0)
    n, data_mb = len(ds.data), ds.data.nbytes / 2**20
    start = ng.GMM(K=3, D=2)
    ng.fit(start, ds.data[:20000], w=W, rng=0, maxiter=20)       # a rough start, not timed
    print(f"\n### One pass against full-batch E-steps: N = {N:.0e} before selection, {n} rows "
          f"({data_mb:.0f} MiB), batch_size={batch}, oversampling=10\n")

    def run(**kw):
        return lambda: timed(ds, 0, start, **kw)

    e1, m1 = traced(run(maxiter=1, accelerate=False))
    e3, m3 = traced(run(maxiter=3, accelerate=False))
    p1, q1 = traced(run(batch_size=batch, n_passes=1, tol=0))
    p2, q2 = traced(run(batch_size=batch, n_passes=2, tol=0))
    estep, one_pass = (e3 - e1) / 2, p2 - p1
    print("| | seconds | peak traced MiB |")
    print("|---|---|---|")
    print(f"| full-batch E-step with imputation (EM 3 - 1 iterations, / 2) | {estep:.2f} | "
          f"{max(m1, m3) / 2**20:.0f} |")
    print(f"| online pass (passes 2 - 1) | {one_pass:.2f} | {max(q1, q2) / 2**20:.0f} |")
    print(f"\none pass = {one_pass / estep:.2f} full-batch E-steps with imputation; first pass "
          f"incl. start and evaluations {p1:.2f} s")
    gap, _, _, res = timed(ds, 0, start, batch_size=batch, n_passes=1, tol=0)
    print(f"truth gap after one pass: {gap:+.4f} (N0 {res.orig_size:.4g}, "
          f"logL {res.logL:.5f} +- {res.logL_se:.1e})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--N", type=int, default=40000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4000)
    ap.add_argument("--large", type=float, default=4e6)
    ap.add_argument("--large-batch", type=int, default=16384)
    args = ap.parse_args()
    print(machine())
    accuracy(args.N, args.seeds, args.batch)
    if args.large > 0:
        cost(int(args.large), args.large_batch)


if __name__ == "__main__":
    main()
