"""The Hipparcos-2 examples timed against pyGMMis and Bovy's C XD, in one run on the same data.

    python benchmarks/bench_hipparcos.py [--quick]

* ``velocities``: 29 125 stars, 2-D tangential velocities with per-star 2x3
  projections and noise, K=10 in 3-D (examples/hipparcos_velocities.py,
  without the w floor so that both codes solve the same problem). pyGMMis
  accepts only square projections, so it cannot run this one; Bovy's C XD if
  importable (``XD_PY``, see bench_data_model.py).
* ``cmd``: 57 419 stars, (B-V, M_Hp) with per-star noise, K=20 in 2-D
  (examples/hipparcos_cmd.py): ours, pyGMMis 1.2.3 and Bovy's XD.

Every code starts from the same k-means start and runs to tol 1e-6 on the
change of the mean logL; all fits are scored by one function (our exact
mean logL of the data under the fitted, noise-convolved model).
``--quick`` uses 1/10 of the stars (a smoke run; its ratios are not the results).
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
from bench_data_model import load_xd, run_pygmmis, run_xd, table_row
from bench_scale import timed

import pygmmis_ng as ng
from pygmmis_ng.tools import hipparcos


def start_from(Y, K, D, R=None, S=None):
    start = ng.GMM(K, D)
    ng.init.init_kmeans(start, ng.latent.fill_latent(Y, R, S, None, D), rng=0)
    return start


def compare(rows, label, Y, S, R, start, pygmmis_too):
    ours = start.copy()
    r, t = timed(ng.fit, ours, Y, covar=S, R=R, init_method="none", tol=1e-6)
    logL = float(np.mean(ours.logL(Y, covar=S, R=R)))
    print(f"  ours: {t:.2f} s, {r.n_eval} E-steps, logL {logL:.6f}", flush=True)
    others = []
    xd = load_xd()
    if xd is not None:
        others.append(run_xd(xd, Y, S, R if R is not None else np.broadcast_to(
            np.eye(Y.shape[1]), (len(Y), Y.shape[1], Y.shape[1])).copy(), start))
    if pygmmis_too:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            others.append(("pygmmis 1.2.3", *run_pygmmis(start, Y, covar=S)))
    for name, t_o, g_o in others:
        l_o = float(np.mean(g_o.logL(Y, covar=S, R=R)))
        rows.append(table_row(label, name, t, t_o, logL, l_o, r.n_eval))
        print(rows[-1], flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the stars")
    args = parser.parse_args()
    cat = hipparcos.read_hip2()
    rows = []
    v = hipparcos.tangential_velocities(cat, n=2900 if args.quick else None, rng=0)
    compare(rows, f"Hipparcos velocities, N={len(v.y)}, 2x3 projections, K=10", v.y, v.covar,
            v.R, start_from(v.y, 10, 3, v.R, v.covar), pygmmis_too=False)
    c = hipparcos.colour_magnitude(cat, n=5700 if args.quick else None, rng=0)
    compare(rows, f"Hipparcos CMD, N={len(c.X)}, per-star noise, K=20", c.X, c.covar, None,
            start_from(c.X, 20, 2), pygmmis_too=True)
    print("\n| problem | other | ours s | other s | speed-up | logL ours | logL other | diff |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
