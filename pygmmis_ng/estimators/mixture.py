"""scikit-learn estimator over :func:`pygmmis_ng.fit`: :class:`IncompleteGaussianMixture`.

A thin shell: the parameters are those of ``fit`` under sklearn's names
and meanings of :class:`sklearn.mixture.GaussianMixture` (``covariance_type``,
``reg_covar``, ``*_init``, ``warm_start``, ``verbose`` ...), fitted attributes follow
it (``weights_``, ``means_``, ``covariances_``, ``precisions_`` ...), and NaN in
``X`` marks missing features (exact marginals, see :mod:`pygmmis_ng.data.observed`).
Per-sample noise and weights go to ``fit(X, covar=..., sample_weight=...)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..data.lazy import is_lazy
from ..data.observed import background_log_density_rows
from ..data.validation import check_dtype, check_int, check_numeric
from ..fitting.fitter import fit
from ..fitting.progress import verbose_output
from ..fitting.schedule import LEARNING_DECAY, LEARNING_OFFSET
from ..model import GMM
from .gaussian_params import (
    precisions,
    precisions_cholesky,
    sklearn_covariances,
)
from .init_params import resolve_init_params
from .online import partial_fit_step
from .param_checks import MIXTURE_INT_PARAMS, check_int_params, check_switches
from .scoring import observed_log_likelihood, warn_without_noise


class IncompleteGaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture for noisy, incomplete (selected) and partly missing data.

    The parameters of :class:`sklearn.mixture.GaussianMixture` come first and
    mean what they mean there (differences: ``init_params`` also takes the
    names of :func:`pygmmis_ng.fit` and callables, ``max_iter`` defaults to
    1000, ``lower_bound_`` is the mean log-likelihood of the returned model,
    see the README's "Coming from scikit-learn"); the others are those of
    :func:`pygmmis_ng.fit`.

    Parameters
    ----------
    n_components : int
        Number of components K.
    covariance_type : {'full', 'diag', 'tied', 'spherical'}
        The covariance family (exact constrained M-steps, also for noisy,
        missing, selected or projected data).
    tol : float
        Convergence tolerance of the mean log-likelihood per sample (see
        :mod:`pygmmis_ng.fitting.convergence`).
    reg_covar : float
        Added to every variance in each M-step and in the initialization.
    max_iter : int
        Maximum number of EM updates; 0 returns the initialization.
    n_init : int
        Initializations; the best final log-likelihood is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, a name of
        :mod:`pygmmis_ng.fitting.init` ('minmax', 'gmm', ...), or a callable
        'random' is scikit-learn's (random responsibilities), not pyGMMis's.
    weights_init, means_init, precisions_init : None or array-like
        Initial weights (K,), means (K, D) and precisions (shaped by
        ``covariance_type`` as in scikit-learn); they replace what
        ``init_params`` gives.
    random_state : None, int or RandomState
    warm_start : bool
        Start each ``fit`` from the previous fit's parameters (one
        initialization; under a selection no k-means start competes).
    verbose : int
        0 silent, 1 the fit's messages, 2 also every ``verbose_interval``-th
        row of the iteration table (on ``sys.stdout``, via logging).
    verbose_interval : int
    w : float
        Lower bound on the component dispersion (data units).
    cutoff : float or None
        Neighborhood size in 1D-equivalent sigmas (None: exact).
    sel_callback, oversampling, covar_callback, background
        Selection function and imputation settings, uniform background
        (see :func:`pygmmis_ng.fit`). A background is copied for each fit;
        the fitted fraction is ``background_amp_``.
    split_n_merge : int
        Split'n'merge attempts after convergence.
    n_jobs : int
        Worker processes of the fit.
    client : None or dask.distributed.Client
        Fit on this Dask cluster (see :func:`pygmmis_ng.fit`).
    accelerate : bool or 'squarem'
        SQUAREM extrapolation (and the oversampling ramp) between EM updates,
        then Newton's method to the maximum where it applies (with the
        default ``reg_covar`` > 0 it does not; see :func:`pygmmis_ng.fit`);
        'squarem' the extrapolation only; a fit stopped by ``max_iter`` still
        returns a plain EM update.
    dtype : numpy.float64 or numpy.float32
        How the fit stores X, covar (and its checks keep float32 X as it is):
        float32 halves their memory; the arithmetic is float64 either way
        (see :func:`pygmmis_ng.fit`).
    progress : None, True or False
        A progress bar of the fit: None shows it in interactive sessions once
        the fit has run for 3 s (see :func:`pygmmis_ng.fit`).
    batch_size : int or None
        None: full-batch EM. An int: online (stepwise) EM over minibatches of
        about this many rows (``fit``), and the rows per minibatch of
        ``partial_fit`` (None there: each call's X is one minibatch).
    n_passes, finish, shuffle, learning_decay, learning_offset
        The online fit's passes, finishing full-batch EM, minibatch order and
        learning rate (see :func:`pygmmis_ng.fit`).
    init_method : None
        Deprecated name of ``init_params``.

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
            sample_weight: Any = None) -> IncompleteGaussianMixture:
        """Fit the mixture to X (n_samples, n_features); NaN marks missing features.

        Parameters
        ----------
        X : array-like (N, D), or with ``client`` a dask array (kept on the cluster)
        y : ignored
        covar : None, (D, D) or (N, D, D) noise covariance of the samples
        sample_weight : None or (N,) non-negative weights
        """
        self._check_params()
        on_cluster = self.client is not None and is_lazy(X)
        if not on_cluster:      # a dask array stays on the cluster: the fit checks it there
            check_numeric(X, "X")
            keep = [np.float64, np.float32] if check_dtype(self.dtype) == np.float32 else np.float64
            X = validate_data(self, X, dtype=keep, ensure_all_finite="allow-nan",
                              ensure_min_samples=1)
            if sample_weight is not None:
                sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
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
        with verbose_output(self.verbose, self.verbose_interval):
            res = fit(gmm, X, covar=covar, init_method=init, w=self.w, cutoff=self.cutoff,
                      sel_callback=self.sel_callback, oversampling=self.oversampling,
                      covar_callback=self.covar_callback, background=background, tol=self.tol,
                      maxiter=self.max_iter, split_n_merge=self.split_n_merge, rng=rng,
                      n_jobs=self.n_jobs, sample_weight=sample_weight, n_init=n_init,
                      accelerate=self.accelerate, covariance_type=self.covariance_type,
                      reg_covar=self.reg_covar, client=self.client, dtype=self.dtype,
                      progress=self.progress, **self._online_params())
        self._set_fitted(gmm, res, background)
        self.fitted_with_noise_ = covar is not None
        if on_cluster:
            self.n_features_in_ = gmm.D
        return self

    def _online_params(self) -> dict:
        return dict(batch_size=self.batch_size, n_passes=self.n_passes, finish=self.finish,
                    shuffle=self.shuffle, learning_decay=self.learning_decay,
                    learning_offset=self.learning_offset)

    def partial_fit(self, X: Any, y: Any = None, covar: Any = None,
                    sample_weight: Any = None) -> IncompleteGaussianMixture:
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
        """
        return partial_fit_step(self, X, covar, sample_weight)

    def _check_params(self) -> None:
        """The estimator's own switches and its integer parameters (ints only, as in
        scikit-learn; the fit checks the rest before it changes anything)."""
        check_switches(self)
        check_int_params(self, MIXTURE_INT_PARAMS)
        check_dtype(self.dtype)

    def _init(self, D: int) -> Any:
        """The initialization callback of ``init_params`` and the ``*_init`` arrays."""
        return resolve_init_params(self, D)

    def _set_fitted(self, gmm: GMM, res: Any, background: Any) -> None:
        ct = self.covariance_type
        self.gmm_ = gmm
        self.fit_result_ = res
        self.background_ = background
        self.background_amp_ = None if background is None else background.amp
        self.weights_ = gmm.amp.copy()
        self.means_ = gmm.mean.copy()
        self.covariances_ = sklearn_covariances(gmm.covar, ct)
        self.precisions_cholesky_ = precisions_cholesky(self.covariances_, ct)
        self.precisions_ = precisions(self.precisions_cholesky_, ct)
        self.converged_ = bool(res.converged)
        self.n_iter_ = int(res.n_iter)
        self.lower_bound_ = float(res.logL)
        self.lower_bounds_ = [float(v) for v in res.history]
        online = getattr(res, "online", None)
        self.n_steps_ = 0 if online is None else online.n_batches
        self.online_state_ = None if online is None else online.state

    def fit_predict(self, X: Any, y: Any = None, covar: Any = None,
                    sample_weight: Any = None) -> np.ndarray:
        """Fit, then the most probable component of each sample of X, shape (N,)."""
        return self.fit(X, covar=covar, sample_weight=sample_weight).predict(X, covar=covar)

    # -- evaluation ------------------------------------------------------------
    def _check(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        check_numeric(X, "X")
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                             reset=False)

    def _log_members(self, X: np.ndarray, covar: Any) -> np.ndarray:
        """log of each member's weighted density (N, K [+1 for the background])."""
        lj = self.gmm_.log_joint(X, covar=covar)
        bg = self.background_
        if bg is None or bg.amp == 0:
            return lj
        S = None if covar is None else np.asarray(covar, dtype=float)
        log_bg = background_log_density_rows(bg, X, S)
        return np.column_stack([lj + np.log1p(-bg.amp), log_bg + np.log(bg.amp)])

    def score_samples(self, X: Any, covar: Any = None) -> np.ndarray:
        """log density of each sample (marginal over its measured features), shape (N,).

        With a selection function this is the density before selection
        (multiply by Omega and divide by Z = N / orig_size for the observed one).
        """
        X = self._check(X)
        warn_without_noise(getattr(self, "fitted_with_noise_", False), covar)
        lp = self._log_members(X, covar)
        mx = lp.max(axis=1, keepdims=True)
        return (mx + np.log(np.exp(lp - mx).sum(axis=1, keepdims=True)))[:, 0]

    def score(self, X: Any, y: Any = None, covar: Any = None) -> float:
        """Mean log density of the samples."""
        return float(self.score_samples(X, covar=covar).mean())

    def predict_proba(self, X: Any, covar: Any = None) -> np.ndarray:
        """Responsibilities of the K components, shape (N, K) (background excluded)."""
        X = self._check(X)
        lp = self._log_members(X, covar)
        q = np.exp(lp - lp.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        return q[:, :self.n_components]

    def predict(self, X: Any, covar: Any = None) -> np.ndarray:
        """Most probable component of each sample, shape (N,)."""
        return self.predict_proba(X, covar=covar).argmax(axis=1)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draws from the fitted mixture (before selection, no noise) and their components.

        Returns X (n_samples, D) and y (n_samples,), the rows grouped by component
        in increasing order (as scikit-learn's).
        """
        check_is_fitted(self)
        n_samples = check_int(n_samples, "n_samples")
        if n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples} . The sampling requires "
                             "at least one sample.")
        rng = check_random_state(self.random_state)
        X, y = self.gmm_.draw(n_samples, rng=rng, return_component=True)
        order = np.argsort(y, kind="stable")         # grouped by component, as scikit-learn's
        return X[order], y[order]

    def _n_parameters(self) -> int:
        return self.fit_result_.n_params

    def _observed_score(self, X: Any, covar: Any) -> tuple[float, int]:
        """Mean log-likelihood of X as observed data (see :func:`.observed_log_likelihood`), N."""
        X = self._check(X)
        log_p = self.score_samples(X, covar=covar)
        res = self.fit_result_
        return observed_log_likelihood(log_p, X, self.sel_callback, res.weight_sum,
                                       res.orig_size), len(X)

    def bic(self, X: Any, covar: Any = None) -> float:
        """Bayesian information criterion on X: -2 N logL + n_params log N.

        logL is the observed-data log-likelihood: with ``sel_callback`` it
        includes log Omega and the selection normalization (see
        ``fit_result_.bic``), unlike :meth:`score`, the density before selection.
        """
        logL, n = self._observed_score(X, covar)
        return -2 * logL * n + self._n_parameters() * np.log(n)

    def aic(self, X: Any, covar: Any = None) -> float:
        """Akaike information criterion on X: -2 N logL + 2 n_params (logL as in :meth:`bic`)."""
        logL, n = self._observed_score(X, covar)
        return -2 * logL * n + 2 * self._n_parameters()
