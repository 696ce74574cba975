"""The EM iterations of one fit: the E+M map, its acceleration and the convergence test.

:func:`em_step` is one EM update theta -> F(theta) with the log-likelihood
at theta; :func:`run_em` iterates it from an initialization. Two measures
make the iterations few and cheap (see docs/design.md, "Speed"):

* **SQUAREM** (:mod:`.acceleration`): after each plain EM update the next
  point is extrapolated from the last three iterates and kept only if its
  log-likelihood does not drop. The convergence test is always made on a
  plain EM update, so it means what it means without acceleration.
* **Oversampling ramp** (imputation): the iterations run with
  ``RAMP_OVERSAMPLING`` draws per original sample until they converge, then
  with the requested oversampling until they converge again. The draws are
  a prefix of one quasi-random sequence, so the first phase ends close to
  the final fixed point, and the expensive draws are only spent near it.
"""
from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np

from ...kernels.stats import SufficientStats
from ..problem.problem import Problem, Run, State
from ..problem.progress import log_header, log_row
from ..problem.scales import stretched_identity
from .acceleration import Params, extrapolate
from .convergence import RAMP_NOISE_TOL, Chain, check_convergence, params_of, remaining_gain
from .diagnostics import (
    COLLAPSE_EXTRA,
    COLLAPSE_PER_COMPONENT,
    GHOST_SELECTED,
    RunawayWatch,
    collapse_error,
    reseedable_ghosts,
)
from .estep import (
    NeighborhoodHistory,
    draw_count,
    group_comps,
    held_draws,
    imputed_stats,
    observed_stats,
    selected_fraction,
)
from .mstep import (
    background_amp,
    collapsed,
    constrain,
    m_step,
    pin_constant_axes,
    renormalize_free,
    scaled_eig_min,
)
from .neighborhoods import stale_neighborhoods
from .newton import eligible, polish

logger = logging.getLogger("pygmmis_ng")

#: draws per original sample in the first phase of an imputation fit
RAMP_OVERSAMPLING = (1,)
#: a run with a competitor (``behind``) is not given up before this many iterations
ABANDON_AFTER = 10
#: Newton polishes of one run at most (EM goes on between them if one cannot prove a maximum)
MAX_POLISH = 3


class Step(NamedTuple):
    """One E+M evaluation at a state: its logL and N0 estimate, and the updated state."""

    logL: float
    N0: float
    comps: list                 # the groups' components at the evaluated state
    new: State
    n_reseeded: int             # components re-seeded in this update (collapsed or ghosts)
    ghosts: np.ndarray | None = None    # (K,) bool: re-seeded as ghosts of the selection
    logL_se: float = 0.0        # Monte-Carlo standard error of logL (from log Z, with imputation)
    stats: Any = None           # the E-step's sums at the evaluated state (centred on its means)


def em_step(p: Problem, st: State, fit_bg: bool, M: int, gen: np.random.Generator,
            ex: Any, redo: np.ndarray | None = None, reseedable: np.ndarray | None = None,
            history: NeighborhoodHistory | None = None) -> Step:
    """logL at ``st`` and the EM update of ``st`` (with M imputation draws if imputing).

    ``reseedable`` (K,) bool: the components that are re-seeded if they turn
    out to be ghosts of the selection (default: all free ones).
    """
    K, D = st.mean.shape
    comps = group_comps(p, st.amp * (1 - st.bg_amp), st.mean, st.covar)
    stats = observed_stats(p, comps, st.bg_amp if fit_bg else 0.0, ex, redo, history)
    logL = stats.logL / p.N_w
    N0 = p.N_w
    ghost = np.zeros(K, dtype=bool)
    logL_se = 0.0
    if p.impute:
        imp, omega, draws = imputed_stats(p, st, M, ex)
        Z, logL_se = selected_fraction(p, float(omega.sum()), M)
        N0 = p.N_w / Z
        stats += imp.scaled(N0 / M)
        logL += p.log_omega_mean - math.log(Z)
        ghost = reseedable_ghosts(p, omega, draws, reseedable)
    if not np.isfinite(logL):
        raise FloatingPointError("the log-likelihood is not finite; check the data scale "
                                 "and the noise covariances")
    new, bad, ghost = update(p, st, stats, fit_bg, gen, ghost)
    return Step(float(logL), N0, comps, new._replace(N0=N0), int((bad | ghost).sum()), ghost,
                logL_se, stats)


def evaluate(p: Problem, st: State, fit_bg: bool, ex: Any) -> Step:
    """logL and the E-step's sums at ``st`` without an M-step (``new`` is ``st``): what the
    Newton polish needs of a trial point (no imputation)."""
    comps = group_comps(p, st.amp * (1 - st.bg_amp), st.mean, st.covar)
    stats = observed_stats(p, comps, st.bg_amp if fit_bg else 0.0, ex)
    logL = stats.logL / p.N_w
    if not np.isfinite(logL):
        raise FloatingPointError("the log-likelihood is not finite")
    return Step(float(logL), p.N_w, comps, st, 0, None, 0.0, stats)


def newton_polish(p: Problem, co: Any, st: State, step: Step, fit_bg: bool, ex: Any, it: int,
                  maxiter: int) -> Any:
    """The Newton polish (:func:`.newton.polish`) of a run whose EM test passed at iteration
    ``it``: at most ``maxiter - it`` E-steps, each accepted step a row of the INFO table."""
    rows = iter(range(it + 1, maxiter + 1))
    N = p.Xc.shape[0]

    def report(s: State, logL: float, delta: float) -> None:
        log_row(next(rows), N, None, None, s.bg_amp if fit_bg else None, logL, delta, None)
    return polish(p, co, st, step, lambda s: evaluate(p, s, fit_bg, ex), ex, maxiter - it,
                  report)


def update(p: Problem, st: State, stats: SufficientStats, fit_bg: bool, gen: np.random.Generator,
           ghost: np.ndarray | None = None) -> tuple[State, np.ndarray, np.ndarray]:
    """The M-step from ``stats`` (centred on ``st.mean``), with collapsed components and the
    ghosts of the selection (``ghost`` (K,) bool) re-seeded at random samples.

    Returns the new state (``N0`` as in ``st``) and the (K,) masks of the collapsed and the
    re-seeded ghost components.
    """
    K = st.mean.shape[0]
    ghost = np.zeros(K, dtype=bool) if ghost is None else ghost
    amp, mean, covar = m_step(stats, st.amp, st.mean, st.covar, p.em.w, p.em.masks,
                              p.em.covariance_type, p.em.reg_covar)
    if p.const_axes is not None:
        pin_constant_axes(covar, p.const_axes, np.maximum(1e-6 * p.scale2, p.em.w**2),
                          ~p.em.masks["covar"])
    bg_amp = st.bg_amp
    if fit_bg and p.bg.adjust_amp:
        bg_amp = background_amp(stats, p.bg.amp_min, p.bg.amp_max)
    bad = collapsed(stats.A, covar, stats.A.sum() + stats.B, p.scale2) & ~p.em.masks["covar"]
    ghost = ghost & ~bad
    for k in np.flatnonzero(bad | ghost):
        if bad[k]:
            logger.warning("component %d collapsed (amplitude %.3g); re-seeding it at a random "
                           "sample (consider w > 0 or a smaller K)", k, amp[k])
        else:
            logger.warning("component %d is a ghost of the selection (its draws are selected "
                           "with probability < %g); re-seeding it at a random sample", k,
                           GHOST_SELECTED)
        mean[k] = p.reseed_points[reseed_row(p, gen)]
        # the volume-filling scale, stretched along each axis as the data are
        covar[k] = p.reseed_scale**2 * stretched_identity(p.scale2)
        if not p.em.masks["amp"][k]:
            amp[k] = 1.0 / K
    if (bad | ghost).any():
        renormalize_free(amp, p.em.masks["amp"])
        free = ~p.em.masks["covar"]
        covar[free] = constrain(covar, amp, p.em.covariance_type)[free]
    return State(amp, mean, covar, bg_amp, st.N0), bad, ghost


def fits_background(p: Problem, bg_amp: float) -> bool:
    """Whether a run starting at background fraction ``bg_amp`` has a background member: a
    background whose amplitude is fitted, or held at a positive value."""
    return p.bg is not None and (p.bg.adjust_amp or bg_amp > 0)


def reseed_row(p: Problem, gen: np.random.Generator) -> int:
    """A row of ``p.reseed_points`` drawn by weight from the distinct rows: the same draw for an integer
    weight as for the row repeated, and for any order of the rows."""
    index, cdf = p.reseed_support.index_cdf()
    j = int(np.searchsorted(cdf, gen.random() * cdf[-1], side="right"))
    return int(index[min(j, len(index) - 1)])


def _valid(p: Problem, fit_bg: bool):
    def valid(cand: Params) -> bool:
        if not np.all(cand.amp >= 0) or not np.isfinite(cand.mean).all():
            return False
        if fit_bg and not p.bg.amp_min <= cand.bg_amp <= min(p.bg.amp_max, 1 - 1e-9):
            return False
        if not np.isfinite(cand.covar).all():
            return False
        if p.em.w > 0 and not np.linalg.eigvalsh(cand.covar)[:, 0].min() > 0.5 * p.em.w**2:
            return False
        return bool(scaled_eig_min(cand.covar, p.scale2).min() > 1e-9)
    return valid


def oversampling_levels(p: Problem) -> list[int]:
    """The phases of an imputation run: the ramp (with ``accelerate``), then ``p.imputation.oversampling``."""
    levels = [p.imputation.oversampling]
    if p.impute and p.em.accelerate:
        levels = [o for o in RAMP_OVERSAMPLING if o < p.imputation.oversampling] + levels
    return levels


def run_em(p: Problem, st: State, miniter: int, maxiter: int, gen: np.random.Generator,
           ex: Any, levels: list[int] | None = None, behind: float | None = None) -> Run:
    """EM iterations from ``st`` until convergence or maxiter, with the executor ``ex``.

    An iteration is a move to a new state (an EM update, or an accepted
    extrapolation); ``history`` holds the logL of every state moved to, and
    the INFO table has one row per iteration. Rejected extrapolations cost
    an evaluation each and are logged at DEBUG level. ``levels``: the
    oversampling of each phase (default :func:`oversampling_levels`).
    ``behind``: a competing start's logL; the run stops (not converged) once
    its estimated limit -- logL plus the gain still to come at the measured
    rate -- is below it (from ABANDON_AFTER iterations on).
    """
    K = st.mean.shape[0]
    N = p.Xc.shape[0]
    fit_bg = fits_background(p, st.bg_amp)
    valid = _valid(p, fit_bg)
    log_header(p.impute, fit_bg)
    levels = list(oversampling_levels(p) if levels is None else levels)
    os_now = levels.pop(0)
    history: list[float] = []
    converged = False
    n_reseeded = n_eval = n_collapsed = 0
    prev = None         # (state, step) whose EM update is st: the last plain pair
    fallback = None     # (state, step) to return to if the extrapolated st turns out worse
    chain = Chain()     # the consecutive plain EM iterates the convergence test measures
    gap = np.nan        # the estimated distance of logL to the maximum
    polished = n_hessian = 0
    ridge = False       # the last polish found the log-likelihood not concave and rising
    M = None
    rate = 0.0          # the EM map's rate measured at the last convergence check
    nb_ref = None       # component means and Cholesky factors when their neighborhoods were made
    nb_history = NeighborhoodHistory() if p.nbr is not None else None
    watch = RunawayWatch(p, K) if p.impute else None
    it = 0
    while True:
        if p.impute:
            # the number of draws follows N0 only when it moved by > 5%: a fixed M keeps
            # the imputation a deterministic function of the parameters (no 2-cycles)
            M = held_draws(draw_count(os_now * st.N0, p.N_w, K), M)
        redo = None
        if p.nbr is not None:
            # the pass over the data rewrites the stale neighborhoods, whatever becomes of st
            redo, nb_ref = stale_neighborhoods(nb_ref, st)
        try:
            step = em_step(p, st, fit_bg, M, gen, ex, redo,
                           None if watch is None else watch.reseedable, nb_history)
        except (FloatingPointError, np.linalg.LinAlgError):
            if fallback is None:
                raise
            step = None                     # an extrapolation the numerics cannot evaluate
            nb_ref = None                   # its pass may have left neighborhoods half-made
        n_eval += 1
        if fallback is not None and (step is None or step.logL < fallback[1].logL):
            # the extrapolation lost likelihood: continue from the plain EM update instead
            logger.debug("extrapolation rejected: logL %s < %.6f",
                         "nan" if step is None else f"{step.logL:.6f}", fallback[1].logL)
            prev, fallback = fallback, None
            st = prev[1].new
            continue
        n_reseeded += step.n_reseeded
        n_collapsed += step.n_reseeded - (0 if step.ghosts is None else int(step.ghosts.sum()))
        if n_collapsed > COLLAPSE_PER_COMPONENT * K + COLLAPSE_EXTRA:
            raise collapse_error(n_collapsed, it + 1)
        if watch is not None:
            watch.update(step.N0, step.ghosts)
        fallback = None
        delta = step.logL - history[-1] if history else None
        history.append(step.logL)
        if chain.last is not st:          # st is not the EM update of the chain's last iterate
            chain.start(st)
        chain.extend(step.logL, step.N0, step.new)
        if step.n_reseeded:               # re-seeded components: not an EM update
            chain.start(step.new)
        stable = None
        done = confirm = False
        if chain.n_steps >= 2:
            check = check_convergence(p, chain, rate, RAMP_NOISE_TOL * step.logL_se
                                      if os_now < p.imputation.oversampling else 0.0)
            done, stable, rate, confirm = check.done, check.stable, check.rate, check.pending
            gap = check.gap
            if confirm and polished < MAX_POLISH and eligible(p, st, fit_bg) is not None:
                done, confirm = True, False         # the Newton polish proves it instead
        log_row(it, N, step.N0 - p.N_w if p.impute else None, step.N0 if p.impute else None,
                st.bg_amp if fit_bg else None, step.logL, delta, stable)
        if done and it >= miniter and not levels:
            # EM's test passed: Newton's method to the maximum, and its decrement as proof
            co = eligible(p, st, fit_bg) if polished < MAX_POLISH else None
            if co is None:
                # after a polish that found the log-likelihood still rising along some
                # direction (not concave), EM's estimate is no bound: not called converged
                converged = not ridge
                gap = np.inf if ridge else gap
                break
            polished += 1
            res = newton_polish(p, co, st, step, fit_bg, ex, it, maxiter)
            n_eval, n_hessian = n_eval + res.n_eval, n_hessian + res.n_hessian
            history += res.history
            it += len(res.history)
            st, step, gap = res.state, res.step, res.gap
            ridge = not (res.converged or res.concave)
            if ridge or res.crawled:
                polished = MAX_POLISH     # no Newton ground (or a crawl): EM decides
            if res.converged or it >= maxiter:
                converged = res.converged
                break
            # EM goes on from the polished point, whose E-step comes again (logged again)
            prev = fallback = None
            history.pop()
            continue
        if it >= maxiter or (behind is not None and prev is not None and it >= ABANDON_AFTER
                             and step.logL + remaining_gain(delta, rate) < behind):
            break
        it += 1
        if done and it > miniter:
            # a phase of the ramp done: the same state again with more draws
            logger.info("converged with oversampling %d; continuing with %d",
                        os_now, levels[0])
            os_now, M, prev = levels.pop(0), None, None
            chain.start(st)
            continue
        nxt = step.new
        # no extrapolation into the last iteration: a run stopped by maxiter returns a plain
        # EM update (maxiter=n means n EM steps, and warm starts of 1 step add up to n steps);
        # none while the convergence test confirms on consecutive plain EM steps (``confirm``)
        if p.em.accelerate and prev is not None and it < maxiter and not confirm and \
                not (step.n_reseeded or prev[1].n_reseeded):
            cand = extrapolate(params_of(prev[0]), params_of(st), params_of(step.new), p.scale2, valid)
            if cand is not None:
                # frozen parameters stay bitwise what they were (the combination only rounds them)
                for key, value in zip(("amp", "mean", "covar"), cand):
                    value[p.em.masks[key]] = getattr(step.new, key)[p.em.masks[key]]
                # the combination keeps sum(amp) = 1 only up to rounding times alpha^2
                renormalize_free(cand.amp, p.em.masks["amp"])
                fallback = (st, step)
                nxt = State(*cand, step.new.N0)
        prev = None if fallback is not None else (st, step)
        st = nxt
    return Run(State(st.amp, st.mean, st.covar, st.bg_amp, step.N0), step.logL,
               np.asarray(history), it, converged, n_reseeded, step.comps, n_eval,
               0 if watch is None else watch.n_ghosts, step.logL_se,
               0 if watch is None else watch.n_left, gap, n_hessian, ridge)
