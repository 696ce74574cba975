"""IncompleteGaussianMixture against scikit-learn's GaussianMixture per covariance_type (issue 15).

Same data, same parameters for both (``covariance_type``, ``reg_covar=1e-6``,
``tol=1e-3``, one k-means start each from ``random_state=0``; ``max_iter=1000``
so that neither is cut off). Reported per type: the time of each fit, the ratio,
the iterations, and the mean log-likelihood per sample of ours minus
scikit-learn's (positive: ours is higher). Then the paths scikit-learn has
no answer for, timed alone: noise deconvolution, missing values and a
selection, each with every covariance type.

Usage::

    python benchmarks/bench_covariance_types.py [--n 100000]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_core import clustered_data, machine

from pygmmis_ng import IncompleteGaussianMixture

TYPES = ("full", "diag", "tied", "spherical")


def timed(est, *args, **kw):
    t = time.perf_counter()
    est.fit(*args, **kw)
    return est, time.perf_counter() - t


def versus_sklearn(X: np.ndarray) -> list[str]:
    from sklearn.mixture import GaussianMixture

    rows = ["| type | ours | scikit-learn | ratio | iterations (ours / sklearn) | logL ours - sklearn |",
            "|---|---|---|---|---|---|"]
    IncompleteGaussianMixture(10, max_iter=2, random_state=0).fit(X[:5000])   # load the kernels
    for ct in TYPES:
        kw = dict(covariance_type=ct, max_iter=1000, random_state=0)
        ours, t_ours = timed(IncompleteGaussianMixture(10, **kw), X)
        sk, t_sk = timed(GaussianMixture(10, **kw), X)
        rows.append(f"| {ct} | {t_ours:.2f} s | {t_sk:.2f} s | {t_sk / t_ours:.1f}x | "
                    f"{ours.n_iter_} / {sk.n_iter_} | {ours.score(X) - sk.score(X):+.5f} |")
    return rows


def other_paths(X: np.ndarray, rng: np.random.Generator) -> list[str]:
    N, D = X.shape
    S = np.einsum("n,ab->nab", rng.uniform(0.1, 0.5, N), np.eye(D))
    Xn = X + np.sqrt(S[:, 0, 0])[:, None] * rng.standard_normal(X.shape)
    Xm = X.copy()
    Xm[rng.random(N) < 0.3, 0] = np.nan
    cut = np.quantile(X[:, 0], 0.7)
    sel = lambda c: (c[:, 0] < cut).astype(float)            # noqa: E731
    Xs = X[sel(X) > 0]
    rows = ["| type | deconvolution (N, D, per-sample noise) | 30% missing in one feature | "
            "selection (x0 < 70% quantile) |", "|---|---|---|---|"]
    for ct in TYPES:
        cells = []
        for data, kw in ((Xn, dict(covar=S)), (Xm, {}), (Xs, {})):
            est = IncompleteGaussianMixture(10, covariance_type=ct, random_state=0,
                                            sel_callback=sel if data is Xs else None)
            _, t = timed(est, data, **kw)
            cells.append(f"{t:.2f} s ({est.n_iter_} it)")
        rows.append(f"| {ct} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    X = clustered_data(args.n, 5, 10, np.random.default_rng(0), spread=3.0)
    print(f"# covariance types, N={args.n}, D=5, K=10 ({machine()})\n")
    print("\n".join(versus_sklearn(X)))
    print()
    print("\n".join(other_paths(X[: args.n // 5], np.random.default_rng(1))))


if __name__ == "__main__":
    main()
