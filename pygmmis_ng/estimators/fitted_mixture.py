"""What a fitted mixture estimator does: its attributes, scores, predictions and draws.

:class:`FittedMixture` holds the methods of
:class:`~pygmmis_ng.estimators.mixture.IncompleteGaussianMixture` that use a
fitted model -- the scikit-learn attributes set from a fit (``weights_``,
``means_``, ``covariances_`` ...), the density of samples (marginal over
their measured features, with their noise), responsibilities, draws and the
information criteria of the observed data -- apart from how it is fitted.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ..data.censoring import check_censored
from ..data.observed import background_log_density_rows
from ..data.validation import check_int, check_numeric
from ..model import GMM
from .gaussian_params import precisions, precisions_cholesky, sklearn_covariances
from .scoring import observed_log_likelihood, warn_without_noise


class FittedMixture:
    """The fitted side of a mixture estimator (scikit-learn's attributes and methods)."""

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

    # -- evaluation ------------------------------------------------------------
    def _check(self, X: Any, censored: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """X as scikit-learn checks it, and its checked censoring flags (None: no limits)."""
        check_is_fitted(self)
        check_numeric(X, "X")
        C = None
        if censored is not None:      # void limits (+inf upper, -inf lower) become NaN first
            X, C = check_censored(censored, np.asarray(X, dtype=np.float64))
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                             reset=False), C

    def _log_members(self, X: np.ndarray, covar: Any, C: np.ndarray | None = None
                     ) -> np.ndarray:
        """log of each member's weighted density (N, K [+1 for the background]); ``C`` the
        checked censoring flags of :meth:`_check`."""
        lj = self.gmm_.log_joint(X, covar=covar, censored=C)
        bg = self.background_
        if bg is None or bg.amp == 0:
            return lj
        S = None if covar is None else np.asarray(covar, dtype=float)
        log_bg = background_log_density_rows(bg, X, S, C)
        return np.column_stack([lj + np.log1p(-bg.amp), log_bg + np.log(bg.amp)])

    def score_samples(self, X: Any, covar: Any = None, censored: Any = None) -> np.ndarray:
        """log density of each sample (marginal over its measured features), shape (N,).

        With a selection function this is the density before selection
        (multiply by Omega and divide by Z = N / orig_size for the observed one).
        ``censored`` (N, D) of -1, 0, +1: upper and lower limits among X (see
        :func:`pygmmis_ng.fit`); their term is the probability of lying beyond.
        """
        X, C = self._check(X, censored)
        warn_without_noise(getattr(self, "fitted_with_noise_", False), covar)
        lp = self._log_members(X, covar, C)
        mx = lp.max(axis=1, keepdims=True)
        return (mx + np.log(np.exp(lp - mx).sum(axis=1, keepdims=True)))[:, 0]

    def score(self, X: Any, y: Any = None, covar: Any = None, censored: Any = None) -> float:
        """Mean log density of the samples."""
        return float(self.score_samples(X, covar=covar, censored=censored).mean())

    def predict_proba(self, X: Any, covar: Any = None, censored: Any = None) -> np.ndarray:
        """Responsibilities of the K components, shape (N, K) (background excluded);
        ``censored`` as in :meth:`score_samples`."""
        X, C = self._check(X, censored)
        lp = self._log_members(X, covar, C)
        q = np.exp(lp - lp.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        return q[:, :self.n_components]

    def predict(self, X: Any, covar: Any = None, censored: Any = None) -> np.ndarray:
        """Most probable component of each sample, shape (N,)."""
        return self.predict_proba(X, covar=covar, censored=censored).argmax(axis=1)

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
        X = self._check(X)[0]
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
