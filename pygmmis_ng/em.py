"""fit(): argument checks, the fixed quantities of a fit, restarts, the result.

The iterations live in :mod:`.em_loop`, the E-step of a chunk in
:mod:`.kernels`, the imputation draws in :mod:`.imputation`, the M-step in
:mod:`.mstep`.
"""
from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._validation import (
    check_background,
    check_float,
    check_frozen,
    check_frozen_params,
    check_int,
    check_observed,
    check_rng,
    check_weights,
)
from .background import Background
from .em_loop import Problem, Run, State, neighborhood_chi2, run_em
from .imputation import ImputationSampler, evaluate_selection
from .init import axis_variances, constant_axes, resolve_init, volume_filling_scale
from .latent import fill_latent
from .model import GMM
from .mstep import renormalize_free
from .neighborhoods import chi2_cutoff, neighborhoods
from .observed import background_log_density, make_layout, sorted_rows
from .parallel import make_executor
from .result import FitResult
from .split_merge import split_and_merge

logger = logging.getLogger("pygmmis_ng")


def fit(gmm: GMM, data: Any, covar: Any = None, R: Any = None, init_method: Any = "random",
        w: float = 0.0, cutoff: float | None = None, sel_callback: Any = None,
        oversampling: int = 10, covar_callback: Any = None, background: Background | None = None,
        tol: float = 1e-3, miniter: int = 1, maxiter: int = 1000, frozen: Any = None,
        split_n_merge: int | bool = False, rng: Any = None, n_jobs: int = 1,
        sample_weight: Any = None, n_init: int = 1, accelerate: bool = True) -> FitResult:
    """Fit the GMM to (noisy, selected, contaminated) samples by EM, in place.

    Parameters
    ----------
    gmm : GMM
        The model; its parameters are replaced by the fit (only when the
        fit completes: on an error the GMM is left as it was).
    data : array-like (N, D), or (N, dy) with ``R``
        The samples. NaN marks a value that was not measured (a missing
        feature): the fit then uses the exact marginal of the mixture over
        the measured values of each sample (samples are grouped by their
        pattern of missing values). A row must have at least one value.
    covar : None, array-like (D, D) or (N, D, D) (dy instead of D with ``R``)
        Noise covariance shared by all samples, or one per sample. The fit
        then deconvolves: it returns the intrinsic mixture whose convolution
        with the noise best explains the data (extreme deconvolution).
        Entries of a per-sample covariance at missing values are ignored
        (they may be NaN).
    R : None, array-like (dy, D) or (N, dy, D)
        Projections, shared by all samples or one per sample: sample i
        observes y_i = R_i x_i + noise of a D-dimensional x_i drawn from the
        mixture (Bovy, Hogg & Roweis 2011); dy may be smaller than D. NaN in
        ``data`` drops that row of R_i. The projections together must
        observe every direction of the D-dimensional space. Not available
        with ``sel_callback`` or ``background`` (a clear error says why).
        The initialization (and ``init_method`` callables) see latent
        points: each sample's measured values, and a least-squares mean
        along the directions it does not observe.
    init_method : {'random', 'minmax', 'kmeans', 'gmm', 'none'} or callable
        See :mod:`pygmmis_ng.init`.
    w : float >= 0
        Covariance regularization in data units, as in pyGMMis: a lower
        bound on the isotropic dispersion of the components.
    cutoff : float > 0 or None
        Neighborhood size in 1D-equivalent sigmas (chi2 quantile of the same
        confidence in D dimensions). With the compiled kernels each component
        then only evaluates the observed samples in its neighborhood; the
        neighborhoods are stored with a margin and recomputed only for
        components that moved, so the fit is exact for every pair within
        ``cutoff`` and neglects pairs far beyond it (where responsibilities
        are below ~exp(-cutoff^2 / 2)). None: every pair (exact). Also the
        ``U`` returned.
    sel_callback : callable or None
        ``sel_callback(coords) -> Omega``: the probability (N,) in [0, 1]
        that a sample at the (noisy) coords (N, D) was observed. It must be
        > 0 at every observed sample. Enables imputation: the fit then
        estimates the density *before* selection (see
        :mod:`pygmmis_ng.imputation`). Imputation starts right from the
        initialization: ``init_method='kmeans'`` with ``n_init`` of a few is
        the measured best choice (a warm start by EM on the observed samples
        alone, as the pyGMMis paper does, leaves the fit in the truncated
        solution's basin; 'random' can leave components outside the selected
        region).
    oversampling : int >= 1
        Imputation draws per sample of the estimated original sample size
        and iteration. Their Monte-Carlo noise shrinks as 1/sqrt(oversampling).
    covar_callback : callable or None
        ``covar_callback(coords) -> (D, D) or (M, D, D)``: noise covariance of
        imputation draws at their noise-free coords. Required when both
        ``covar`` and ``sel_callback`` are given.
    background : Background or None
        A uniform background fitted together with the mixture; its
        ``amp`` is updated in place when ``adjust_amp`` (an initial amp of
        0 then starts at min(0.1, amp_max)).
    tol : float >= 0
        Stop when the mean log-likelihood changes by less than
        ``tol * max(1, |logL|)`` between iterations, no component mean
        moved by more than 0.1 (1D-equivalent) sigma and, with imputation,
        the estimated original size changed by less than ``tol`` relative.
    miniter, maxiter : int
        Minimum and maximum number of EM updates. A ConvergenceWarning is
        issued when maxiter is reached without convergence.
    frozen : None, sequence of int, or dict
        Components (or, as a dict with keys 'amp', 'mean', 'covar', single
        parameters of components) kept at the values the GMM has on entry.
    split_n_merge : int >= 0, bool or None
        Split'n'merge attempts after each EM run (SMEM, Ueda et al. 2000, as
        in pyGMMis): merge the two components with the most overlapping
        responsibilities, split the one that fits its samples worst, refine
        the three by a partial EM and all by a full EM, and keep the result
        if logL rose by more than ``tol * max(1, |logL|)``. Each candidate
        costs about two EM runs. 0, False or None: off; True: 3 attempts.
        Needs K >= 3; components with a frozen parameter take no part.
    rng : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of all randomness (initialization, imputation, re-seeding).
    n_jobs : int
        Worker processes (-1: one per CPU). With more than one, the samples
        and imputation draws are processed in fixed chunks by a process pool
        over shared memory that lives for this fit; the result is identical
        for every n_jobs. Pays off from about 10^5 samples (or 10^5
        imputation draws) per iteration; user callbacks then run in the
        workers (inherited by fork on Linux, else they must be picklable).
    sample_weight : None or array-like (N,)
        Non-negative per-sample weights (an integer weight counts a sample
        that many times).
    n_init : int >= 1
        Number of initializations (each from its own random stream); the
        run with the highest final logL is kept. With imputation all runs
        share the same imputation draws, so their logL are comparable.
    accelerate : bool
        Extrapolate EM steps (SQUAREM) and, with imputation, converge first
        with one draw per original sample before using all ``oversampling``
        draws. Converges to the same fixed point in far fewer (and cheaper)
        iterations; ``False`` runs plain EM, one update per iteration, as
        pyGMMis does.

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
    X, R, S = check_observed(data, covar, R, D)
    N = X.shape[0]
    if N < K:
        raise ValueError(f"K={K} components cannot be fitted to N={N} samples: need N >= K")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN columns are caught below
        span = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
    span = span[span > 0]
    if span.size and not (span.min() > 1e-100 and span.max() < 1e100):
        raise ValueError(f"data spread {span.min():.3g}..{span.max():.3g} is outside 1e-100..1e100, "
                         "where covariances cannot be represented in float64: rescale the data")
    weight = check_weights(sample_weight, N)
    missing = bool(np.isnan(X).any())
    # latent points for the initialization (raises if the projections miss a direction)
    Z = fill_latent(X, R, S, weight, D) if R is not None or missing else X
    init = resolve_init(init_method)
    w = check_float(w, "w", minimum=0.0)
    tol = check_float(tol, "tol", minimum=0.0)
    cutoff = check_float(cutoff, "cutoff", minimum=0.0, strict=True, allow_none=True)
    miniter = check_int(miniter, "miniter", minimum=0)
    maxiter = check_int(maxiter, "maxiter", minimum=0)
    if miniter > maxiter:
        raise ValueError(f"miniter={miniter} must not exceed maxiter={maxiter}")
    oversampling = check_int(oversampling, "oversampling", minimum=1)
    n_init = check_int(n_init, "n_init", minimum=1)
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive int or -1 (all cores), got {n_jobs}")
    if not isinstance(accelerate, (bool, np.bool_)):
        raise TypeError(f"accelerate must be True or False, got {accelerate!r}")
    masks = check_frozen(frozen, K)
    check_frozen_params(gmm, masks)
    gen = check_rng(rng)
    snm_attempts = _check_split_n_merge(split_n_merge, K)
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
    bg = check_background(background, X, D)
    log_omega_mean = 0.0
    if sel_callback is not None:
        omega = evaluate_selection(sel_callback, X, "the observed samples" + (
            " (NaN marks their missing features: the selection probability must follow from "
            "the measured ones)" if missing else ""))
        if (omega == 0).any():
            i = np.flatnonzero(omega == 0)
            raise ValueError(f"sel_callback gives Omega = 0 for {i.size} observed sample(s) (first: "
                             f"row {i[0]}): observed samples must have a non-zero selection "
                             "probability; the callback is likely wrong")
        log_omega_mean = float(np.average(np.log(omega), weights=weight))

    # ---- fixed quantities of the fit ---------------------------------------
    center = np.average(Z, axis=0, weights=weight)
    layout = make_layout(X, R, S, K, D, allow_masked=True)
    if cutoff is not None:
        layout = layout._replace(groups=tuple(
            g._replace(c2=neighborhood_chi2(g.dy, cutoff)) for g in layout.groups))
    Xs, Ss, Rs, ws = sorted_rows(layout.order, X, S, R, weight)
    if R is None:
        Xc = Xs - center
    else:
        Xc = Xs - (Rs @ center if Rs.ndim == 3 else center @ Rs.T)
    impute = sel_callback is not None
    sampler = None
    if impute:
        sampler = ImputationSampler(int(gen.integers(2**62)), D, bg is not None,
                                    covar_callback is not None)
    bg_amp0 = 0.0
    if bg is not None:
        bg_amp0 = bg.amp
        if bg.adjust_amp and bg_amp0 == 0 and bg.amp_max > 0:
            bg_amp0 = min(0.1, bg.amp_max)
        bg_amp0 = float(np.clip(bg_amp0, bg.amp_min, min(bg.amp_max, 1 - 1e-9)))
    problem = Problem(
        Xc=Xc, center=center, S=Ss, weight=ws,
        N_w=float(N if weight is None else weight.sum()), groups=layout.groups,
        log_bg_obs=None if bg is None else background_log_density(bg, layout, Xs, Ss),
        log_omega_mean=log_omega_mean, sel_callback=sel_callback, covar_callback=covar_callback,
        oversampling=oversampling, sampler=sampler, bg=bg, w=w, tol=tol, masks=masks,
        scale2=axis_variances(Z, weight), reseed_scale=volume_filling_scale(Z, K),
        shift_limit=chi2_cutoff(D, 0.1), accelerate=accelerate,
        nbr=None if cutoff is None else np.zeros((N, K), dtype=np.uint8),
        R=Rs if Rs is not None and Rs.ndim == 3 else None, order=layout.order,
        Zc=None if Z is X else sorted_rows(layout.order, Z)[0] - center,
        const_axes=_constant_axes(Z, weight, S, R))

    # ---- restarts ------------------------------------------------------------
    seeds = gen.integers(0, 2**62, size=n_init)
    best: Run | None = None
    restarts_logL = np.empty(n_init)
    n_reseeded = 0
    with make_executor(problem, n_jobs) as ex:      # one pool for all restarts
        for r in range(n_init):
            child = np.random.default_rng(int(seeds[r]))
            if n_init > 1:
                logger.info("initialization %d of %d", r + 1, n_init)
            work = gmm.copy()
            init(work, Z, covar=S if Z is X else None, rng=child)
            for key in ("amp", "mean", "covar"):
                if masks[key].any():
                    getattr(work, key)[masks[key]] = getattr(gmm, key)[masks[key]]
            if masks["amp"].any():
                renormalize_free(work.amp, masks["amp"])
            try:
                work.validate()
            except ValueError as exc:
                raise ValueError(f"the initialization produced an invalid GMM: {exc}") from None
            st = State(work.amp.copy(), work.mean - center, work.covar.copy(), bg_amp0, problem.N_w)
            run = run_em(problem, st, miniter, maxiter, child, ex)
            if snm_attempts > 0:
                run, _ = split_and_merge(problem, run, snm_attempts, miniter, maxiter, child, ex)
            restarts_logL[r] = run.logL
            n_reseeded += run.n_reseeded
            if best is None or run.logL > best.logL:
                best = run

    if not best.converged and maxiter > 0:
        h = best.history
        warnings.warn(f"EM did not converge within maxiter={maxiter} iterations (last change of "
                      f"mean logL: {h[-1] - h[-2]:.3g}); increase maxiter or tol",
                      ConvergenceWarning, stacklevel=2)
    elif best.converged:
        logger.info("converged after %d iterations: mean logL %.6f", best.n_iter, best.logL)

    U: list = [None] * K
    if cutoff is not None:
        U = neighborhoods(problem, best.comps, cutoff)

    st = best.state
    gmm.amp, gmm.mean, gmm.covar = st.amp, st.mean + center, st.covar
    if background is not None:
        background.amp = st.bg_amp
    return FitResult(best.logL, U, n_iter=best.n_iter, n_eval=best.n_eval,
                     converged=best.converged,
                     history=best.history, n_samples=N, orig_size=st.N0,
                     n_imputed=st.N0 - problem.N_w, bg_amp=None if bg is None else st.bg_amp,
                     n_reseeded=n_reseeded, restarts_logL=restarts_logL,
                     n_params=count_params(K, D, masks, bg is not None and bg.adjust_amp),
                     weight_sum=problem.N_w, elapsed=time.perf_counter() - t0)


def _constant_axes(Z: np.ndarray, weight: Any, S: Any, R: Any) -> np.ndarray | None:
    """Axes along which the (noise-free, unprojected) data are constant, or None.

    Their likelihood is unbounded (a component's variance along them goes to
    0); the fit keeps those variances at max(w^2, 1e-6 of the axis unit), as
    scikit-learn's ``reg_covar`` does, instead of re-seeding forever.
    """
    if S is not None or R is not None:
        return None
    const = constant_axes(Z, weight)
    return const if const.any() else None


def _check_split_n_merge(value: Any, K: int) -> int:
    """Number of split'n'merge attempts: 0 for None/False, 3 for True, else an int >= 0."""
    if value is None or isinstance(value, (bool, np.bool_)):
        attempts = 3 if value else 0
    else:
        attempts = check_int(value, "split_n_merge", minimum=0)
    if attempts > 0 and K < 3:
        raise ValueError(f"split_n_merge needs K >= 3 components (it merges two and splits a "
                         f"third), got K={K}; pass split_n_merge=0")
    return attempts


def count_params(K: int, D: int, masks: dict, fit_bg_amp: bool) -> int:
    """Free parameters of a fit: amplitudes (sum fixed), means, covariances, background."""
    free_amp = int((~masks["amp"]).sum())
    n = max(free_amp - 1, 0) + D * int((~masks["mean"]).sum()) \
        + D * (D + 1) // 2 * int((~masks["covar"]).sum())
    return n + int(fit_bg_amp)
