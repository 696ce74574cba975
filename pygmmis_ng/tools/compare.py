"""Comparing mixtures: component matching and held-out scores."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..model import GMM


def match_components(fitted: GMM, truth: GMM) -> np.ndarray:
    """Order of ``fitted``'s components that best matches ``truth``'s.

    Components are paired by minimizing the summed squared distance of the
    means, each distance measured in units of the truth component's
    covariance (Hungarian algorithm).

    Returns
    -------
    perm : ndarray (truth.K,) of int
        ``fitted.mean[perm]`` lines up with ``truth.mean``.
    """
    if fitted.D != truth.D or fitted.K < truth.K:
        raise ValueError("need fitted.D == truth.D and fitted.K >= truth.K")
    cost = np.empty((truth.K, fitted.K))
    for k in range(truth.K):
        d = fitted.mean - truth.mean[k]
        cost[k] = np.einsum("nd,de,ne->n", d, np.linalg.inv(truth.covar[k]), d)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def heldout_logL(model: GMM, truth: GMM, size: int = 20000, rng=None) -> float:
    """Mean log-density under ``model`` of fresh noise-free draws from ``truth``."""
    return float(np.mean(model.logL(truth.draw(size, rng=rng))))
