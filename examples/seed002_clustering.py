"""Seed 002: clustering with K chosen by silhouette and BIC, responsibilities, ROC AUC.
====================================================================================

    python examples/seed002_clustering.py [--smoke]

Synthetic two-population data stand in for the seed's CSV. K is chosen by the
k-means silhouette score and by BIC; the mixture's responsibilities of the
population's component score the labels (ROC AUC), also when 15% of the values
are missing (NaN: the fit and the responsibilities use the measured ones).
"""
import argparse

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import roc_auc_score, silhouette_score

import pygmmis_ng as ng


def population(n, rng):
    y = rng.random(n) < 0.4
    X = np.where(y[:, None], rng.multivariate_normal([3, 3], [[1, 0.6], [0.6, 1]], n),
                 rng.multivariate_normal([0, 0], [[1.5, -0.3], [-0.3, 0.8]], n))
    return X, y


def main(smoke=False):
    rng = np.random.default_rng(37)
    X, y = population(600 if smoke else 3000, rng)
    Ks = range(2, 7)
    silhouette = {k: silhouette_score(X, KMeans(k, random_state=37, n_init=1).fit_predict(X))
                  for k in Ks}
    bic = {k: ng.IncompleteGaussianMixture(k, random_state=37).fit(X).bic(X) for k in Ks}
    k_sil, k_bic = max(silhouette, key=silhouette.get), min(bic, key=bic.get)
    est = ng.IncompleteGaussianMixture(k_bic, random_state=37).fit(X)
    pos = int(np.argmax(est.means_.sum(axis=1)))          # the component near (3, 3)
    auc = roc_auc_score(y, est.predict_proba(X)[:, pos])
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.15] = np.nan
    Xm[np.isnan(Xm).all(axis=1), 0] = X[np.isnan(Xm).all(axis=1), 0]
    est_m = ng.IncompleteGaussianMixture(k_bic, random_state=37).fit(Xm)
    pos_m = int(np.argmax(est_m.means_.sum(axis=1)))
    auc_m = roc_auc_score(y, est_m.predict_proba(Xm)[:, pos_m])
    return {"K_silhouette": k_sil, "K_bic": k_bic, "roc_auc": auc, "roc_auc_15pct_missing": auc_m}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    for key, value in main(**vars(parser.parse_args())).items():
        print(f"{key:22s} {value}")
