"""The arguments of a fit, checked once, before anything changes.

:func:`check_fit` checks every option by the option table
(:mod:`pygmmis_ng.fitting.problem.option_table`), then what the table cannot
see alone -- the data, and options against each other and the model -- and
returns :class:`~pygmmis_ng.fitting.problem.options.Observations` (what was
observed) and :class:`~pygmmis_ng.fitting.problem.options.FitOptions` (how to
fit). So a bad argument raises an error that names it before the GMM, the
background or any random stream is touched.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ...config import check_memory, get_settings
from ...data.arrays import as_float_array
from ...data.censoring import check_censored
from ...data.latent import fill_latent
from ...data.lazy import block_bounds, block_sum, ordered_sum, sample_index, total_weight
from ...data.validation import (
    check_frozen,
    check_frozen_params,
    check_observed,
    check_rng,
    check_spread,
    check_weights,
    has_nan,
)
from ...model import GMM
from ...selection.background import check_background
from ...selection.imputation import evaluate_selection
from ..problem.option_entries import N_PASSES, TABLE
from ..problem.option_table import check_options, options_on
from ..problem.options import (
    EMOptions,
    ExecutionOptions,
    FitOptions,
    ImputationOptions,
    Observations,
    OnlineOptions,
    StartOptions,
)
from .out_of_core import check_lazy_input, check_observed_omega, log_terms, uses_cluster_data

#: w^2 and reg_covar may be at most this many times the data's largest variance
MAX_FLOOR_RATIO = 1e6


def option_values(path: str, given: dict) -> dict:
    """The options of a fit on ``path``: the table's defaults (for every option, also those
    ``path`` does not take), then ``given``; an option ``path`` does not take is refused."""
    takes = {opt.name for opt in options_on(TABLE, path)}
    foreign = sorted(set(given) - takes)
    if foreign:
        raise TypeError(f"{path} got unexpected keyword argument(s) {foreign}")
    values = {opt.name: opt.default for opt in TABLE.values()
              if opt.group not in ("data", "entry")}
    values.update({name: TABLE[name].default_on(path) for name in takes if name in values})
    values.update(given)
    return values


def check_fit(gmm: Any, data: Any, covar: Any = None, R: Any = None, sample_weight: Any = None,
              rng: Any = None, *, path: str = "fit", min_samples: int | None = None,
              censored: Any = None, **options: Any
              ) -> tuple[Observations, FitOptions, np.random.Generator]:
    """Validate every argument of a fit on ``path`` (``fit`` or ``partial_fit``); see
    :func:`pygmmis_ng.fit` for their meaning. ``options``: the options by their table names
    (missing ones take the table's defaults). ``min_samples``: the fewest samples accepted
    (default K; a minibatch of an online update of a fitted model may hold fewer).
    ``censored``: the limits of :func:`pygmmis_ng.fit`.

    Returns
    -------
    observations : Observations
    options : FitOptions
    gen : numpy.random.Generator
        The fit's source of randomness (from ``rng``).
    """
    if not isinstance(gmm, GMM):
        raise TypeError(f"gmm must be a pygmmis_ng.GMM, got {type(gmm).__name__}")
    gmm.check_shapes()
    K = gmm.K
    v = check_options(TABLE, option_values(path, options), path)
    maxiter = v["maxiter"]
    # miniter=None: one update, or none if maxiter=0 (then the fit returns the initialization)
    miniter = min(1, maxiter) if v["miniter"] is None else v["miniter"]
    if miniter > maxiter:
        raise ValueError(f"miniter={miniter} must not exceed maxiter={maxiter}")
    n_jobs = _cap_n_jobs(v["n_jobs"])
    masks = check_frozen(v["frozen"], K)
    check_frozen_params(gmm, masks)
    gen = check_rng(rng)
    attempts = v["split_n_merge"]
    if attempts > 0 and K < 3:
        raise ValueError(f"split_n_merge needs K >= 3 components (it merges two and splits a "
                         f"third), got K={K}; pass split_n_merge=0")
    _check_covariance_type(v["covariance_type"], masks, attempts)
    online = _online(v, path)
    if online is not None:
        _check_online_combination(v["cutoff"], attempts)
    obs, bg = _observations(gmm, data, covar, R, sample_weight, v, gen, K if min_samples is None
                            else min_samples, censored)
    accelerate = v["accelerate"]
    em = EMOptions(v["tol"], miniter, maxiter, v["w"], v["reg_covar"], v["covariance_type"],
                   accelerate is not False, accelerate is True, masks, attempts, v["cutoff"])
    opts = FitOptions(em, StartOptions(v["init_method"], v["n_init"]),
                      ImputationOptions(v["sel_callback"], v["covar_callback"],
                                        v["oversampling"], bg),
                      ExecutionOptions(n_jobs, v["client"], v["progress"], v["dtype"]), online)
    return obs, opts, gen


def _online(v: dict, path: str) -> OnlineOptions | None:
    """The online options (None: ``batch_size`` None on ``fit``, a full-batch fit);
    ``partial_fit`` makes one pass over its piece in the order given."""
    rows = get_settings().eval_rows
    if path == "partial_fit":
        return OnlineOptions(v["batch_size"], 1, v["learning_decay"], v["learning_offset"],
                             False, 0, rows)
    if v["batch_size"] is None:
        # (a checked finish is None for True: full-batch EM to tol)
        asked = [name for name, on in (("n_passes", v["n_passes"] is not None),
                                       ("finish", v["finish"] != 0)) if on]
        if asked:
            raise ValueError(f"{', '.join(asked)} needs batch_size (online EM): pass "
                             "batch_size=... (rows per minibatch), or leave them out")
        return None
    n_passes = N_PASSES if v["n_passes"] is None else v["n_passes"]
    return OnlineOptions(v["batch_size"], n_passes, v["learning_decay"], v["learning_offset"],
                         bool(v["shuffle"]), v["finish"], rows)


def _observations(gmm: GMM, data: Any, covar: Any, R: Any, sample_weight: Any, v: dict,
                  gen: np.random.Generator, min_samples: int, censored: Any = None
                  ) -> tuple[Observations, Any]:
    """The samples checked against each other, the model and the options; the background."""
    K, D = gmm.K, gmm.D
    sel_callback, covar_callback, background = v["sel_callback"], v["covar_callback"], \
        v["background"]
    impute = sel_callback is not None
    bounds = dict(K=K, w=v["w"], reg_covar=v["reg_covar"],
                  oversampling=v["oversampling"], impute=impute)
    C = None
    if censored is not None:
        data, C = _check_censored(data, censored, R, v)
    if uses_cluster_data(data, v["client"]):
        _check_combination(R, covar, sel_callback, covar_callback, background)
        bg = check_background(background, None, D)
        lazy = check_lazy_input(data, covar, R, sample_weight, K, D, v["client"], sel_callback,
                                None if bg is None else bg.footprint, gen,
                                v["cutoff"] is not None, v["split_n_merge"] > 0, v["dtype"])
        X, S, weight, N_w, log_omega_mean = lazy[:5]
        _check_bounds(lazy.sample[0], X.shape[0], on_cluster=True, **bounds)
        Z_covar = None if lazy.sample[1] is None else np.asarray(lazy.sample[1], np.float64)
        return Observations(X, None, S, weight, np.asarray(lazy.sample[0], np.float64),
                            log_omega_mean, N_w, lazy.sample[2], Z_covar, on_cluster=True), bg
    X, R, S, weight = _check_samples(data, covar, R, sample_weight, K, D, v["dtype"],
                                     min_samples)
    # latent points (this raises if the projections or missing values leave a direction unseen)
    missing = has_nan(X)
    Z = fill_latent(X, R, S, weight, D) if R is not None or missing else X
    _check_bounds(Z, X.shape[0], **bounds)
    _check_combination(R, S, sel_callback, covar_callback, background)
    bg = check_background(background, X, D)
    # with R the selection is a function of the latent coordinates, which an observed sample
    # does not give: its mean log Omega (a constant of the data) is left out of the logL
    log_omega_mean = 0.0 if R is not None else _check_selection(sel_callback, X, weight, missing)
    return _sampled(X, R, S, weight, Z, log_omega_mean, gen)._replace(censored=C), bg


def _check_censored(data: Any, censored: Any, R: Any, v: dict) -> tuple[Any, Any]:
    """The data with void limits made missing, and the censoring flags (None: no limits);
    what censoring cannot be combined with is refused with the reason."""
    if uses_cluster_data(data, v["client"]):
        raise ValueError("censored with dask-array data is not supported: the limits would "
                         "have to travel with every block; pass numpy arrays (client= then "
                         "still runs the E-steps on the cluster)")
    if v["cutoff"] is not None:
        raise ValueError("censored with cutoff is not supported: a neighborhood is a chi2 "
                         "ball around the measured values, and a limit has no distance to a "
                         "component; pass cutoff=None")
    X = as_float_array(data, "data", v["dtype"])
    if X.ndim != 2:
        raise ValueError(f"data must have shape (N, D) with censored, got shape {X.shape}")
    return check_censored(censored, X, R)


def _sampled(X: np.ndarray, R: Any, S: Any, weight: Any, Z: np.ndarray, log_omega_mean: float,
             gen: np.random.Generator) -> Observations:
    """The observations with their initialization rows (all, or a sample drawn from ``gen``)."""
    N = X.shape[0]
    idx = sample_index(N, gen)
    covar = S if Z is X else None
    if idx is not None:
        Z = Z[idx]
        weight_s = None if weight is None else weight[idx]
        covar = covar[idx] if covar is not None and covar.ndim == 3 else covar
    else:
        weight_s = weight
    return Observations(X, R, S, weight, np.asarray(Z, dtype=np.float64), log_omega_mean,
                        total_weight(weight, N), weight_s,
                        None if covar is None else np.asarray(covar, dtype=np.float64))


def _check_samples(data: Any, covar: Any, R: Any, sample_weight: Any, K: int, D: int,
                   dtype: np.dtype, min_samples: int) -> tuple:
    """Data, projections, noise and weights, checked against each other and the model."""
    X, R, S = check_observed(data, covar, R, D, dtype)
    N = X.shape[0]
    if N < max(min_samples, 1):
        raise ValueError(f"K={K} components cannot be fitted to N={N} samples: need N >= K"
                         if min_samples == K else f"data must hold at least {min_samples} "
                         f"sample(s), got {N}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN columns: fill_latent says so
        span = np.nanmax(X, axis=0).astype(np.float64) - np.nanmin(X, axis=0)
    check_spread(span)
    return X, R, S, check_weights(sample_weight, N)


def _cap_n_jobs(n_jobs: int) -> int:
    """More workers than CPUs are capped at the CPU count, with a warning."""
    cpus = os.cpu_count() or 1
    if n_jobs > cpus:
        warnings.warn(f"n_jobs={n_jobs} exceeds the {cpus} CPUs of this machine: using "
                      f"n_jobs={cpus} (more processes than cores only add overhead)",
                      UserWarning, stacklevel=4)
        n_jobs = cpus
    return n_jobs


def _check_bounds(Z: np.ndarray, N: int, K: int, w: float, reg_covar: float,
                  oversampling: int, impute: bool, on_cluster: bool = False) -> None:
    """Sizes and scales that cannot give a meaningful fit (or would exhaust memory) are refused
    before anything is allocated. ``Z``: the latent points of (all or a sample of) the N
    samples; with ``on_cluster`` the samples are not held here, so memory is not checked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var_max = float(np.nanmax(np.nanvar(Z, axis=0))) if Z.size else 0.0
    if var_max > 0:
        for name, value in (("w**2", w * w), ("reg_covar", reg_covar)):
            if value > MAX_FLOOR_RATIO * var_max:
                raise ValueError(f"{name}={value:.3g} exceeds {MAX_FLOOR_RATIO:.0e} times the "
                                 f"data's largest variance ({var_max:.3g}): every component "
                                 "would be far wider than the data; w and reg_covar are in "
                                 "data units")
    if on_cluster:
        return
    D = Z.shape[1]
    draws = oversampling if impute else 0            # at most MAX_DRAWS_PER_SAMPLE (the table)
    need = 8.0 * (N * K * 4 + K * D * D * 8 + N * D * (D + 4) + N * draws * (D * D + 2 * D + K))
    check_memory(need, f"this fit (N={N}, D={D}, K={K}"
                 f"{f', oversampling={oversampling}' if impute else ''})",
                 ": fewer components or samples, or a smaller oversampling")


def _check_covariance_type(covariance_type: Any, masks: dict, attempts: int) -> None:
    """A scikit-learn covariance family, and one the frozen parameters and split'n'merge allow."""
    if covariance_type != "tied":
        return
    if 0 < masks["covar"].sum() < masks["covar"].size:
        raise ValueError("covariance_type='tied' shares one covariance among all components: "
                         "freeze the covariances of all components or of none")
    if attempts > 0:
        raise ValueError("split_n_merge is not available with covariance_type='tied' (a partial "
                         "EM of three components would untie the shared covariance); pass "
                         "split_n_merge=0")


def _check_online_combination(cutoff: Any, attempts: int) -> None:
    """What online EM (``batch_size``) cannot do, refused with the reason."""
    if cutoff is not None:
        raise ValueError("batch_size (online EM) with cutoff is not supported: neighborhoods "
                         "are reused between full passes at nearby parameters, while online "
                         "EM moves the parameters between minibatches; pass cutoff=None")
    if attempts > 0:
        raise ValueError("batch_size (online EM) with split_n_merge is not supported: its "
                         "candidates need full-batch EM runs; pass split_n_merge=0 (or fit "
                         "the online result again with split_n_merge and init_method='none')")


def _check_combination(R: Any, S: Any, sel_callback: Any, covar_callback: Any,
                       background: Any) -> None:
    """The features asked for work together (the callbacks are callables: the table)."""
    if R is not None and background is not None:
        raise ValueError("R (projections) with a background is not supported: the density of a "
                         "projected uniform box is not uniform. Use NaN for unmeasured features "
                         "instead of selection-row projections, or fit without the background")
    if covar_callback is not None and sel_callback is None:
        raise ValueError("covar_callback is only used for imputation samples: it needs a sel_callback")
    if sel_callback is not None and S is not None and covar_callback is None:
        raise ValueError("covar is set but covar_callback is None: imputation samples would be "
                         "noise-free while the data are noisy; pass covar_callback (e.g. "
                         "lambda coords: covar for a shared noise covariance)")


def _check_selection(sel_callback: Any, X: np.ndarray, weight: np.ndarray | None,
                     missing: bool) -> float:
    """Omega at the observed samples must be in (0, 1]; returns their weighted mean log Omega."""
    if sel_callback is None:
        return 0.0
    omega = evaluate_selection(sel_callback, X, "the observed samples" + (
        " (NaN marks their missing features: the selection probability must follow from "
        "the measured ones)" if missing else ""))
    check_observed_omega(omega)
    return ordered_sum(block_sum(log_terms(omega[lo:hi], None if weight is None else weight[lo:hi]))
                       for lo, hi in block_bounds(len(omega))) / total_weight(weight, len(omega))
