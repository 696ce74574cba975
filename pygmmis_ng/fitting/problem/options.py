"""The checked arguments of a fit, grouped: what was observed, and how to fit it.

:func:`pygmmis_ng.fitting.setup.checks.check_fit` validates the arguments by
the option table (:mod:`.option_table`) and returns one :class:`Observations`
and one :class:`FitOptions`, which holds a frozen object per group of the
table: :class:`EMOptions`, :class:`StartOptions`, :class:`ImputationOptions`,
:class:`OnlineOptions` (None for full-batch EM) and :class:`ExecutionOptions`.
The :class:`~.problem.Problem` references the groups its tasks need (``em``,
``imputation``), so they travel to the workers with it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ...selection.background import Background


class Observations(NamedTuple):
    """The observed samples of a fit, validated (rows in the order given).

    Attributes
    ----------
    X : ndarray (N, D), or (N, dy) with projections; NaN marks a missing value
        (a dask array when the samples stay on the cluster, see ``on_cluster``)
    R : None, ndarray (dy, D) or (N, dy, D)
    S : None, ndarray (D, D) or (N, D, D) (dy instead of D with R)
    weight : None or ndarray (N,)
    Z : ndarray (n, D)
        Latent points of the initialization rows (all rows, or a sample, see
        :mod:`pygmmis_ng.data.lazy`): the initialization, the data's centre and
        scales and the re-seeding see these. ``X`` itself for complete data
        without projections, else each sample's measured values completed by
        :func:`pygmmis_ng.data.latent.fill_latent`.
    log_omega_mean : float
        Weighted mean of log Omega over the samples (0 without selection).
    N_w : float
        The summed weight of all samples (N without weights).
    Z_weight : None or ndarray (n,)
        Weights of the initialization rows.
    Z_covar : None, ndarray (D, D) or (n, D, D)
        Noise of the initialization rows, for the initialization (None when
        ``Z`` are latent points rather than the data).
    on_cluster : bool
        The samples are dask arrays that stay on the cluster
        (:mod:`pygmmis_ng.fitting.setup.out_of_core`).
    censored : None or ndarray (N, D) of int8
        -1 where X holds an upper limit, +1 a lower limit, 0 a measurement (None: no
        limits; see :func:`pygmmis_ng.data.censoring.check_censored`).
    """

    X: Any
    R: np.ndarray | None
    S: Any
    weight: Any
    Z: np.ndarray
    log_omega_mean: float
    N_w: float
    Z_weight: np.ndarray | None
    Z_covar: Any
    on_cluster: bool = False
    censored: np.ndarray | None = None


@dataclass(frozen=True)
class EMOptions:
    """How each EM run updates and stops (``masks``: the frozen parameters as boolean (K,)
    masks per 'amp', 'mean' and 'covar'; ``split_n_merge``: the number of attempts;
    ``accelerate``: SQUAREM (and the oversampling ramp), ``newton``: the Newton polish)."""

    tol: float
    miniter: int
    maxiter: int
    w: float = 0.0
    reg_covar: float = 0.0
    covariance_type: str = "full"
    accelerate: bool = True
    newton: bool = True
    masks: dict | None = None
    split_n_merge: int = 0
    cutoff: float | None = None


@dataclass(frozen=True)
class StartOptions:
    """How the runs start: ``init`` (a name of the option table or a callable, resolved by
    :func:`pygmmis_ng.fitting.starts.init.resolve_init`) and the number of starts."""

    init: Any = "auto"
    n_init: int = 1


@dataclass(frozen=True)
class ImputationOptions:
    """The selection and the background: what imputation and the background need.

    ``background`` is a validated copy of the user's (the fit never writes to
    theirs before it completes)."""

    sel_callback: Callable | None = None
    covar_callback: Callable | None = None
    oversampling: int = 10
    background: Background | None = None

    @property
    def impute(self) -> bool:
        return self.sel_callback is not None

    def initial_bg_amp(self) -> float:
        """The background amplitude the EM starts from (0 without a background).

        An adjustable background given amp 0 starts at min(0.1, amp_max); the
        start always lies within [amp_min, min(amp_max, 1 - 1e-9)].
        """
        bg = self.background
        if bg is None:
            return 0.0
        amp = bg.amp
        if bg.adjust_amp and amp == 0 and bg.amp_max > 0:
            amp = min(0.1, bg.amp_max)
        return float(np.clip(amp, bg.amp_min, min(bg.amp_max, 1 - 1e-9)))


class OnlineOptions(NamedTuple):
    """How an online fit runs (:mod:`pygmmis_ng.fitting.online.schedule`)."""

    batch_size: int
    n_passes: int
    learning_decay: float = 0.55
    learning_offset: float = 2.0
    shuffle: bool = True
    finish: int | None = 0          # full-batch EM updates after the passes (None: to tol)
    eval_rows: int = 1 << 16        # rows of the evaluation slice (runtime setting eval_rows)


@dataclass(frozen=True)
class ExecutionOptions:
    """Where and how visibly the fit runs (none of these changes the result)."""

    n_jobs: int = 1
    client: Any = None
    progress: bool | None = None
    dtype: Any = np.float64


@dataclass(frozen=True)
class FitOptions:
    """How to fit: the checked keywords of :func:`pygmmis_ng.fit`, one object per group."""

    em: EMOptions
    start: StartOptions
    imputation: ImputationOptions
    execution: ExecutionOptions
    online: OnlineOptions | None = None        # online (stepwise) EM; None: full-batch

    @property
    def impute(self) -> bool:
        return self.imputation.impute
