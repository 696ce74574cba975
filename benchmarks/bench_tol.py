"""Does the default stopping rule reach the reference optimum? (issue 14, item 4)

Two problems, each fitted with pygmmis_ng's defaults (``tol=1e-4``, absolute,
on the estimated remaining gain; the default k-means start) and by the
reference code run to a far tighter tolerance from its own start:

* **plain EM**: N=100k, D=5, K=10 clustered data; scikit-learn's
  GaussianMixture (``tol=1e-6``) from the same k-means start as ours;
* **extreme deconvolution**: astroML's K=10 XD example (2000 points with
  per-sample noise); astroML's XDGMM (Bovy, Hogg & Roweis's algorithm,
  ``tol=1e-8``, 300 iterations) from its own start. Skipped without astroML
  (``pip install astroML``; not a test dependency).

The figure of merit is the reference's mean log-likelihood minus ours, per
sample (the issue asks for at most 1e-3; negative means ours is higher).
Usage::

    python benchmarks/bench_tol.py [--seeds 4]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_core import clustered_data

import pygmmis_ng as ng
from pygmmis_ng.fitting.starts.init import init_kmeans


def plain() -> str:
    from sklearn.mixture import GaussianMixture

    X = clustered_data(100_000, 5, 10, np.random.default_rng(0), spread=3.0)
    start = ng.GMM(10, 5)
    init_kmeans(start, X, rng=np.random.default_rng(1))
    ours = start.copy()
    t = time.perf_counter()
    res = ng.fit(ours, X, init_method="none")
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    sk = GaussianMixture(10, tol=1e-6, max_iter=100_000, weights_init=start.amp,
                         means_init=start.mean, precisions_init=np.linalg.inv(start.covar),
                         reg_covar=0).fit(X)
    t_sk = time.perf_counter() - t
    gap = sk.score(X) - np.mean(ours.logL(X))
    return (f"| plain EM N=1e5 D=5 K=10 | scikit-learn tol=1e-6 | {gap:+.5f} | "
            f"{res.n_iter} it, {t_ours:.2f} s | {sk.n_iter_} it, {t_sk:.1f} s |")


def xd_example() -> tuple[np.ndarray, np.ndarray]:
    """astroML's XD example data (book figure 6.11): 2000 points, per-sample noise."""
    rs = np.random.RandomState(0)
    N = 2000
    x_true = (1.4 + 2 * rs.random_sample(N)) ** 2
    y_true = 0.1 * x_true ** 2
    dx = 0.1 + 4.0 / x_true ** 2
    dy = 0.1 + 10.0 / x_true ** 2
    X = np.vstack([rs.normal(x_true, dx), rs.normal(y_true, dy)]).T
    S = np.zeros((N, 2, 2))
    S[:, 0, 0], S[:, 1, 1] = dx ** 2, dy ** 2
    return X, S


def xd(seeds: int) -> list[str]:
    try:
        from astroML.density_estimation import XDGMM
    except ImportError:
        return ["| extreme deconvolution | astroML not installed: skipped | | | |"]
    X, S = xd_example()
    t = time.perf_counter()
    clf = XDGMM(10, max_iter=300, tol=1e-8, random_state=0).fit(X, S)
    t_xd = time.perf_counter() - t
    ref = ng.GMM(10, 2)
    ref.amp, ref.mean, ref.covar = clf.alpha, clf.mu, clf.V
    L_ref = np.mean(ref.logL(X, covar=S))
    rows = []
    for seed in range(seeds):
        g = ng.GMM(10, 2)
        t = time.perf_counter()
        res = ng.fit(g, X, covar=S, rng=seed)
        rows.append(f"| XD, astroML K=10 example, rng={seed} | astroML XDGMM tol=1e-8 | "
                    f"{L_ref - np.mean(g.logL(X, covar=S)):+.5f} | {res.n_iter} it, "
                    f"{time.perf_counter() - t:.2f} s | 300 it, {t_xd:.1f} s |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| problem | reference | reference logL - ours | ours | reference |")
    print("|---|---|---|---|---|")
    print(plain(), flush=True)
    print("\n".join(xd(args.seeds)))


if __name__ == "__main__":
    main()
