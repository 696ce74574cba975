"""The entries of the option table (:mod:`.option_table`): every option of a fit, once.

Order matters: it is the order of validation and of the rendered docs where a
signature does not give one.
"""
from __future__ import annotations

import numpy as np

from ...data.arrays import check_dtype
from ...data.validation import check_accelerate, check_int
from ...execution.cluster import check_client
from .option_table import (
    Option,
    attempts,
    callable_or_none,
    finish_rule,
    flag,
    integer,
    one_of,
    optional_flag,
    passthrough,
    real,
)

#: the covariance families (scikit-learn's)
COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")
#: the names of the built-in initializations (:data:`pygmmis_ng.fitting.starts.init.INIT_METHODS`)
INIT_NAMES = ("random", "minmax", "kmeans", "gmm", "none", "warm", "k-means++",
              "random_from_data", "random_resp")
#: most imputation draws a fit makes per observed sample and iteration
MAX_DRAWS_PER_SAMPLE = 200
#: most initializations a fit accepts
MAX_N_INIT = 10_000
#: the learning rate's defaults: rho_t = (LEARNING_OFFSET + t) ** -LEARNING_DECAY
LEARNING_DECAY = 0.55
LEARNING_OFFSET = 2.0
#: passes over the data when ``n_passes`` is not given
N_PASSES = 10

F, E, P, C = "fit", "estimator", "partial_fit", "classifier"


def _is_init(value: object) -> bool:
    return callable(value) or (isinstance(value, str) and value.lower() in INIT_NAMES + ("auto",))


def _init_rule(value, name, path):
    if not _is_init(value):
        raise ValueError(f"unknown {name} {value!r:.80}; use 'auto', one of {sorted(INIT_NAMES)} "
                         "or a callable init(gmm, data, covar=None, rng=None)")
    return value


def _w_rule(value, name, path):
    if path == "classifier" and isinstance(value, str) and value == "auto":
        return value
    try:
        return real(minimum=0.0)(value, name, path)
    except ValueError:
        if path != "classifier":
            raise
        raise ValueError(f'{name} must be "auto" or a finite number >= 0, got {value!r:.60}') \
            from None


def _accelerate_rule(value, name, path):
    check_accelerate(value)
    return "squarem" if isinstance(value, str) else bool(value)


def _dtype_rule(value, name, path):
    check_dtype(value)
    return value


def _client_rule(value, name, path):
    return check_client(value)


def _n_jobs_rule(value, name, path):
    n_jobs = check_int(value, name, strict=path in ("estimator", "classifier"))
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive int or -1 (all cores), got {n_jobs}")
    return n_jobs


ENTRIES = (
    # -- what was observed (checked with the data) ---------------------------------------
    Option("covar", "None, array-like (D, D) or (N, D, D) (dy instead of D with ``R``)", """
        Noise covariance shared by all samples, or one per sample. The fit then deconvolves:
        it returns the intrinsic mixture whose convolution with the noise best explains the
        data (extreme deconvolution). Entries of a per-sample covariance at missing values
        are ignored (they may be NaN).""", None, "data", (F, P)),
    Option("R", "None, array-like (dy, D) or (N, dy, D)", """
        Projections, shared by all samples or one per sample: sample i observes
        y_i = R_i x_i + noise of a D-dimensional x_i drawn from the mixture (Bovy, Hogg &
        Roweis 2011); dy may be smaller than D. NaN in ``data`` drops that row of R_i. The
        projections together must observe every direction of the D-dimensional space. Not
        available with ``sel_callback`` or ``background`` (a clear error says why). The
        initialization (and ``init_method`` callables) see latent points: each sample's
        posterior mean under one Gaussian fitted to all samples by extreme deconvolution
        (see :mod:`pygmmis_ng.data.latent`).""", None, "data", (F, P)),
    Option("censored", "None or array-like (N, D) of -1, 0, +1", """
        Censored values: -1 where ``data[i, d]`` is an upper limit of the noisy value (it
        lies below: a non-detection), +1 where it is a lower limit, 0 where it is a
        measurement. The limits apply to the noisy observation y = x + noise, as detection
        thresholds do. A sample's likelihood is the density of its measured values times
        the probability, under their conditional Gaussian, that the limited ones lie beyond
        their limits (:mod:`pygmmis_ng.kernels.censored`); at most three limits per sample.
        NaN, limits and noise can share a row; a limit of +inf (upper) or -inf (lower) is a
        missing value. Not with ``R``, ``cutoff`` or dask-array data (the error says why);
        the Newton polish is skipped (EM's own convergence test decides).""", None, "data",
           (F, P)),
    # -- the start ------------------------------------------------------------------------
    Option("init_method", "{'auto', 'random', 'minmax', 'kmeans', 'gmm', 'none', 'warm', "
           "'k-means++', 'random_from_data', 'random_resp'} or callable", """
        How each start is initialized (:mod:`pygmmis_ng.fitting.starts.init`). ``'auto'``
        (default): 'kmeans', as in scikit-learn (pyGMMis's default is 'random'). Under a
        selection every other start also runs a k-means start, and the k-means run is kept
        unless the other beats it (see :func:`pygmmis_ng.fitting.starts.driver.run_starts`).""",
           "auto", "start", (F, E, P, C), _init_rule,
           names={E: "init_params", C: "init_params"}, defaults={E: "kmeans", C: "kmeans",
                                                                  P: "kmeans"},
           type_docs={E: "{'kmeans', 'k-means++', 'random', 'random_from_data'}, a name of "
                         "``fit``'s ``init_method`` ('minmax', 'gmm', ...), or a callable",
                      C: "as ``IncompleteGaussianMixture``'s"},
           docs={E: """
        The initialization. 'random' is scikit-learn's (random responsibilities), not
        pyGMMis's.""", C: "The initialization of every class's mixture.",
                 P: "The initialization of the first piece (see ``fit``)."}),
    Option("n_init", "int >= 1", """
        Number of initializations (each from its own random stream); the run with the
        highest final logL is kept. With imputation all runs share the same imputation
        draws, so their logL are comparable.""", 1, "start", (F, E, C),
           integer(minimum=1, maximum=MAX_N_INIT, why=" initializations: each runs a full EM; a "
                   "few (or split_n_merge) find the optimum as well")),
    # -- the EM ---------------------------------------------------------------------------
    Option("w", "float >= 0", """
        Covariance regularization in data units, as in pyGMMis: a lower bound on the
        isotropic dispersion of the components.""", 0.0, "em", (F, E, P, C), _w_rule,
           type_docs={C: '"auto" or float'}, defaults={C: "auto"},
           docs={C: """
        Lower bound on the component dispersion (data units). "auto" (default): chosen per
        class as the floor that maximizes the 3-fold held-out likelihood of one Gaussian
        fitted to the class (:mod:`pygmmis_ng.estimators.regularization`); a float is used
        for every class as given (0.0: no floor)."""}),
    Option("cutoff", "float > 0 or None", """
        Neighborhood size in 1D-equivalent sigmas (chi2 quantile of the same confidence in D
        dimensions). Each component then only evaluates the observed samples in its
        neighborhood; the neighborhoods are stored with a margin and recomputed only for
        components that moved, so the fit is exact for every pair within ``cutoff`` and
        neglects pairs far beyond it (responsibilities below ~exp(-cutoff^2 / 2)). None:
        every pair (exact). Also the ``U`` returned.""", None, "em", (F, E),
           real(minimum=0.0, strict=True, allow_none=True)),
    Option("tol", "float >= 0", """
        Stop when the estimated distance of the mean log-likelihood to its limit (the last
        change plus the gain still to come) is below ``tol`` (absolute, per sample, like
        scikit-learn's), no component mean moved by more than 0.1 (1D-equivalent) sigma and,
        with imputation, the estimated original size is as settled. See
        :mod:`pygmmis_ng.fitting.em.convergence`.""", 1e-4, "em", (F, E, C), real(minimum=0.0),
           defaults={E: 1e-3, C: 1e-3}),
    Option("miniter", "int >= 0 or None", """
        Minimum number of EM updates; None (default) is 1, or 0 with ``maxiter=0`` (the fit
        then returns the initialization and its logL).""", None, "em", (F,),
           integer(minimum=0, allow_none=True)),
    Option("maxiter", "int >= 0", """
        Maximum number of EM updates. A ConvergenceWarning is issued when it is reached
        without convergence.""", 1000, "em", (F, E, C), integer(minimum=0),
           names={E: "max_iter", C: "max_iter"}),
    Option("frozen", "None, sequence of int, or dict", """
        Components (or, as a dict with keys 'amp', 'mean', 'covar', single parameters of
        components) kept at the values the GMM has on entry.""", None, "em", (F, P),
           passthrough),
    Option("split_n_merge", "int >= 0, bool or None", """
        Split'n'merge attempts after each EM run (SMEM, Ueda et al. 2000, as in pyGMMis):
        merge the two components with the most overlapping responsibilities, split the one
        that fits its samples worst, refine the three by a partial EM and all by a full EM,
        and keep the result if logL rose by more than ``tol * max(1, |logL|)``. Each
        candidate costs about two EM runs. 0, False or None: off; True: 3 attempts. Needs
        K >= 3; components with a frozen parameter take no part.""", False, "em", (F, E),
           attempts, defaults={E: 0}, type_docs={E: "int >= 0"}),
    Option("accelerate", "bool or 'squarem'", """
        True (default): extrapolate EM steps (SQUAREM) and, with imputation, converge first
        with one draw per original sample before using all ``oversampling`` draws; then, once
        EM's test passes, Newton's method on the log-likelihood to the maximum, which the
        Newton decrement proves (:mod:`pygmmis_ng.fitting.em.newton`; where it applies).
        'squarem': the extrapolation only. False runs plain EM, one update per iteration, as
        pyGMMis does.""", True, "em", (F, E), _accelerate_rule, docs={E: """
        SQUAREM extrapolation (and the oversampling ramp) between EM updates, then Newton's
        method to the maximum where it applies (not with ``reg_covar`` > 0, so not at the
        default 1e-6); 'squarem' the extrapolation only; False plain EM (see ``fit``)."""}),
    Option("covariance_type", "{'full', 'diag', 'tied', 'spherical'}", """
        The covariance family, as in scikit-learn's GaussianMixture: full matrices; diagonal
        ones; one full matrix shared by all components; one variance per component. The
        constrained M-steps are exact for every kind of data (noise, projections, missing
        values, imputation). ``gmm.covar`` stays (K, D, D), full matrices of the family.
        'tied' works with all or no covariances frozen and without split'n'merge.""",
           "full", "em", (F, E, P, C), one_of(*COVARIANCE_TYPES)),
    Option("reg_covar", "float >= 0", """
        Added to every variance in each M-step (scikit-learn's ``reg_covar``; its
        GaussianMixture default is 1e-6). Unlike ``w`` it shifts every component, so the fit
        is no longer the likelihood maximum.""", 0.0, "em", (F, E, P, C), real(minimum=0.0),
           defaults={E: 1e-6}, docs={C: """
        Added to every variance in each M-step; 0 by default, since ``w`` ("auto") already
        regularizes each class as its data need."""}),
    # -- imputation and background --------------------------------------------------------
    Option("sel_callback", "callable or None", """
        ``sel_callback(coords) -> Omega``: the probability (N,) in [0, 1] that a sample at
        the (noisy) coords (N, D) was observed. It must be > 0 at every observed sample.
        Enables imputation: the fit then estimates the density *before* selection (see
        :mod:`pygmmis_ng.selection.imputation`). Components whose draws are almost never
        selected (ghosts) are re-seeded; a selection that cannot match the data raises
        :class:`~pygmmis_ng.RunawayError`. With ``R`` it is called on the draws' latent
        coordinates only (noisy by ``covar_callback``): the selection must act through latent
        coordinates every sample measures directly (e.g. a parallax cut with the parallax a
        model coordinate), and the logL leaves out the observed samples' mean log Omega.""",
           None, "imputation", (F, E, P), callable_or_none),
    Option("oversampling", "int >= 1", """
        Imputation draws per sample of the estimated original sample size and iteration.
        Their Monte-Carlo noise shrinks as 1/sqrt(oversampling). Online EM: each minibatch
        makes its share, oversampling times its estimated original size.""", 10, "imputation",
           (F, E, P),
           integer(minimum=1, maximum=MAX_DRAWS_PER_SAMPLE, why=", the most imputation draws a "
                   "fit makes per observed sample and iteration")),
    Option("covar_callback", "callable or None", """
        ``covar_callback(coords) -> (D, D) or (M, D, D)``: noise covariance of imputation
        draws at their noise-free coords. Required when both ``covar`` and ``sel_callback``
        are given.""", None, "imputation", (F, E, P), callable_or_none),
    Option("background", "Background or None", """
        A uniform background fitted together with the mixture; its ``amp`` is updated in
        place when ``adjust_amp`` (an initial amp of 0 then starts at min(0.1, amp_max)).""",
           None, "imputation", (F, E, P), passthrough, docs={E: """
        A uniform background (see ``fit``), copied for each fit; the fitted fraction is
        ``background_amp_``."""}),
    # -- randomness, execution, reporting -------------------------------------------------
    Option("rng", "None, numpy.random, int, numpy.random.Generator or numpy.random.RandomState",
           """
        Source of all randomness (initialization, imputation, re-seeding). None and the
        ``numpy.random`` module (pyGMMis's default) draw from numpy's global state, as
        pyGMMis and scikit-learn do.""", None, "entry", (F, E, P, C), passthrough,
           names={E: "random_state", C: "random_state"},
           type_docs={E: "None, int or RandomState", C: "None, int or RandomState"}),
    Option("n_jobs", "int", """
        Worker processes (-1: one per CPU). 1: this process, its chunks of samples on one
        thread per core (``PYGMMIS_NG_THREADS`` sets how many). More: a process pool over
        shared memory for this fit, which pays off for imputation draws. The result is
        identical for every n_jobs and number of threads.""", 1, "execution", (F, E, P, C),
           _n_jobs_rule),
    Option("sample_weight", "None or array-like (N,)", """
        Non-negative per-sample weights (an integer weight counts a sample that many
        times).""", None, "data", (F, P)),
    Option("client", "None or dask.distributed.Client", """
        Run the E-steps on this Dask cluster (``pip install "pygmmis_ng[dask]"``): each
        iteration sends only parameters; bit-identical to ``n_jobs=1``. ``data``, ``covar``
        and ``sample_weight`` may be dask arrays (e.g. ``da.from_zarr``), never gathered here:
        see :mod:`pygmmis_ng.fitting.setup.out_of_core`.""", None, "execution", (F, E, P),
           _client_rule),
    Option("dtype", "numpy.float64 (default) or numpy.float32", """
        How the fit stores data, per-sample noise and per-sample projections. float32 halves
        their memory (and the memory traffic of each E-step); every kernel still computes and
        accumulates in float64, so only the rounding of the stored values changes the
        result.""", np.float64, "execution", (F, E, P), _dtype_rule),
    Option("progress", "None, True or False", """
        A progress bar (tqdm): iteration, mean logL, its change, imputed count, elapsed time.
        None (default): in terminals and notebooks once the fit has run for a few seconds
        (the runtime setting ``progress_delay``); True: always; False: never. The INFO table
        on the ``pygmmis_ng`` logger is separate.""", None, "execution", (F, E, P, C),
           optional_flag, docs={C: """
        One progress bar over the classes (their fits show none of their own); None: in
        interactive sessions once the fit has run for a few seconds.""", P: """
        Accepted for symmetry with ``fit``; a piece shows no progress bar."""}),
    # -- online EM ------------------------------------------------------------------------
    Option("batch_size", "int or None", """
        None (default): full-batch EM, one pass over the data per iteration. An int: online
        (stepwise) EM for data too large for many passes (:mod:`pygmmis_ng.fitting.online`):
        minibatches of about this many rows update running sufficient statistics with a
        decaying learning rate, and an M-step follows each. Works with noise, NaN, ``R``,
        weights, a background, ``sel_callback`` (each minibatch imputes its share of the
        unselected samples), numpy, memory-mapped and (with ``client``) dask arrays; not
        with ``cutoff`` or ``split_n_merge``.""", None, "online",
           (F, E, P), integer(minimum=1, allow_none=True), docs={E: """
        None: full-batch EM. An int: online (stepwise) EM over minibatches of about this
        many rows (``fit``; see ``pygmmis_ng.fit``), and the rows per minibatch of
        ``partial_fit`` (None there: each call's X is one minibatch).""", P: """
        Rows per minibatch (None: the piece is one minibatch)."""}),
    Option("n_passes", "int or None", """
        Most online passes (default 10); they stop earlier once the mean logL of a fixed
        evaluation slice (65536 rows drawn from ``rng``; all rows of smaller data) is within
        ``tol`` of its limit.""", None, "online", (F, E), integer(minimum=1, allow_none=True)),
    Option("finish", "int or bool", """
        Full-batch EM after the online passes: 0/False (default) none (the result's logL is
        then the evaluation slice's, an estimate with ``logL_se``), n: n full-batch updates,
        True: full-batch EM to ``tol`` (the exact optimum).""", 0, "online", (F, E),
           finish_rule),
    Option("shuffle", "bool", """
        Visit the minibatch units in a new random order each pass (from ``rng``); False: in
        the order of the rows (data already shuffled).""", True, "online", (F, E), flag),
    Option("learning_decay", "float in (0.5, 1]", """
        The learning rate of update t is (learning_offset + t) ** -learning_decay
        (scikit-learn's online LDA names).""", LEARNING_DECAY, "online", (F, E, P),
           real(interval=(0.5, 1.0), why=" (stepwise EM converges only then)")),
    Option("learning_offset", "float >= 0", """
        See ``learning_decay``.""", LEARNING_OFFSET, "online", (F, E, P), real(minimum=0.0)),
)

#: the options of the estimators and of ``partial_fit`` alone
OWN_ENTRIES = (
    Option("n_components", "int", """
        Number of components K.""", 1, "entry", (E, C), integer(minimum=1),
           docs={C: "Components per class (fewer for a class with fewer samples)."}),
    Option("weights_init", "None or array-like (K,)", """
        Initial weights; they replace what ``init_params`` gives.""", None, "entry", (E,),
           passthrough),
    Option("means_init", "None or array-like (K, D)", """
        Initial means; they replace what ``init_params`` gives.""", None, "entry", (E,),
           passthrough),
    Option("precisions_init", "None or array-like", """
        Initial precisions, shaped by ``covariance_type`` as in scikit-learn; they replace
        the covariances ``init_params`` gives.""", None, "entry", (E,), passthrough),
    Option("warm_start", "bool", """
        Start each ``fit`` from the previous fit's parameters (one initialization; under a
        selection no k-means start competes).""", False, "entry", (E,), flag),
    Option("verbose", "int", """
        0 silent, 1 the fit's messages, 2 also every ``verbose_interval``-th row of the
        iteration table (on ``sys.stdout``, via logging).""", 0, "entry", (E, C),
           integer(minimum=0)),
    Option("verbose_interval", "int", """
        Iterations between the rows printed with ``verbose=2``.""", 10, "entry", (E, C),
           integer(minimum=1)),
    Option("priors", "None or array-like (n_classes,)", """
        Class priors in the order of ``classes_``; None: the (weighted) class frequencies of
        the training data.""", None, "entry", (C,), passthrough),
    Option("init_method_deprecated", "None", """
        Deprecated name of ``init_params``.""", None, "entry", (E, C), passthrough,
           names={E: "init_method", C: "init_method"}),
    Option("state", "OnlineState or None", """
        What the previous pieces (or an online fit's ``FitResult.online.state``) left; None:
        this is the first piece.""", None, "entry", (P,), passthrough),
    Option("start_t", "int >= 0", """
        With ``state`` None: the learning-rate counter to start from (0: a fresh start; to
        continue from a model fitted to n rows, about n / batch_size, so that the first steps
        do not undo it).""", 0, "entry", (P,), integer(minimum=0)),
)

#: the option table: name -> Option, in validation order
TABLE = {opt.name: opt for opt in ENTRIES + OWN_ENTRIES}
