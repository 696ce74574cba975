"""What :func:`pygmmis_ng.fit` returns."""
from __future__ import annotations

from typing import Any

import numpy as np


class FitResult(tuple):
    """What :func:`fit` returns: unpacks as ``logL, U`` like pyGMMis.

    Attributes
    ----------
    logL : float
        Mean log-likelihood per observed sample of the fitted parameters:
        (1 / sum_i w_i) sum_i w_i log p(x_i), with p the noise-convolved
        density of the mixture (plus background) at each observed sample:
        with missing values its marginal over the measured ones, with
        projections the density of R_i x + noise.
        With a ``sel_callback`` it is the log-density of the *observed*
        data, log[Omega(x_i) p(x_i) / Z] with Z = integral of Omega p
        (estimated by Monte Carlo from the imputation draws). pyGMMis 1.2.3
        returns the sum over samples instead.
    U : list of K int arrays or None
        With ``cutoff``, the indices of the samples within ``cutoff`` of
        each component at the fitted parameters; otherwise ``None`` for
        each component (every sample belongs to every component).
    n_iter : int
        Number of iterations of the returned run: moves to new parameters,
        by an EM update or (with ``accelerate``) an accepted extrapolation.
        With online EM (``batch_size``): the passes over the data, plus the
        iterations of the finishing full-batch EM.
    n_eval : int
        Number of E-steps the returned run computed: n_iter + 1 plus one
        per rejected extrapolation (the cost of the run).
    converged : bool
    history : ndarray (n_iter + 1,)
        Mean log-likelihood of the initial parameters and after each iteration
        (online EM: the evaluation slice's after each pass, then the finishing
        EM's exact values).
    n_samples : int
        Number of observed samples N.
    orig_size : float
        Estimated size N0 of the sample before selection (signal and
        background), N / Z; equals the (weighted) N without selection.
    n_imputed : float
        Estimated number of samples the selection removed, N0 - N.
    bg_amp : float or None
        Fitted background fraction (also written to ``background.amp``).
    n_reseeded : int
        How many times a component was re-seeded, over all restarts: a
        collapsed one, or a ghost of the selection (see ``n_ghosts``).
    n_ghosts : int
        How many times, over the runs that completed, a component whose mass had moved
        where the selection is ~0 was re-seeded at the data (see
        :mod:`pygmmis_ng.fitting.em.diagnostics`).
    restarts_logL : ndarray (runs,)
        The logL of every start when the starts were compared: the ``n_init``
        restarts, plus (with imputation from a start other than 'kmeans') a
        k-means start; -inf for a start that ran away. With imputation and
        ``accelerate`` the starts are compared after the first, cheap phase of
        the oversampling ramp, and only the chosen one is run to the end.
    chosen : int
        Index of the returned run in ``restarts_logL``.
    elapsed : float
        Wall-clock seconds of the fit.
    n_params : int
        Free parameters of the fit: K - 1 amplitudes, K D means, K D (D+1)/2
        covariance entries (fewer with ``frozen``), plus the background
        fraction if it was fitted.
    weight_sum : float
        The (weighted) number of observed samples N the logL is averaged over.
    logL_se : float
        Standard error of ``logL``: with a ``sel_callback`` its Monte-Carlo
        error (from the estimate of Z), with online EM and no ``finish`` the
        error of the evaluation slice's mean as an estimate of all rows'; 0
        when ``logL`` is exact.
    gap : float
        The estimated distance of ``logL`` to the maximum of the basin the fit
        is in. Where the Newton polish proved the maximum (see
        :mod:`pygmmis_ng.fitting.em.newton`): the Newton decrement g^T (-H)^-1 g / 2
        with the gradient g and Hessian H of the mean log-likelihood there,
        exact for a quadratic and below ``tol`` / 1000 when ``converged``;
        otherwise EM's estimate, its last gain plus the gain still to come at
        the rate of its slowest direction (:mod:`pygmmis_ng.fitting.em.convergence`);
        nan before two iterations.
    n_hessian : int
        Hessian passes over the data the Newton polish made (each costs a few
        E-steps; 0 where it did not run).
    online : OnlineReport or None
        With ``batch_size``: how the online passes went (passes, minibatches,
        the slice's logL after each pass, the prequential logL of each pass,
        the state ``partial_fit`` continues from), see
        :class:`pygmmis_ng.fitting.online.runner.OnlineReport`; None otherwise.
    """

    n_iter: int
    n_eval: int
    converged: bool
    history: np.ndarray
    n_samples: int
    orig_size: float
    n_imputed: float
    bg_amp: float | None
    n_reseeded: int
    n_ghosts: int
    restarts_logL: np.ndarray
    chosen: int
    elapsed: float
    n_params: int
    weight_sum: float
    logL_se: float
    gap: float
    n_hessian: int
    online: Any

    def __new__(cls, logL: float, U: list, **info: Any) -> FitResult:
        unknown = sorted(set(info) - set(FIELDS))
        if unknown:
            raise TypeError(f"FitResult has no field(s) {unknown}; its fields: {FIELDS}")
        missing = [name for name in FIELDS if name not in info and name not in DEFAULTS]
        if missing:
            raise TypeError(f"FitResult needs the field(s) {missing}")
        self = super().__new__(cls, (logL, U))
        for key in FIELDS:
            setattr(self, key, info.get(key, DEFAULTS.get(key)))
        return self

    def __reduce__(self):
        # pickle (and copy) through __new__ with the extra attributes as keywords
        return _rebuild, (type(self), self[0], self[1], dict(self.__dict__))

    @property
    def logL(self) -> float:
        return self[0]

    @property
    def U(self) -> list:
        return self[1]

    @property
    def bic(self) -> float:
        """Bayesian information criterion -2 N logL + n_params ln N (lower is better).

        With ``sel_callback``, logL is the observed-data log-likelihood including
        the selection normalization, so models fitted under the same selection
        compare fairly.
        """
        return -2.0 * self.weight_sum * self.logL + self.n_params * float(np.log(self.weight_sum))

    @property
    def aic(self) -> float:
        """Akaike information criterion -2 N logL + 2 n_params (lower is better)."""
        return -2.0 * self.weight_sum * self.logL + 2.0 * self.n_params

    def __repr__(self) -> str:
        return (f"FitResult(logL={self.logL:.6g}, n_iter={self.n_iter}, "
                f"converged={self.converged})")


#: the declared fields of a :class:`FitResult` besides ``logL`` and ``U``, and their defaults
FIELDS = tuple(FitResult.__annotations__)
DEFAULTS = {"logL_se": 0.0, "gap": float("nan"), "n_hessian": 0, "online": None}


def _rebuild(cls: type, logL: float, U: list, info: dict) -> FitResult:
    return cls(logL, U, **info)


def count_params(K: int, D: int, masks: dict, fit_bg_amp: bool,
                 covariance_type: str = "full") -> int:
    """Free parameters of a fit: amplitudes (sum fixed), means, covariances, background."""
    free_amp = int((~masks["amp"]).sum())
    free_covar = int((~masks["covar"]).sum())
    per_covar = {"full": D * (D + 1) // 2, "diag": D, "spherical": 1, "tied": 0}[covariance_type]
    n_covar = per_covar * free_covar
    if covariance_type == "tied" and free_covar:
        n_covar = D * (D + 1) // 2
    n = max(free_amp - 1, 0) + D * int((~masks["mean"]).sum()) + n_covar
    return n + int(fit_bg_amp)
