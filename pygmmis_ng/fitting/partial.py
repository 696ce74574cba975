"""Online EM on data that arrive in pieces: :func:`partial_fit` updates a GMM from one piece.

The first piece initializes the model (``init_method``); every piece is then
cut into minibatches of ``batch_size`` rows in the order given (all of it as
one minibatch without ``batch_size``), and each updates the running
statistics of :mod:`.online.passes` with the learning rate of update t, t counting
on from the previous pieces (:class:`OnlineState` carries t and the running
statistics from call to call). The running sums are centred on the component
means, so they do not depend on the coordinates a piece is centred in: the
pieces of a split give the same fit as the same minibatches in one
:func:`pygmmis_ng.fit` with ``batch_size`` and ``shuffle=False`` (to rounding).

The units in which a collapsed component is judged and re-seeded (each
axis's data variance, the volume-filling scale) and the axes along which the
data are constant are those of the first piece: a later piece may hold a
single sample.
"""
from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import numpy as np

from ..config import get_settings, use
from ..execution import make_executor
from ..model import GMM
from .em.diagnostics import RunawayWatch, warn_reseeded
from .em.em_loop import fits_background
from .online.passes import OnlineState, run_pass, running_mean, start_stats, state_of, units_of
from .problem.option_entries import LEARNING_DECAY, LEARNING_OFFSET, TABLE
from .problem.option_table import check_option, documented
from .problem.problem import State
from .setup.checks import check_fit
from .setup.prepare import prepare_problem
from .starts.driver import initial_state
from .starts.init import resolve_init


class PieceResult(NamedTuple):
    """What one :func:`partial_fit` call returns.

    Attributes
    ----------
    state : OnlineState
        What the next piece continues from.
    logL : float
        The piece's mean log-likelihood, each minibatch scored at the
        parameters before its own update.
    n_batches : int
        Minibatch updates the piece made.
    orig_size : float
        The estimated original size N0 of the piece (its weight without a selection).
    """

    state: OnlineState
    logL: float
    n_batches: int
    orig_size: float = float("nan")


def partial_fit(gmm: GMM, data: Any, covar: Any = None, R: Any = None, sample_weight: Any = None,
                state: OnlineState | None = None, *, batch_size: int | None = None,
                init_method: Any = "kmeans", background: Any = None, rng: Any = None,
                w: float = 0.0, frozen: Any = None, n_jobs: int = 1, start_t: int = 0,
                reg_covar: float = 0.0, covariance_type: str = "full", client: Any = None,
                dtype: Any = np.float64, learning_decay: float = LEARNING_DECAY,
                learning_offset: float = LEARNING_OFFSET, progress: bool | None = None,
                censored: Any = None, sel_callback: Any = None, oversampling: int = 10,
                covar_callback: Any = None) -> PieceResult:
    """Update ``gmm`` (in place) with the piece ``data`` by online EM.

    Parameters
    ----------
    gmm : GMM
        Initialized from the piece by ``init_method`` when ``state`` is None,
        else updated from its parameters.
    data : array-like (n, D), or (n, dy) with ``R``
        The piece, as for :func:`pygmmis_ng.fit`.
    {parameters}

    Returns
    -------
    PieceResult
    """
    start_t = check_option(TABLE, "start_t", start_t, "partial_fit")
    n_rows = len(data) if hasattr(data, "__len__") else np.shape(data)[0]
    given = {k: v for k, v in locals().items() if k in TABLE and k not in ENTRY_ARGS}
    given.update(batch_size=batch_size if batch_size is not None else max(int(n_rows), 1),
                 init_method=init_method if state is None else "none")
    with use(get_settings()):          # one snapshot of the runtime settings for the piece
        return _piece(gmm, data, covar, R, sample_weight, rng, state, start_t, background, given,
                      censored)


def _piece(gmm: GMM, data: Any, covar: Any, R: Any, sample_weight: Any, rng: Any,
           state: OnlineState | None, start_t: int, background: Any, given: dict,
           censored: Any = None) -> PieceResult:
    """:func:`partial_fit` under its runtime settings."""
    obs, opts, gen = check_fit(gmm, data, covar, R, sample_weight, rng, path="partial_fit",
                               min_samples=gmm.K if state is None else 1, censored=censored,
                               **given)
    problem = prepare_problem(obs, opts, gmm.K, gmm.D, gen, units=state)
    N = problem.Xc.shape[0]
    imputed = None
    if state is None:
        st = initial_state(gmm, obs, resolve_init(opts.start.init), opts, problem, gen)
        running, t, rows = start_stats(st, problem.em.reg_covar), start_t, N
        row_weight = problem.N_w / N
    else:
        # the imputation's running averages go on only under a selection
        imputed = state.imputed if problem.impute else None
        N0 = problem.N_w if imputed is None else problem.N_w / imputed.z
        st = State(gmm.amp.copy(), gmm.mean - problem.center, gmm.covar.copy(),
                   opts.imputation.initial_bg_amp(), N0)
        running, t, rows = state.running, state.t, state.rows + N
        # the weight of a full minibatch follows the mean weight per row of all pieces
        row_weight = (state.row_weight * state.rows + problem.N_w) / rows
    n_before = t
    watch = RunawayWatch(problem, gmm.K) if problem.impute else None
    with make_executor(problem, opts.execution.n_jobs, opts.execution.client) as ex:
        done = run_pass(problem, st, running, t, units_of(problem, opts.online.batch_size),
                        opts.online, fits_background(problem, st.bg_amp), gen, ex, row_weight,
                        None, imputed, watch)
    st, running, t = done.state, done.running, done.t
    if watch is not None:
        warn_reseeded(done.n_reseeded, watch.n_ghosts, watch.n_left)
    gmm.amp, gmm.mean, gmm.covar = st.amp, st.mean + problem.center, st.covar
    if background is not None:
        background.amp = st.bg_amp
    return PieceResult(state_of(problem, running, t, row_weight, rows, done.imputed),
                       running_mean(problem, done, st), t - n_before, st.N0)


#: the arguments of ``partial_fit`` not checked as options by :func:`check_fit`
ENTRY_ARGS = ("gmm", "data", "covar", "R", "sample_weight", "rng", "state", "start_t",
              "censored")
partial_fit = documented(TABLE, "partial_fit",
                         list(inspect.signature(partial_fit).parameters))(partial_fit)
