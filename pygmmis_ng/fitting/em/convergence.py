"""When a run has converged: the gain still to come, estimated, below ``tol``.

A rule on the last change alone ("stop when logL changed by less than tol")
stops early where EM is slow: with a selection function, large noise or
overlapping components the map contracts by lambda close to 1 per
iteration, so the fit crawls by tiny steps far from its optimum (plain EM
0.011 per sample short of scikit-learn's optimum, the astroML XD example
0.008). Near the optimum EM is linear, theta_k+1 - theta* = J (theta_k -
theta*), and J's eigenvalues lambda_j in [0, 1) are the rates of its
directions; an EM step that gains ``delta`` leaves at most

    remaining = delta * lambda^2 / (1 - lambda^2)

to come for lambda the largest rate among the directions it moves in (a
step's gain splits over the directions; direction j's share delta_j leaves
delta_j lambda_j^2 / (1 - lambda_j^2), so the largest lambda bounds the
sum). The rate is measured on the **Krylov space of consecutive plain EM
steps** (:func:`krylov_rate`): the largest Ritz value of J from up to
:data:`RATE_STEPS` steps, and never less than the ratio of the last two
steps, nor than the ratio of consecutive gains of the log-likelihood
(:func:`gain_rate`: the same lower bound in the likelihood's own metric).
One ratio alone is the power method: taken after an extrapolation,
which removes the slow direction in part, or early in a plain run, it sees
the fast directions and underestimates the rate (scikit-learn's 'diag' test
data: SQUAREM stopped 7.8e-4 short, plain EM 2.4e-4, at tol 1e-4), while
the Ritz values of a few steps find the slowest one (0.988 from three steps
there, the Jacobian's largest eigenvalue being 0.991). It remains an
estimate from local steps: along a ridge that curves away the rate rises
further on, which no local rate sees; where it applies, the Newton polish
(:mod:`.newton`) replaces this test by a proof.

A run has converged when ``delta + remaining`` -- the estimated distance of
the chain's last but one mean log-likelihood to the limit -- is below
``tol`` (per sample, absolute, like scikit-learn's ``tol``), measured on at
least :data:`CONFIRM_STEPS` consecutive plain EM steps (an accelerated run
turns its extrapolation off until it has them: the confirmation; a gap below
:data:`UNCONFIRMED` times ``tol`` needs none), no
component mean moved by more than 0.1 (1D-equivalent) sigma, and, with
imputation, the estimated original size is as settled (its change
extrapolated in the same way, relative to N0, below :data:`N0_RTOL`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..problem.problem import Problem, State
from .acceleration import Params, scaled_vector

#: with imputation, the extrapolated relative change of the original size N0 must be below this
N0_RTOL = 1e-3
#: in the cheap first phase of the oversampling ramp (about one draw per original sample) the
#: tolerance is at least this fraction of logL's Monte-Carlo standard error (binomial: an upper
#: bound for the quasi-random draws, too loose to bound the final phase, which keeps ``tol``)
RAMP_NOISE_TOL = 0.1
#: rates closer to 1 than this count as "no convergence in sight"
RATE_MAX = 1.0 - 1e-9
#: the rate is measured on at most this many consecutive plain EM steps
RATE_STEPS = 6
#: convergence is declared on at least this many consecutive plain EM steps (two give one
#: Ritz value: the power method; five give four, which find a slow direction among several
#: fast ones in the steps)
CONFIRM_STEPS = 5
#: ... unless the estimated gap is below this fraction of tol
UNCONFIRMED = 1e-3
#: singular values of the steps below this fraction of the largest span no direction
KRYLOV_RCOND = 1e-9
#: changes of the mean logL below this fraction of it are rounding, not gains
LOGL_RESOLUTION = 1e-13
#: ... and gains below this fraction of it too rough to take a ratio of
GAIN_RESOLUTION = 1e-11


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


class Chain:
    """The consecutive plain EM iterates of a run since its last extrapolation, re-seeding or
    phase: ``states[j + 1]`` is the EM update of ``states[j]``, whose E-step gave ``logL[j]``
    and ``N0[j]`` (the last state's E-step is still to come). At most RATE_STEPS steps are kept."""

    def __init__(self) -> None:
        self.states: list = []
        self.logL: list = []
        self.N0: list = []

    @property
    def last(self) -> State | None:
        return self.states[-1] if self.states else None

    @property
    def n_steps(self) -> int:
        return max(len(self.states) - 1, 0)

    def start(self, st: State) -> None:
        """A new chain from ``st`` (not the EM update of the last iterate)."""
        self.states, self.logL, self.N0 = [st], [], []

    def extend(self, logL: float, N0: float, new: State) -> None:
        """The E-step at the last iterate gave ``logL``, ``N0`` and its EM update ``new``."""
        self.states.append(new)
        self.logL.append(logL)
        self.N0.append(N0)
        if len(self.states) > RATE_STEPS + 1:
            del self.states[0], self.logL[0], self.N0[0]


def krylov_rate(points: list[np.ndarray]) -> float:
    """The contraction of the slowest direction the steps between consecutive EM iterates
    ``points`` (vectors) move in: the largest Ritz value (in modulus) of the EM map's Jacobian
    on their Krylov space, and never less than the ratio of the last two steps.

    With steps d_j = points[j+1] - points[j] and J d_j = d_j+1, J restricted to the span of
    d_0 .. d_r-2 is U^T [d_1 .. d_r-1] V S^-1 for the SVD U S V^T of [d_0 .. d_r-2] (singular
    values below KRYLOV_RCOND of the largest dropped). inf if the steps grow from nothing.
    """
    steps = np.diff(np.asarray(points, dtype=float), axis=0)
    norms = np.sqrt((steps**2).sum(axis=1))
    if len(steps) < 2:
        return 0.0
    if not np.isfinite(norms).all():
        return np.inf
    if norms[-2] == 0:
        return 0.0 if norms[-1] == 0 else np.inf
    rate = norms[-1] / norms[-2]
    if len(steps) >= 3:
        U, sv, Vt = np.linalg.svd(steps[:-1].T, full_matrices=False)
        keep = sv > KRYLOV_RCOND * sv[0]
        H = U[:, keep].T @ steps[1:].T @ Vt[keep].T / sv[keep]
        rate = max(rate, float(np.abs(np.linalg.eigvals(H)).max()))
    return float(rate)


def gain_rate(logL: list) -> float:
    """The rate the log-likelihood's gains of consecutive plain EM steps show: sqrt of the
    largest ratio of a gain to the one before (0 without two positive gains).

    Near the optimum a step's gain is a positive combination of lambda_j^2k (1 - lambda_j^2)
    over the directions, and the ratio of consecutive sums of such sequences rises towards
    the largest lambda^2 from below: a lower bound of the slowest rate, like the Ritz values,
    but measured in the likelihood's own metric, not in the parameters' scaled one, in
    which a direction that changes the likelihood much (a narrow component's covariance)
    can move too little to be seen (the Hipparcos velocities at w = 0: Ritz 0.94, gains
    0.99).
    """
    logL = np.asarray(logL, dtype=float)
    if len(logL) < 3:
        return 0.0
    gains = np.diff(logL)
    floor = GAIN_RESOLUTION * max(1.0, float(np.abs(logL).max()))    # rounding, not gains
    ratios = [b / a for a, b in zip(gains[:-1], gains[1:]) if a > floor and b > floor]
    return float(np.sqrt(min(max(ratios), 1.0))) if ratios else 0.0


class Check(NamedTuple):
    """What a convergence check found (see :func:`check_convergence`)."""

    done: bool
    stable: int                 # components whose mean moved by at most 0.1 sigma
    gap: float                  # estimated distance of the chain's last but one logL to the limit
    rate: float                 # the rate measured on the chain
    pending: bool               # all holds but the chain is short: confirm with plain steps


def check_convergence(p: Problem, chain: Chain, rate_before: float = 0.0, noise: float = 0.0
                      ) -> Check:
    """Whether the last plain EM steps of ``chain`` (at least two) show convergence.

    ``rate_before`` is the rate measured at the previous check: the estimate
    uses the larger of the two (a rate is a lower bound of the slowest
    direction's, which the current steps may hardly move in).
    """
    st0, st1 = chain.states[-3], chain.states[-2]
    K = st1.mean.shape[0]
    L = np.linalg.cholesky(st0.covar)
    r = np.linalg.solve(L, (st1.mean - st0.mean)[:, :, None])[:, :, 0]
    stable = int(np.sum((r**2).sum(axis=1) <= p.shift_limit))
    rate = krylov_rate([scaled_vector(params_of(st), p.scale2) for st in chain.states])
    if not p.impute:                       # imputation's gains jitter (draws cross Omega's edges)
        rate = max(rate, gain_rate(chain.logL))
    lam = max(rate, rate_before)
    logL0, logL1 = chain.logL[-2], chain.logL[-1]
    delta = logL1 - logL0
    if abs(delta) <= LOGL_RESOLUTION * max(1.0, abs(logL1)):
        delta = 0.0                        # below the rounding of logL: no gain to measure
    # in the ramp's first phase (noise > 0) the run only needs to get near the fixed point: the
    # last change decides; the final phase adds the gain still to come
    gap = abs(delta) + (0.0 if noise > 0 else remaining_gain(delta, lam))
    # with imputation logL is known to +- its Monte-Carlo error only: gains far below that
    # (``noise``, a fraction of it) are not pursued
    met = gap < max(p.em.tol, noise) and stable == K
    if met and p.impute:
        dN0 = abs(chain.N0[-1] - chain.N0[-2])
        # N0 moves like the parameters; its relative Monte-Carlo error is logL's (of log Z)
        met = dN0 + _tail(dN0, lam) < max(N0_RTOL, noise) * chain.N0[-2]
    # a gap far below tol needs no confirmation: no rate makes it reach tol (and a fit at its
    # fixed point, or one step a call with warm starts, converges without more steps)
    enough = noise > 0 or chain.n_steps >= CONFIRM_STEPS or gap < UNCONFIRMED * p.em.tol
    return Check(met and enough, stable, gap, rate, met and not enough)
