"""Seed 000: synthetic binary-classification data from a pair of GMMs with a target AUC.
=====================================================================================

    python examples/seed000_gmm_pair.py [--smoke] [--out DIR]

Generates positive/negative class densities over 3 clusters in 2D whose Bayes
posterior has an AUC in [0.6, 0.8] within every cluster (the seed's
``generateParams(3, 2, [.6, .8])``), draws labelled data, checks the AUCs, fits a
GenerativeClassifier to the draws and compares its AUC with the Bayes-optimal one.
With ``--out`` it writes the confidence ellipses of both classes (needs matplotlib).
"""
import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

import pygmmis_ng as ng


def pair_figure(pair, X, y, result):
    """The labelled draws and the 1- and 2-sigma ellipses of both class densities."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from pygmmis_ng.tools.plots import plot_ellipses

    fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    ax.plot(*X[y][:2000].T, ".", ms=2, color="C1", alpha=0.4, label="positive draws")
    ax.plot(*X[~y][:2000].T, ".", ms=2, color="C0", alpha=0.4, label="negative draws")
    plot_ellipses(ax, pair.pos, ec="C1")
    plot_ellipses(ax, pair.neg, ec="C0")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="C1", label="positive density: 1, 2 sigma"),
                Line2D([], [], color="C0", label="negative density: 1, 2 sigma")]
    ax.legend(handles=handles, loc="best", fontsize=8, markerscale=4)
    ax.set(xlabel="feature 1", ylabel="feature 2")
    ax.set_title(f"GMM pair: cluster AUCs {np.round(result['cluster_auc'], 2).tolist()}\n"
                 f"Bayes AUC {result['bayes_auc']:.3f}, classifier "
                 f"{result['classifier_auc']:.3f}", fontsize=10)
    return fig


def main(smoke=False, out=None):
    n = 4000 if smoke else 20000
    pair = ng.datasets.gmm_pair(3, 2, auc_range=(0.6, 0.8), rng=0)
    X, y, comp = pair.draw(n, rng=1)
    bayes = pair.posterior(X)
    cluster_auc = [roc_auc_score(y[comp == k], bayes[comp == k]) for k in range(3)]
    Xt, yt, _ = pair.draw(n, rng=2)
    clf = ng.GenerativeClassifier(3, random_state=0).fit(X, y)
    result = {"cluster_auc_design": pair.component_auc.tolist(), "cluster_auc": cluster_auc,
              "bayes_auc": roc_auc_score(yt, pair.posterior(Xt)),
              "classifier_auc": roc_auc_score(yt, clf.predict_proba(Xt)[:, 1]),
              "positives": float(y.mean())}
    import matplotlib.pyplot as plt

    fig = pair_figure(pair, X, y, result)
    if out is not None:
        fig.savefig(f"{out}/seed000_pair.png", dpi=100)
        plt.close(fig)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    for key, value in main(**vars(parser.parse_args())).items():
        print(f"{key:20s} {np.round(value, 4)}")
