"""Prepare a fit: the fixed quantities of the :class:`~.problem.Problem` from the checked arguments."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...config import get_settings
from ...data.layout import make_layout, single_group_layout, sorted_rows, windowed_layout
from ...data.lazy import stable_average
from ...data.mapped import CentredRows, is_memory_mapped
from ...data.observed import background_log_density, lazy_background_log_density
from ...selection.imputation import ImputationSampler
from ..em.neighborhoods import chi2_cutoff, neighborhood_chi2
from ..problem.options import FitOptions, Observations
from ..problem.problem import Problem
from ..problem.scales import ReseedSupport, axis_variances, constant_axes, volume_filling_scale


def prepare_problem(obs: Observations, opts: FitOptions, K: int, D: int,
                    gen: np.random.Generator, units: Any = None) -> Problem:
    """Everything that stays fixed during the fit, in centred coordinates.

    The samples are sorted by missingness pattern into the groups of
    :func:`pygmmis_ng.data.layout.make_layout`, centred on the weighted mean
    of the latent points, and, with imputation, given a sampler whose
    entropy is drawn from ``gen`` (the first draw of the fit's stream).
    ``units``: where the data's scales come from instead (``scale2``,
    ``reseed_scale``, ``const_axes``: a later piece of ``partial_fit`` keeps
    those of the first, see :class:`~..online.passes.OnlineState`).
    """
    X, R, S, weight, Z = obs.X, obs.R, obs.S, obs.weight, obs.Z
    N = X.shape[0]
    center = stable_average(Z, obs.Z_weight)
    em, imputation, online = opts.em, opts.imputation, opts.online
    bg = imputation.background
    max_rows = None if online is None else online.batch_size
    family = em.covariance_type if em.covariance_type in ("diag", "spherical") \
        and noise_is_diagonal(S) else "full"
    diagonal = family != "full"
    if obs.on_cluster:
        # online: chunks within the dask array's row blocks (the minibatches' units)
        blocks = None if online is None else tuple(X.chunks[0])
        layout = single_group_layout(N, S, K, D, max_rows, blocks, diagonal)
        Xs, Ss, Rs, ws = X, S, None, weight
        Xc = (X - center).astype(X.dtype)    # lazily, on the workers (the same bits)
        log_bg_obs = None if bg is None else lazy_background_log_density(bg, X, S)
    else:
        # online: each minibatch window laid out on its own (every pattern in each minibatch)
        layout = make_layout(X, R, S, K, D, allow_masked=True, diagonal=diagonal,
                             censored=obs.censored) if online is None else \
            windowed_layout(X, R, S, K, D, online.batch_size, diagonal, obs.censored)
        Xs, Ss, Rs, ws = sorted_rows(layout.order, X, S, R, weight)
        shift = center if R is None else (Rs @ center if Rs.ndim == 3 else center @ Rs.T)
        # in float64, stored as the data are (float32 with dtype=float32)
        if layout.order is None and R is None and is_memory_mapped(X):
            Xc = CentredRows(X, center)        # centred chunk by chunk, never copied whole
        else:
            Xc = np.subtract(Xs, shift, out=np.empty(Xs.shape, Xs.dtype), casting="same_kind")
        log_bg_obs = None if bg is None else background_log_density(bg, layout, Xs, Ss)
    if em.cutoff is not None:
        layout = layout._replace(groups=tuple(
            g._replace(c2=neighborhood_chi2(g.dy, em.cutoff)) for g in layout.groups))
    sampler = None
    if imputation.impute:
        sampler = ImputationSampler(int(gen.integers(2**62)), D, bg is not None,
                                    imputation.covar_callback is not None)
    Zw = obs.Z_weight
    if units is None:
        scale2, reseed_scale = axis_variances(Z, Zw), \
            volume_filling_scale(Z if Zw is None else Z[Zw > 0], K)
        const_axes = None if em.covariance_type == "spherical" else _constant_axes(Z, Zw, S, R)
    else:
        scale2, reseed_scale, const_axes = units.scale2, units.reseed_scale, units.const_axes
    return Problem(
        Xc=Xc, center=center, S=Ss, weight=ws, N_w=obs.N_w, groups=layout.groups,
        log_bg_obs=log_bg_obs, log_omega_mean=obs.log_omega_mean, em=em, imputation=imputation,
        sampler=sampler, scale2=scale2, reseed_scale=reseed_scale,
        shift_limit=chi2_cutoff(D, 0.1),
        nbr=None if em.cutoff is None else np.zeros((N, K), dtype=np.uint8),
        R=Rs if Rs is not None and Rs.ndim == 3 else None, order=layout.order,
        reseed_points=Z - center, const_axes=const_axes,
        # collapsed components are re-seeded at a row drawn by weight from the distinct rows
        reseed_support=ReseedSupport(Z, obs.Z_weight),
        kernel_family=family, settings=get_settings())


def _constant_axes(Z: np.ndarray, weight: np.ndarray | None, S: np.ndarray | None,
                   R: np.ndarray | None) -> np.ndarray | None:
    """Axes along which the (noise-free, unprojected) data are constant, or None.

    Their likelihood is unbounded (a component's variance along them goes to
    0); the fit keeps those variances at max(w^2, 1e-6 of the axis unit), as
    scikit-learn's ``reg_covar`` does, instead of re-seeding forever.
    """
    if S is not None or R is not None:
        return None
    const = constant_axes(Z, weight)
    return const if const.any() else None


def noise_is_diagonal(S: Any) -> bool:
    """Whether the noise (None, (D, D) or (N, D, D) in memory) has no correlations, so that
    diagonal components keep every T_ik diagonal (one pass over S; a lazy S is not read)."""
    if S is None:
        return True
    if not isinstance(S, np.ndarray):
        return False
    D = S.shape[-1]
    off = ~np.eye(D, dtype=bool)
    if S.ndim == 2:
        return not S[off].any()
    step = max(1, (1 << 20) // (D * D))
    return not any(S[lo:lo + step][:, off].any() for lo in range(0, S.shape[0], step))
