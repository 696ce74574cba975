"""Cross-validated likelihoods and stacked mixtures, with pyGMMis's meaning.

* :func:`cv_fit`: L-fold held-out log-likelihood of every sample (sample i
  is in fold i mod L, as in pyGMMis); every fold starts from the same
  parameters and the same random stream, and the GMM passed in is left as it
  was. With ``sel_callback`` the held-out value is the observed-data
  log-density log Omega(x) + log p(x) - log Z (Z = N_train / N0 of the fold's
  fit); with a background it includes the background.
* :func:`stack`: one mixture from several, amplitudes scaled by weights.
* :func:`stack_fit`: cross-validate and fit every model, then find the
  stacking weights that maximize the held-out likelihood of the stacked
  model by a small EM (Smyth & Wolpert 1999), as pyGMMis does.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..data.arrays import as_float_array
from ..data.censoring import check_censored
from ..data.observed import background_log_density_rows
from ..data.validation import check_int, check_observed, check_rng
from ..model import GMM
from ..selection.imputation import evaluate_selection
from .fitter import fit

logger = logging.getLogger("pygmmis_ng")


def _heldout_logL(gmm: GMM, X: np.ndarray, S: np.ndarray | None, R: np.ndarray | None,
                  res: Any, kwargs: dict, C: np.ndarray | None = None) -> np.ndarray:
    log_p = gmm(X, covar=S, as_log=True, R=R, censored=C)
    bg = kwargs.get("background")
    if bg is not None and bg.amp > 0:       # (fit rejects a background with R)
        log_bg = background_log_density_rows(bg, X, S, C)
        log_p = np.logaddexp(np.log1p(-bg.amp) + log_p, np.log(bg.amp) + log_bg)
    sel = kwargs.get("sel_callback")
    if sel is not None:
        # with R, Omega is a function of the latent coordinates: its log at the held-out
        # samples (a constant of the data, as in fit's logL) is left out
        omega = 1.0 if R is not None else evaluate_selection(sel, X, "the held-out samples")
        with np.errstate(divide="ignore"):
            log_p = log_p + np.log(omega) - math.log(res.weight_sum / res.orig_size)
    return log_p


def cv_fit(gmm: GMM, data: Any, L: int = 10, covar: Any = None, rng: Any = None,
           R: Any = None, censored: Any = None, **kwargs: Any) -> np.ndarray:
    """L-fold cross-validated log-likelihood of each sample.

    Parameters
    ----------
    gmm : GMM
        Its K, D and (for ``init_method='none'``) parameters define the
        model; it is not changed.
    data : array-like (N, D) (NaN marks missing values), or (N, dy) with ``R``
    L : int, 2 <= L <= N
        Number of folds.
    covar : None, (D, D) or (N, D, D)
        Noise of the samples (split with them).
    R : None, (dy, D) or (N, dy, D)
        Projections (split with the samples when given per sample).
    censored : None or (N, D) of -1, 0, +1
        Upper (-1) and lower (+1) limits among the data (see :func:`pygmmis_ng.fit`), split
        with the samples; the held-out value of a sample includes its limits' probability.
    rng : None, int, Generator or RandomState
        Every fold's fit uses the same stream derived from it.
    **kwargs
        Passed to :func:`pygmmis_ng.fit` (``init_method``, ``sel_callback``,
        ``background``, ...); not ``sample_weight``.

    Returns
    -------
    lcv : ndarray (N,)
        log-likelihood of sample i under the model fitted without its fold.
    """
    if not isinstance(gmm, GMM):
        raise TypeError(f"gmm must be a pygmmis_ng.GMM, got {type(gmm).__name__}")
    C = None
    if censored is not None:
        data, C = check_censored(censored, as_float_array(data, "data"), R)
    X, R, S = check_observed(data, covar, R, gmm.D)
    N = len(X)
    L = check_int(L, "L", minimum=2)
    if L > N:
        raise ValueError(f"L={L} folds need at least L samples, got N={N}")
    if "sample_weight" in kwargs:
        raise ValueError("cv_fit does not support sample_weight")
    seed = int(check_rng(rng).integers(2**62))
    bg = kwargs.get("background")
    bg_amp0 = None if bg is None else bg.amp
    lcv = np.empty(N)
    fold = np.arange(N) % L
    logger.info("running %d-fold cross-validation", L)
    try:
        for i in range(L):
            test = fold == i
            work = gmm.copy()
            if bg is not None:
                bg.amp = bg_amp0
            res = fit(work, X[~test], covar=_part(S, ~test), R=_part(R, ~test),
                      censored=None if C is None else C[~test],
                      rng=np.random.default_rng(seed), **kwargs)
            lcv[test] = _heldout_logL(work, X[test], _part(S, test), _part(R, test), res, kwargs,
                                      None if C is None else C[test])
    finally:
        if bg is not None:
            bg.amp = bg_amp0
    return lcv


def _part(a: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The rows of a per-sample array (shared or absent ones as they are)."""
    return a if a is None or a.ndim == 2 else a[rows]


def stack(gmms: Sequence[GMM], weights: Any) -> GMM:
    """One GMM holding all components of ``gmms``, amplitudes times ``weights`` (normalized)."""
    if len(gmms) == 0:
        raise ValueError("stack needs at least one GMM")
    if any(not isinstance(g, GMM) for g in gmms):
        bad = next(g for g in gmms if not isinstance(g, GMM))
        raise TypeError(f"stack takes pygmmis_ng.GMM models, got a {type(bad).__name__}")
    D = gmms[0].D
    if any(g.D != D for g in gmms):
        raise ValueError(f"all models must have D={D} (that of the first)")
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(gmms),) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be {len(gmms)} finite numbers, got {weights!r}")
    if (w <= 0).all() and w.sum() < 0:
        # pyGMMis's tests pass the fits' (negative) log-likelihoods; it normalizes by the sum
        warnings.warn("stack: every weight is negative (log-likelihoods?); they are normalized "
                      "by their sum, as pyGMMis does, which gives the worse fits the larger "
                      "weights. For stacking weights use stack_fit (or stack_weights on "
                      "held-out log-likelihoods), or equal weights.", UserWarning, stacklevel=2)
        w = w / w.sum()
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(gmms)} non-negative numbers with a positive sum "
                         f"(or, as pyGMMis accepts, all negative), got {weights!r}")
    out = GMM(sum(g.K for g in gmms), D)
    amp = np.concatenate([wm * g.amp for wm, g in zip(w, gmms)])
    out.amp = amp / amp.sum()
    out.mean = np.concatenate([g.mean for g in gmms])
    out.covar = np.concatenate([g.covar for g in gmms])
    return out


def stack_weights(lcvs: np.ndarray, tol: float = 1e-5, maxiter: int = 1000) -> np.ndarray:
    """Weights beta (M,) maximizing mean_i log sum_m beta_m exp(lcv_mi), by EM."""
    M, N = lcvs.shape
    beta = np.full(M, 1.0 / M)
    prev = -np.inf
    for it in range(maxiter):
        with np.errstate(divide="ignore"):
            log_p = lcvs + np.log(beta)[:, None]
        log_S = logsumexp(log_p, axis=0)
        logL = float(log_S.mean())
        logger.info("STACK %d  %.6f", it, logL)
        beta = np.exp(logsumexp(log_p - log_S, axis=1)) / N
        if logL - prev < tol:
            break
        prev = logL
    return beta


def stack_fit(gmms: Sequence[GMM], data: Any, kwargs: Sequence[dict], L: int = 10,
              tol: float = 1e-5, rng: Any = None) -> GMM:
    """Cross-validate and fit every model, then stack them with optimal weights.

    Parameters
    ----------
    gmms : sequence of GMM
        Fitted in place to all data (with their ``kwargs``).
    data : array-like (N, D)
    kwargs : sequence of dict
        Keywords of :func:`pygmmis_ng.fit` for each model (including
        ``covar``, not ``rng`` or ``L``); each model's cross-validation and fit use the same
        seed, drawn from ``rng``.
    L : int
        Folds of the cross-validation.
    tol : float
        Convergence of the stacking-weight EM in mean held-out logL.
    rng : None, int, Generator or RandomState

    Returns
    -------
    GMM
        The stacked model.
    """
    if len(gmms) != len(kwargs):
        raise ValueError(f"{len(gmms)} models but {len(kwargs)} keyword dicts")
    for kw in kwargs:
        if "rng" in kw or "L" in kw:
            raise ValueError(f"kwargs must not hold {'rng' if 'rng' in kw else 'L'!r}: stack_fit "
                             "passes its own (each model's seed is drawn from stack_fit's rng)")
    gen = check_rng(rng)
    lcvs = []
    for gmm, kw in zip(gmms, kwargs):
        seed = int(gen.integers(2**62))
        lcvs.append(cv_fit(gmm, data, L=L, rng=seed, **kw))
        fit(gmm, data, rng=np.random.default_rng(seed), **kw)
    beta = stack_weights(np.asarray(lcvs), tol=tol)
    return stack(gmms, beta)
