"""fit(): the public entry point, as a short sequence of named steps.

1. :func:`.options.check_fit` validates every argument (nothing changes yet);
2. :func:`.prepare.prepare_problem` lays out the fixed quantities;
3. :func:`run_restarts` initializes each restart (:mod:`.init`) and runs the
   EM (:mod:`.em_loop`, then :mod:`.split_merge`) on one executor;
4. :func:`finish` writes the best run into the GMM and builds the
   :class:`~.result.FitResult`.
"""
from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..execution import make_executor
from ..model import GMM
from ..selection.background import Background
from ..selection.imputation import CallbackError
from .diagnostics import RunawayError, warn_reseeded
from .em_loop import oversampling_levels, run_em
from .init import INIT_METHODS, takes_weight
from .mstep import constrain, renormalize_free
from .neighborhoods import neighborhoods
from .options import FitOptions, Observations, check_fit
from .prepare import initial_bg_amp, prepare_problem
from .problem import Problem, Run, State
from .progress import fit_progress
from .result import FitResult
from .split_merge import split_and_merge

logger = logging.getLogger("pygmmis_ng")

#: under a selection, a start other than k-means is kept only if its observed-data logL beats
#: the k-means run's by more than this many Monte-Carlo standard errors of that logL
SELECT_MARGIN = 2.0
#: ... and the other starts get at most this many times the k-means run's iterations (+ 10)
START_BUDGET = 1


def fit(gmm: GMM, data: Any, covar: Any = None, R: Any = None, init_method: Any = "auto",
        w: float = 0.0, cutoff: float | None = None, sel_callback: Any = None,
        oversampling: int = 10, covar_callback: Any = None, background: Background | None = None,
        tol: float = 1e-4, miniter: int | None = None, maxiter: int = 1000, frozen: Any = None,
        split_n_merge: int | bool = False, rng: Any = None, n_jobs: int = 1,
        sample_weight: Any = None, n_init: int = 1, accelerate: bool = True,
        covariance_type: str = "full", reg_covar: float = 0.0, client: Any = None,
        dtype: Any = np.float64, progress: bool | None = None) -> FitResult:
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
        points: each sample's posterior mean under one Gaussian fitted to all
        samples by extreme deconvolution (the regression imputation of what it
        does not observe, shrunk along noisy directions; see
        :mod:`pygmmis_ng.data.latent`).
    init_method : {'auto', 'random', 'minmax', 'kmeans', 'gmm', 'none'} or callable
        See :mod:`pygmmis_ng.fitting.init`. ``'auto'`` (default): 'kmeans',
        as in scikit-learn (pyGMMis's default is 'random'). Under a
        selection every other start also runs a k-means start, and the
        k-means run is kept unless the other beats it (see
        :func:`run_restarts`).
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
        :mod:`pygmmis_ng.selection.imputation`). Imputation starts right from the
        initialization; the default start is k-means (a warm start by EM on
        the observed samples alone, as the pyGMMis paper does, leaves the fit
        in the truncated solution's basin, and 'random' can leave components
        outside the selected region, so such starts compete with a k-means
        start). Components whose draws are almost never selected (ghosts) are
        re-seeded; a selection that cannot match the data raises
        :class:`~pygmmis_ng.RunawayError`.
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
        Stop when the estimated distance of the mean log-likelihood to its
        limit (the last change plus Aitken's estimate of the gain still to
        come) is below ``tol`` (absolute, per sample, like scikit-learn's),
        no component mean moved by more than 0.1 (1D-equivalent) sigma and,
        with imputation, the estimated original size is as settled. See
        :mod:`pygmmis_ng.fitting.convergence`.
    miniter, maxiter : int
        Minimum and maximum number of EM updates. A ConvergenceWarning is
        issued when maxiter is reached without convergence. ``miniter=None``
        (default) is 1, or 0 with ``maxiter=0``: the fit then returns the
        initialization and its logL.
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
    rng : None, numpy.random, int, numpy.random.Generator or numpy.random.RandomState
        Source of all randomness (initialization, imputation, re-seeding).
        None and the ``numpy.random`` module (pyGMMis's default) draw from
        numpy's global state, as pyGMMis and scikit-learn do.
    n_jobs : int
        Worker processes (-1: one per CPU). 1: this process, its chunks of
        samples on one thread per core (``PYGMMIS_NG_THREADS`` sets how many).
        More: a process pool over shared memory for this fit, which pays off
        for imputation draws (callbacks run in the workers, inherited by fork
        on Linux, else picklable). The result is identical for every n_jobs
        and number of threads.
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
    covariance_type : {'full', 'diag', 'tied', 'spherical'}
        The covariance family, as in scikit-learn's GaussianMixture: full
        matrices; diagonal ones; one full matrix shared by all components;
        one variance per component. The constrained M-steps are exact for
        every kind of data (noise, projections, missing values, imputation),
        see :func:`~.mstep.m_step`. ``gmm.covar`` stays (K, D, D), full
        matrices of the family; the initialization is projected onto it.
        'tied' works with all or no covariances frozen and without
        split'n'merge.
    reg_covar : float >= 0
        Added to every variance in each M-step (scikit-learn's ``reg_covar``;
        its GaussianMixture default is 1e-6). Unlike ``w`` it shifts every
        component, so the fit is no longer the likelihood maximum.
    client : None or dask.distributed.Client
        Run the E-steps on this Dask cluster (``pip install "pygmmis_ng[dask]"``):
        each iteration sends only parameters; bit-identical to ``n_jobs=1``.
        ``data``, ``covar`` and ``sample_weight`` may be dask arrays (e.g.
        ``da.from_zarr``), never gathered here: see :mod:`.out_of_core`.
    dtype : numpy.float64 (default) or numpy.float32
        How the fit stores data, per-sample noise and per-sample projections.
        float32 halves their memory (and the memory traffic of each E-step);
        every kernel still computes and accumulates in float64, so only the
        rounding of the stored values (about 6e-8 relative, after centring)
        changes the result. float32 input is then used without a copy.
    progress : None, True or False
        A progress bar (tqdm): iteration, mean logL, its change, imputed count,
        elapsed time. None (default): in terminals and notebooks once the fit
        has run for 3 s; True: always; False: never. The INFO table on the
        ``pygmmis_ng`` logger is separate (:mod:`pygmmis_ng.fitting.progress`).

    Returns
    -------
    FitResult
        Unpacks as ``logL, U``; see :class:`FitResult` for the rest.
    """
    t0 = time.perf_counter()
    obs, opts, gen = check_fit(
        gmm, data, covar, R, sample_weight, rng, init_method=init_method, w=w, cutoff=cutoff,
        sel_callback=sel_callback, oversampling=oversampling, covar_callback=covar_callback,
        background=background, tol=tol, miniter=miniter, maxiter=maxiter, frozen=frozen,
        split_n_merge=split_n_merge, n_jobs=n_jobs, n_init=n_init, accelerate=accelerate,
        covariance_type=covariance_type, reg_covar=reg_covar, client=client, dtype=dtype,
        progress=progress)
    with fit_progress(opts.progress, desc="pygmmis_ng fit", t0=t0) as clock:
        problem = prepare_problem(obs, opts, gmm.K, gmm.D, gen)
        seeds = gen.integers(0, 2**62, size=len(starts(opts, opts.n_init)))
        best, restarts_logL, n_reseeded, n_ghosts, chosen = run_restarts(gmm, obs, opts, problem,
                                                                         seeds)
        return finish(gmm, background, opts, problem, best, restarts_logL, n_reseeded, n_ghosts,
                      chosen, elapsed=clock.elapsed())


def initial_state(gmm: GMM, obs: Observations, init: Any, opts: FitOptions, problem: Problem,
                  rng: np.random.Generator) -> State:
    """A restart's initialization: ``init`` on the latent points of the initialization rows
    (all rows, or a sample of large data: :mod:`pygmmis_ng.data.lazy`), frozen parameters kept."""
    masks = opts.masks
    work = gmm.copy()
    extra = {"sample_weight": obs.Z_weight} if takes_weight(init) else {}
    try:
        init(work, obs.Z, covar=obs.Z_covar, rng=rng, **extra)
    except Exception as exc:      # a user's callable: re-raised with context (Ctrl-C passes)
        if init in INIT_METHODS.values():
            raise
        raise CallbackError(f"init_method {getattr(init, '__name__', 'callable')!r} raised "
                            f"{type(exc).__name__}: {exc}") from exc
    for key in ("amp", "mean", "covar"):
        if masks[key].any():
            getattr(work, key)[masks[key]] = getattr(gmm, key)[masks[key]]
    if masks["amp"].any():
        renormalize_free(work.amp, masks["amp"])
    if not masks["covar"].all():
        free = ~masks["covar"]
        work.covar[free] = constrain(work.covar, work.amp, opts.covariance_type)[free]
    try:
        work.validate()
    except ValueError as exc:
        raise ValueError(f"the initialization produced an invalid GMM: {exc}") from None
    return State(work.amp.copy(), work.mean - problem.center, work.covar.copy(),
                 initial_bg_amp(opts), problem.N_w)


def starts(opts: FitOptions, n_seeds: int) -> list:
    """The initialization of each run: ``opts.init`` per restart, and under a selection a
    k-means start besides any other (see :func:`run_restarts`)."""
    inits = [opts.init] * n_seeds
    if opts.impute and opts.init not in (INIT_METHODS["kmeans"], INIT_METHODS["warm"]):
        inits.append(INIT_METHODS["kmeans"])
    return inits


def run_restarts(gmm: GMM, obs: Observations, opts: FitOptions, problem: Problem,
                 seeds: np.ndarray) -> tuple[Run, np.ndarray, int, int, int]:
    """One EM run per start on one executor; the best run, finished and refined.

    Under a selection the observed samples alone do not tell a truncated or
    ghost-ridden solution from the right one, and EM from such a start stays
    in its basin. So a fit with imputation from any start other than
    'kmeans' also runs one k-means start (the last seed), and
    :func:`choose_run` decides. The k-means start runs first and the others
    get at most START_BUDGET times its iterations (plus 10): a start that is
    still crawling then is compared where it stands. With imputation and
    ``accelerate`` the starts compete after the cheap first phase of the
    oversampling ramp and only the chosen one runs the full phase. A run that ends in a
    :class:`RunawayError` is dropped if another run completes.
    Split'n'merge refines the chosen run.

    Returns
    -------
    best : Run
    restarts_logL : ndarray (runs,), the logL of each start when they were compared (-inf: ran
        away)
    n_reseeded, n_ghosts : int, components re-seeded (of them ghosts) over all runs
    chosen : int, index of the returned run
    """
    inits = starts(opts, opts.n_init)
    reference = len(inits) > opts.n_init
    levels = oversampling_levels(problem)
    first, rest = levels[:1], levels[1:]
    runs: list[Run | None] = [None] * len(inits)
    failure: RunawayError | None = None
    # the reference (k-means) start runs first; the others get a budget of iterations from it
    order = [len(inits) - 1] + list(range(len(inits) - 1)) if reference else range(len(inits))
    maxiter = opts.maxiter
    behind = None
    with make_executor(problem, opts.n_jobs, opts.client) as ex:   # one for all restarts
        for r in order:
            if len(inits) > 1:
                logger.info("initialization %d of %d (%s)", r + 1, len(inits),
                            getattr(inits[r], "__name__", "callable"))
            gen = np.random.default_rng(int(seeds[r]))
            try:
                st = initial_state(gmm, obs, inits[r], opts, problem, gen)
                runs[r] = run_em(problem, st, opts.miniter, maxiter, gen, ex, first, behind)
            except RunawayError as exc:
                logger.info("initialization %d ran away: %s", r + 1, exc)
                failure = exc
            if reference and r == len(inits) - 1 and runs[r] is not None:
                maxiter = min(opts.maxiter, max(opts.miniter, START_BUDGET * runs[r].n_iter + 10))
                behind = runs[r].logL + SELECT_MARGIN * runs[r].logL_se
        if all(run is None for run in runs):
            raise failure
        chosen = choose_run(runs, reference=reference)
        best = runs[chosen]
        gen = np.random.default_rng(int(seeds[chosen]) + 1)
        if rest:
            logger.info("converged with oversampling %d; continuing with %d", first[0], rest[0])
            best = _joined(best, run_em(problem, best.state, opts.miniter, opts.maxiter, gen,
                                        ex, rest))
        if opts.split_n_merge > 0:
            best, _ = split_and_merge(problem, best, opts.split_n_merge, opts.miniter,
                                      opts.maxiter, gen, ex)
    restarts_logL = np.array([-np.inf if run is None else run.logL for run in runs])
    # the returned run (its first phase, finished and refined) and every other start
    others = [run for i, run in enumerate(runs) if run is not None and i != chosen]
    n_ghosts = best.n_ghosts + sum(run.n_ghosts for run in others)
    n_reseeded = best.n_reseeded + sum(run.n_reseeded for run in others)
    return best, restarts_logL, n_reseeded, n_ghosts, chosen


def _joined(first: Run, then: Run) -> Run:
    """One run of two phases: ``then`` continued from where ``first`` ended."""
    return then._replace(history=np.concatenate([first.history, then.history[1:]]),
                         n_iter=first.n_iter + then.n_iter, n_eval=first.n_eval + then.n_eval,
                         n_reseeded=first.n_reseeded + then.n_reseeded,
                         n_ghosts=first.n_ghosts + then.n_ghosts,
                         ghosts_left=max(first.ghosts_left, then.ghosts_left))


def choose_run(runs: list, reference: bool) -> int:
    """Index of the run with the highest logL; with ``reference``, the last run (the k-means
    start under a selection) unless another beats it by more than SELECT_MARGIN Monte-Carlo
    standard errors of its logL (closer than that, the observed data cannot tell them apart,
    and the answer should not depend on how the fit was started)."""
    done = [i for i, run in enumerate(runs) if run is not None]
    best = max(done, key=lambda i: runs[i].logL)
    ref = runs[-1]
    if reference and ref is not None and \
            runs[best].logL - ref.logL <= SELECT_MARGIN * ref.logL_se:
        return len(runs) - 1
    return best


def finish(gmm: GMM, background: Background | None, opts: FitOptions, problem: Problem,
           best: Run, restarts_logL: np.ndarray, n_reseeded: int, n_ghosts: int, chosen: int,
           elapsed: float) -> FitResult:
    """Warn if the best run did not converge, write it into the GMM (and background), the result."""
    K, D = gmm.K, gmm.D
    if not best.converged and opts.maxiter > 0:
        h = best.history
        last = f"{h[-1] - h[-2]:.3g}" if len(h) > 1 else "n/a"
        # the first sentence is scikit-learn's, which code written for GaussianMixture matches
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data. "
                      f"(EM did not converge within maxiter={opts.maxiter} iterations; last "
                      f"change of mean logL: {last})", ConvergenceWarning, stacklevel=3)
    elif best.converged:
        logger.info("converged after %d iterations: mean logL %.6f", best.n_iter, best.logL)
    warn_reseeded(best.n_reseeded, best.n_ghosts, best.ghosts_left)
    U: list = [None] * K
    if opts.cutoff is not None:
        U = neighborhoods(problem, best.comps, opts.cutoff)
    st = best.state
    gmm.amp, gmm.mean, gmm.covar = st.amp, st.mean + problem.center, st.covar
    if background is not None:
        background.amp = st.bg_amp
    fit_bg_amp = opts.background is not None and opts.background.adjust_amp
    return FitResult(best.logL, U, n_iter=best.n_iter, n_eval=best.n_eval,
                     converged=best.converged, history=best.history,
                     n_samples=problem.Xc.shape[0], orig_size=st.N0,
                     n_imputed=st.N0 - problem.N_w,
                     bg_amp=None if opts.background is None else st.bg_amp,
                     n_reseeded=n_reseeded, n_ghosts=n_ghosts, restarts_logL=restarts_logL, chosen=chosen,
                     n_params=count_params(K, D, opts.masks, fit_bg_amp, opts.covariance_type),
                     weight_sum=problem.N_w, elapsed=elapsed)


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
