"""What the estimators' scores need beyond the density: the observed-data likelihood under a
selection, and a warning when noisy training data are scored as if noise-free."""
from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ..selection.imputation import evaluate_selection


class NoiseWarning(UserWarning):
    """An estimator fitted with noise (``covar``) was scored without any."""


def warn_without_noise(fitted_with_noise: bool, covar: Any, stacklevel: int = 3) -> None:
    """Warn if an estimator fitted with ``covar`` is scored with ``covar=None``.

    The fit deconvolved: the mixture is the density of the noise-free values.
    Scoring noisy samples without their noise compares them with that narrower
    density, so the score (and BIC, AIC) is too low and not comparable with
    the fit's. Noise-free samples are scored right with zero covariances.
    """
    if fitted_with_noise and covar is None:
        warnings.warn("the estimator was fitted with noise (covar) but is scored without any: "
                      "the score is that of noise-free samples under the deconvolved density. "
                      "Pass covar= for noisy samples (zeros if they are noise-free)",
                      NoiseWarning, stacklevel=stacklevel)


def observed_log_likelihood(log_p: np.ndarray, X: np.ndarray, sel_callback: Callable | None,
                            weight_sum: float, orig_size: float) -> float:
    """Mean observed-data log-likelihood from the density before selection ``log_p`` (N,).

    Without a selection that is the mean of ``log_p``; with one it is
    mean log[Omega(x) p(x)] - log Z, Z = weight_sum / orig_size of the fit, the
    likelihood the fit maximized (so criteria compare fairly across K).
    """
    if sel_callback is not None:
        omega = evaluate_selection(sel_callback, X, "X")
        if (omega == 0).any():
            i = np.flatnonzero(omega == 0)
            raise ValueError(f"sel_callback gives Omega = 0 for {i.size} sample(s) of X "
                             f"(first: row {i[0]}): under this selection they could not "
                             "have been observed, so the observed-data likelihood is 0 "
                             "(BIC/AIC infinite); score only samples the selection keeps")
        log_p = log_p + np.log(omega) - np.log(weight_sum / orig_size)
    return float(log_p.mean())
