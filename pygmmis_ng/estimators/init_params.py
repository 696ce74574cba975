"""The initialization of an estimator: scikit-learn's ``init_params`` and ``*_init`` arrays
as an init callback of :mod:`pygmmis_ng.fitting.starts.init`."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data.validation import check_int
from ..fitting.em.mstep import check_covariance_type, constrain
from ..fitting.starts.init import resolve_init, takes_weight
from ..model import GMM
from .gaussian_params import check_means_init, check_weights_init, covariances_from_precisions

#: scikit-learn's init_params and the initializations of :mod:`pygmmis_ng.fitting.starts.init` they are
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



def init_callback(method: Any, weights_init: Any, means_init: Any, precisions_init: Any,
                  K: int, D: int, covariance_type: str, reg_covar: float) -> Any:
    """The initialization of ``init_params`` (``method``), then the ``*_init`` arrays in
    their place, checked before the fit (scikit-learn's messages)."""
    K = check_int(K, "n_components", minimum=1)
    check_covariance_type(covariance_type)
    weights = None if weights_init is None else check_weights_init(weights_init, K)
    means = None if means_init is None else check_means_init(means_init, K, D)
    covs = None if precisions_init is None else covariances_from_precisions(
        precisions_init, covariance_type, K, D)
    if isinstance(method, str):
        method = SKLEARN_INIT.get(method, method)
    base = resolve_init(method)
    if weights is None and means is None and covs is None:
        return base
    return _overridden(None if all(v is not None for v in (weights, means, covs)) else base,
                       weights, means, covs, covariance_type, float(reg_covar))
