"""The one driver of a fit's starts: seeds, runs, the choice, the completed run.

:func:`run_starts` runs every start of a fit on one executor, whatever the
kind of EM (full-batch or online: a :class:`~..problem.problem.StartRunner`):
it draws the seeds, initializes each start (:func:`initial_state`), lets the
runner run it, chooses one (:func:`choose_run`), and has the runner complete
it. :mod:`.finish` writes the outcome into the GMM and builds the result.
"""
from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np

from ...execution import make_executor
from ...execution.threadpools import single_threaded_openmp
from ...model import GMM
from ...selection.imputation import CallbackError
from ..em.diagnostics import RunawayError
from ..em.mstep import constrain, renormalize_free
from ..problem.options import FitOptions, Observations
from ..problem.problem import Problem, Run, StartRunner, State
from .init import INIT_METHODS, resolve_init, takes_weight

logger = logging.getLogger("pygmmis_ng")

#: under a selection, a start other than k-means is kept only if its observed-data logL beats
#: the k-means run's by more than this many Monte-Carlo standard errors of that logL
SELECT_MARGIN = 2.0
#: ... and the other starts get at most this many times the k-means run's iterations (+ 10)
START_BUDGET = 1


class Outcome(NamedTuple):
    """What the starts of a fit came to.

    ``best``: the completed run; ``restarts_logL``: the logL of each start when they were
    compared (-inf: it ran away); ``n_reseeded``, ``n_ghosts``: components re-seeded (of
    them ghosts) over all starts; ``chosen``: the index of the returned start; ``report``:
    the runner's (online EM: :class:`~..online.runner.OnlineReport`), else None."""

    best: Run
    restarts_logL: np.ndarray
    n_reseeded: int
    n_ghosts: int
    chosen: int
    report: Any = None


def initial_state(gmm: GMM, obs: Observations, init: Any, opts: FitOptions, problem: Problem,
                  rng: np.random.Generator) -> State:
    """A start's initialization: ``init`` on the latent points of the initialization rows
    (all rows, or a sample of large data: :mod:`pygmmis_ng.data.lazy`), frozen parameters
    kept."""
    masks = opts.em.masks
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
        work.covar[free] = constrain(work.covar, work.amp, opts.em.covariance_type)[free]
    try:
        work.validate()
    except ValueError as exc:
        raise ValueError(f"the initialization produced an invalid GMM: {exc}") from None
    return State(work.amp.copy(), work.mean - problem.center, work.covar.copy(),
                 opts.imputation.initial_bg_amp(), problem.N_w)


def start_inits(opts: FitOptions) -> list:
    """The initialization of each start: ``init_method`` per start, and under a selection a
    k-means start besides any other (see :func:`run_starts`)."""
    init = resolve_init(opts.start.init)
    inits = [init] * opts.start.n_init
    if opts.impute and init not in (INIT_METHODS["kmeans"], INIT_METHODS["warm"]):
        inits.append(INIT_METHODS["kmeans"])
    return inits


def run_starts(gmm: GMM, obs: Observations, opts: FitOptions, problem: Problem,
               gen: np.random.Generator, runner: StartRunner) -> Outcome:
    """Every start (each from its own seed drawn from ``gen``) run by ``runner`` on one
    executor; the best one chosen and completed.

    Under a selection the observed samples alone do not tell a truncated or
    ghost-ridden solution from the right one, and EM from such a start stays
    in its basin. So a fit with imputation from any start other than
    'kmeans' also runs one k-means start (the last seed), and
    :func:`choose_run` decides. The k-means start runs first and the others
    get at most START_BUDGET times its iterations (plus 10): a start that is
    still crawling then is compared where it stands. With imputation and
    ``accelerate`` the starts compete after the cheap first phase of the
    oversampling ramp and only the chosen one runs the full phase. A start that ends in a
    :class:`RunawayError` is dropped if another one completes.
    """
    inits = start_inits(opts)
    seeds = gen.integers(0, 2**62, size=runner.shared_seeds + len(inits))
    runner.share(seeds[:runner.shared_seeds])
    seeds = seeds[runner.shared_seeds:]
    reference = len(inits) > opts.start.n_init
    runs: list[Any] = [None] * len(inits)
    failure: RunawayError | None = None
    # the reference (k-means) start runs first; the others get a budget of iterations from it
    order = [len(inits) - 1] + list(range(len(inits) - 1)) if reference else range(len(inits))
    em = opts.em
    maxiter, behind = em.maxiter, None
    execution = opts.execution
    with make_executor(problem, execution.n_jobs, execution.client) as ex:
        for r in order:
            if len(inits) > 1:
                logger.info("initialization %d of %d (%s)", r + 1, len(inits),
                            runner.label or getattr(inits[r], "__name__", "callable"))
            start_gen = np.random.default_rng(int(seeds[r]))
            try:
                st = initial_state(gmm, obs, inits[r], opts, problem, start_gen)
                runs[r] = runner.run(st, start_gen, ex, maxiter, behind)
            except RunawayError as exc:
                logger.info("initialization %d ran away: %s", r + 1, exc)
                failure = exc
            if reference and r == len(inits) - 1 and runs[r] is not None:
                maxiter = min(em.maxiter, max(em.miniter, START_BUDGET * runs[r].n_iter + 10))
                behind = runs[r].logL + SELECT_MARGIN * runs[r].logL_se
        if all(run is None for run in runs):
            raise failure
        chosen = choose_run(runs, reference=reference)
        best, report = runner.complete(runs[chosen], np.random.default_rng(int(seeds[chosen]) + 1),
                                       ex)
    restarts_logL = np.array([-np.inf if run is None else run.logL for run in runs])
    # the returned run (its first phase, completed) and every other start
    others = [run for i, run in enumerate(runs) if run is not None and i != chosen]
    n_ghosts = best.n_ghosts + sum(run.n_ghosts for run in others)
    n_reseeded = best.n_reseeded + sum(run.n_reseeded for run in others)
    return Outcome(best, restarts_logL, n_reseeded, n_ghosts, chosen, report)


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
