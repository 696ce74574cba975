"""The arguments of :func:`pygmmis_ng.fit`, checked once, before anything changes.

:func:`check_fit` turns the keywords into two validated objects that travel
together through the fit: :class:`Observations` (what was observed: data,
noise, projections, weights) and :class:`FitOptions` (how to fit). Every
check that can fail on bad input runs here, so a bad argument raises a
ValueError (or TypeError) that names it before the GMM, the background or
any random stream is touched.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..config import check_memory
from ..data.latent import fill_latent
from ..data.lazy import block_bounds, block_sum, ordered_sum, sample_index, total_weight
from ..data.validation import (
    check_accelerate,
    check_dtype,
    check_float,
    check_frozen,
    check_frozen_params,
    check_int,
    check_observed,
    check_rng,
    check_spread,
    check_weights,
    has_nan,
)
from ..execution.cluster import check_client
from ..model import GMM
from ..selection.background import Background, check_background
from ..selection.imputation import evaluate_selection
from .em_loop import MAX_DRAWS_PER_SAMPLE
from .init import InitCallback, resolve_init
from .mstep import check_covariance_type
from .out_of_core import check_lazy_input, check_observed_omega, log_terms, uses_cluster_data
from .progress import check_progress
from .schedule import LEARNING_DECAY, LEARNING_OFFSET, OnlineOptions, check_online

#: most initializations a fit accepts
MAX_N_INIT = 10_000
#: w^2 and reg_covar may be at most this many times the data's largest variance
MAX_FLOOR_RATIO = 1e6


class Observations(NamedTuple):
    """The observed samples of a fit, validated (rows in the order given).

    Attributes
    ----------
    X : ndarray (N, D), or (N, dy) with projections; NaN marks a missing value
        (a dask array when the samples stay on the cluster, see ``on_cluster``)
    R : None, ndarray (dy, D) or (N, dy, D)
    S : None, ndarray (D, D) or (N, D, D) (dy instead of D with R)
    weight : None or ndarray (N,)
    Z : ndarray (n, D)
        Latent points of the initialization rows (all rows, or a sample, see
        :mod:`pygmmis_ng.data.lazy`): the initialization, the data's centre and
        scales and the re-seeding see these. ``X`` itself for complete data
        without projections, else each sample's measured values completed by
        :func:`pygmmis_ng.data.latent.fill_latent`.
    log_omega_mean : float
        Weighted mean of log Omega over the samples (0 without selection).
    N_w : float
        The summed weight of all samples (N without weights).
    Z_weight : None or ndarray (n,)
        Weights of the initialization rows.
    Z_covar : None, ndarray (D, D) or (n, D, D)
        Noise of the initialization rows, for the initialization (None when
        ``Z`` are latent points rather than the data).
    on_cluster : bool
        The samples are dask arrays that stay on the cluster
        (:mod:`.out_of_core`).
    """

    X: Any
    R: np.ndarray | None
    S: Any
    weight: Any
    Z: np.ndarray
    log_omega_mean: float
    N_w: float
    Z_weight: np.ndarray | None
    Z_covar: Any
    on_cluster: bool = False


@dataclass(frozen=True)
class FitOptions:
    """How to fit: the keywords of :func:`pygmmis_ng.fit`, validated.

    ``background`` is a validated copy of the user's (the fit never writes
    to theirs before it completes), ``masks`` the frozen parameters as
    boolean (K,) masks per 'amp', 'mean' and 'covar', ``split_n_merge`` the
    number of attempts.
    """

    init: InitCallback
    w: float
    cutoff: float | None
    sel_callback: Callable | None
    covar_callback: Callable | None
    background: Background | None
    oversampling: int
    tol: float
    miniter: int
    maxiter: int
    masks: dict
    split_n_merge: int
    n_jobs: int
    n_init: int
    accelerate: bool
    covariance_type: str = "full"
    reg_covar: float = 0.0
    client: Any = None
    progress: bool | None = None
    online: OnlineOptions | None = None        # online (stepwise) EM; None: full-batch
    newton: bool = True                        # the Newton polish after SQUAREM

    @property
    def impute(self) -> bool:
        return self.sel_callback is not None


def check_fit(gmm: Any, data: Any, covar: Any, R: Any, sample_weight: Any, rng: Any,
              init_method: Any, w: Any, cutoff: Any, sel_callback: Any, oversampling: Any,
              covar_callback: Any, background: Any, tol: Any, miniter: Any, maxiter: Any,
              frozen: Any, split_n_merge: Any, n_jobs: Any, n_init: Any, accelerate: Any,
              covariance_type: Any = "full", reg_covar: Any = 0.0, client: Any = None,
              dtype: Any = np.float64, progress: Any = None, batch_size: Any = None,
              n_passes: Any = None, finish: Any = 0, shuffle: Any = True,
              learning_decay: Any = LEARNING_DECAY, learning_offset: Any = LEARNING_OFFSET,
              min_samples: int | None = None
              ) -> tuple[Observations, FitOptions, np.random.Generator]:
    """Validate every argument of a fit; see :func:`pygmmis_ng.fit` for their meaning.

    ``min_samples``: the fewest samples accepted (default K; a minibatch of an
    online update of a model already fitted may hold fewer).

    Returns
    -------
    observations : Observations
    options : FitOptions
    gen : numpy.random.Generator
        The fit's source of randomness (from ``rng``).
    """
    if not isinstance(gmm, GMM):
        raise TypeError(f"gmm must be a pygmmis_ng.GMM, got {type(gmm).__name__}")
    gmm.check_shapes()
    K, D = gmm.K, gmm.D
    init = resolve_init(init_method)
    w = check_float(w, "w", minimum=0.0)
    tol = check_float(tol, "tol", minimum=0.0)
    cutoff = check_float(cutoff, "cutoff", minimum=0.0, strict=True, allow_none=True)
    maxiter = check_int(maxiter, "maxiter", minimum=0)
    # miniter=None: one update, or none if maxiter=0 (then the fit returns the initialization)
    miniter = min(1, maxiter) if miniter is None else check_int(miniter, "miniter", minimum=0)
    if miniter > maxiter:
        raise ValueError(f"miniter={miniter} must not exceed maxiter={maxiter}")
    oversampling = check_int(oversampling, "oversampling", minimum=1)
    n_init = check_int(n_init, "n_init", minimum=1)
    n_jobs = _check_n_jobs(n_jobs)
    accelerate, newton = check_accelerate(accelerate)
    masks = check_frozen(frozen, K)
    check_frozen_params(gmm, masks)
    gen = check_rng(rng)
    attempts = _check_split_n_merge(split_n_merge, K)
    reg_covar = check_float(reg_covar, "reg_covar", minimum=0.0)
    _check_covariance_type(covariance_type, masks, attempts)
    client = check_client(client)
    dtype = check_dtype(dtype)
    progress = check_progress(progress)
    online = check_online(batch_size, n_passes, learning_decay, learning_offset, shuffle, finish)
    if online is not None:
        _check_online_combination(sel_callback, cutoff, attempts)
    impute = sel_callback is not None
    if uses_cluster_data(data, client):
        _check_combination(R, covar, sel_callback, covar_callback, background)
        bg = check_background(background, None, D)
        lazy = check_lazy_input(data, covar, R, sample_weight, K, D, client, sel_callback,
                                None if bg is None else bg.footprint, gen,
                                cutoff is not None, attempts > 0, dtype)
        X, S, weight, N_w, log_omega_mean = lazy[:5]
        R = None
        _check_bounds(lazy.sample[0], X.shape[0], K, w, reg_covar, n_init, oversampling, impute,
                      on_cluster=True)
        Z_covar = None if lazy.sample[1] is None else np.asarray(lazy.sample[1], np.float64)
        obs = Observations(X, None, S, weight, np.asarray(lazy.sample[0], np.float64),
                           log_omega_mean, N_w, lazy.sample[2], Z_covar, on_cluster=True)
    else:
        X, R, S, weight = _check_samples(data, covar, R, sample_weight, K, D, dtype,
                                         K if min_samples is None else min_samples)
        # latent points (this raises if the projections or missing values leave a direction unseen)
        missing = has_nan(X)
        Z = fill_latent(X, R, S, weight, D) if R is not None or missing else X
        _check_bounds(Z, X.shape[0], K, w, reg_covar, n_init, oversampling, impute)
        _check_combination(R, S, sel_callback, covar_callback, background)
        bg = check_background(background, X, D)
        log_omega_mean = _check_selection(sel_callback, X, weight, missing)
        obs = _sampled(X, R, S, weight, Z, log_omega_mean, gen)
    options = FitOptions(
        init=init, w=w, cutoff=cutoff, sel_callback=sel_callback, covar_callback=covar_callback,
        background=bg, oversampling=oversampling, tol=tol, miniter=miniter, maxiter=maxiter,
        masks=masks, split_n_merge=attempts, n_jobs=n_jobs, n_init=n_init,
        accelerate=accelerate, covariance_type=covariance_type, reg_covar=reg_covar,
        client=client, progress=progress, online=online, newton=newton)
    return obs, options, gen


def _sampled(X: np.ndarray, R: Any, S: Any, weight: Any, Z: np.ndarray, log_omega_mean: float,
             gen: np.random.Generator) -> Observations:
    """The observations with their initialization rows (all, or a sample drawn from ``gen``)."""
    N = X.shape[0]
    idx = sample_index(N, gen)
    covar = S if Z is X else None
    if idx is not None:
        Z = Z[idx]
        weight_s = None if weight is None else weight[idx]
        covar = covar[idx] if covar is not None and covar.ndim == 3 else covar
    else:
        weight_s = weight
    return Observations(X, R, S, weight, np.asarray(Z, dtype=np.float64), log_omega_mean,
                        total_weight(weight, N), weight_s,
                        None if covar is None else np.asarray(covar, dtype=np.float64))


def _check_samples(data: Any, covar: Any, R: Any, sample_weight: Any, K: int, D: int,
                   dtype: np.dtype, min_samples: int) -> tuple:
    """Data, projections, noise and weights, checked against each other and the model."""
    X, R, S = check_observed(data, covar, R, D, dtype)
    N = X.shape[0]
    if N < max(min_samples, 1):
        raise ValueError(f"K={K} components cannot be fitted to N={N} samples: need N >= K"
                         if min_samples == K else f"data must hold at least {min_samples} "
                         f"sample(s), got {N}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN columns: fill_latent says so
        span = np.nanmax(X, axis=0).astype(np.float64) - np.nanmin(X, axis=0)
    check_spread(span)
    return X, R, S, check_weights(sample_weight, N)


def _check_split_n_merge(value: Any, K: int) -> int:
    """Number of split'n'merge attempts: 0 for None/False, 3 for True, else an int >= 0.

    A fractional count (pyGMMis's tests write ``K/3``, meant for Python 2) is rounded up: the
    attempts pyGMMis makes while its count is still positive.
    """
    if value is None or isinstance(value, (bool, np.bool_)):
        attempts = 3 if value else 0
    elif isinstance(value, (float, np.floating)) and np.isfinite(value) and value > 0:
        attempts = math.ceil(value)
    else:
        attempts = check_int(value, "split_n_merge", minimum=0)
    if attempts > 0 and K < 3:
        raise ValueError(f"split_n_merge needs K >= 3 components (it merges two and splits a "
                         f"third), got K={K}; pass split_n_merge=0")
    return attempts


def _check_n_jobs(n_jobs: Any) -> int:
    """A positive int or -1; more workers than CPUs are capped at the CPU count, with a warning."""
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive int or -1 (all cores), got {n_jobs}")
    cpus = os.cpu_count() or 1
    if n_jobs > cpus:
        warnings.warn(f"n_jobs={n_jobs} exceeds the {cpus} CPUs of this machine: using "
                      f"n_jobs={cpus} (more processes than cores only add overhead)",
                      UserWarning, stacklevel=4)
        n_jobs = cpus
    return n_jobs


def _check_bounds(Z: np.ndarray, N: int, K: int, w: float, reg_covar: float, n_init: int,
                  oversampling: int, impute: bool, on_cluster: bool = False) -> None:
    """Sizes and scales that cannot give a meaningful fit (or would exhaust memory) are refused
    before anything is allocated. ``Z``: the latent points of (all or a sample of) the N
    samples; with ``on_cluster`` the samples are not held here, so memory is not checked."""
    if n_init > MAX_N_INIT:
        raise ValueError(f"n_init={n_init} initializations is more than {MAX_N_INIT}: each runs "
                         "a full EM; a few (or split_n_merge) find the optimum as well")
    if oversampling > MAX_DRAWS_PER_SAMPLE:
        raise ValueError(f"oversampling={oversampling} exceeds {MAX_DRAWS_PER_SAMPLE}, the most "
                         "imputation draws a fit makes per observed sample and iteration; use "
                         f"at most {MAX_DRAWS_PER_SAMPLE}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var_max = float(np.nanmax(np.nanvar(Z, axis=0))) if Z.size else 0.0
    if var_max > 0:
        for name, value in (("w**2", w * w), ("reg_covar", reg_covar)):
            if value > MAX_FLOOR_RATIO * var_max:
                raise ValueError(f"{name}={value:.3g} exceeds {MAX_FLOOR_RATIO:.0e} times the "
                                 f"data's largest variance ({var_max:.3g}): every component "
                                 "would be far wider than the data; w and reg_covar are in "
                                 "data units")
    if on_cluster:
        return
    D = Z.shape[1]
    draws = min(oversampling, MAX_DRAWS_PER_SAMPLE) if impute else 0
    need = 8.0 * (N * K * 4 + K * D * D * 8 + N * D * (D + 4) + N * draws * (D * D + 2 * D + K))
    check_memory(need, f"this fit (N={N}, D={D}, K={K}"
                 f"{f', oversampling={oversampling}' if impute else ''})",
                 ": fewer components or samples, or a smaller oversampling")


def _check_covariance_type(covariance_type: Any, masks: dict, attempts: int) -> None:
    """A scikit-learn covariance family, and one the frozen parameters and split'n'merge allow."""
    if check_covariance_type(covariance_type) != "tied":
        return
    if 0 < masks["covar"].sum() < masks["covar"].size:
        raise ValueError("covariance_type='tied' shares one covariance among all components: "
                         "freeze the covariances of all components or of none")
    if attempts > 0:
        raise ValueError("split_n_merge is not available with covariance_type='tied' (a partial "
                         "EM of three components would untie the shared covariance); pass "
                         "split_n_merge=0")


def _check_online_combination(sel_callback: Any, cutoff: Any, attempts: int) -> None:
    """What online EM (``batch_size``) cannot do, refused with the reason."""
    if sel_callback is not None:
        raise ValueError(
            "batch_size (online EM) with sel_callback is not supported: imputation estimates "
            "the selected fraction Z and the original size N0 of the *whole* data at each "
            "update from about oversampling * N0 draws, so a minibatch would need as many "
            "draws as a full pass (or, with fewer, a biased N0 and Monte-Carlo noise that the "
            "running statistics do not average away). Fit with batch_size=None, or on a "
            "uniform random subsample of the rows (it keeps the same selection function)")
    if cutoff is not None:
        raise ValueError("batch_size (online EM) with cutoff is not supported: neighborhoods "
                         "are reused between full passes at nearby parameters, while online "
                         "EM moves the parameters between minibatches; pass cutoff=None")
    if attempts > 0:
        raise ValueError("batch_size (online EM) with split_n_merge is not supported: its "
                         "candidates need full-batch EM runs; pass split_n_merge=0 (or fit "
                         "the online result again with split_n_merge and init_method='none')")


def _check_combination(R: Any, S: Any, sel_callback: Any, covar_callback: Any,
                       background: Any) -> None:
    """Callbacks are callables, and the features asked for work together."""
    for name, cb in (("sel_callback", sel_callback), ("covar_callback", covar_callback)):
        if cb is not None and not callable(cb):
            raise ValueError(f"{name} must be callable (coords -> array) or None, got "
                             f"{type(cb).__name__}")
    if R is not None and sel_callback is not None:
        raise ValueError("R (projections) with sel_callback is not supported: imputation draws "
                         "complete samples from the model and would need a projection (and a "
                         "selection in the projected space) for each of them. Fit without "
                         "sel_callback, or, if the projections only select measured features, "
                         "pass the data in D columns with NaN for the unmeasured ones: imputed "
                         "samples are then complete")
    if R is not None and background is not None:
        raise ValueError("R (projections) with a background is not supported: the density of a "
                         "projected uniform box is not uniform. Use NaN for unmeasured features "
                         "instead of selection-row projections, or fit without the background")
    if covar_callback is not None and sel_callback is None:
        raise ValueError("covar_callback is only used for imputation samples: it needs a sel_callback")
    if sel_callback is not None and S is not None and covar_callback is None:
        raise ValueError("covar is set but covar_callback is None: imputation samples would be "
                         "noise-free while the data are noisy; pass covar_callback (e.g. "
                         "lambda coords: covar for a shared noise covariance)")


def _check_selection(sel_callback: Any, X: np.ndarray, weight: np.ndarray | None,
                     missing: bool) -> float:
    """Omega at the observed samples must be in (0, 1]; returns their weighted mean log Omega."""
    if sel_callback is None:
        return 0.0
    omega = evaluate_selection(sel_callback, X, "the observed samples" + (
        " (NaN marks their missing features: the selection probability must follow from "
        "the measured ones)" if missing else ""))
    check_observed_omega(omega)
    return ordered_sum(block_sum(log_terms(omega[lo:hi], None if weight is None else weight[lo:hi]))
                       for lo, hi in block_bounds(len(omega))) / total_weight(weight, len(omega))
