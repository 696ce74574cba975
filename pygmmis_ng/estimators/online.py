"""``IncompleteGaussianMixture.partial_fit``: online EM on data that arrive in pieces.

A thin shell over :func:`pygmmis_ng.fitting.partial.partial_fit`: the piece is
checked as ``fit`` checks X (the number of features must stay that of the
first piece), the model is initialized by the first piece or continues from
``fit`` (after a full-batch fit with the learning-rate counter of one pass over
its rows, so that the first steps do not undo it), and the fitted attributes
are those of ``fit``, with ``n_steps_`` the
minibatch updates so far and ``lower_bound_`` the piece's mean log-likelihood
at the parameters its minibatches were scored at (before their own update).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, validate_data

from ..data.validation import check_dtype, check_numeric
from ..fitting.partial import partial_fit
from ..fitting.progress import verbose_output
from ..fitting.restarts import count_params
from ..fitting.result import FitResult
from ..model import GMM


def partial_fit_step(est: Any, X: Any, covar: Any, sample_weight: Any) -> Any:
    """One ``partial_fit`` call of the estimator ``est`` (see the module docstring)."""
    est._check_params()
    first = getattr(est, "online_state_", None) is None
    fitted = hasattr(est, "gmm_") and est.gmm_.K == est.n_components
    check_numeric(X, "X")
    keep = [np.float64, np.float32] if check_dtype(est.dtype) == np.float32 else np.float64
    X = validate_data(est, X, dtype=keep, ensure_all_finite="allow-nan", ensure_min_samples=1,
                      reset=not fitted)
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    start_t = 0
    if not fitted:
        gmm, init, state = GMM(est.n_components, X.shape[1]), est._init(X.shape[1]), None
        background = None if est.background is None else est.background.copy()
    else:
        gmm, init = est.gmm_.copy(), "none"
        state = est.online_state_
        background = None if est.background_ is None else est.background_.copy()
        if first:          # after a full-batch fit: as if one pass over its rows had been made
            start_t = -(-est.fit_result_.n_samples // (est.batch_size or len(X)))
    with verbose_output(est.verbose, est.verbose_interval):
        piece = partial_fit(
            gmm, X, covar=covar, sample_weight=sample_weight, state=state,
            batch_size=est.batch_size, init_method=init, background=background,
            rng=check_random_state(est.random_state), w=est.w, n_jobs=est.n_jobs,
            reg_covar=est.reg_covar, covariance_type=est.covariance_type, client=est.client,
            dtype=est.dtype, learning_decay=est.learning_decay,
            learning_offset=est.learning_offset, progress=False, start_t=start_t)
    seen = (0.0 if not fitted else est.fit_result_.weight_sum) + \
        float(len(X) if sample_weight is None else np.sum(sample_weight))
    history = ([] if not fitted else list(est.lower_bounds_)) + [piece.logL]
    fit_bg = background is not None and background.adjust_amp
    res = FitResult(piece.logL, [None] * gmm.K, n_iter=piece.state.t, n_eval=piece.state.t,
                    converged=False, history=np.asarray(history), n_samples=len(X),
                    orig_size=seen, n_imputed=0.0,
                    bg_amp=None if background is None else background.amp, n_reseeded=0,
                    n_ghosts=0, restarts_logL=np.array([piece.logL]), chosen=0,
                    n_params=count_params(gmm.K, gmm.D, {k: np.zeros(gmm.K, bool) for k in
                                                         ("amp", "mean", "covar")}, fit_bg,
                                          est.covariance_type),
                    weight_sum=seen, elapsed=0.0, online=None, logL_se=0.0)
    est._set_fitted(gmm, res, background)
    est.n_steps_ = piece.state.t
    est.online_state_ = piece.state
    est.fitted_with_noise_ = covar is not None or (fitted and est.fitted_with_noise_)
    return est
