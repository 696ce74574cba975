"""float32 against float64 storage (``dtype=``, issue 18): time, memory and logL at N=10^6.

    python benchmarks/bench_float32.py [--quick] [--n-jobs 1]

Two problems at N=10^6: extreme deconvolution (D=3, K=10, per-sample noise)
and plain EM (D=5, K=20). Each storage type runs in a fresh process that
holds the data in that type (float32 arrays are the float64 ones rounded,
the float64 ones deleted), from the same k-means start:

* time per EM iteration: 10 plain EM iterations (``tol=0``, no extrapolation) less a
  fit with ``maxiter=0`` (checks, start, one logL: shown as "fixed");
* memory: the process's peak resident size during a 3-iteration fit, above
  its size before the fit (``VmHWM`` after resetting it), next to the bytes
  of the data (and noise) the caller holds;
* logL: a fit to ``tol=1e-6``, its mean logL evaluated on the float64 data
  by one function for both types.

``--quick`` divides N by 10 (a smoke run; its figures are not the results).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys, time, warnings
    import numpy as np
    sys.path.insert(0, {here!r})
    from bench_scale import mixture_data, kmeans_init
    import pygmmis_ng as ng
    warnings.simplefilter("ignore")
    N, D, K, noise, dtype, n_jobs = {N}, {D}, {K}, {noise}, np.{dtype}, {n_jobs}

    def data():
        return mixture_data(N, D, K, np.random.default_rng(5), noise=noise)

    def status(key):
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith(key)) * 1024

    X, S = data()
    init = kmeans_init(X[:50000], K, D)
    X, S = X.astype(dtype), None if S is None else S.astype(dtype)
    held = X.nbytes + (0 if S is None else S.nbytes)
    ng.fit(init.copy(), X[:4000], covar=None if S is None else S[:4000], init_method="none",
           maxiter=2, dtype=dtype)                                      # compile, warm up
    base = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:   # the peak counter from here
        fh.write("5")
    ng.fit(init.copy(), X, covar=S, init_method="none", tol=0, maxiter=3, accelerate=False,
           dtype=dtype, n_jobs=n_jobs)
    peak = status("VmHWM")
    spent = []
    for maxiter in (0, 10):       # checks, start and one logL; then 10 updates more
        t0 = time.perf_counter()
        ng.fit(init.copy(), X, covar=S, init_method="none", tol=0, maxiter=maxiter,
               accelerate=False, dtype=dtype, n_jobs=n_jobs)
        spent.append(time.perf_counter() - t0)
    per_step = (spent[1] - spent[0]) / 10
    fixed = spent[0]
    g = init.copy()
    t0 = time.perf_counter()
    r = ng.fit(g, X, covar=S, init_method="none", tol=1e-6, dtype=dtype, n_jobs=n_jobs,
              rng=0)
    t_fit = time.perf_counter() - t0
    del X, S
    X, S = data()
    logL = float(np.mean(g.logL(X, covar=S)))
    print(json.dumps(dict(held=held, extra=peak - base, per_step=per_step, fixed=fixed, t_fit=t_fit,
                          n_eval=r.n_eval, logL=logL)))
""")


def run(here: str, N: int, D: int, K: int, noise: bool, dtype: str, n_jobs: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(
        here=here, N=N, D=D, K=K, noise=noise, dtype=dtype, n_jobs=n_jobs)],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    N = 1_000_000 // (10 if args.quick else 1)
    print("| problem | storage | data held [MiB] | fit's peak above it [MiB] | per iteration [ms] "
          "| fixed [s] | fit to tol 1e-6 [s] (E-steps) | mean logL (float64 data) "
          "| float32 - float64 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, D, K, noise in (("XD, per-sample noise", 3, 10, True), ("plain EM", 5, 20, False)):
        res = {dt: run(here, N, D, K, noise, dt, args.n_jobs) for dt in ("float64", "float32")}
        for dt, m in res.items():
            diff = f"{m['logL'] - res['float64']['logL']:+.2e}" if dt == "float32" else ""
            print(f"| {name} N={N} D={D} K={K}, n_jobs={args.n_jobs} | {dt} "
                  f"| {m['held'] / 2**20:.0f} | {m['extra'] / 2**20:.0f} "
                  f"| {1e3 * m['per_step']:.0f} | {m['fixed']:.2f} | {m['t_fit']:.2f} ({m['n_eval']}) "
                  f"| {m['logL']:.7f} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
