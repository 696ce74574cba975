"""The initialization of an estimator: scikit-learn's ``init_params`` and ``*_init`` arrays
as an init callback of :mod:`pygmmis_ng.fitting.init`."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..data.validation import check_int
from ..fitting.init import resolve_init, takes_weight
from ..fitting.mstep import check_covariance_type, constrain
from ..model import GMM
from .gaussian_params import check_means_init, check_weights_init, covariances_from_precisions

#: scikit-learn's init_params and the initializations of :mod:`pygmmis_ng.fitting.init` they are
SKLEARN_INIT = {"kmeans": "kmeans", "k-means++": "k-means++", "random": "random_resp",
                "random_from_data": "random_from_data"}


def _overridden(base: Any, weights: np.ndarray | None, means: np.ndarray | None,
                covs: np.ndarray | None, covariance_type: str, reg_covar: float) -> Any:
    """An init callback: ``base`` (its covariances in the family, plus ``reg_covar``), then the
    given weights, means and covariances in their place (``base`` None: all three given)."""
    def init(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
             sample_weight: Any = None) -> None:
        if base is not None:
            extra = {"sample_weight": sample_weight} if takes_weight(base) else {}
            base(gmm, data, covar=covar, rng=rng, **extra)
            gmm.covar = constrain(gmm.covar, gmm.amp, covariance_type) + reg_covar * np.eye(gmm.D)
        for name, value in (("amp", weights), ("mean", means), ("covar", covs)):
            if value is not None:
                setattr(gmm, name, value.copy())
    init.__name__ = "init_params with weights/means/precisions_init"
    return init



def resolve_init_params(est: Any, D: int) -> Any:
    """The initialization: ``init_params`` (or the deprecated ``init_method``), then
    ``weights_init``, ``means_init`` and ``precisions_init``, checked before the fit."""
    method = est.init_params
    if est.init_method is not None:
        warnings.warn("init_method is deprecated; use init_params (scikit-learn's name)",
                      FutureWarning, stacklevel=4)
        method = est.init_method
    K = check_int(est.n_components, "n_components", minimum=1)
    check_covariance_type(est.covariance_type)
    weights = None if est.weights_init is None else check_weights_init(est.weights_init, K)
    means = None if est.means_init is None else check_means_init(est.means_init, K, D)
    covs = None if est.precisions_init is None else covariances_from_precisions(
        est.precisions_init, est.covariance_type, K, D)
    if isinstance(method, str):
        method = SKLEARN_INIT.get(method, method)
    base = resolve_init(method)
    if weights is None and means is None and covs is None:
        return base
    return _overridden(None if all(v is not None for v in (weights, means, covs)) else base,
                       weights, means, covs, est.covariance_type, float(est.reg_covar))
