"""Pairs of class densities with a chosen difficulty: the GMM-pair generator of seed 000.

:func:`gmm_pair` draws a positive and a negative class density as two
mixtures over the same K clusters. In cluster k both classes are Gaussians
with one covariance Sigma_k and means c_k +- delta_k / 2, so the Bayes-optimal
posterior ranks the samples of that cluster by their projection on
Sigma_k^-1 delta_k, and its AUC there is exactly Phi(Delta_k / sqrt 2) with
Delta_k the Mahalanobis length of delta_k: each cluster gets an AUC drawn
uniformly from the requested range. That holds for the full posterior only
if the clusters do not overlap (the other clusters' class proportions would
reorder the samples and lower the AUC), so clusters are placed at least
:data:`SEPARATION` sigmas apart, and a Monte-Carlo check confirms each
cluster's AUC against its design value. The mixture
proportions of the two classes differ (Dirichlet draws), as in the seed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri
from sklearn.metrics import roc_auc_score

from ..data.validation import check_float, check_int, check_rng
from ..model import GMM


class GMMPair:
    """Positive and negative class densities and the class prior.

    Attributes
    ----------
    pos, neg : GMM
        Class-conditional densities p(x | y=1), p(x | y=0) with K components
        each; component k of both belongs to cluster k.
    alpha : float
        P(y = 1), the proportion of positives.
    component_auc : ndarray (K,)
        The AUC of the Bayes posterior within each cluster by construction.
    """

    def __init__(self, pos: GMM, neg: GMM, alpha: float, component_auc: np.ndarray) -> None:
        self.pos, self.neg, self.alpha = pos, neg, alpha
        self.component_auc = component_auc

    def posterior(self, X: Any) -> np.ndarray:
        """P(y = 1 | x) of the Bayes-optimal classifier, shape (N,)."""
        lp = np.log(self.alpha) + self.pos.logL(X)
        ln = np.log1p(-self.alpha) + self.neg.logL(X)
        return 1.0 / (1.0 + np.exp(np.clip(ln - lp, -700, 700)))

    def draw(self, n: int, rng: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n labelled samples: X (n, D), y (n,) bool, cluster index (n,), in random order."""
        n = check_int(n, "n", minimum=0)
        gen = check_rng(rng)
        y = gen.random(n) < self.alpha
        X = np.empty((n, self.pos.D))
        comp = np.empty(n, dtype=int)
        for label, g in ((True, self.pos), (False, self.neg)):
            rows = np.flatnonzero(y == label)
            X[rows], comp[rows] = g.draw(rows.size, rng=gen, return_component=True)
        return X, y, comp

    def auc(self, n: int = 20000, rng: Any = None) -> tuple[float, np.ndarray]:
        """Monte-Carlo AUC of the posterior: overall, and within each cluster (K,)."""
        X, y, comp = self.draw(n, rng=rng)
        p = self.posterior(X)
        per = np.array([roc_auc_score(y[comp == k], p[comp == k])
                        if 0 < y[comp == k].sum() < (comp == k).sum() else np.nan
                        for k in range(self.pos.K)])
        return float(roc_auc_score(y, p)), per


def gmm_pair(n_components: int, dim: int, auc_range: tuple[float, float] = (0.75, 0.95),
             alpha: float = 0.5, rng: Any = None, n_check: int = 20000,
             max_tries: int = 20) -> GMMPair:
    """A random pair of class densities whose clusters have Bayes AUCs in ``auc_range``.

    Parameters
    ----------
    n_components : int >= 1
        Clusters K (components of each class density).
    dim : int >= 1
    auc_range : (low, high) with 0.5 < low <= high < 1
    alpha : float in (0, 1)
        Proportion of positives.
    rng : None, int, Generator or RandomState
    n_check : int >= 100 K
        Samples of the Monte-Carlo check of the per-cluster AUCs (with
        balanced classes: the within-cluster AUC does not depend on alpha).
    max_tries : int >= 1
        Placements tried (each farther apart) before giving up.

    Raises
    ------
    RuntimeError
        If no placement passed the check (use a wider range or more samples).
    """
    K = check_int(n_components, "n_components", minimum=1)
    D = check_int(dim, "dim", minimum=1)
    lo, hi = (check_float(a, "auc_range", minimum=0.5, strict=True) for a in auc_range)
    if not lo <= hi < 1:
        raise ValueError(f"auc_range must satisfy 0.5 < low <= high < 1, got {auc_range}")
    alpha = check_float(alpha, "alpha", minimum=0.0, strict=True)
    if alpha >= 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    gen = check_rng(rng)
    n_check = check_int(n_check, "n_check", minimum=100 * K)
    max_tries = check_int(max_tries, "max_tries", minimum=1)
    target = gen.uniform(lo, hi, K)
    Q, _ = np.linalg.qr(gen.standard_normal((K, D, D)))
    scales = gen.uniform(0.5, 1.5, (K, D))
    covar = Q @ (scales[:, :, None] ** 2 * np.eye(D)) @ Q.transpose(0, 2, 1)
    # delta_k: Mahalanobis length sqrt(2) Phi^-1(AUC) along a random direction
    u = gen.standard_normal((K, D))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    L = np.linalg.cholesky(covar)
    delta = np.einsum("kab,kb->ka", L, u) * (np.sqrt(2) * ndtri(target))[:, None]
    w_pos, w_neg = gen.dirichlet(np.full(K, 2.0)), gen.dirichlet(np.full(K, 2.0))
    # clusters must not overlap, or the other clusters' (unequal) class proportions would
    # reorder the posterior within a cluster and lower its AUC: keep every pair of
    # cluster centres SEPARATION of their largest sigmas (plus the class offsets) apart
    reach = SEPARATION * scales.max(axis=1) + np.linalg.norm(delta, axis=1)
    spread = reach.max()
    for _ in range(max_tries):
        centers = gen.standard_normal((K, D)) * spread * K ** (1 / D)
        gap = np.linalg.norm(centers[:, None] - centers[None], axis=2)
        need = reach[:, None] + reach[None]
        if K > 1 and (gap + np.eye(K) * need.max() < need).any():
            spread *= 1.3
            continue
        pair = GMMPair(_mixture(w_pos, centers + delta / 2, covar),
                       _mixture(w_neg, centers - delta / 2, covar), alpha, target)
        # confirm on draws with balanced classes (the within-cluster AUC does not depend
        # on alpha): each cluster's AUC must be its design value within the MC error
        check = GMMPair(pair.pos, pair.neg, 0.5, target)
        X, y, comp = check.draw(n_check, rng=gen)
        p = pair.posterior(X)
        for k in range(K):
            yk = y[comp == k]
            n_min = min(yk.sum(), (~yk).sum())
            if n_min < 20:
                continue
            if abs(roc_auc_score(yk, p[comp == k]) - target[k]) > 4.0 / np.sqrt(n_min):
                break
        else:
            return pair
        spread *= 1.3
    raise RuntimeError(f"no placement of {K} clusters in {D} dimensions kept every cluster's AUC "
                       f"at its design value after {max_tries} tries")


#: cluster centres are kept at least this many (largest) sigmas apart, plus the offsets
SEPARATION = 6.0


def _mixture(amp: np.ndarray, mean: np.ndarray, covar: np.ndarray) -> GMM:
    g = GMM(len(amp), mean.shape[1])
    g.amp, g.mean, g.covar = amp, mean, covar
    return g
