"""Online EM on data that arrive in pieces: :func:`partial_fit` updates a GMM from one piece.

The first piece initializes the model (``init_method``); every piece is then
cut into minibatches of ``batch_size`` rows in the order given (all of it as
one minibatch without ``batch_size``), and each updates the running
statistics of :mod:`.online` with the learning rate of update t, t counting
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

from typing import Any, NamedTuple

import numpy as np

from ..execution import make_executor
from ..model import GMM
from .em_loop import fits_background
from .online import OnlineState, run_pass, start_stats, state_of, units_of
from .options import check_fit
from .prepare import initial_bg_amp, prepare_problem
from .problem import State
from .restarts import initial_state


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
    """

    state: OnlineState
    logL: float
    n_batches: int


def partial_fit(gmm: GMM, data: Any, covar: Any = None, R: Any = None, sample_weight: Any = None,
                state: OnlineState | None = None, *, batch_size: int | None = None,
                init_method: Any = "kmeans", background: Any = None, rng: Any = None,
                w: float = 0.0, frozen: Any = None, n_jobs: int = 1, start_t: int = 0,
                **options: Any) -> PieceResult:
    """Update ``gmm`` (in place) with the piece ``data`` by online EM.

    Parameters
    ----------
    gmm : GMM
        Initialized from the piece by ``init_method`` when ``state`` is None,
        else updated from its parameters.
    data, covar, R, sample_weight
        The piece, as for :func:`pygmmis_ng.fit`.
    state : OnlineState or None
        What the previous pieces (or an online fit's ``FitResult.online_state``)
        left; None: this is the first piece.
    batch_size : int or None
        Rows per minibatch (None: the piece is one minibatch).
    start_t : int
        With ``state`` None: the learning-rate counter to start from (0: a fresh
        start; to continue from a model fitted to n rows, about n / batch_size,
        so that the first steps do not undo it).
    init_method, background, rng, w, frozen, n_jobs
        As for :func:`pygmmis_ng.fit`; ``rng`` draws the initialization and
        any re-seeding.
    **options
        ``reg_covar``, ``covariance_type``, ``client``, ``dtype``,
        ``learning_decay``, ``learning_offset``, ``progress``.

    Returns
    -------
    PieceResult
    """
    n_rows = len(data) if hasattr(data, "__len__") else np.shape(data)[0]
    size = batch_size if batch_size is not None else max(int(n_rows), 1)
    obs, opts, gen = check_fit(
        gmm, data, covar, R, sample_weight, rng, init_method=init_method if state is None
        else "none", background=background, batch_size=size, n_passes=1, shuffle=False,
        min_samples=gmm.K if state is None else 1, cutoff=None, sel_callback=None,
        oversampling=1, covar_callback=None, tol=0.0, miniter=0, maxiter=0,
        split_n_merge=0, n_init=1, accelerate=False, w=w, frozen=frozen, n_jobs=n_jobs,
        **options)
    problem = prepare_problem(obs, opts, gmm.K, gmm.D, gen)
    N = problem.Xc.shape[0]
    if state is None:
        st = initial_state(gmm, obs, opts.init, opts, problem, gen)
        running, t, rows = start_stats(st, problem.reg_covar), int(start_t), N
        row_weight = problem.N_w / N
    else:
        problem = problem._replace(scale2=state.scale2, reseed_scale=state.reseed_scale,
                                   const_axes=state.const_axes)
        st = State(gmm.amp.copy(), gmm.mean - problem.center, gmm.covar.copy(),
                   initial_bg_amp(opts), problem.N_w)
        running, t, rows = state.running, state.t, state.rows + N
        # the weight of a full minibatch follows the mean weight per row of all pieces
        row_weight = (state.row_weight * state.rows + problem.N_w) / rows
    n_before = t
    with make_executor(problem, opts.n_jobs, opts.client) as ex:
        done = run_pass(problem, st, running, t, units_of(problem, opts.online.batch_size),
                        opts.online, fits_background(problem, st.bg_amp), gen, ex, row_weight,
                        None)
    st, running, t = done.state, done.running, done.t
    gmm.amp, gmm.mean, gmm.covar = st.amp, st.mean + problem.center, st.covar
    if background is not None:
        background.amp = st.bg_amp
    return PieceResult(state_of(problem, running, t, row_weight, rows),
                       done.logL / done.weight if done.weight > 0 else np.nan, t - n_before)
