"""The estimators' integer parameters: ints only, as in scikit-learn.

:func:`pygmmis_ng.fit` (pyGMMis's API) takes an integral float such as
``maxiter=K / 3`` for an int, as pyGMMis did under Python 2; the estimators
follow scikit-learn, whose ``GaussianMixture(max_iter=2.0)`` is refused.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data.validation import check_int

#: IncompleteGaussianMixture: name -> smallest value (None: no bound here, the fit checks it)
MIXTURE_INT_PARAMS = {"n_components": 1, "max_iter": 0, "n_init": 1, "verbose": 0,
                      "verbose_interval": 1, "oversampling": 1, "n_jobs": None,
                      "batch_size": 1, "n_passes": 1}
#: GenerativeClassifier
CLASSIFIER_INT_PARAMS = {"n_components": 1, "max_iter": 0, "n_init": 1, "verbose": 0,
                         "verbose_interval": 1, "n_jobs": None}


def check_int_params(est: Any, params: dict) -> None:
    """Refuse a non-int value of any of ``params`` (None passes for batch_size/n_passes)."""
    for name, minimum in params.items():
        value = getattr(est, name)
        if value is None and name in ("batch_size", "n_passes"):
            continue
        check_int(value, name, minimum=minimum, strict=True)


def check_switches(est: Any) -> None:
    """``warm_start`` a bool; ``accelerate`` a bool or 'squarem' (ValueError otherwise)."""
    if not isinstance(est.warm_start, (bool, np.bool_)):
        raise ValueError(f"warm_start must be True or False, got {est.warm_start!r}")
    if not (isinstance(est.accelerate, (bool, np.bool_)) or est.accelerate == "squarem"):
        raise ValueError(f"accelerate must be True, False or 'squarem', got {est.accelerate!r}")
