"""scikit-learn estimator over :func:`pygmmis_ng.fit`: :class:`IncompleteGaussianMixture`.

A thin shell: the parameters are those of ``fit`` under sklearn's names
and meanings of :class:`sklearn.mixture.GaussianMixture` (``covariance_type``,
``reg_covar``, ``*_init``, ``warm_start``, ``verbose`` ...), fitted attributes follow
it (``weights_``, ``means_``, ``covariances_``, ``precisions_`` ...), and NaN in
``X`` marks missing features (exact marginals, see :mod:`pygmmis_ng.data.observed`).
Per-sample noise and weights go to ``fit(X, covar=..., sample_weight=...)``.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, validate_data

from ..data.censoring import check_censored
from ..data.lazy import is_lazy
from ..data.validation import check_dtype, check_numeric
from ..fitting.fitter import fit
from ..fitting.partial import partial_fit
from ..fitting.problem.option_entries import LEARNING_DECAY, LEARNING_OFFSET, TABLE
from ..fitting.problem.option_table import check_options, documented, options_on
from ..fitting.problem.progress import verbose_output
from ..fitting.problem.result import FitResult, count_params
from ..model import GMM
from .fitted_mixture import FittedMixture
from .init_params import init_callback


class IncompleteGaussianMixture(FittedMixture, DensityMixin, BaseEstimator):
    """Gaussian mixture for noisy, incomplete (selected) and partly missing data.

    The parameters of :class:`sklearn.mixture.GaussianMixture` come first and
    mean what they mean there (differences: ``init_params`` also takes the
    names of :func:`pygmmis_ng.fit` and callables, ``max_iter`` defaults to
    1000, ``lower_bound_`` is the mean log-likelihood of the returned model,
    see the README's "Coming from scikit-learn"); the others are those of
    :func:`pygmmis_ng.fit`.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    weights_ : ndarray (K,)
    means_ : ndarray (K, D)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shaped by ``covariance_type`` as in scikit-learn.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per sample of the fitted model (FitResult.logL).
    lower_bounds_ : list of float
        The mean log-likelihood of each iterate.
    background_amp_ : float or None
    n_steps_ : int
        Minibatch updates made by online EM (``batch_size``, ``partial_fit``); 0 otherwise.
    online_state_ : OnlineState or None
        What ``partial_fit`` continues from (running statistics, update count).
    fitted_with_noise_ : bool
        Whether ``fit`` got ``covar``; scoring without ``covar`` then warns
        (:class:`~pygmmis_ng.estimators.scoring.NoiseWarning`).
    gmm_ : GMM
        The fitted model (density, draws, conditioning ...).
    fit_result_ : FitResult
    n_features_in_ : int

    Notes
    -----
    In cross-validation (``GridSearchCV``, ``cross_val_score``) per-sample
    ``covar`` must be routed to both ``fit`` and ``score``, or the held-out
    folds are scored without their noise: ``sklearn.set_config(
    enable_metadata_routing=True)`` and ``est.set_fit_request(covar=True)
    .set_score_request(covar=True)``. A class with a single sample (or only
    identical samples) has no scale of its own: its covariance falls back to
    the identity in data units.
    """

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full",
                 tol: float = 1e-3, reg_covar: float = 1e-6, max_iter: int = 1000,
                 n_init: int = 1, init_params: Any = "kmeans", weights_init: Any = None,
                 means_init: Any = None, precisions_init: Any = None, random_state: Any = None,
                 warm_start: bool = False, verbose: int = 0, verbose_interval: int = 10,
                 w: float = 0.0, cutoff: float | None = None, sel_callback: Any = None,
                 oversampling: int = 10, covar_callback: Any = None, background: Any = None,
                 split_n_merge: int = 0, n_jobs: int = 1, accelerate: bool | str = True,
                 client: Any = None, dtype: Any = np.float64, progress: bool | None = None,
                 batch_size: int | None = None, n_passes: int | None = None,
                 finish: int | bool = 0, shuffle: bool = True,
                 learning_decay: float = LEARNING_DECAY,
                 learning_offset: float = LEARNING_OFFSET, init_method: Any = None) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.w = w
        self.cutoff = cutoff
        self.sel_callback = sel_callback
        self.oversampling = oversampling
        self.covar_callback = covar_callback
        self.background = background
        self.split_n_merge = split_n_merge
        self.n_jobs = n_jobs
        self.accelerate = accelerate
        self.client = client
        self.dtype = dtype
        self.progress = progress
        self.batch_size = batch_size
        self.n_passes = n_passes
        self.finish = finish
        self.shuffle = shuffle
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.init_method = init_method

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True        # NaN = a missing feature
        return tags

    # -- fitting ---------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, covar: Any = None,
            sample_weight: Any = None, censored: Any = None) -> IncompleteGaussianMixture:
        """Fit the mixture to X (n_samples, n_features); NaN marks missing features.

        Parameters
        ----------
        X : array-like (N, D), or with ``client`` a dask array (kept on the cluster)
        y : ignored
        covar : None, (D, D) or (N, D, D) noise covariance of the samples
        sample_weight : None or (N,) non-negative weights
        censored : None or (N, D) of -1, 0, +1
            Upper (-1) and lower (+1) limits among X (see :func:`pygmmis_ng.fit`).
        """
        self._check_params()
        on_cluster = self.client is not None and is_lazy(X)
        if censored is not None and not on_cluster:   # void limits (+-inf) become NaN first
            X, censored = check_censored(censored, np.asarray(X, dtype=np.float64))
        if not on_cluster:      # a dask array stays on the cluster: the fit checks it there
            X, sample_weight = self._validated(X, sample_weight)
        elif X.ndim != 2:
            raise ValueError(f"X must have shape (n_samples, n_features), got {X.shape}")
        warm = self.warm_start and hasattr(self, "gmm_") and self.gmm_.K == self.n_components \
            and self.gmm_.D == X.shape[1]
        if warm:
            gmm, init, n_init = self.gmm_.copy(), "warm", 1
            background = None if self.background_ is None else self.background_.copy()
        else:
            init = self._init(X.shape[1])
            gmm, n_init = GMM(self.n_components, X.shape[1]), self.n_init
            background = None if self.background is None else self.background.copy()
        rng = check_random_state(self.random_state)
        options = dict(self._fit_options(), init_method=init, n_init=n_init,
                       background=background)
        with verbose_output(self.verbose, self.verbose_interval):
            res = fit(gmm, X, covar=covar, sample_weight=sample_weight, rng=rng,
                      censored=censored, **options)
        self._set_fitted(gmm, res, background)
        self.fitted_with_noise_ = covar is not None
        if on_cluster:
            self.n_features_in_ = gmm.D
        return self

    def _fit_options(self, path: str = "fit") -> dict:
        """The estimator's parameters as the options of ``fit`` (or ``partial_fit``), by the
        option table's names (``max_iter`` is ``maxiter`` ...)."""
        return {opt.name: getattr(self, opt.name_on("estimator"))
                for opt in options_on(TABLE, path)
                if "estimator" in opt.paths and opt.group not in ("entry", "data")}

    def partial_fit(self, X: Any, y: Any = None, covar: Any = None,
                    sample_weight: Any = None, censored: Any = None
                    ) -> IncompleteGaussianMixture:
        """Update the mixture with the samples X by online EM (data that arrive in pieces).

        The first call on an unfitted estimator initializes the model from X by
        ``init_params``; after ``fit`` the updates continue from the fitted model
        (after a full-batch fit as if one online pass over its rows had been
        made). Each call cuts X into minibatches of ``batch_size`` rows in the
        order given (X is one minibatch if ``batch_size`` is None) and makes one
        stepwise EM update per minibatch, the learning rate decaying over all
        calls (see :mod:`pygmmis_ng.fitting.partial`). Pieces of a split give the
        same model as ``fit`` with ``n_passes=1, shuffle=False`` over the same
        minibatches.

        Parameters
        ----------
        X : array-like (n, D); NaN marks missing features
        y : ignored
        covar : None, (D, D) or (n, D, D) noise covariance of the samples
        sample_weight : None or (n,) non-negative weights
        censored : None or (n, D) of -1, 0, +1
            Upper (-1) and lower (+1) limits among X (see :func:`pygmmis_ng.fit`).
        """
        self._check_params()
        first = getattr(self, "online_state_", None) is None
        fitted = hasattr(self, "gmm_") and self.gmm_.K == self.n_components
        if censored is not None:                     # void limits (+-inf) become NaN first
            X, censored = check_censored(censored, np.asarray(X, dtype=np.float64))
        X, sample_weight = self._validated(X, sample_weight, reset=not fitted)
        start_t, state = 0, None
        if not fitted:
            gmm, init = GMM(self.n_components, X.shape[1]), self._init(X.shape[1])
            background = None if self.background is None else self.background.copy()
        else:
            gmm, init, state = self.gmm_.copy(), "none", self.online_state_
            background = None if self.background_ is None else self.background_.copy()
            if first:          # after a full-batch fit: as if one pass over its rows had been made
                start_t = -(-self.fit_result_.n_samples // (self.batch_size or len(X)))
        options = dict(self._fit_options("partial_fit"), init_method=init,
                       background=background, progress=False)
        with verbose_output(self.verbose, self.verbose_interval):
            piece = partial_fit(gmm, X, covar=covar, sample_weight=sample_weight, state=state,
                                rng=check_random_state(self.random_state), start_t=start_t,
                                censored=censored, **options)
        self._set_fitted(gmm, self._piece_result(piece, gmm, X, sample_weight, background,
                                                 fitted), background)
        self.n_steps_ = piece.state.t
        self.online_state_ = piece.state
        self.fitted_with_noise_ = covar is not None or (fitted and self.fitted_with_noise_)
        return self

    def _piece_result(self, piece: Any, gmm: GMM, X: np.ndarray, sample_weight: Any,
                      background: Any, fitted: bool) -> FitResult:
        """A ``partial_fit`` call as a :class:`FitResult`: the samples seen so far, the
        piece's logL appended to the history; under a selection the original size follows
        the running selected fraction."""
        piece_w = float(len(X) if sample_weight is None else np.sum(sample_weight))
        seen = (0.0 if not fitted else self.fit_result_.weight_sum) + piece_w
        ratio = piece.orig_size / piece_w if piece_w > 0 and np.isfinite(piece.orig_size) else 1.0
        history = ([] if not fitted else list(self.lower_bounds_)) + [piece.logL]
        fit_bg = background is not None and background.adjust_amp
        free = {k: np.zeros(gmm.K, bool) for k in ("amp", "mean", "covar")}
        return FitResult(piece.logL, [None] * gmm.K, n_iter=piece.state.t, n_eval=piece.state.t,
                         converged=False, history=np.asarray(history), n_samples=len(X),
                         orig_size=seen * ratio, n_imputed=seen * (ratio - 1),
                         bg_amp=None if background is None else background.amp, n_reseeded=0,
                         n_ghosts=0, restarts_logL=np.array([piece.logL]), chosen=0,
                         n_params=count_params(gmm.K, gmm.D, free, fit_bg, self.covariance_type),
                         weight_sum=seen, elapsed=0.0, online=None, logL_se=0.0)

    def _check_params(self) -> None:
        """Every parameter by the option table (ints only, as in scikit-learn; the fit checks
        what needs the data before it changes anything)."""
        check_options(TABLE, {opt.name: getattr(self, opt.name_on("estimator"))
                              for opt in options_on(TABLE, "estimator")}, "estimator")

    def _validated(self, X: Any, sample_weight: Any, reset: bool = True) -> tuple:
        """X as scikit-learn checks it (float32 kept with ``dtype=float32``), the weights."""
        check_numeric(X, "X")
        keep = [np.float64, np.float32] if check_dtype(self.dtype) == np.float32 else np.float64
        X = validate_data(self, X, dtype=keep, ensure_all_finite="allow-nan",
                          ensure_min_samples=1, reset=reset)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return X, sample_weight

    def _init(self, D: int) -> Any:
        """The initialization: ``init_params`` (or the deprecated ``init_method``), then
        ``weights_init``, ``means_init`` and ``precisions_init``, checked before the fit."""
        method = self.init_params
        if self.init_method is not None:
            warnings.warn("init_method is deprecated; use init_params (scikit-learn's name)",
                          FutureWarning, stacklevel=3)
            method = self.init_method
        return init_callback(method, self.weights_init, self.means_init, self.precisions_init,
                             self.n_components, D, self.covariance_type, self.reg_covar)

    def fit_predict(self, X: Any, y: Any = None, covar: Any = None,
                    sample_weight: Any = None) -> np.ndarray:
        """Fit, then the most probable component of each sample of X, shape (N,)."""
        return self.fit(X, covar=covar, sample_weight=sample_weight).predict(X, covar=covar)


IncompleteGaussianMixture = documented(
    TABLE, "estimator", list(inspect.signature(IncompleteGaussianMixture).parameters)
)(IncompleteGaussianMixture)
