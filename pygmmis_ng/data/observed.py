"""E-step and log-densities of the observed samples, group by group (see :mod:`.layout`).

A group that shares one projection R_g (a missingness pattern, or a shared
``R``) is the same problem in its dy_g-dimensional space, with components
R_g m_k, R_g V_k R_g^T (+ noise); :func:`group_components` prepares them and
the rectangular gains that lift the sums back to D dimensions. Samples with
their own projection go through :mod:`pygmmis_ng.kernels.projected`, many
missingness patterns at once through :func:`pygmmis_ng.kernels.fused.stats_masked`.
"""
from __future__ import annotations

import numpy as np

from ..kernels import censored, dense, fused, projected
from ..kernels.stats import (
    Components,
    SufficientStats,
    kernel_family,
    prepare_components,
    shared_gain,
)
from .layout import Group, Layout, eval_chunks, in_given_order, make_layout, sorted_rows


def group_components(grp: Group, amp: np.ndarray, mean: np.ndarray, covar: np.ndarray,
                     per_sample_noise: bool, per_sample_R: bool, family: str = "full"
                     ) -> Components:
    """What the kernels need for one group at the current parameters.

    For a projected group with no or shared noise: T_k = R V_k R^T + S,
    its factors, the gain V_k R^T T_k^-1 (D, dy) and the posterior covariance
    V_k - V_k R^T T_k^-1 R V_k. With per-sample noise: R m_k and R V_k R^T,
    and the lift V_k R^T, V_k (see :func:`pygmmis_ng.kernels.fused.stats_per_sample`).
    ``family`` 'diag' / 'spherical': the fit's covariance type, with noise that has no
    correlations; groups of complete samples then use the O(D) kernels (see
    :func:`pygmmis_ng.kernels.stats.kernel_family`).
    """
    if grp.cens is not None:
        return censored_components(grp, amp, mean, covar)
    if per_sample_R or grp.masked or (grp.R is None and per_sample_noise):
        fam = kernel_family(covar, None, family) if grp.R is None and not grp.masked else "full"
        with np.errstate(divide="ignore"):
            return Components(np.log(amp), mean, covar, None, None, None, None, family=fam)
    if grp.R is None:
        return prepare_components(amp, mean, covar, grp.S, family)
    R = grp.R
    VRt = covar @ R.T                                               # (K, D, dy)
    P = R @ VRt                                                     # (K, dy, dy)
    P = 0.5 * (P + np.swapaxes(P, 1, 2))
    Rm = mean @ R.T
    with np.errstate(divide="ignore"):
        log_amp = np.log(amp)
    if per_sample_noise:
        return Components(log_amp, Rm, P, None, None, VRt, covar)
    c = prepare_components(amp, Rm, P, grp.S)
    gain, post = shared_gain(c.prec_chol, VRt, covar)
    return c._replace(gain=gain, post_covar=post)


def censored_components(grp: Group, amp: np.ndarray, mean: np.ndarray, covar: np.ndarray
                        ) -> Components:
    """The components of a group with censored values (:mod:`pygmmis_ng.kernels.censored`):
    the means and covariances of the group's values, and the lift V_k R_g^T (``gain``)
    and V_k (``post_covar``) of their sums, with R_g the rows of the identity they are."""
    obs = np.arange(mean.shape[1]) if grp.obs is None else grp.obs
    with np.errstate(divide="ignore"):
        log_amp = np.log(amp)
    P = covar[:, obs][:, :, obs]
    return Components(log_amp, mean[:, obs], P, None, None, covar[:, :, obs], covar)


def chunk_arrays(grp: Group, sl: slice, X: np.ndarray, S: np.ndarray | None,
                 R: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The observed values, per-sample noise and per-sample projections of a chunk's rows,
    in float64 (whatever the type they are stored in: the kernels compute in float64)."""
    x, S_c, R_c = X[sl], None, None
    if S is not None and S.ndim == 3:
        S_c = S[sl]
    if R is not None and R.ndim == 3:
        R_c = R[sl]
    if grp.obs is not None:
        x = x[:, grp.obs]
        if S_c is not None:
            S_c = S_c[:, grp.obs][:, :, grp.obs]
        if R_c is not None:
            R_c = R_c[:, grp.obs]
    return _float64(x), _float64(S_c), _float64(R_c)


def _float64(a: np.ndarray | None) -> np.ndarray | None:
    return a if a is None or a.dtype == np.float64 else a.astype(np.float64)


def chunk_stats(grp: Group, sl: slice, X: np.ndarray, S: np.ndarray | None,
                R: np.ndarray | None, comps: Components, weight: np.ndarray | None,
                log_bg: np.ndarray | None, nbr: np.ndarray | None, redo: np.ndarray | None
                ) -> SufficientStats:
    """Sufficient statistics (of the true values) of one chunk of a group."""
    x, S_c, R_c = chunk_arrays(grp, sl, X, S, R)
    if grp.cens is not None:
        return censored.chunk_stats(x, grp.S if S_c is None else S_c, grp.cens, comps, weight,
                                    log_bg)
    if grp.masked:
        A, Mc, Cc, logL, B = fused.stats_masked(x, grp.S if S_c is None else S_c, weight,
                                                       log_bg, comps.mean, comps.covar,
                                                       comps.log_amp)
        return SufficientStats(A, Mc, Cc, logL,
                                       float(len(x) if weight is None else weight.sum()), B)
    if R_c is not None:
        S_shared = grp.S if S_c is None else S_c
        return projected.chunk_stats(x, R_c, S_shared, comps, weight, log_bg)
    return dense.chunk_stats(x, comps, S_c, weight, log_bg, nbr, redo, grp.c2)


def chunk_log_joint(grp: Group, sl: slice, X: np.ndarray, S: np.ndarray | None,
                    R: np.ndarray | None, comps: Components
                    ) -> tuple[np.ndarray, np.ndarray]:
    """log a_k + log N_ik (n, K) of one chunk of a group, and the chi2_ik (n, K)."""
    x, S_c, R_c = chunk_arrays(grp, sl, X, S, R)
    if grp.cens is not None:
        return censored.log_joint(x, grp.S if S_c is None else S_c, grp.cens, comps)
    if grp.masked:                      # (numpy) pattern by pattern within the chunk
        return log_joint_chi2(x, None, grp.S if S_c is None else S_c, np.exp(comps.log_amp),
                              comps.mean, comps.covar)
    if R_c is not None:
        return projected.log_joint(x, R_c, grp.S if S_c is None else S_c, comps)
    return dense.log_joint_chi2(x, comps, S_c)


def log_joint_chi2(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, amp: np.ndarray,
                   mean: np.ndarray, covar: np.ndarray, cens: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """log a_k + log N(y_i | R_i m_k, R_i V_k R_i^T + S_i) over the observed values, and chi2_ik.

    X may hold NaN (missing values); rows are returned in the given order,
    (N, K) each. ``cens``: None or (N, dy) censoring flags (-1, 0, +1): the log densities
    then include the probability of the limits (chi2 is that of the measured values).
    """
    K, D = mean.shape
    layout = make_layout(X, R, S, K, D, censored=cens)
    Xs, Ss, Rs, _ = sorted_rows(layout.order, X, S, R)
    per_S, per_R = S is not None and S.ndim == 3, R is not None and R.ndim == 3
    lj, chi2 = np.empty((X.shape[0], K)), np.empty((X.shape[0], K))
    for grp in layout.groups:
        comps = group_components(grp, amp, mean, covar, per_S, per_R)
        for sl in grp.chunks:
            lj[sl], chi2[sl] = chunk_log_joint(grp, sl, Xs, Ss, Rs, comps)
    return in_given_order(lj, layout.order), in_given_order(chi2, layout.order)


def log_joint(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, amp: np.ndarray,
              mean: np.ndarray, covar: np.ndarray, cens: np.ndarray | None = None) -> np.ndarray:
    """The first of :func:`log_joint_chi2` (the density of a GMM at samples X (N, dy));
    complete samples without R or limits chunk by chunk through :func:`.dense.log_joint`."""
    if R is not None or cens is not None or np.isnan(X).any():
        return log_joint_chi2(X, R, S, amp, mean, covar, cens)[0]
    per_sample = S is not None and S.ndim == 3
    comps = prepare_components(amp, mean, covar, None if per_sample else S)
    out = np.empty((X.shape[0], mean.shape[0]))
    for sl in eval_chunks(X.shape[0], mean.shape[0], mean.shape[1], per_sample):
        out[sl] = dense.log_joint(X[sl], comps, S[sl] if per_sample else None)
    return out


def background_log_density(bg, layout: Layout, X: np.ndarray, S: np.ndarray | None
                           ) -> np.ndarray:
    """log background density at each (sorted) sample, over its measured values.

    The marginal of a uniform box over some dimensions is uniform on the
    box's face: the same erf products, over the measured dimensions only.
    """
    out = np.empty(X.shape[0])
    for grp in layout.groups:
        if grp.masked:          # every pattern in one group: pattern by pattern here
            out[grp.rows] = background_log_density_rows(
                bg, _float64(X[grp.rows]), _float64(S if S is None or S.ndim == 2 else S[grp.rows]))
            continue
        x = X[grp.rows] if grp.obs is None else X[grp.rows][:, grp.obs]
        if S is not None and S.ndim == 3:
            Sg = S[grp.rows] if grp.obs is None else S[grp.rows][:, grp.obs][:, :, grp.obs]
        else:
            Sg = grp.S
        out[grp.rows] = bg.log_density(_float64(x), _float64(Sg), dims=grp.obs,
                                       censored=grp.cens)
    return out


def lazy_background_log_density(bg, X, S):
    """:func:`background_log_density` of complete samples in a dask array X (N, D), lazily:
    block by block on the workers (S: None, (D, D) or a dask (N, D, D) in X's row chunks)."""
    import dask.array as da

    per_sample = S is not None and S.ndim == 3
    return da.blockwise(_log_density_block, "i", X, "ij", S, "ijk" if per_sample else None,
                        bg, None, dtype=float, concatenate=True, meta=np.empty(0))


def _log_density_block(x: np.ndarray, S: np.ndarray | None, bg) -> np.ndarray:
    return bg.log_density(_float64(x), _float64(S))


def background_log_density_rows(bg, X: np.ndarray, S: np.ndarray | None,
                                cens: np.ndarray | None = None) -> np.ndarray:
    """:func:`background_log_density` for samples in any order (grouped here), (N,);
    ``cens``: None or their (N, D) censoring flags."""
    layout = make_layout(X, None, S, 1, X.shape[1], censored=cens)
    Xs, Ss, _, _ = sorted_rows(layout.order, X, S)
    return in_given_order(background_log_density(bg, layout, Xs, Ss), layout.order)
