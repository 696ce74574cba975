"""SQUAREM extrapolation of EM iterates (Varadhan & Roland 2008, scheme S3).

EM is slow where the data say little about a direction of the parameters:
with a selection function (imputation) or large noise (deconvolution) the
fraction of missing information is large and plain EM needs many small,
nearly parallel steps. SQUAREM uses two successive EM updates of theta_0,

    r = theta_1 - theta_0,  v = theta_2 - 2 theta_1 + theta_0,
    alpha = -|r| / |v|,
    theta' = theta_0 - 2 alpha r + alpha^2 v,

to jump along that direction (alpha = -1 gives theta_2, the plain EM step).
The caller evaluates theta' and keeps it only if its log-likelihood is not
worse than that of theta_1, which keeps the fit monotone; an extrapolation
that leaves the parameter space (negative amplitudes, covariances that are
not positive definite) is shortened towards alpha = -1 first.

The parameters are compared in data units: means over the data's standard
deviation, covariances over its variance, amplitudes as they are.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

#: longest extrapolation, in multiples of the EM step
ALPHA_MAX = 64.0
#: how often an invalid extrapolation is halved towards the EM step before giving up
BACKTRACKS = 6


class Params(NamedTuple):
    """The parameters SQUAREM moves: amplitudes (K,), means (K, D), covariances (K, D, D), bg."""

    amp: np.ndarray
    mean: np.ndarray
    covar: np.ndarray
    bg_amp: float


def _combine(p0: Params, p1: Params, p2: Params, alpha: float) -> Params:
    # theta_0 - 2 alpha r + alpha^2 v, written as weights of the three iterates (they sum to 1)
    c0, c1, c2 = (1 + alpha) ** 2, -2 * alpha * (1 + alpha), alpha ** 2
    return Params(*(c0 * a + c1 * b + c2 * c for a, b, c in zip(p0, p1, p2)))


def _norms2(p0: Params, p1: Params, p2: Params, scale2: np.ndarray) -> tuple[float, float, float]:
    """|r|^2, |v|^2 and |theta_2 - theta_1|^2 in the scaled parameters (see :func:`step_length`)."""
    s2 = float(np.mean(scale2))
    # differences are divided by their unit before squaring: data of any scale (1e-100..1e100)
    units = (1.0, np.sqrt(s2), s2, 1.0)
    r2 = v2 = d2 = 0.0
    for a, b, c, unit in zip(p0, p1, p2, units):
        a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
        r2 += float(np.sum(((b - a) / unit) ** 2))
        v2 += float(np.sum(((c - 2 * b + a) / unit) ** 2))
        d2 += float(np.sum(((c - b) / unit) ** 2))
    return r2, v2, d2


def scaled_vector(p: Params, scale2: np.ndarray) -> np.ndarray:
    """The parameters as one vector in the units of :func:`step_length`: amplitudes as they
    are, means over the mean data sigma, covariances over its square."""
    s2 = float(np.mean(scale2))
    return np.concatenate([np.ravel(p.amp), np.ravel(p.mean) / np.sqrt(s2),
                           np.ravel(p.covar) / s2, [p.bg_amp]])


def step_length(p0: Params, p1: Params, p2: Params, scale2: np.ndarray) -> float:
    """alpha = -|r| / |v| of scheme S3 in the scaled parameters (<= -1; -1 is plain EM).

    Means are measured in units of the mean data sigma, covariances in its
    square. (Any norm gives a valid SQUAREM step -- every step is checked for
    a logL gain and validity -- so this one need not follow the units of each
    axis; it is kept as measured on the paper's tests.)
    """
    r2, v2, _ = _norms2(p0, p1, p2, scale2)
    if v2 <= 0 or not np.isfinite(r2 + v2):
        return -1.0
    return float(np.clip(-np.sqrt(r2 / v2), -ALPHA_MAX, -1.0))


def extrapolate(p0: Params, p1: Params, p2: Params, scale2: np.ndarray,
                valid: Callable[[Params], bool]) -> Params | None:
    """The SQUAREM point from three successive EM iterates, or None if it is just p2.

    Parameters
    ----------
    p0, p1, p2 : Params
        theta_0, its EM update theta_1 and theta_1's update theta_2.
    scale2 : ndarray (D,)
        Data variance of each axis (the units of covariances and means).
    valid : callable
        Whether a candidate lies in the parameter space; candidates that do
        not are shortened towards the plain EM step.
    """
    alpha = step_length(p0, p1, p2, scale2)
    for _ in range(BACKTRACKS):
        if alpha > -1.0 - 1e-3:          # (almost) the plain EM step itself
            return None
        cand = _combine(p0, p1, p2, alpha)
        if valid(cand):
            return cand
        alpha = 0.5 * (alpha - 1.0)
    return None
