"""fit(): the public entry point, as a short sequence of named steps.

1. :func:`.setup.checks.check_fit` validates every argument by the option table
   (nothing changes yet);
2. :func:`.setup.prepare.prepare_problem` lays out the fixed quantities;
3. :func:`.starts.driver.run_starts` runs every start with the runner of the
   kind of EM (full-batch: :mod:`.em.runner`, online: :mod:`.online.runner`)
   on one executor, chooses one and completes it;
4. :func:`.starts.finish.finish` writes it into the GMM and builds the
   :class:`~.problem.result.FitResult`.
"""
from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np

from ..config import get_settings, use
from ..model import GMM
from ..selection.background import Background
from .em.runner import FullBatchRunner
from .online.runner import OnlineRunner, warn_large_blocks
from .problem.option_entries import LEARNING_DECAY, LEARNING_OFFSET, TABLE
from .problem.option_table import documented
from .problem.progress import fit_progress
from .problem.result import FitResult
from .setup.checks import check_fit
from .setup.prepare import prepare_problem
from .starts.driver import choose_run, initial_state, run_starts
from .starts.finish import finish as finish_fit

__all__ = ["fit", "choose_run", "initial_state"]

#: the arguments of ``fit`` that the option table checks (the data arrays aside)
DATA_ARGS = ("gmm", "data", "covar", "R", "sample_weight", "rng", "censored")


def fit(gmm: GMM, data: Any, covar: Any = None, R: Any = None, init_method: Any = "auto",
        w: float = 0.0, cutoff: float | None = None, sel_callback: Any = None,
        oversampling: int = 10, covar_callback: Any = None, background: Background | None = None,
        tol: float = 1e-4, miniter: int | None = None, maxiter: int = 1000, frozen: Any = None,
        split_n_merge: int | bool = False, rng: Any = None, n_jobs: int = 1,
        sample_weight: Any = None, n_init: int = 1, accelerate: bool | str = True,
        covariance_type: str = "full", reg_covar: float = 0.0, client: Any = None,
        dtype: Any = np.float64, progress: bool | None = None, batch_size: int | None = None,
        n_passes: int | None = None, finish: int | bool = 0, shuffle: bool = True,
        learning_decay: float = LEARNING_DECAY,
        learning_offset: float = LEARNING_OFFSET, censored: Any = None) -> FitResult:
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
    {parameters}

    Returns
    -------
    FitResult
        Unpacks as ``logL, U``; see :class:`FitResult` for the rest.
    """
    t0 = time.perf_counter()
    given = {k: v for k, v in locals().items() if k in TABLE and k not in DATA_ARGS}
    with use(get_settings()):          # one snapshot of the runtime settings for the whole fit
        return _fit(gmm, data, covar, R, sample_weight, rng, background, t0, given, censored)


def _fit(gmm: GMM, data: Any, covar: Any, R: Any, sample_weight: Any, rng: Any,
         background: Background | None, t0: float, given: dict, censored: Any = None
         ) -> FitResult:
    """:func:`fit` under its runtime settings (see its steps in the module docstring)."""
    obs, opts, gen = check_fit(gmm, data, covar, R, sample_weight, rng, censored=censored,
                               **given)
    with fit_progress(opts.execution.progress, desc="pygmmis_ng fit", t0=t0,
                      unit="it" if opts.online is None else "pass") as clock:
        problem = prepare_problem(obs, opts, gmm.K, gmm.D, gen)
        if opts.online is None:
            runner: Any = FullBatchRunner(problem, opts)
        else:
            if obs.on_cluster:
                warn_large_blocks(obs.X, opts.online.batch_size)
            runner = OnlineRunner(problem, opts)
        outcome = run_starts(gmm, obs, opts, problem, gen, runner)
        return finish_fit(gmm, background, opts, problem, outcome, elapsed=clock.elapsed())


fit = documented(TABLE, "fit", list(inspect.signature(fit).parameters))(fit)
