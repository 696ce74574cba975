"""The runs of a fit: each start's initialization and EM, the choice among them, the result.

:func:`run_restarts` runs one EM per start on one executor (full-batch, or
online passes then the finishing EM: :mod:`.online`), :func:`choose_run`
picks one, :func:`finish` writes it into the GMM and builds the
:class:`~.result.FitResult`.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..execution import make_executor
from ..execution.threadpools import single_threaded_openmp
from ..model import GMM
from ..selection.background import Background
from ..selection.imputation import CallbackError
from .diagnostics import RunawayError, warn_reseeded
from .em_loop import oversampling_levels, run_em
from .init import INIT_METHODS, takes_weight
from .mstep import constrain, renormalize_free
from .neighborhoods import neighborhoods
from .options import FitOptions, Observations
from .prepare import initial_bg_amp
from .problem import Problem, Run, State
from .result import FitResult
from .split_merge import split_and_merge

logger = logging.getLogger("pygmmis_ng")

#: under a selection, a start other than k-means is kept only if its observed-data logL beats
#: the k-means run's by more than this many Monte-Carlo standard errors of that logL
SELECT_MARGIN = 2.0
#: ... and the other starts get at most this many times the k-means run's iterations (+ 10)
START_BUDGET = 1


def initial_state(gmm: GMM, obs: Observations, init: Any, opts: FitOptions, problem: Problem,
                  rng: np.random.Generator) -> State:
    """A restart's initialization: ``init`` on the latent points of the initialization rows
    (all rows, or a sample of large data: :mod:`pygmmis_ng.data.lazy`), frozen parameters kept."""
    masks = opts.masks
    work = gmm.copy()
    extra = {"sample_weight": obs.Z_weight} if takes_weight(init) else {}
    try:
        with single_threaded_openmp():          # fork-safe k-means (execution.threadpools)
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
                 gen: np.random.Generator) -> tuple[Run, np.ndarray, int, int, int]:
    """One EM run per start (each from its own seed drawn from ``gen``) on one executor; the
    best run, finished and refined.

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
    seeds = gen.integers(0, 2**62, size=len(inits))
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
           elapsed: float, online: Any = None) -> FitResult:
    """Warn if the best run did not converge, write it into the GMM (and background), the result.

    ``online``: the :class:`~.online_fit.OnlineReport` of an online fit (its passes make the
    run's first iterations; the warning then speaks of them)."""
    K, D = gmm.K, gmm.D
    if online is not None and not best.converged:
        h = online.pass_logL
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data. "
                      f"(online EM did not converge within n_passes={online.n_passes} passes; "
                      f"last change of the evaluation slice's mean logL: {h[-1] - h[-2]:.3g}; "
                      "more passes, or finish=True for full-batch EM to tol)",
                      ConvergenceWarning, stacklevel=3)
    elif not best.converged and best.on_ridge:
        warnings.warn("EM's test passed where the log-likelihood is not concave: the Newton "
                      "polish found directions along which it still rises, so the fit may be "
                      f"far below a maximum (mean logL {best.logL:.6g}). Typically a component "
                      "is collapsing onto a narrow group of samples, where the maximum lies on "
                      "the edge of the parameter space; a covariance floor (w) or fewer "
                      "components give a maximum that can be reached", ConvergenceWarning,
                      stacklevel=3)
    elif not best.converged and opts.maxiter > 0:
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
                     weight_sum=problem.N_w, elapsed=elapsed, online=online,
                     logL_se=best.logL_se, gap=best.gap, n_hessian=best.n_hessian)


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
