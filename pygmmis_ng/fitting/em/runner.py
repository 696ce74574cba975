"""Full-batch EM as a start runner (:class:`~..problem.problem.StartRunner`).

A start runs EM to convergence -- with imputation and ``accelerate`` only the
first, cheap phase of the oversampling ramp, so that the starts compete at a
fraction of the cost -- and the chosen start is completed: the rest of the
ramp, then split'n'merge (:mod:`.split_merge`).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..problem.options import FitOptions
from ..problem.problem import Problem, Run, State
from .em_loop import oversampling_levels, run_em
from .split_merge import split_and_merge

logger = logging.getLogger("pygmmis_ng")


class FullBatchRunner:
    """Full-batch EM runs of the starts (one pass over the data per iteration)."""

    shared_seeds = 0
    label = ""

    def __init__(self, problem: Problem, opts: FitOptions) -> None:
        self.problem, self.em = problem, opts.em
        levels = oversampling_levels(problem)
        self.first, self.rest = levels[:1], levels[1:]

    def share(self, seeds: np.ndarray) -> None:
        pass

    def run(self, state: State, gen: np.random.Generator, ex: Any, maxiter: int,
            behind: float | None) -> Run:
        return run_em(self.problem, state, self.em.miniter, maxiter, gen, ex, self.first, behind)

    def complete(self, best: Run, gen: np.random.Generator, ex: Any) -> tuple[Run, None]:
        """The rest of the oversampling ramp, then split'n'merge."""
        em = self.em
        if self.rest:
            logger.info("converged with oversampling %d; continuing with %d", self.first[0],
                        self.rest[0])
            best = _joined(best, run_em(self.problem, best.state, em.miniter, em.maxiter, gen,
                                        ex, self.rest))
        if em.split_n_merge > 0:
            best, _ = split_and_merge(self.problem, best, em.split_n_merge, em.miniter,
                                      em.maxiter, gen, ex)
        return best, None


def _joined(first: Run, then: Run) -> Run:
    """One run of two phases: ``then`` continued from where ``first`` ended."""
    return then._replace(history=np.concatenate([first.history, then.history[1:]]),
                         n_iter=first.n_iter + then.n_iter, n_eval=first.n_eval + then.n_eval,
                         n_reseeded=first.n_reseeded + then.n_reseeded,
                         n_ghosts=first.n_ghosts + then.n_ghosts,
                         ghosts_left=max(first.ghosts_left, then.ghosts_left))
