"""Online EM under a selection: each minibatch imputes its share of what the selection removed.

Full-batch EM (:mod:`pygmmis_ng.selection.imputation`) adds to the observed
samples' sums those of M draws from the model, draw j weighted by
1 - Omega_j, scaled by N0 / M with N0 = N_w / Z and Z = sum_j Omega_j / M.
Online, minibatch b of weight w_b makes its share of them,
M_b = oversampling * w_b / z draws (z: the running selected fraction), from
its own randomization of the Sobol sequence (a fresh one each update), and
three running averages move with the update's learning rate rho::

    s_obs <- (1 - rho) s_obs + rho S_obs,b / w_b            (per unit of sample weight)
    s_imp <- (1 - rho) s_imp + rho S_imp,b / M_b            (per draw)
    z     <- (1 - rho) z     + rho sum_j Omega_j / M_b      (the selected fraction)

The M-step reads s_obs + s_imp / z: per unit of observed weight exactly the
full-batch sums, with Z and the imputed sums replaced by their running
averages, and N0 = N_w / z. A ratio of running averages, not a running
average of each minibatch's 1 / Z_b (which, for few draws, Jensen's
inequality biases up). The first update after a start (or a re-seeding)
takes its minibatch's s_imp and z as they are.

Ghosts and runaways are judged per minibatch, as full-batch EM judges them
per iteration (:mod:`..em.diagnostics`): a component whose draws of the
minibatch the selection keeps with a mean probability below GHOST_SELECTED
is re-seeded, and N0 above MAX_ORIG_RATIO N_w for RUNAWAY_ITERATIONS updates
in a row raises :class:`~..em.diagnostics.RunawayError`.

The evaluation slice's logL needs Z at the current parameters:
:func:`log_selected` estimates it from the fit's common draws (the same
variates after every pass, so the passes' logL differ by the parameters'
change, not by new Monte-Carlo noise).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ...kernels.stats import SufficientStats
from ...selection.imputation import block_omega
from ..em.diagnostics import reseedable_ghosts
from ..em.estep import block_tasks, draw_count, held_draws, imputed_stats, selected_fraction
from ..problem.problem import Problem, State


class Imputed(NamedTuple):
    """The running averages of the imputation (see the module docstring).

    Attributes
    ----------
    stats : SufficientStats
        Sums of the draws per draw, weighted by 1 - Omega_j, centred on the means.
    z : float
        The running selected fraction: N0 = N_w / z.
    """

    stats: SufficientStats
    z: float


def n_draws(p: Problem, st: State, weight: float, imputed: Imputed | None) -> int:
    """Draws for a minibatch of summed weight ``weight``: its share ``oversampling * weight / z``
    of a full pass's (:func:`..em.estep.draw_count`)."""
    Z = imputed.z if imputed is not None else p.N_w / st.N0
    return draw_count(p.imputation.oversampling * weight / Z, weight, st.mean.shape[0])


def impute_minibatch(p: Problem, st: State, imputed: Imputed | None, weight: float, rho: float,
                     key: int, ex: Any, reseedable: np.ndarray | None
                     ) -> tuple[Imputed, np.ndarray]:
    """The imputation of one minibatch update: its draws (randomization ``key``) at ``st``,
    blended into the running averages with step ``rho``; and the ghosts among the
    components (K,) bool (only those ``reseedable``; frozen ones never).

    Raises
    ------
    RunawayError
        If the selection is 0 on every draw.
    """
    M = n_draws(p, st, weight, imputed)
    imp, omega, draws = imputed_stats(p, st, M, ex, fresh=key)
    z_b = selected_fraction(p, float(omega.sum()), M)[0]
    imp = imp.scaled(1.0 / M)
    if imputed is None:
        new = Imputed(SufficientStats(imp.A, imp.Mc, imp.Cc, 0.0, 1.0, imp.B), z_b)
    else:
        old = imputed.stats
        new = Imputed(SufficientStats(old.A * (1 - rho) + imp.A * rho,
                                      old.Mc * (1 - rho) + imp.Mc * rho,
                                      old.Cc * (1 - rho) + imp.Cc * rho, 0.0, 1.0,
                                      old.B * (1 - rho) + imp.B * rho),
                      imputed.z * (1 - rho) + z_b * rho)
    return new, reseedable_ghosts(p, omega, draws, reseedable)


def complete(running: SufficientStats, imputed: Imputed) -> SufficientStats:
    """The sums the M-step reads: the observed ones plus the imputed ones over z."""
    f = 1.0 / imputed.z
    s = imputed.stats
    return SufficientStats(running.A + s.A * f, running.Mc + s.Mc * f, running.Cc + s.Cc * f,
                           0.0, running.weight, running.B + s.B * f)


def eval_draws(p: Problem, st: State, weight: float, M: int | None) -> int:
    """Draws for the selected fraction of the evaluation (``weight``: the slice's): kept at
    ``M`` while its target moves by at most 5% (:func:`..em.estep.held_draws`: no new noise
    between passes)."""
    return held_draws(n_draws(p, st, weight, None), M)


def log_selected(p: Problem, st: State, M: int, ex: Any) -> tuple[float, float]:
    """log Z at ``st`` from the first M of the fit's common draws, and its Monte-Carlo
    standard error (binomial draws, as full-batch EM reports it).

    Raises
    ------
    RunawayError
        If the selection is 0 on every draw.
    """
    omega = 0.0
    for om, _ in ex.map(block_omega, block_tasks(st, M)):
        omega += float(om.sum())
    Z, se = selected_fraction(p, omega, M)
    return math.log(Z), se
