"""Online (stepwise) EM: minibatch updates of running sufficient statistics, pass by pass.

See :mod:`.schedule` for the update rule, the learning rate and how the
minibatches are made. The running statistics are kept per unit of sample
weight and centred on the current component means (as every E-step's sums
are, :mod:`pygmmis_ng.kernels.stats`): a minibatch's sums, divided by its
weight, are blended in as they come, and after the M-step the running sums
are re-centred on the new means (exactly: moments about one point are
moments about another plus terms in the shift). The M-step is the full-batch
one (:func:`..em.em_loop.update`: frozen parameters, ``w``, ``reg_covar``,
covariance families, a background's fraction, collapsed components
re-seeded).

After each pass the mean log-likelihood of the *evaluation slice* -- fixed
units of at least ``eval_rows`` rows drawn once from the fit's ``rng``
(all rows of smaller data, then exact) -- is computed at the current
parameters. The online passes stop when its change between passes, plus the
change still to come at the rate the last two changes shrank by, is below
``tol``. The slice's mean is an unbiased estimate of the whole data's mean
log-likelihood; its standard error comes from the spread of its units.

Under a selection each minibatch also imputes its share of the unselected
samples (:mod:`.imputed`), and the slice's logL adds the selection's terms
(log Z from the fit's common draws, whose Monte-Carlo error joins the
slice's in ``logL_se``).
"""
from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np

from ...data.lazy import is_lazy
from ...kernels.stats import SufficientStats
from ..em.diagnostics import RunawayWatch
from ..em.em_loop import update
from ..em.estep import all_chunks, chunk_logL, group_comps, observed_stats
from ..problem.problem import Problem, State
from ..problem.progress import log_pass_header, log_pass_row
from .imputed import Imputed, complete, eval_draws, impute_minibatch, log_selected
from .schedule import (
    OnlineOptions,
    eval_units,
    learning_rate,
    pass_batches,
    unit_bounds,
    windows,
)

logger = logging.getLogger("pygmmis_ng")


class OnlineRun(NamedTuple):
    """The outcome of the online passes of one start."""

    state: State
    logL: float                 # mean logL of the evaluation slice at ``state``
    logL_se: float              # its standard error as an estimate of the whole data's (0: exact)
    pass_logL: np.ndarray       # (passes + 1,) the slice's mean logL at the start and after each pass
    running_logL: np.ndarray    # (passes,) mean logL of each minibatch before its update, per pass
    n_passes: int
    n_batches: int              # minibatch updates made (the learning rate's counter)
    converged: bool
    n_reseeded: int
    running: SufficientStats    # the running statistics (per unit weight, centred on the means)
    eval_rows: int = 0          # rows of the evaluation slice
    row_weight: float = 1.0     # mean sample weight per row
    n_ghosts: int = 0           # components re-seeded as ghosts of the selection
    ghosts_left: int = 0        # components left as ghosts after repeated re-seeding
    imputed: Imputed | None = None    # the imputation's running averages (selection)

    @property
    def n_iter(self) -> int:
        """The passes (what the start driver budgets other starts by)."""
        return self.n_passes


class OnlineState(NamedTuple):
    """What an online fit carries from one piece of data (or one fit) to the next.

    Attributes
    ----------
    running : SufficientStats
        The running statistics, per unit of sample weight, centred on the
        component means (so independent of the coordinates' origin).
    t : int
        Minibatch updates made so far (the learning rate's counter).
    scale2 : ndarray (D,)
        The first data's variance along each axis (the units in which a
        collapsed component is judged).
    reseed_scale : float
        The first data's volume-filling scale (a re-seeded component's size).
    const_axes : ndarray (D,) of bool or None
        Axes along which the first data were constant.
    row_weight : float
        Mean sample weight per row of the data seen (a full minibatch's weight
        is ``batch_size`` times it).
    rows : int
        Rows seen.
    imputed : Imputed or None
        Under a selection: the running imputed sums and selected fraction
        (:mod:`.imputed`); None: the next update starts them afresh.
    """

    running: SufficientStats
    t: int
    scale2: np.ndarray
    reseed_scale: float
    const_axes: np.ndarray | None
    row_weight: float = 1.0
    rows: int = 0
    imputed: Imputed | None = None


def state_of(problem: Problem, running: SufficientStats, t: int, row_weight: float,
             rows: int, imputed: Imputed | None = None) -> OnlineState:
    """The state to continue from after a fit (or a piece) on ``problem``."""
    return OnlineState(running, t, problem.scale2, problem.reseed_scale, problem.const_axes,
                       row_weight, rows, imputed)


def start_stats(st: State, reg_covar: float = 0.0) -> SufficientStats:
    """Running statistics (per unit weight) that give back ``st`` by the M-step: amplitudes
    as shares of the weight, sums centred on the means, scatter A_k (V_k - reg_covar I) (the
    M-step adds ``reg_covar`` back)."""
    A = st.amp * (1.0 - st.bg_amp)
    K, D = st.mean.shape
    V = st.covar - reg_covar * np.eye(D)
    return SufficientStats(A.copy(), np.zeros((K, D)), A[:, None, None] * V, 0.0, 1.0,
                           float(st.bg_amp))


def recentre(stats: SufficientStats, shift: np.ndarray) -> SufficientStats:
    """Sums centred on m moved to be centred on m - ``shift`` (K, D): exact."""
    A, Mc = stats.A, stats.Mc
    outer = Mc[:, :, None] * shift[:, None, :]
    Cc = stats.Cc + outer + np.swapaxes(outer, 1, 2) + \
        A[:, None, None] * shift[:, :, None] * shift[:, None, :]
    return SufficientStats(A, Mc + A[:, None] * shift, Cc, stats.logL, stats.weight, stats.B)


def blend(running: SufficientStats, batch: SufficientStats, rho: float) -> SufficientStats:
    """(1 - rho) running + rho batch / its weight (both centred on the same means)."""
    f = rho / batch.weight
    return SufficientStats(running.A * (1 - rho) + batch.A * f, running.Mc * (1 - rho) + batch.Mc * f,
                           running.Cc * (1 - rho) + batch.Cc * f, 0.0, 1.0,
                           running.B * (1 - rho) + batch.B * f)


def units_of(p: Problem, batch_size: int) -> tuple[list, list[list[int]], np.ndarray]:
    """The chunks (g, slice) of the problem, its units (lists of chunk indices: the chunks of
    each minibatch window of ``batch_size`` rows, or of each row chunk of a dask array) and
    the rows of each chunk (see :func:`.schedule.unit_bounds`)."""
    chunks = all_chunks(p)
    N = p.Xc.shape[0]
    blocks = tuple(p.Xc.chunks[0]) if is_lazy(p.Xc) else windows(N, batch_size)
    units = unit_bounds([sl for _, sl in chunks], blocks)
    rows = np.array([sl.stop - sl.start for _, sl in chunks], dtype=float)
    return chunks, units, rows


class Update(NamedTuple):
    """One minibatch update: the new state, running statistics and learning-rate counter, the
    minibatch's summed logL and weight at the state before, the components re-seeded, and
    the imputation's running averages (under a selection)."""

    state: State
    running: SufficientStats
    t: int
    logL: float
    weight: float
    n_reseeded: int = 0
    imputed: Imputed | None = None


def minibatch_step(p: Problem, st: State, running: SufficientStats, tasks: list, t: int,
                   opts: OnlineOptions, fit_bg: bool, gen: np.random.Generator, ex: Any,
                   row_weight: float = 1.0, ahead: list | None = None,
                   imputed: Imputed | None = None, watch: RunawayWatch | None = None) -> Update:
    """One stepwise EM update from the chunks ``tasks`` ((g, slice) each); ``row_weight``: the
    mean sample weight per row, which sets the weight of a full minibatch; ``ahead``: the
    next minibatch's chunks (read meanwhile by executors that stream the data). Under a
    selection the update imputes its share (:mod:`.imputed`) from ``imputed``, and
    ``watch`` judges its N0 and ghosts."""
    comps = group_comps(p, st.amp * (1 - st.bg_amp), st.mean, st.covar, {g for g, _ in tasks})
    stats = observed_stats(p, comps, st.bg_amp if fit_bg else 0.0, ex, chunks=tasks,
                           prefetch=ahead)
    if not stats.weight > 0:                 # all weights 0: nothing to learn from
        return Update(st, running, t, 0.0, 0.0, 0, imputed)
    if not np.isfinite(stats.logL):
        raise FloatingPointError("the log-likelihood is not finite; check the data scale "
                                 "and the noise covariances")
    t += 1
    rho = learning_rate(t, opts, stats.weight, opts.batch_size * row_weight)
    running = blend(running, stats, rho)
    total, ghost = running, None
    if p.impute:
        imputed, ghost = impute_minibatch(p, st, imputed, stats.weight, rho, t, ex,
                                          None if watch is None else watch.reseedable)
        total = complete(running, imputed)
    new, bad, ghost = update(p, st, total, fit_bg, gen, ghost)
    if p.impute:
        new = new._replace(N0=p.N_w / imputed.z)
        if watch is not None:
            watch.update(new.N0, ghost)
    if (bad | ghost).any():          # re-seeded: the running sums start again from the state
        running, imputed = start_stats(new, p.em.reg_covar), None
    else:
        shift = st.mean - new.mean
        running = recentre(running, shift)
        if imputed is not None:
            imputed = imputed._replace(stats=recentre(imputed.stats, shift))
    return Update(new, running, t, stats.logL, stats.weight, int((bad | ghost).sum()), imputed)


def evaluate(p: Problem, st: State, fit_bg: bool, ex: Any, tasks: list, every: list
             ) -> tuple[float, float, float]:
    """Mean logL of the chunks ``tasks`` at ``st``, its standard error as an estimate of the
    whole data's (0: exact, when ``tasks`` are ``every`` chunk, or hold no weight and all
    chunks are scored instead), and the weight scored."""
    comps = group_comps(p, st.amp * (1 - st.bg_amp), st.mean, st.covar, {g for g, _ in tasks})
    logL, weight = chunk_logL(p, comps, st.bg_amp if fit_bg else 0.0, ex, tasks)
    total = weight.sum()
    if not total > 0 and len(tasks) < len(every):
        return evaluate(p, st, fit_bg, ex, every, every)
    mean = float(logL.sum() / total)
    if len(tasks) == len(every) or len(logL) < 2:
        return mean, 0.0, float(total)
    # a ratio estimator over the chunks (clusters of rows) of the slice
    resid = logL - mean * weight
    se = math.sqrt(len(logL) / (len(logL) - 1) * float((resid**2).sum())) / total
    return mean, se, float(total)


def score(p: Problem, st: State, fit_bg: bool, ex: Any, tasks: list, every: list,
          M: int | None) -> tuple[float, float, int | None]:
    """The slice's mean logL at ``st`` (:func:`evaluate`) and its standard error; under a
    selection with the terms of the selection, log Omega at the observed samples and -log Z
    from the fit's common draws (their Monte-Carlo error added), and the draws used (kept
    at ``M`` while the target moves by at most 5%: :func:`.imputed.eval_draws`)."""
    mean, se, weight = evaluate(p, st, fit_bg, ex, tasks, every)
    if not p.impute:
        return mean, se, None
    M = eval_draws(p, st, weight, M)
    log_Z, log_Z_se = log_selected(p, st, M, ex)
    return mean + p.log_omega_mean - log_Z, math.hypot(se, log_Z_se), M


def pass_gap(pass_logL: list[float]) -> float:
    """The estimated distance of the last pass's logL to the limit: while it rises by
    shrinking steps, its change plus the changes still to come if each shrinks as the last
    did; otherwise (the learning rate's noise) the larger of the last two changes. inf after
    fewer than two passes."""
    if len(pass_logL) < 3:
        return math.inf
    d1, d0 = pass_logL[-1] - pass_logL[-2], pass_logL[-2] - pass_logL[-3]
    if d1 > 0 and d0 > 0:
        q = d1 / d0
        return math.inf if q >= 1 else d1 + d1 * q / (1 - q)
    return max(abs(d1), abs(d0))


def run_pass(p: Problem, st: State, running: SufficientStats, t: int, layout: tuple,
             opts: OnlineOptions, fit_bg: bool, gen: np.random.Generator, ex: Any,
             row_weight: float, order: np.random.Generator | None,
             imputed: Imputed | None = None, watch: RunawayWatch | None = None) -> Update:
    """One pass over the data: a stepwise update per minibatch (of :func:`.schedule.pass_batches`
    over ``layout``, the chunks, units and chunk rows of :func:`units_of`, in an order drawn
    from ``order``; None: row order), each reading the next one's rows ahead. Returns the
    last update with the pass's summed logL, weight and re-seeded components. Under a
    selection ``imputed`` and ``watch`` go to every update (:func:`minibatch_step`)."""
    chunks, units, chunk_rows = layout
    batches = [[chunks[i] for i in sorted(b)]
               for b in pass_batches(units, chunk_rows, opts.batch_size, order)]
    logL = weight = 0.0
    n_reseeded = 0
    for k, tasks in enumerate(batches):
        ahead = batches[k + 1] if k + 1 < len(batches) else None
        up = minibatch_step(p, st, running, tasks, t, opts, fit_bg, gen, ex, row_weight, ahead,
                            imputed, watch)
        st, running, t, imputed = up.state, up.running, up.t, up.imputed
        logL, weight, n_reseeded = logL + up.logL, weight + up.weight, n_reseeded + up.n_reseeded
    return Update(st, running, t, logL, weight, n_reseeded, imputed)


def run_online(p: Problem, st: State, opts: OnlineOptions, fit_bg: bool,
               gen: np.random.Generator, ex: Any, tol: float, eval_gen: np.random.Generator
               ) -> OnlineRun:
    """Online passes from ``st`` (fresh running statistics) until the evaluation slice's logL
    settles (``tol``) or ``opts.n_passes``. ``gen`` orders the minibatches (and re-seeds),
    ``eval_gen`` draws the evaluation slice."""
    layout = units_of(p, opts.batch_size)
    chunks, units, chunk_rows = layout
    unit_rows = np.array([chunk_rows[u].sum() for u in units])
    slice_units = eval_units(unit_rows, opts.eval_rows, eval_gen)
    slice_tasks = [chunks[i] for u in slice_units for i in units[u]]
    row_weight = p.N_w / p.Xc.shape[0]
    running, t, imputed = start_stats(st, p.em.reg_covar), 0, None
    watch = RunawayWatch(p, st.mean.shape[0]) if p.impute else None
    logL, se, M = score(p, st, fit_bg, ex, slice_tasks, chunks, None)
    pass_logL, running_logL = [logL], []
    log_pass_header(fit_bg, p.impute)
    log_pass_row(0, 0, p.N_w, st.bg_amp if fit_bg else None, logL, None, None,
                 st.N0 - p.N_w if p.impute else None)
    n_reseeded = 0
    converged = False
    for n in range(1, opts.n_passes + 1):
        done = run_pass(p, st, running, t, layout, opts, fit_bg, gen, ex, row_weight,
                        gen if opts.shuffle else None, imputed, watch)
        st, running, t, imputed = done.state, done.running, done.t, done.imputed
        n_reseeded += done.n_reseeded
        running_logL.append(running_mean(p, done, st))
        logL, se, M = score(p, st, fit_bg, ex, slice_tasks, chunks, M)
        pass_logL.append(logL)
        log_pass_row(n, t, p.N_w, st.bg_amp if fit_bg else None, logL, logL - pass_logL[-2],
                     learning_rate(max(t, 1), opts), st.N0 - p.N_w if p.impute else None)
        if pass_gap(pass_logL) < tol:
            converged = True
            break
    return OnlineRun(st, logL, se, np.asarray(pass_logL), np.asarray(running_logL), n,
                     t, converged, n_reseeded, running,
                     int(unit_rows[slice_units].sum()), row_weight,
                     0 if watch is None else watch.n_ghosts,
                     0 if watch is None else watch.n_left, imputed)


def running_mean(p: Problem, done: Update, st: State) -> float:
    """A pass's mean logL of its minibatches before their updates (under a selection with its
    terms, Z from N0 at the pass's end)."""
    if not done.weight > 0:
        return math.nan
    mean = done.logL / done.weight
    return mean + p.log_omega_mean + math.log(st.N0 / p.N_w) if p.impute else mean
