"""Seed 003: the pyGMMis README example with pygmmis_ng.
=====================================================

    python examples/seed003_pygmmis_readme.py [--smoke]

Noisy samples of a 3-component 2D mixture, cut by a selection (first coordinate
< 6, the README's ``cutAtSix``) and contaminated by a uniform background; the
imputed samples get the noise of their nearest observed neighbour (the README's
KD-tree ``covar_callback``). Fitted with w=0.1, cutoff=5, tol=1e-3 as there.
"""
import argparse
from functools import partial

import numpy as np
from sklearn.neighbors import KDTree

import pygmmis_ng as ng


def cut_at_six(coords):
    """Omega = 1 for samples whose first coordinate is < 6, else 0."""
    return (coords[:, 0] < 6).astype(float)


def covar_tree_cb(coords, tree, covar):
    """Return the covariance of the nearest neighbor of coords in data."""
    dist, ind = tree.query(coords, k=1)
    return covar[ind.flatten()]


def main(smoke=False):
    rng = np.random.default_rng(42)
    truth = ng.GMM(K=3, D=2)
    truth.amp = [0.4, 0.35, 0.25]
    truth.mean = [[1.5, 1.5], [3.5, 6.5], [6.0, 2.0]]
    truth.covar = [[[1.5, 0.4], [0.4, 1.0]], [[1.0, 0], [0, 2.0]], [[1.0, -0.3], [-0.3, 0.6]]]
    N = 2000 if smoke else 8000
    x = truth.draw(N, rng=rng)
    sd = rng.uniform(0.2, 0.6, N)
    covar = sd[:, None, None] ** 2 * np.eye(2)
    data = x + sd[:, None] * rng.standard_normal((N, 2))
    footprint = np.array([[-5, -5], [15, 15]])
    bg = ng.Background(footprint)
    n_bg = N // 10
    data = np.vstack([data, bg.draw(n_bg, rng=rng)])
    covar = np.concatenate([covar, np.tile(0.16 * np.eye(2), (n_bg, 1, 1))])
    keep = cut_at_six(data) > 0
    data, covar = data[keep], covar[keep]

    tree = KDTree(data, leaf_size=100)
    covar_cb = partial(covar_tree_cb, tree=tree, covar=covar)
    bg.amp, bg.amp_max, bg.adjust_amp = 0.3, 0.5, True
    gmm = ng.GMM(K=3, D=2)
    res = ng.fit(gmm, data, covar=covar, init_method="kmeans", sel_callback=cut_at_six,
                 covar_callback=covar_cb, w=0.1, cutoff=5, background=bg, tol=1e-3, rng=0,
                 n_init=2)
    test = truth.draw(20000, rng=1)
    return {"observed": len(data), "orig_size": res.orig_size, "true_orig_size": N + n_bg,
            "bg_amp": bg.amp, "true_bg_amp": n_bg / (N + n_bg),
            "mean_logL_truth_draws": float(np.mean(gmm(test, as_log=True))),
            "truth_own": float(np.mean(truth(test, as_log=True))),
            "largest_mean_error": float(np.linalg.norm(
                gmm.mean[ng.match_components(gmm, truth)] - truth.mean, axis=1).max())}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    for key, value in main(**vars(parser.parse_args())).items():
        print(f"{key:22s} {value}")
