"""fit(): the public entry point, as a short sequence of named steps.

1. :func:`.options.check_fit` validates every argument (nothing changes yet);
2. :func:`.prepare.prepare_problem` lays out the fixed quantities;
3. :func:`run_restarts` initializes each restart (:mod:`.init`) and runs the
   EM (:mod:`.em_loop`, then :mod:`.split_merge`) on one executor;
4. :func:`finish` writes the best run into the GMM and builds the
   :class:`~.result.FitResult`.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..model import GMM
from ..selection.background import Background
from .online_fit import run_online_starts, warn_large_blocks
from .options import check_fit
from .prepare import prepare_problem
from .progress import fit_progress
from .restarts import choose_run, initial_state, run_restarts
from .restarts import finish as finish_fit
from .result import FitResult
from .schedule import LEARNING_DECAY, LEARNING_OFFSET

__all__ = ["fit", "choose_run", "initial_state"]


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
        learning_offset: float = LEARNING_OFFSET) -> FitResult:
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
    accelerate : bool or 'squarem'
        True (default): extrapolate EM steps (SQUAREM) and, with imputation,
        converge first with one draw per original sample before using all
        ``oversampling`` draws; then, once EM's test passes, Newton's method
        on the log-likelihood to the maximum, which the Newton decrement
        proves (:mod:`pygmmis_ng.fitting.newton`; where it applies).
        'squarem': the extrapolation only. ``False`` runs plain EM, one
        update per iteration, as pyGMMis does.
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
    batch_size : int or None
        None (default): full-batch EM, one pass over the data per iteration.
        An int: online (stepwise) EM for data too large for many passes
        (:mod:`pygmmis_ng.fitting.online`): minibatches of about this many rows
        (whole chunks; with a dask array, whole row chunks of it, read once per
        pass) update running sufficient statistics with a decaying learning
        rate, and an M-step follows each. Works with noise, NaN, ``R``,
        weights, a background, numpy, memory-mapped and (with ``client``)
        dask arrays; not with ``sel_callback``, ``cutoff`` or
        ``split_n_merge``.
    n_passes : int or None
        Most online passes (default 10); they stop earlier once the mean
        logL of a fixed evaluation slice (65536 rows drawn from ``rng``; all
        rows of smaller data) is within ``tol`` of its limit.
    finish : int or bool
        Full-batch EM after the online passes: 0/False (default) none (the
        result's logL is then the evaluation slice's, an estimate with
        ``logL_se``), n: n full-batch updates, True: full-batch EM to ``tol``
        (the exact optimum). Each update reads the data once, and one more
        pass gives the exact logL of the returned parameters.
    shuffle : bool
        Visit the minibatch units in a new random order each pass (from
        ``rng``); False: in the order of the rows (data already shuffled).
    learning_decay, learning_offset : float
        The learning rate of update t: (learning_offset + t) ** -learning_decay,
        with learning_decay in (0.5, 1] (scikit-learn's online LDA names).

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
        progress=progress, batch_size=batch_size, n_passes=n_passes, finish=finish,
        shuffle=shuffle, learning_decay=learning_decay, learning_offset=learning_offset)
    with fit_progress(opts.progress, desc="pygmmis_ng fit", t0=t0,
                      unit="it" if opts.online is None else "pass") as clock:
        problem = prepare_problem(obs, opts, gmm.K, gmm.D, gen)
        if opts.online is not None:
            if obs.on_cluster:
                warn_large_blocks(obs.X, opts.online.batch_size)
            seeds = gen.integers(0, 2**62, size=opts.n_init + 1)
            best, report, restarts_logL, chosen = run_online_starts(gmm, obs, opts, problem,
                                                                    seeds[1:], int(seeds[0]))
            return finish_fit(gmm, background, opts, problem, best, restarts_logL,
                              best.n_reseeded, 0, chosen, elapsed=clock.elapsed(), online=report)
        best, restarts_logL, n_reseeded, n_ghosts, chosen = run_restarts(gmm, obs, opts, problem,
                                                                         gen)
        return finish_fit(gmm, background, opts, problem, best, restarts_logL, n_reseeded,
                          n_ghosts, chosen, elapsed=clock.elapsed())


