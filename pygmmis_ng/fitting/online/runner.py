"""Online EM as a start runner: each start's passes, and the chosen one finished.

:class:`OnlineRunner` implements :class:`~..problem.problem.StartRunner` for
online EM, so :func:`pygmmis_ng.fitting.starts.driver.run_starts` seeds, runs
and chooses its starts as it does full-batch EM's. A start is a run of online
passes (:mod:`.passes`), scored on one evaluation slice shared by all starts
(drawn from the one seed the runner asks the driver for); the chosen start is
then, if asked (``finish``), refined by full-batch EM
(:func:`..em.em_loop.run_em`, with SQUAREM): ``finish=n`` makes n full-batch
updates, ``finish=True`` runs to ``tol``, landing on the exact optimum. Each
full-batch update is one pass over the data, and one more pass gives the
returned parameters' exact log-likelihood.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, NamedTuple

import numpy as np

from ..em.em_loop import fits_background, run_em
from ..problem.options import FitOptions
from ..problem.problem import Problem, Run, State
from .passes import OnlineRun, OnlineState, run_online, start_stats, state_of
from .schedule import learning_rate

logger = logging.getLogger("pygmmis_ng")


class OnlineReport(NamedTuple):
    """How the online passes of a fit went (``FitResult.online``).

    Attributes
    ----------
    batch_size : int
        Rows per minibatch asked for.
    n_passes : int
        Online passes made (each reads every row once).
    n_batches : int
        Minibatch updates made (over all passes).
    pass_logL : ndarray (n_passes + 1,)
        Mean log-likelihood of the evaluation slice at the start and after each pass.
    running_logL : ndarray (n_passes,)
        Mean log-likelihood of each pass's minibatches at the parameters they were
        scored at (before their own update): in the first pass an honest held-out score.
    converged : bool
        Whether the passes settled (the slice's logL within ``tol`` of its limit).
    eval_rows : int
        Rows of the evaluation slice (all rows: its logL is exact).
    logL_se : float
        Standard error of the slice's mean logL as an estimate of all rows' (0: exact).
    finish_iter : int
        Full-batch EM iterations after the passes (``finish``).
    learning_rate : float
        The step of the last minibatch update.
    state : OnlineState
        What :func:`pygmmis_ng.fitting.partial.partial_fit` (and the estimator's
        ``partial_fit``) continues from: the running statistics and the update count.
    """

    batch_size: int
    n_passes: int
    n_batches: int
    pass_logL: np.ndarray
    running_logL: np.ndarray
    converged: bool
    eval_rows: int
    logL_se: float
    finish_iter: int
    learning_rate: float
    state: OnlineState


class OnlineRunner:
    """Online passes from a start; the chosen start finished by full-batch EM (``finish``)."""

    shared_seeds = 1             # the evaluation slice's, the same for every start
    label = "online"

    def __init__(self, problem: Problem, opts: FitOptions) -> None:
        self.problem, self.opts = problem, opts
        # whether the runs have a background member, as every start begins
        self.fit_bg = fits_background(problem, opts.imputation.initial_bg_amp())
        self.eval_seed = 0

    def share(self, seeds: np.ndarray) -> None:
        self.eval_seed = int(seeds[0])

    def run(self, state: State, gen: np.random.Generator, ex: Any, maxiter: int,
            behind: float | None) -> OnlineRun:
        return run_online(self.problem, state, self.opts.online, self.fit_bg, gen, ex,
                          self.opts.em.tol, eval_gen=np.random.default_rng(self.eval_seed))

    def complete(self, best: OnlineRun, gen: np.random.Generator, ex: Any
                 ) -> tuple[Run, OnlineReport]:
        """The chosen start finished (``finish``) as one run, and the report of its passes."""
        problem, online, em = self.problem, self.opts.online, self.opts.em
        fin = None
        if online.finish != 0:
            maxiter = em.maxiter if online.finish is None else online.finish
            logger.info("finishing with full-batch EM (at most %d iterations)", maxiter)
            fin = run_em(problem, best.state, min(em.miniter, maxiter), maxiter, gen, ex)
        N = problem.Xc.shape[0]
        if fin is None:
            state = state_of(problem, best.running, best.n_batches, best.row_weight, N,
                             best.imputed)
        else:          # the finishing EM moved the parameters: statistics that give them back
            state = state_of(problem, start_stats(fin.state, em.reg_covar), best.n_batches,
                             best.row_weight, N)
        report = OnlineReport(online.batch_size, best.n_passes, best.n_batches, best.pass_logL,
                              best.running_logL, best.converged, best.eval_rows, best.logL_se,
                              0 if fin is None else fin.n_iter,
                              learning_rate(max(best.n_batches, 1), online), state)
        return _as_run(best, fin, online.finish, not problem.impute), report


def _as_run(best: OnlineRun, fin: Run | None, finish: int | None, certifies: bool = True
            ) -> Run:
    """The online passes (and the finishing EM) as one run: an iteration per pass.

    ``certifies``: whether settled passes make the run converged. Not under a selection:
    EM crawls there (the imputation follows the model), stepwise EM more so, and the
    slice's logL settles far below the maximum (5e-3 per sample on the pyGMMis paper test
    after 33 passes, with tol=1e-4); only the finishing full-batch EM's test counts then."""
    settled = best.converged and certifies
    if fin is None:
        return Run(best.state, best.logL, best.pass_logL, best.n_passes, settled,
                   best.n_reseeded, [], best.n_passes, n_ghosts=best.n_ghosts,
                   logL_se=best.logL_se, ghosts_left=best.ghosts_left)
    # finish=n: the user asked for n full-batch steps after settled passes; True: to tol
    converged = fin.converged or (finish is not None and settled)
    history = np.concatenate([best.pass_logL, fin.history[1:]])
    return fin._replace(history=history, n_iter=best.n_passes + fin.n_iter,
                        n_eval=best.n_passes + fin.n_eval, converged=converged,
                        n_reseeded=best.n_reseeded + fin.n_reseeded,
                        n_ghosts=best.n_ghosts + fin.n_ghosts,
                        ghosts_left=max(best.ghosts_left, fin.ghosts_left))


def warn_large_blocks(X: Any, batch_size: int) -> None:
    """A dask array's row chunks are the units of the minibatches: warn when a chunk holds
    more than ``batch_size`` rows (it is then cut into several minibatches, each reading it)."""
    rows = max(X.chunks[0])
    if rows > batch_size:
        warnings.warn(f"the dask array's row chunks hold up to {rows} rows, more than "
                      f"batch_size={batch_size}: online EM cuts such a chunk into minibatches "
                      f"of at most batch_size rows and reads it once for each, up to "
                      f"{-(-rows // batch_size)} times per pass; rechunk the rows to at most "
                      f"batch_size (data.rechunk(({batch_size}, -1))) to read every chunk once "
                      "per pass", UserWarning, stacklevel=4)
