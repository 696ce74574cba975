"""Newton's method on the log-likelihood once EM has found the basin: to the maximum, and proof.

EM's map contracts by the fraction of missing information, close to 1 where
noise or overlap hide what a sample says: the fit crawls along a ridge and
every local rate underestimates how far it is to go (on the XD test problems
the optimum lay 1e-4 to 3e-3 per sample beyond the point where the gain
still to come, estimated from EM's steps, was below 1e-4). Near the maximum
the log-likelihood is a quadratic in the parameters, and

    l(theta*) - l(theta) = g^T (-H)^-1 g / 2     (the Newton decrement)

with its gradient g and Hessian H (negative definite at a maximum). The
gradient comes with every E-step (Fisher's identity,
:func:`.coordinates.full_gradient`); the Hessian takes one pass of
:mod:`pygmmis_ng.kernels.hessian` over the data (a few E-steps' time). So the
polish (:func:`polish`) computes H once at the point where EM stopped, then
takes trust-region Newton steps, one E-step each, updating H along the way
by symmetric rank-one updates from the gradients it sees, and stops when the Newton decrement --
the estimated distance to the maximum -- is below ``tol``. A step that
leaves the parameter space or gains less than a quarter of what the
quadratic model promised shrinks the trust region; a Hessian that is not
negative definite (a saddle, or a ridge that curves away) is no proof of a
maximum, and the trust region then moves along the curvature towards one.
The exact Hessian is computed again after :data:`REFRESH_EVERY` accepted
steps on the updated one, or when that keeps failing. A polish that ends
where the exact Hessian is not negative definite has shown that EM's test
passed on a crawl (the log-likelihood still rises along some direction):
the run makes no further polish, and if EM's test then stops it, the fit is
not called converged (``Run.on_ridge``; a ConvergenceWarning says why). That
is the case where components collapse onto narrow groups of samples and the
maximum lies on the edge of the parameter space (the Hipparcos velocities
without a floor ``w``).

Not for every fit (:func:`eligible`): with imputation the log-likelihood is
a Monte-Carlo estimate (its error, not its curvature, limits what can be
known), ``cutoff`` neglects pairs, ``reg_covar`` and an active ``w`` floor
make EM's fixed point a constrained one, a covariance close to singular puts
the maximum on the edge of the parameter space (:data:`BOUNDARY`), and very
many parameters make the Hessian too large; such fits keep EM's own test
(:mod:`.convergence`).
"""
from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np

from ...config import get_settings
from ...data.observed import chunk_arrays
from ...kernels.hessian import hessian_sums
from ..problem.problem import Problem, State
from .coordinates import Coordinates, assemble, full_gradient
from .estep import all_chunks

logger = logging.getLogger("pygmmis_ng")

#: the polish runs only for fits with at most this many free parameters (the Hessian's size;
#: its pass grows with their square: at K=20, D=5 (419) one pass costs ~40 E-steps)
MAX_PARAMS = 400
#: ... and at most this many entries in a chunk's component-pair sums (K^2 nb^2)
MAX_PAIR_SUMS = 4_000_000
#: the Hessian is computed again after this many steps in a row that gained too little
REFRESH_AFTER = 4
#: ... and after this many accepted steps on the updated model
REFRESH_EVERY = 3
#: initial trust radius, in units of the coordinates' typical size (Coordinates.scale)
RADIUS0 = 1.0
#: the trust region's unit of a coordinate is at most this fraction of its natural size
UNIT_SIZE = 0.5
#: the polish gives up when the trust radius falls below this (a step of 1e-8 of a
#: parameter's standard error changes nothing)
RADIUS_MIN = 1e-8
#: a maximum is proven when the exact Hessian is negative definite there and the Newton
#: decrement is below this fraction of tol: far below tol, so that a ridge that curves
#: away (where the quadratic model sees only the first bit of what remains; on
#: scikit-learn's 'diag' test data 2.3e-6 of 1.2e-4) cannot pass for the maximum, and
#: cheap, since Newton's method gains the extra digits in one or two steps at a maximum
PROOF = 1e-3
#: covariances whose smallest eigenvalue (in units of the data variance) is below this are
#: at the edge of the parameter space: a maximum there (a component of zero width along a
#: direction, which deconvolution allows) is not a stationary point, Newton's method does
#: not apply and EM, which approaches it geometrically, decides
BOUNDARY = 1e-6


class HessianTask(NamedTuple):
    """One chunk of observed samples for the Hessian pass (``sl``: executors that hold the
    data chunk by chunk route it by its rows)."""

    g: int
    sl: slice
    log_pi: np.ndarray
    mean: np.ndarray             # in units of sigma (see Coordinates), as covar and the data
    covar: np.ndarray
    sigma: float


def _blocks(grp: Any, x: np.ndarray, S_c: np.ndarray | None, R_c: np.ndarray | None,
            D: int) -> list:
    """(rows, x, R, S) per projection of a chunk: one block, or one per missingness pattern
    of a masked group (its rows are sorted by pattern)."""
    n, dy = x.shape
    if grp.masked:
        obs = ~np.isnan(x)
        starts = np.flatnonzero(np.r_[True, (obs[1:] != obs[:-1]).any(axis=1)])
        out = []
        for lo, hi in zip(starts, np.r_[starts[1:], n]):
            o = np.flatnonzero(obs[lo])
            S = S_c[lo:hi][:, o][:, :, o] if S_c is not None else (
                np.broadcast_to(grp.S[np.ix_(o, o)], (hi - lo, len(o), len(o)))
                if grp.S is not None else np.zeros((hi - lo, len(o), len(o))))
            R = np.broadcast_to(np.eye(D)[o], (hi - lo, len(o), D))
            out.append((slice(lo, hi), x[lo:hi][:, o], R, S))
        return out
    R = R_c if R_c is not None else None if grp.R is None else np.broadcast_to(grp.R,
                                                                              (n, dy, D))
    S = S_c if S_c is not None else (np.broadcast_to(grp.S, (n, dy, dy))
                                     if grp.S is not None else np.zeros((n, dy, dy)))
    return [(slice(0, n), x, R, S)]


def _hessian_task(p: Problem, task: HessianTask) -> dict:
    """The Hessian sums of one chunk (a task for the executor)."""
    grp = p.groups[task.g]
    x, S_c, R_c = chunk_arrays(grp, task.sl, p.Xc, p.S, p.R)
    x = x / task.sigma
    S_c = None if S_c is None else S_c / task.sigma**2
    if grp.S is not None:
        grp = grp._replace(S=grp.S / task.sigma**2)
    n = len(x)
    weight = np.ones(n) if p.weight is None else np.asarray(p.weight[task.sl], dtype=float)
    log_bg = np.zeros(n) if p.log_bg_obs is None else np.asarray(p.log_bg_obs[task.sl], float)
    total = None
    for rows, xb, R, S in _blocks(grp, x, S_c, R_c, task.mean.shape[1]):
        # densities in units of sigma: the background's too (times sigma^dy)
        part = hessian_sums(xb, R, S, weight[rows], log_bg[rows] + xb.shape[1] *
                            np.log(task.sigma), task.log_pi, task.mean,
                            task.covar)
        total = part if total is None else {k: total[k] + part[k] for k in total}
    return total


def hessian(p: Problem, co: Coordinates, st: State, ex: Any) -> tuple[float, np.ndarray,
                                                                      np.ndarray]:
    """Mean log-likelihood, gradient and Hessian (of the mean) in the fit's coordinates at st,
    from one pass over the data on the executor (chunks summed in order)."""
    log_pi, s = co.log_pi(st), co.sigma
    tasks = [HessianTask(g, sl, log_pi, st.mean / s, st.covar / s**2, s)
             for g, sl in all_chunks(p)]
    total = None
    for part in ex.map(_hessian_task, tasks):
        total = part if total is None else {k: total[k] + part[k] for k in total}
    g, H = assemble(co, st, total)
    g, H = co.reduce(g, H)
    return total["logL"] / p.N_w, g / p.N_w, H / p.N_w


def eligible(p: Problem, st: State, fit_bg: bool) -> Coordinates | None:
    """The coordinates of a polish of this run, or None where it does not apply (see the
    module docstring)."""
    K, D = st.mean.shape
    if not p.em.newton or p.impute or p.nbr is not None or p.em.reg_covar > 0 or \
            p.const_axes is not None or p.censored:
        return None
    free = ~p.em.masks["covar"]
    if p.em.w > 0 and free.any() and \
            np.linalg.eigvalsh(st.covar[free])[:, 0].min() <= p.em.w**2 * (1 + 1e-6):
        return None                              # the floor holds a covariance: constrained
    if free.any() and _scaled_eig_min(p, st.covar[free]) < BOUNDARY:
        return None                              # a covariance on its way to singular
    bg_free = fit_bg and p.bg.adjust_amp and p.bg.amp_min < st.bg_amp < min(p.bg.amp_max, 1 - 1e-9)
    co = Coordinates(p, K, D, bool(bg_free))
    if co.size == 0 or co.size > MAX_PARAMS or (K * co.nb) ** 2 > MAX_PAIR_SUMS:
        return None
    return co


def _units(Hn: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The trust region's unit of each coordinate: 1 / sqrt of its curvature (so that the
    region is round in the log-likelihood's own metric, also along a direction where a
    covariance is narrow), but at most UNIT_SIZE of the coordinate's natural size
    (``Coordinates.sizes``): a parameter of little weight (the covariance of a component of
    a few dozen samples) is barely curved, and a step of 1/sqrt(curvature) would move it
    by many times its size, out of the parameter space."""
    d = np.diag(Hn)
    unit = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), np.inf)
    return np.minimum(unit, UNIT_SIZE * sizes)


def decrement(g: np.ndarray, Hn: np.ndarray) -> float:
    """g^T Hn^-1 g / 2 for a positive definite Hn (the negated Hessian), else inf."""
    try:
        L = np.linalg.cholesky(Hn)
    except np.linalg.LinAlgError:
        return np.inf
    y = np.linalg.solve(L, g)
    return 0.5 * float(y @ y)


def trust_step(g: np.ndarray, Hn: np.ndarray, radius: float, scale: np.ndarray
               ) -> tuple[np.ndarray, float]:
    """The step maximizing g^T s - s^T Hn s / 2 within |s / scale| <= radius (exact, by the
    eigen-decomposition of the scaled Hn), and the gain the model predicts."""
    gs, Hs = g * scale, Hn * np.outer(scale, scale)
    lam, Q = np.linalg.eigh(Hs)
    gq = Q.T @ gs

    def step(mu: float) -> np.ndarray:
        return Q @ (gq / (lam + mu))
    if lam[0] > 0:
        s = step(0.0)
        if np.linalg.norm(s) <= radius:
            return s * scale, 0.5 * float(gs @ s)
    lo = max(0.0, -lam[0]) * (1 + 1e-12) + 1e-300
    hi = lo + np.linalg.norm(gs) / radius + abs(lam).max()
    for _ in range(200):                     # the norm falls monotonically in mu
        mid = 0.5 * (lo + hi)
        if np.linalg.norm(step(mid)) > radius:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    s = step(hi)
    return s * scale, float(gs @ s - 0.5 * s @ Hs @ s)


def sr1(Hn: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Symmetric rank-one update of Hn (the negated Hessian) with the step s and y = g_old -
    g_new, so that Hn s = y afterwards (skipped where it would be ill-conditioned). Unlike
    BFGS it keeps negative curvature, which a trust region needs near a saddle."""
    r = y - Hn @ s
    rs = float(r @ s)
    if abs(rs) <= 1e-8 * np.linalg.norm(r) * np.linalg.norm(s):
        return Hn
    return Hn + np.outer(r, r) / rs


class Polish(NamedTuple):
    """What a polish ended with: the state, its E-step, E-steps and Hessians spent, whether
    the decrement fell below tol, and the decrement (the estimated distance to the maximum)."""

    state: State
    step: Any
    n_eval: int
    n_hessian: int
    converged: bool
    gap: float
    history: list
    concave: bool = True        # the last exact Hessian was negative definite
    crawled: bool = False       # ended at max_hessian passes: no further polish helps


def _scaled_eig_min(p: Problem, covar: np.ndarray) -> float:
    """The smallest eigenvalue of the covariances with each axis in units of its data sigma."""
    s = np.sqrt(np.asarray(p.scale2, dtype=float))
    return float(np.linalg.eigvalsh(covar / np.outer(s, s))[:, 0].min())


def _valid(p: Problem, st: State) -> bool:
    """Whether a state the Newton step proposes lies in the parameter space."""
    if not np.isfinite(st.mean).all() or not np.isfinite(st.covar).all() or \
            not np.all(st.amp > 0) or not 0 <= st.bg_amp < 1:
        return False
    if p.bg is not None and st.bg_amp > 0 and \
            not p.bg.amp_min <= st.bg_amp <= min(p.bg.amp_max, 1 - 1e-9):
        return False
    if not _scaled_eig_min(p, st.covar) >= BOUNDARY:
        return False
    return not (p.em.w > 0 and np.linalg.eigvalsh(st.covar)[:, 0].min() <= p.em.w**2)


def polish(p: Problem, co: Coordinates, st: State, step: Any, evaluate: Any, ex: Any,
           budget: int, report: Any = None) -> Polish:
    """Trust-region Newton steps from ``st`` (whose E-step is ``step``) until the Newton
    decrement is below ``PROOF * p.em.tol`` or ``budget`` E-steps are spent (see the module
    docstring).

    ``evaluate(state)`` is the E-step (a ``Step`` with ``logL`` and ``stats``);
    ``report(state, logL, delta)`` is called after each accepted step (the INFO table).
    """
    logger.info("EM's test passed: Newton's method on %d parameters", co.size)
    logL, g, H = hessian(p, co, st, ex)
    Hn, n_hess, n_eval = -H, 1, 0
    scale = _units(Hn, co.sizes(st))
    radius = RADIUS0
    fails = n_sr1 = 0
    crawled = False
    history: list = []
    exact = True                          # Hn is the exact Hessian at st (not SR1-updated)
    concave = bool(np.isfinite(decrement(g, Hn)))
    for _ in range(4 * budget + 20):      # invalid steps cost no E-step: bounded all the same
        gap = decrement(g, Hn)
        if gap < PROOF * p.em.tol and not exact:
            _, g, H = hessian(p, co, st, ex)              # the proof takes the exact Hessian
            Hn, exact, n_hess = -H, True, n_hess + 1
            gap = decrement(g, Hn)
            concave = bool(np.isfinite(gap))
        if gap < PROOF * p.em.tol:
            logger.info("maximum proven: Newton decrement %.3g (Hessian negative definite)", gap)
            return Polish(st, step, n_eval, n_hess, True, gap, history)
        if n_eval >= budget:
            return Polish(st, step, n_eval, n_hess, False, gap, history, concave)
        s, pred = trust_step(g, Hn, radius, scale)
        cand = co.step(st, s)
        length = float(np.linalg.norm(s / scale))
        new = None
        if _valid(p, cand):
            try:
                new = evaluate(cand)
            except (FloatingPointError, np.linalg.LinAlgError):
                new = None
            n_eval += 1
        gain = -np.inf if new is None else new.logL - step.logL
        rho = gain / pred if pred > 0 else -np.inf
        if rho < 0.25:
            radius = 0.25 * length
        elif rho > 0.75 and length > 0.99 * radius:
            radius *= 2.0
        if new is not None and gain > 0 and rho > 1e-4:
            g_new, _ = co.reduce(full_gradient(co, cand, new.stats))
            g_new = g_new / p.N_w
            Hn = sr1(Hn, s, g - g_new)
            st, step, g, exact = cand, new, g_new, False
            n_sr1 += 1
            history.append(new.logL)
            if report is not None:
                report(st, new.logL, gain)
        if rho < 0.25:
            fails += 1
        else:
            fails = 0
        if radius < RADIUS_MIN:
            break                       # no step of any length gains: not Newton's ground
        if not exact and (fails >= REFRESH_AFTER or n_sr1 >= REFRESH_EVERY):
            if n_hess >= get_settings().max_hessian:
                crawled = True          # hand back to EM, whose estimate decides
                break
            _, g, H = hessian(p, co, st, ex)         # the updated model fails: the exact one
            Hn, fails, exact, n_sr1 = -H, 0, True, 0
            scale = _units(Hn, co.sizes(st))
            concave = bool(np.isfinite(decrement(g, Hn)))
            n_hess += 1
    return Polish(st, step, n_eval, n_hess, False, decrement(g, Hn), history, concave, crawled)
