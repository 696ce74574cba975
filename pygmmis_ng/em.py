"""fit(): the EM loop, convergence, frozen components, regularization, logging."""
from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from . import kernels
from ._validation import (
    check_covariances,
    check_data,
    check_float,
    check_frozen,
    check_int,
    check_noise,
    check_rng,
    check_weights,
)
from .init import data_variance, resolve_init, volume_filling_scale
from .model import GMM, eval_chunks
from .neighborhoods import chi2_cutoff, neighborhoods

logger = logging.getLogger("pygmmis_ng")

#: a component whose summed responsibility falls below this fraction of the
#: samples, or whose covariance has an eigenvalue below this fraction of the
#: data variance, has collapsed and is re-seeded
_COLLAPSE_EPS = 1e-12


class FitResult(tuple):
    """What :func:`fit` returns: unpacks as ``logL, U`` like pyGMMis.

    Attributes
    ----------
    logL : float
        Mean log-likelihood per sample of the fitted parameters:
        (1 / sum_i w_i) sum_i w_i log sum_k a_k N(x_i | m_k, V_k + S_i),
        the log of the noise-convolved density at each observed sample,
        averaged (pyGMMis 1.2.3 returns the sum over samples instead).
    U : list of K int arrays or None
        With ``cutoff``, the indices of the samples within ``cutoff`` of
        each component at the fitted parameters; otherwise ``None`` for
        each component (every sample belongs to every component).
    n_iter : int
        Number of EM updates (M-steps) performed.
    converged : bool
    history : ndarray (n_iter + 1,)
        Mean log-likelihood before each update and of the final parameters.
    n_samples : int
    n_reseeded : int
        How many times a collapsed component was re-seeded.
    elapsed : float
        Wall-clock seconds of the fit.
    """

    def __new__(cls, logL: float, U: list, **info: Any) -> FitResult:
        self = super().__new__(cls, (logL, U))
        for key, value in info.items():
            setattr(self, key, value)
        return self

    @property
    def logL(self) -> float:
        return self[0]

    @property
    def U(self) -> list:
        return self[1]

    def __repr__(self) -> str:
        return (f"FitResult(logL={self.logL:.6g}, n_iter={self.n_iter}, "
                f"converged={self.converged})")


def _not_yet(name: str, feature: str) -> NotImplementedError:
    return NotImplementedError(f"{name} is not supported by this release of pygmmis_ng "
                               f"({feature} is planned for a later one); leave it at its default")


def _check_frozen_params(gmm: GMM, masks: dict[str, np.ndarray]) -> None:
    """Frozen parameters are kept from the GMM as passed: they must be valid."""
    fa, fm, fc = masks["amp"], masks["mean"], masks["covar"]
    if fa.any():
        if fa.all():
            raise ValueError("all amplitudes are frozen; freeze 'mean' and 'covar' instead")
        a = gmm.amp[fa]
        if not np.isfinite(a).all() or (a < 0).any() or a.sum() >= 1:
            raise ValueError("frozen amplitudes must be finite, non-negative and sum to < 1")
    if fm.any() and not np.isfinite(gmm.mean[fm]).all():
        raise ValueError("frozen means must be finite: set gmm.mean for the frozen components")
    if fc.any():
        check_covariances(gmm.covar[fc], gmm.D, "frozen GMM.covar", positive_definite=True)


def m_step(stats: kernels.SufficientStats, amp: np.ndarray, mean: np.ndarray,
           covar: np.ndarray, w: float, frozen: dict[str, np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New parameters from the sufficient statistics.

    Means: m_k + Mc_k / A_k. Covariances are centred on the new mean (on the
    frozen one if the mean is frozen). With ``w > 0`` the pyGMMis
    regularization V_k = (C_k + w_eff I) / (A_k + 1) with
    w_eff = w^2 (N / K + 1) is applied, otherwise V_k = C_k / A_k.
    Amplitudes are A_k / sum A; with frozen amplitudes the free ones share
    what the frozen ones leave.
    """
    K, D = mean.shape
    A = stats.A
    A_safe = np.where(A > 0, A, 1.0)
    delta = stats.Mc / A_safe[:, None]
    free_m = ~frozen["mean"]
    free_c = ~frozen["covar"]
    free_a = ~frozen["amp"]
    new_mean = mean.copy()
    new_mean[free_m] += delta[free_m]
    C = stats.Cc.copy()
    C[free_m] -= A[free_m, None, None] * delta[free_m, :, None] * delta[free_m, None, :]
    if w > 0:
        w_eff = w**2 * (A.sum() / K + 1)
        V = (C + w_eff * np.eye(D)) / (A + 1)[:, None, None]
    else:
        V = C / A_safe[:, None, None]
    new_covar = covar.copy()
    new_covar[free_c] = 0.5 * (V[free_c] + np.swapaxes(V[free_c], 1, 2))
    new_amp = amp.copy()
    if free_a.all():
        new_amp = A / A.sum()
    else:
        new_amp[free_a] = A[free_a] / A[free_a].sum() * (1 - amp[~free_a].sum())
    return new_amp, new_mean, new_covar


def _renormalize_free(amp: np.ndarray, frozen_amp: np.ndarray) -> None:
    """Scale the free amplitudes in place so that all sum to 1 around the frozen ones."""
    free = ~frozen_amp
    amp[free] *= (1 - amp[frozen_amp].sum()) / amp[free].sum()


def _collapsed(A: np.ndarray, covar: np.ndarray, total: float, scale2: float) -> np.ndarray:
    """Components with (almost) no samples or a (numerically) singular covariance."""
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(covar).all(axis=(1, 2))
        eig_min = np.full(len(A), -np.inf)
        if finite.any():
            eig_min[finite] = np.linalg.eigvalsh(covar[finite])[:, 0]
    return (A <= _COLLAPSE_EPS * total) | (eig_min <= _COLLAPSE_EPS * scale2)


def _log_row(it: int, N: int, logL: float, delta: float | None, stable: int | None) -> None:
    d = "" if delta is None else f"{delta:+.3e}"
    s = "" if stable is None else str(stable)
    logger.info("%4d  %9d  %12.6f  %10s  %6s", it, N, logL, d, s)


def fit(gmm: GMM, data: Any, covar: Any = None, R: Any = None, init_method: Any = "random",
        w: float = 0.0, cutoff: float | None = None, sel_callback: Any = None,
        oversampling: int = 10, covar_callback: Any = None, background: Any = None,
        tol: float = 1e-3, miniter: int = 1, maxiter: int = 1000, frozen: Any = None,
        split_n_merge: int | bool = False, rng: Any = None, n_jobs: int = 1,
        sample_weight: Any = None) -> FitResult:
    """Fit the GMM to (noisy) samples by EM, in place.

    Parameters
    ----------
    gmm : GMM
        The model; its parameters are replaced by the fit (only when the
        fit completes: on an error the GMM is left as it was).
    data : array-like (N, D)
    covar : None, array-like (D, D) or (N, D, D)
        Noise covariance shared by all samples, or one per sample. The fit
        then deconvolves: it returns the intrinsic mixture whose convolution
        with the noise best explains the data (extreme deconvolution).
    R : None
        Projections (not supported yet).
    init_method : {'random', 'minmax', 'kmeans', 'gmm', 'none'} or callable
        See :mod:`pygmmis_ng.init`.
    w : float >= 0
        Covariance regularization in data units, as in pyGMMis: a lower
        bound on the isotropic dispersion of the components.
    cutoff : float > 0 or None
        Neighborhood size in 1D-equivalent sigmas for the returned ``U``.
        The fit is exact either way.
    sel_callback, oversampling, covar_callback, background, split_n_merge
        Imputation, background and split'n'merge: not supported yet.
    tol : float >= 0
        Stop when the mean log-likelihood changes by less than
        ``tol * max(1, |logL|)`` between iterations and no component mean
        moved by more than 0.1 (1D-equivalent) sigma.
    miniter, maxiter : int
        Minimum and maximum number of EM updates. A ConvergenceWarning is
        issued when maxiter is reached without convergence.
    frozen : None, sequence of int, or dict
        Components (or, as a dict with keys 'amp', 'mean', 'covar', single
        parameters of components) kept at the values the GMM has on entry.
    rng : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of all randomness (initialization, re-seeding).
    n_jobs : int
        Accepted for forward compatibility; the fit currently runs in one process.
    sample_weight : None or array-like (N,)
        Non-negative per-sample weights (an integer weight counts a sample
        that many times).

    Returns
    -------
    FitResult
        Unpacks as ``logL, U``; see :class:`FitResult` for the rest.
    """
    t0 = time.perf_counter()
    # ---- validate everything before touching the model --------------------
    if not isinstance(gmm, GMM):
        raise TypeError(f"gmm must be a pygmmis_ng.GMM, got {type(gmm).__name__}")
    K, D = gmm.K, gmm.D
    X = check_data(data, D)
    N = X.shape[0]
    if N < K:
        raise ValueError(f"K={K} components cannot be fitted to N={N} samples: need N >= K")
    span = np.ptp(X, axis=0)
    span = span[span > 0]
    if span.size and not (span.min() > 1e-100 and span.max() < 1e100):
        raise ValueError(f"data spread {span.min():.3g}..{span.max():.3g} is outside 1e-100..1e100, "
                         "where covariances cannot be represented in float64: rescale the data")
    S = check_noise(covar, N, D)
    weight = check_weights(sample_weight, N)
    init = resolve_init(init_method)
    w = check_float(w, "w", minimum=0.0)
    tol = check_float(tol, "tol", minimum=0.0)
    cutoff = check_float(cutoff, "cutoff", minimum=0.0, strict=True, allow_none=True)
    miniter = check_int(miniter, "miniter", minimum=0)
    maxiter = check_int(maxiter, "maxiter", minimum=0)
    if miniter > maxiter:
        raise ValueError(f"miniter={miniter} must not exceed maxiter={maxiter}")
    check_int(oversampling, "oversampling", minimum=1)
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive int or -1 (all cores), got {n_jobs}")
    masks = check_frozen(frozen, K)
    _check_frozen_params(gmm, masks)
    gen = check_rng(rng)
    for name, value, feature in (("R", R, "fitting projected data"),
                                 ("sel_callback", sel_callback, "imputation of unselected samples"),
                                 ("covar_callback", covar_callback, "imputation of unselected samples"),
                                 ("background", background, "a uniform background"),
                                 ("split_n_merge", split_n_merge or None, "split'n'merge")):
        if value is not None:
            raise _not_yet(name, feature)

    # ---- initialize a working copy ----------------------------------------
    work = gmm.copy()
    init(work, X, covar=S, rng=gen)
    for key in ("amp", "mean", "covar"):
        if masks[key].any():
            getattr(work, key)[masks[key]] = getattr(gmm, key)[masks[key]]
    if masks["amp"].any():
        _renormalize_free(work.amp, masks["amp"])
    try:
        work.validate()
    except ValueError as exc:
        raise ValueError(f"the initialization produced an invalid GMM: {exc}") from None

    # ---- EM on centred data -----------------------------------------------
    center = np.average(X, axis=0, weights=weight)
    Xc = X - center
    amp, mean, covar_k = work.amp.copy(), work.mean - center, work.covar.copy()
    per_sample = S is not None and S.ndim == 3
    shared = S if S is not None and S.ndim == 2 else None
    chunks = eval_chunks(N, K, D, per_sample)
    scale2 = data_variance(X)
    reseed_scale = volume_filling_scale(X, K)
    shift_limit = chi2_cutoff(D, 0.1)

    logger.info("%4s  %9s  %12s  %10s  %6s", "ITER", "SAMPLES", "LOG_L", "DELTA", "STABLE")
    history: list[float] = []
    converged = False
    n_reseeded = 0
    prev_mean = prev_chol = None
    it = 0
    while True:
        comps = kernels.prepare_components(amp, mean, covar_k, shared)
        stats = kernels.SufficientStats.zeros(K, D)
        for sl in chunks:
            stats += kernels.chunk_stats(Xc[sl], comps, S[sl] if per_sample else None,
                                         None if weight is None else weight[sl])
        logL = stats.logL / stats.weight
        if not np.isfinite(logL):
            raise FloatingPointError("the log-likelihood is not finite; check the data scale "
                                     "and the noise covariances")
        delta = stable = None
        if history:
            delta = logL - history[-1]
            r = np.linalg.solve(prev_chol, (mean - prev_mean)[:, :, None])[:, :, 0]
            stable = int(np.sum((r**2).sum(axis=1) <= shift_limit))
        history.append(logL)
        _log_row(it, N, logL, delta, stable)
        if delta is not None and it >= miniter and abs(delta) < tol * max(1.0, abs(logL)) \
                and stable == K:
            converged = True
            break
        if it >= maxiter:
            break
        prev_mean, prev_chol = mean, np.linalg.cholesky(covar_k)
        amp, mean, covar_k = m_step(stats, amp, mean, covar_k, w, masks)
        bad = _collapsed(stats.A, covar_k, stats.weight, scale2) & ~masks["covar"]
        for k in np.flatnonzero(bad):
            logger.warning("component %d collapsed (amplitude %.3g); re-seeding it at a random "
                           "sample (consider w > 0 or a smaller K)", k, amp[k])
            mean[k] = Xc[gen.integers(N)]
            covar_k[k] = reseed_scale**2 * np.eye(D)
            if not masks["amp"][k]:
                amp[k] = 1.0 / K
            n_reseeded += 1
        if bad.any():
            _renormalize_free(amp, masks["amp"])
        it += 1

    if not converged and maxiter > 0:
        warnings.warn(f"EM did not converge within maxiter={maxiter} iterations (last change of "
                      f"mean logL: {history[-1] - history[-2]:.3g}); increase maxiter or tol",
                      ConvergenceWarning, stacklevel=2)
    elif converged:
        logger.info("converged after %d iterations: mean logL %.6f", it, logL)

    U: list = [None] * K
    if cutoff is not None:
        U = neighborhoods(Xc, comps, S if per_sample else None, chunks, cutoff)

    gmm.amp, gmm.mean, gmm.covar = amp, mean + center, covar_k
    return FitResult(float(logL), U, n_iter=it, converged=converged,
                     history=np.asarray(history), n_samples=N, n_reseeded=n_reseeded,
                     elapsed=time.perf_counter() - t0)
