"""What stays fixed during one fit (:class:`Problem`), the state the EM moves, and a run's outcome."""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np

from ...config import Settings
from ...selection.background import Background
from ...selection.imputation import ImputationSampler
from .options import EMOptions, ImputationOptions


class Problem(NamedTuple):
    """Everything that stays fixed during one fit (centred coordinates): the data as laid
    out for the kernels, and the option groups its tasks need (``em``, ``imputation``).

    The observed samples are sorted by missingness pattern (``order``) and
    processed by the groups of :mod:`pygmmis_ng.data.layout`; ``Xc`` holds y_i - R_i c
    (NaN where not measured), ``S`` and ``R`` the noise and projection as
    given (rows sorted if per sample).
    """

    Xc: np.ndarray
    center: np.ndarray
    S: np.ndarray | None
    weight: np.ndarray | None
    N_w: float
    groups: tuple
    log_bg_obs: np.ndarray | None          # log background density at the observed samples
    log_omega_mean: float                  # weighted mean log Omega of the observed samples
    em: EMOptions                          # how the EM updates and stops
    imputation: ImputationOptions          # the selection, its callbacks, the background
    sampler: ImputationSampler | None
    scale2: np.ndarray                     # (D,) data variance of each axis (units for floors)
    reseed_scale: float
    shift_limit: float
    nbr: np.ndarray | None = None          # (N, K) uint8 neighborhood flags (with cutoff)
    R: np.ndarray | None = None            # (N, dy, D) per-sample projections (sorted rows)
    order: np.ndarray | None = None        # sorted row r is the data's row order[r]
    reseed_points: np.ndarray | None = None  # (n, D) centred latent points of the init rows
    const_axes: np.ndarray | None = None   # (D,) bool: axes along which the data are constant
    reseed_support: Any = None              # ReseedSupport: distinct rows, cumulative weights
    kernel_family: str = "full"             # 'diag'/'spherical': O(D) kernels (diagonal noise)
    settings: Settings | None = None        # the runtime settings of the fit (for every task)

    @property
    def per_sample(self) -> bool:
        return self.S is not None and self.S.ndim == 3

    @property
    def per_sample_R(self) -> bool:
        return self.R is not None and self.R.ndim == 3

    @property
    def censored(self) -> bool:
        """Whether some samples have censored values (limits)."""
        return any(g.cens is not None for g in self.groups)

    @property
    def impute(self) -> bool:
        return self.imputation.sel_callback is not None

    @property
    def bg(self) -> Background | None:
        """The background (validated copy), or None."""
        return self.imputation.background


class State(NamedTuple):
    amp: np.ndarray
    mean: np.ndarray            # centred
    covar: np.ndarray
    bg_amp: float
    N0: float                   # estimated size before selection (N_w without selection)


class Run(NamedTuple):
    state: State
    logL: float
    history: np.ndarray
    n_iter: int
    converged: bool
    n_reseeded: int
    comps: list
    n_eval: int                 # E-steps computed (iterations plus rejected extrapolations)
    n_ghosts: int = 0           # components re-seeded as ghosts of the selection
    logL_se: float = 0.0        # Monte-Carlo standard error of logL (imputation)
    ghosts_left: int = 0        # components left as ghosts after repeated re-seeding
    gap: float = float("nan")   # estimated distance of logL to the maximum (see FitResult.gap)
    n_hessian: int = 0          # Hessian passes of the Newton polish
    on_ridge: bool = False      # stopped where the polish found the logL not concave (rising)


class StartRunner(Protocol):
    """How one kind of EM runs the starts of a fit, for the one driver of them all
    (:func:`pygmmis_ng.fitting.starts.driver.run_starts`): full-batch EM
    (:class:`~pygmmis_ng.fitting.em.runner.FullBatchRunner`) and online EM
    (:class:`~pygmmis_ng.fitting.online.runner.OnlineRunner`).

    The driver draws ``shared_seeds`` seeds before the starts' own and hands them
    to :meth:`share`; runs each start from its initial state with :meth:`run`
    (a result with ``logL``, ``logL_se``, ``n_iter``, ``n_reseeded``, ``n_ghosts``;
    ``maxiter`` and ``behind`` are the budget of a start that competes with the
    k-means start under a selection); chooses one; and has :meth:`complete` finish
    it (the rest of the oversampling ramp and split'n'merge, or the finishing
    full-batch EM), which returns the run and a report (or None).
    """

    shared_seeds: int
    label: str

    def share(self, seeds: np.ndarray) -> None: ...

    def run(self, state: State, gen: np.random.Generator, ex: Any, maxiter: int,
            behind: float | None) -> Any: ...

    def complete(self, best: Any, gen: np.random.Generator, ex: Any) -> tuple[Run, Any]: ...
