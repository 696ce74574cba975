"""When a run has converged: the gain still to come, estimated, below ``tol``.

A rule on the last change alone ("stop when logL changed by less than tol")
stops early where EM is slow: with a selection function, large noise or
overlapping components the map contracts by lambda close to 1 per
iteration, so the fit crawls by tiny steps far from its optimum (plain EM
0.011 per sample short of scikit-learn's optimum, the astroML XD example
0.008). Near the optimum the error shrinks by lambda per EM step and the
log-likelihood's distance to its limit by lambda^2, so after an EM step
that gained ``delta`` the gain still to come is about

    remaining = delta * lambda^2 / (1 - lambda^2)

(Aitken's estimate of the limit, with lambda measured from the parameters:
:func:`~.acceleration.em_rate` of the three iterates theta_0, its EM update
theta_1 and theta_1's update theta_2, which SQUAREM computes anyway). A run
has converged when ``delta + remaining`` -- the estimated distance of
theta_0's mean log-likelihood to the limit -- is below ``tol`` (per sample,
absolute, like scikit-learn's ``tol``), no component mean moved by more than
0.1 (1D-equivalent) sigma, and, with imputation, the estimated original
size is as settled (its change extrapolated in the same way, relative to
N0, below :data:`N0_RTOL`).
"""
from __future__ import annotations

import numpy as np

from .acceleration import Params, em_rate
from .problem import Problem, State

#: with imputation, the extrapolated relative change of the original size N0 must be below this
N0_RTOL = 1e-3
#: in the cheap first phase of the oversampling ramp (about one draw per original sample) the
#: tolerance is at least this fraction of logL's Monte-Carlo standard error (binomial: an upper
#: bound for the quasi-random draws, too loose to bound the final phase, which keeps ``tol``)
RAMP_NOISE_TOL = 0.1
#: rates closer to 1 than this count as "no convergence in sight"
RATE_MAX = 1.0 - 1e-9


def _tail(step: float, q: float) -> float:
    """Sum of the steps still to come after ``step`` if each is ``q`` times the one before
    (0 after a step of 0: an exact fixed point, whatever rate the iterates before it showed)."""
    if not step > 0:
        return 0.0
    if not q < RATE_MAX:
        return np.inf
    return step * q / (1.0 - q)


def remaining_gain(delta: float, rate: float) -> float:
    """Estimated gain of the mean log-likelihood still to come after an EM step that gained
    ``delta``, for a map contracting by ``rate`` per step (inf for a rate >= 1)."""
    return _tail(delta, rate * rate)


def params_of(st: State) -> Params:
    """The parameters of a state, as SQUAREM moves them."""
    return Params(st.amp, st.mean, st.covar, st.bg_amp)


def check_convergence(p: Problem, st0: State, logL0: float, N0_0: float, st1: State, logL1: float,
                      N0_1: float, st2: State, rate_before: float = 0.0, noise: float = 0.0
                      ) -> tuple[bool, int, float, float]:
    """Whether the plain EM step st0 -> st1 (and st1 -> st2) shows convergence.

    ``rate_before`` is the rate measured at the previous check: the estimate
    uses the larger of the two, since a single ratio of steps, taken before
    the slowest direction dominates or right after an extrapolation, can be
    far below the map's rate.

    Returns
    -------
    done : bool
    stable : int, components whose mean moved by at most 0.1 sigma
    gap : float, the estimated distance of st0's mean log-likelihood to the limit
    rate : float, the rate measured at this check
    """
    K = st1.mean.shape[0]
    L = np.linalg.cholesky(st0.covar)
    r = np.linalg.solve(L, (st1.mean - st0.mean)[:, :, None])[:, :, 0]
    stable = int(np.sum((r**2).sum(axis=1) <= p.shift_limit))
    rate = em_rate(params_of(st0), params_of(st1), params_of(st2), p.scale2)
    lam = max(rate, rate_before)
    delta = logL1 - logL0
    # in the ramp's first phase (noise > 0) the run only needs to get near the fixed point: the
    # last change decides; the final phase adds the gain still to come
    gap = abs(delta) + (0.0 if noise > 0 else remaining_gain(delta, lam))
    # with imputation logL is known to +- its Monte-Carlo error only: gains far below that
    # (``noise``, a fraction of it) are not pursued
    done = gap < max(p.tol, noise) and stable == K
    if done and p.impute:
        dN0 = abs(N0_1 - N0_0)
        # N0 moves like the parameters; its relative Monte-Carlo error is logL's (of log Z)
        done = dN0 + _tail(dN0, lam) < max(N0_RTOL, noise) * N0_0
    return done, stable, gap, rate
