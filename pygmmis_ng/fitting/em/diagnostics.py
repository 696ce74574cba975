"""What a fit under a selection must say when it cannot be right: ghosts and runaways.

Imputation fills what the selection removed with draws from the current
model. Two failures follow from that and the observed samples alone cannot
show them:

* a **ghost**: a component whose mass lies almost entirely where the
  selection probability Omega is ~0. Its own imputed draws keep it alive, and
  it can drift away, swell and take ever more amplitude while the observed
  likelihood barely changes (the estimated original size N0 grows without
  bound). A component whose draws are selected with a mean probability
  below :data:`GHOST_SELECTED` is re-seeded where the data are (as a
  collapsed one is), with a :class:`ReseedWarning` at the end of the fit. A
  component that returns there after :data:`MAX_GHOST_RESEEDS` re-seedings is
  left where the likelihood puts it (a wide component of a model with too
  few components can rightly lie mostly outside the selection), with a
  :class:`FitWarning` that the data barely constrain it;
* a **runaway**: Omega is ~0 on (nearly) every draw of the model, so N0 = N / Z
  explodes. The selection function does not describe the data (it is ~0
  where they lie, or a soft selection where the data were cut hard), or
  ``covar_callback`` gives implausible noise that scatters every draw out of
  the selected region. The fit stops with a :class:`RunawayError` that says
  so, within a few iterations.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ...selection.imputation import evaluate_noise

#: a component whose imputation draws are selected with a mean probability below this is a ghost
GHOST_SELECTED = 0.1
#: components with fewer draws than this in an iteration are not judged (too noisy)
GHOST_MIN_DRAWS = 100
#: a fit stops when the estimated original size exceeds this many times the observed one ...
MAX_ORIG_RATIO = 100.0
#: ... for this many iterations in a row
RUNAWAY_ITERATIONS = 3
#: ghost re-seedings per component after which it is left alone (it keeps leaving the data)
MAX_GHOST_RESEEDS = 3


class FitWarning(UserWarning):
    """Something about a fit the user must see (it may still be usable)."""


class ReseedWarning(FitWarning):
    """Components were re-seeded during the fit (collapsed, or ghosts of the selection)."""


class RunawayError(ValueError):
    """A fit under a selection cannot be right: its estimated original size runs away."""


class CollapseError(ValueError):
    """Components keep collapsing onto single points: the likelihood is unbounded there."""


#: a run re-seeds collapsed components at most this many times per component (plus
#: COLLAPSE_EXTRA) before it raises :class:`CollapseError`
COLLAPSE_PER_COMPONENT = 2
COLLAPSE_EXTRA = 10


def collapse_error(n: int, iterations: int) -> CollapseError:
    # the first sentence is scikit-learn's (code written for GaussianMixture matches it)
    return CollapseError(
        "Fitting the mixture model failed because some components have ill-defined empirical "
        "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
        "the number of components, increase reg_covar, or scale the input data. (Components "
        f"collapsed {n} times in {iterations} iterations, also after re-seeding; w > 0 or "
        "reg_covar > 0 keep every covariance away from singular.)")


def ghosts(omega: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Components (K,) whose draws the selection keeps with a mean probability < GHOST_SELECTED.

    ``omega`` and ``draws`` (K,): the summed selection probability and the
    number of imputation draws of each component in one iteration.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        selected = omega / draws
    return (draws >= GHOST_MIN_DRAWS) & (selected < GHOST_SELECTED)


def reseedable_ghosts(p: Any, omega: np.ndarray, draws: np.ndarray,
                      reseedable: np.ndarray | None) -> np.ndarray:
    """The ghosts (:func:`ghosts`) among the K signal members of ``omega`` and ``draws``
    (K + 1,) that may be re-seeded: not those with a frozen mean or covariance, and only
    those in ``reseedable`` (K,) bool (None: all)."""
    K = len(omega) - 1
    ghost = ghosts(omega[:K], draws[:K]) & ~p.em.masks["mean"] & ~p.em.masks["covar"]
    return ghost if reseedable is None else ghost & reseedable


def _noise_hint(p: Any) -> str:
    """A sentence on covar_callback if its noise dwarfs the data, else ''."""
    if p.imputation.covar_callback is None:
        return ""
    rows = p.reseed_points[:100] + p.center
    S = evaluate_noise(p.imputation.covar_callback, rows, "the observed samples (diagnosis)")
    noise = float(np.median(np.trace(np.broadcast_to(S, (len(rows),) + S.shape[-2:]),
                                     axis1=1, axis2=2)))
    data = float(np.sum(p.scale2))
    if noise > 100 * data:
        return (f" covar_callback gives a noise variance (trace) of {noise:.3g} at the data, "
                f"{noise / data:.3g} times the variance of the data themselves: it is likely "
                "wrong (it must give the noise of a sample at the given coordinates).")
    return ""


def no_selected_draws(p: Any, M: int) -> RunawayError:
    """The error for a selection that is 0 on every one of M draws from the model."""
    return RunawayError(
        f"sel_callback gives Omega = 0 for all {M} imputation draws from the current model, "
        "while it is positive at the observed samples: the selection function does not "
        "describe how these data were selected (it is zero almost everywhere the model "
        "puts its mass), or covar_callback scatters every draw out of the selected region."
        + _noise_hint(p))


def runaway(p: Any, N0: float) -> RunawayError:
    """The error for an original size that ran away to N0."""
    return RunawayError(
        f"the estimated original size ran away: N0 = {N0:.4g} for {p.N_w:.6g} observed "
        f"samples (more than {MAX_ORIG_RATIO:g} times as many for {RUNAWAY_ITERATIONS} "
        "iterations): the model keeps putting its mass where sel_callback is ~0. Likely "
        "causes: the selection function does not match the data (e.g. a soft selection for "
        "data that were cut hard, or Omega ~0 where the data lie), or covar_callback gives "
        "implausible noise." + _noise_hint(p))


class RunawayWatch:
    """Follows a run's N0 and ghosts; raises :class:`RunawayError` when the fit cannot be right.

    Parameters
    ----------
    p : the fit's Problem
    K : int
    """

    def __init__(self, p: Any, K: int) -> None:
        self.p = p
        self.high = 0                           # iterations in a row with N0 > MAX_ORIG_RATIO N
        self.ghost_reseeds = np.zeros(K, dtype=int)

    @property
    def n_ghosts(self) -> int:
        """Ghost re-seedings so far."""
        return int(self.ghost_reseeds.sum())

    @property
    def reseedable(self) -> np.ndarray:
        """Components (K,) that may still be re-seeded as ghosts."""
        return self.ghost_reseeds < MAX_GHOST_RESEEDS

    @property
    def n_left(self) -> int:
        """Components left as ghosts after MAX_GHOST_RESEEDS re-seedings."""
        return int((~self.reseedable).sum())

    def update(self, N0: float, ghost: np.ndarray | None) -> None:
        """Account for one E+M evaluation: its N0 estimate and the components re-seeded as ghosts."""
        if ghost is not None:
            self.ghost_reseeds += ghost
        self.high = self.high + 1 if N0 > MAX_ORIG_RATIO * self.p.N_w else 0
        if self.high >= RUNAWAY_ITERATIONS:
            raise runaway(self.p, N0)


def warn_reseeded(n_reseeded: int, n_ghosts: int, ghosts_left: int) -> None:
    """A ReseedWarning if the returned run re-seeded components (collapsed or ghosts), a
    FitWarning if ghosts were left (warnings point at the caller of ``fit``)."""
    collapsed = n_reseeded - n_ghosts
    if collapsed > 0:
        warnings.warn(f"{collapsed} time(s) a component collapsed (no samples, or a singular "
                      "covariance) and was re-seeded at a random sample; consider w > 0 or a "
                      "smaller K", ReseedWarning, stacklevel=4)
    if ghosts_left > 0:
        warnings.warn(f"{ghosts_left} component(s) kept moving where sel_callback is ~0, also "
                      "after re-seeding, and were left there: the observed data barely constrain "
                      "them (fewer components, or a selection function that matches the data, "
                      "may help)", FitWarning, stacklevel=4)
    if n_ghosts > 0:
        warnings.warn(f"{n_ghosts} time(s) a component moved where sel_callback is ~0 "
                      "(a ghost, kept alive by its own imputed samples) and was re-seeded at "
                      "a random sample; the fit continued from there", ReseedWarning,
                      stacklevel=4)
