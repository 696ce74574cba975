"""scikit-learn estimator over :func:`pygmmis_ng.fit`: :class:`IncompleteGaussianMixture`.

A thin shell: the parameters are those of ``fit`` under sklearn's names
(``n_components``, ``max_iter``, ``random_state``), fitted attributes follow
:class:`sklearn.mixture.GaussianMixture` (``weights_``, ``means_``,
``covariances_``, ``converged_``, ``n_iter_``, ``lower_bound_``), and NaN in
``X`` marks missing features (exact marginals, see :mod:`pygmmis_ng.data.observed`).
Per-sample noise and weights go to ``fit(X, covar=..., sample_weight=...)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..data.observed import background_log_density_rows
from ..fitting.fitter import fit
from ..model import GMM
from ..selection.imputation import evaluate_selection


class IncompleteGaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture for noisy, incomplete (selected) and partly missing data.

    Parameters
    ----------
    n_components : int
        Number of components K.
    init_method : str or callable
        Initialization (see :mod:`pygmmis_ng.fitting.init`); 'kmeans' by default.
    n_init : int
        Initializations; the best final log-likelihood is kept.
    tol : float
        Relative convergence tolerance of the mean log-likelihood.
    max_iter : int
        Maximum number of EM iterations.
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
    random_state : None, int or RandomState
    n_jobs : int
        Worker processes of the fit.

    Attributes
    ----------
    weights_ : ndarray (K,);  means_ : ndarray (K, D);  covariances_ : ndarray (K, D, D)
    converged_ : bool;  n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per sample of the fitted model (FitResult.logL).
    background_amp_ : float or None
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

    def __init__(self, n_components: int = 1, *, init_method: Any = "kmeans", n_init: int = 1,
                 tol: float = 1e-3, max_iter: int = 1000, w: float = 0.0,
                 cutoff: float | None = None, sel_callback: Any = None, oversampling: int = 10,
                 covar_callback: Any = None, background: Any = None, split_n_merge: int = 0,
                 random_state: Any = None, n_jobs: int = 1) -> None:
        self.n_components = n_components
        self.init_method = init_method
        self.n_init = n_init
        self.tol = tol
        self.max_iter = max_iter
        self.w = w
        self.cutoff = cutoff
        self.sel_callback = sel_callback
        self.oversampling = oversampling
        self.covar_callback = covar_callback
        self.background = background
        self.split_n_merge = split_n_merge
        self.random_state = random_state
        self.n_jobs = n_jobs

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
        X : array-like (N, D)
        y : ignored
        covar : None, (D, D) or (N, D, D) noise covariance of the samples
        sample_weight : None or (N,) non-negative weights
        """
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                          ensure_min_samples=1)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        rng = check_random_state(self.random_state)
        gmm = GMM(self.n_components, X.shape[1])
        background = None if self.background is None else self.background.copy()
        res = fit(gmm, X, covar=covar, init_method=self.init_method, w=self.w,
                  cutoff=self.cutoff, sel_callback=self.sel_callback,
                  oversampling=self.oversampling, covar_callback=self.covar_callback,
                  background=background, tol=self.tol, maxiter=self.max_iter,
                  split_n_merge=self.split_n_merge, rng=rng, n_jobs=self.n_jobs,
                  sample_weight=sample_weight, n_init=self.n_init)
        self.gmm_ = gmm
        self.fit_result_ = res
        self.background_ = background
        self.background_amp_ = None if background is None else background.amp
        self.weights_ = gmm.amp.copy()
        self.means_ = gmm.mean.copy()
        self.covariances_ = gmm.covar.copy()
        self.converged_ = bool(res.converged)
        self.n_iter_ = int(res.n_iter)
        self.lower_bound_ = float(res.logL)
        return self

    # -- evaluation ------------------------------------------------------------
    def _check(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
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
        """Draws from the fitted mixture (before selection, no noise) and their components."""
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        rng = check_random_state(self.random_state)
        X, y = self.gmm_.draw(n_samples, rng=rng, return_component=True)
        return X, y

    def _n_parameters(self) -> int:
        return self.fit_result_.n_params

    def _observed_score(self, X: Any, covar: Any) -> tuple[float, int]:
        """Mean log-likelihood of X as observed data, and N.

        Without a selection function this is :meth:`score`; with one it is
        mean log[Omega(x) p(x)] - log Z, Z = N_fit / orig_size of the fit, the
        likelihood the fit maximized (so criteria compare fairly across K).
        """
        X = self._check(X)
        log_p = self.score_samples(X, covar=covar)
        if self.sel_callback is not None:
            with np.errstate(divide="ignore"):
                log_p = log_p + np.log(evaluate_selection(self.sel_callback, X, "X"))
            log_p = log_p - np.log(self.fit_result_.weight_sum / self.fit_result_.orig_size)
        return float(log_p.mean()), len(X)

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
