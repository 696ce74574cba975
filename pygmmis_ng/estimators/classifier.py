"""Generative classifier: one Gaussian mixture per class and the class priors (Bayes' rule).

The "not-so-naive Bayes" of the seed workflow 001 with a mixture instead of a
kernel density per class::

    p(c | x) = p(x | c) P(c) / sum_c' p(x | c') P(c')

Each class density is an :class:`~pygmmis_ng.estimators.mixture.IncompleteGaussianMixture`,
so training and test samples may have missing features (NaN: the class
densities are then marginals over the measured ones) and per-sample noise.
The dispersion floor ``w`` of each class is chosen from its data by default
(:func:`~pygmmis_ng.estimators.regularization.choose_w`).
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..data.censoring import check_censored
from ..data.validation import check_noise, check_numeric
from ..fitting.problem.option_entries import TABLE
from ..fitting.problem.option_table import check_options, documented, options_on
from ..fitting.problem.progress import fit_progress
from .mixture import IncompleteGaussianMixture
from .regularization import choose_w

#: the classifier's options that each class's mixture gets its own way (or not at all)
OWN_PER_CLASS = ("n_components", "w", "init_method", "init_method_deprecated", "progress")


class GenerativeClassifier(ClassifierMixin, BaseEstimator):
    """Bayes classifier with a Gaussian mixture per class.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    class_prior_ : ndarray (n_classes,)
    estimators_ : list of IncompleteGaussianMixture, one per class
    n_iter_ : ndarray (n_classes,) EM iterations of each class's fit
    w_ : ndarray (n_classes,)
        The dispersion floor each class was fitted with (``w`` itself when it
        is a float).
    n_features_in_ : int
    """

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full",
                 w: float | str = "auto", init_params: Any = "kmeans", n_init: int = 1,
                 tol: float = 1e-3, reg_covar: float = 0.0, max_iter: int = 1000,
                 priors: Any = None, random_state: Any = None, verbose: int = 0,
                 verbose_interval: int = 10, n_jobs: int = 1, progress: bool | None = None,
                 init_method: Any = None) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.w = w
        self.init_params = init_params
        self.n_init = n_init
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.priors = priors
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_jobs = n_jobs
        self.progress = progress
        self.init_method = init_method

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any, covar: Any = None,
            sample_weight: Any = None, censored: Any = None) -> GenerativeClassifier:
        """Fit one mixture per class.

        Parameters
        ----------
        X : array-like (N, D), NaN for missing features
        y : array-like (N,) class labels
        covar : None, (D, D) or (N, D, D) noise of the samples
        sample_weight : None or (N,)
        censored : None or (N, D) of -1, 0, +1
            Upper (-1) and lower (+1) limits among X (see :func:`pygmmis_ng.fit`); ``w='auto'``
            sees the limits as values.
        """
        check_options(TABLE, {opt.name: getattr(self, opt.name_on("classifier"))
                              for opt in options_on(TABLE, "classifier")}, "classifier")
        check_numeric(X, "X")
        if censored is not None:                     # void limits (+-inf) become NaN first
            X, censored = check_censored(censored, np.asarray(X, dtype=np.float64))
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        w = None if isinstance(self.w, str) else float(self.w)      # "auto": per class
        init = self.init_params
        if self.init_method is not None:
            warnings.warn("init_method is deprecated; use init_params (scikit-learn's name)",
                          FutureWarning, stacklevel=2)
            init = self.init_method
        S = check_noise(covar, X.shape[0], X.shape[1], observed=~np.isnan(X))
        self.estimators_ = []
        self.w_ = np.zeros(len(self.classes_))
        with fit_progress(self.progress, desc="classes", unit="class", total=len(self.classes_)) as clock:
            for c in range(len(self.classes_)):
                self.estimators_.append(self._fit_class(X, y_idx, sw, S, w, init, c, censored))
                if clock.bar is not None:
                    clock.bar.update(1)
        self.n_iter_ = np.array([est.n_iter_ for est in self.estimators_])
        counts = np.bincount(y_idx, weights=sw, minlength=len(self.classes_))
        if self.priors is None:
            self.class_prior_ = counts / counts.sum()
        else:
            p = np.asarray(self.priors, dtype=float)
            if p.shape != (len(self.classes_),) or (p < 0).any() or not np.isclose(p.sum(), 1):
                raise ValueError(f"priors must be {len(self.classes_)} non-negative numbers "
                                 "summing to 1, in the order of classes_")
            self.class_prior_ = p
        return self

    def _fit_class(self, X: np.ndarray, y_idx: np.ndarray, sw: np.ndarray, S: Any,
                   w: float | None, init: Any, c: int, C: np.ndarray | None = None
                   ) -> IncompleteGaussianMixture:
        """The mixture of class ``c``, fitted to its rows (its ``w`` into ``w_[c]``)."""
        rows = (y_idx == c) & (sw > 0)
        if not rows.any():
            raise ValueError(f"class {self.classes_[c]!r} has no sample with a positive weight")
        Sc = S if S is None or S.ndim == 2 else S[rows]
        self.w_[c] = choose_w(X[rows], Sc, sw[rows]) if w is None else w
        shared = {opt.name_on("estimator"): getattr(self, opt.name_on("classifier"))
                  for opt in options_on(TABLE, "classifier")
                  if "estimator" in opt.paths and opt.name not in OWN_PER_CLASS}
        est = IncompleteGaussianMixture(
            min(self.n_components, int(rows.sum())), **shared, init_params=init,
            w=float(self.w_[c]))
        est.fit(X[rows], covar=Sc, sample_weight=sw[rows],
                censored=None if C is None else C[rows])
        return est

    def _joint_log_likelihood(self, X: Any, covar: Any, censored: Any = None) -> np.ndarray:
        check_is_fitted(self)
        check_numeric(X, "X")
        if censored is not None:
            X, censored = check_censored(censored, np.asarray(X, dtype=np.float64))
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.class_prior_)
        return np.column_stack([est.score_samples(X, covar=covar, censored=censored) + lp
                                for est, lp in zip(self.estimators_, log_prior)])

    def predict_log_proba(self, X: Any, covar: Any = None, censored: Any = None) -> np.ndarray:
        """log p(c | x) for every class, shape (N, n_classes) (``censored`` as in ``fit``)."""
        jll = self._joint_log_likelihood(X, covar, censored)
        mx = jll.max(axis=1, keepdims=True)
        return jll - (mx + np.log(np.exp(jll - mx).sum(axis=1, keepdims=True)))

    def predict_proba(self, X: Any, covar: Any = None, censored: Any = None) -> np.ndarray:
        """p(c | x) for every class, shape (N, n_classes)."""
        return np.exp(self.predict_log_proba(X, covar=covar, censored=censored))

    def predict(self, X: Any, covar: Any = None, censored: Any = None) -> np.ndarray:
        """The most probable class of each sample."""
        jll = self._joint_log_likelihood(X, covar, censored)
        return self.classes_[jll.argmax(axis=1)]


GenerativeClassifier = documented(
    TABLE, "classifier", list(inspect.signature(GenerativeClassifier).parameters)
)(GenerativeClassifier)
