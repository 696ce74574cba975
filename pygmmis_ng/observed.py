"""The observed samples as groups: missing features and projections.

A sample y_i (dy values) observes its true D-dimensional x_i through a
projection, y_i = R_i x_i + noise. NaN in y_i marks a value that was not
measured: that row of R_i (of the identity, without ``R``) is dropped. The
marginal of a Gaussian is a Gaussian, so this is exact -- no huge-variance
stand-in as in pyGMMis.

The samples are sorted (stably) by their missingness pattern, and each
pattern becomes a :class:`Group` of consecutive rows:

* without ``R`` and without NaN there is one group with no projection:
  the plain / shared / per-sample noise paths of :mod:`.kernels`, unchanged;
* a group that shares one projection R_g (a missingness pattern: the
  selection rows of the identity; or a shared ``R``) is the *same*
  problem in the dy_g-dimensional projected space, with components
  R_g m_k, R_g V_k R_g^T (+ noise), and the sums are lifted back to D
  dimensions by rectangular gains (:func:`group_components`);
* samples with their own projection R_i (``R`` of shape (N, dy, D)) go
  through :mod:`.projected`.

So a shared noise stays O(K dy^3) per group and iteration, and the
compiled kernels serve every group whose own path has one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import fused, fused_masked, kernels, projected


class Group(NamedTuple):
    """Consecutive rows of the (pattern-sorted) samples with one missingness pattern.

    Attributes
    ----------
    rows : slice of the sorted samples
    obs : ndarray of int or None
        Observed columns of the data (None: all).
    R : ndarray (dy_g, D) or None
        The group's shared projection; None for the identity, or when every
        sample has its own (then taken from the per-sample ``R`` by ``obs``).
    S : ndarray (dy_g, dy_g) or None
        Shared noise restricted to the observed values (None: none or per-sample).
    chunks : tuple of slices (absolute rows) streamed through the kernels
    dy : int
        Number of observed values of each sample of the group.
    c2 : float
        chi2 radius of the stored neighborhoods in dy_g dimensions (with cutoff).
    masked : bool
        All samples in one group whatever their pattern, for the compiled
        kernel of :mod:`.fused_masked` (many patterns, see :data:`MASKED_PATTERNS`).
    """

    rows: slice
    obs: np.ndarray | None
    R: np.ndarray | None
    S: np.ndarray | None
    chunks: tuple
    dy: int
    c2: float = 0.0
    masked: bool = False


#: with more missingness patterns than this (and the compiled kernels), a fit puts all
#: samples in one masked group: ~1000 groups (D = 10, values missing at random) cost
#: 20x the complete fit in per-group overhead, the masked kernel about 1-2x
MASKED_PATTERNS = 32


class Layout(NamedTuple):
    """Sorted order and groups of the observed samples."""

    order: np.ndarray | None        # sorted row r is original row order[r]; None: unchanged
    groups: tuple


def make_layout(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, K: int, D: int,
                allow_masked: bool = False) -> Layout:
    """Group the samples of data X (N, dy) by missingness pattern.

    ``R``: None, (dy, D) or (N, dy, D); ``S``: None, (dy, dy) or (N, dy, dy).
    The data are not reordered here: the caller applies ``order``.
    ``allow_masked``: one masked group for many patterns (compiled kernels, no R).
    """
    from .model import eval_chunks

    N, dy = X.shape
    per_sample = (S is not None and S.ndim == 3) or (R is not None and R.ndim == 3)
    observed = ~np.isnan(X)
    if observed.all():
        patterns, inverse, order = np.ones((1, dy), dtype=bool), np.zeros(N, dtype=int), None
    else:
        patterns, inverse = _patterns(observed)
        order = np.argsort(inverse, kind="stable")
    if allow_masked and R is None and fused.ENABLED and len(patterns) > MASKED_PATTERNS:
        # sorted by pattern all the same: the masked kernel reuses a pattern's factors
        chunks = tuple(eval_chunks(N, K, D, True))
        return Layout(order, (Group(slice(0, N), None, None, S if S is not None and S.ndim == 2
                                    else None, chunks, dy, masked=True),))
    counts = np.bincount(inverse, minlength=len(patterns))
    groups = []
    start = 0
    for pattern, n in zip(patterns, counts):
        obs = None if pattern.all() else np.flatnonzero(pattern)
        if R is not None and R.ndim == 2:
            Rg = R if obs is None else R[obs]
        elif R is None and obs is not None:
            Rg = np.eye(D)[obs]
        else:
            Rg = None                                   # identity, or per-sample R
        Sg = None
        if S is not None and S.ndim == 2:
            Sg = S if obs is None else S[np.ix_(obs, obs)]
        chunks = tuple(slice(start + c.start, start + c.stop)
                       for c in eval_chunks(int(n), K, D, per_sample))
        groups.append(Group(slice(start, start + int(n)), obs, Rg, Sg, chunks,
                            int(pattern.sum())))
        start += int(n)
    return Layout(None if order is None or (order == np.arange(N)).all() else order,
                  tuple(groups))


def _patterns(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a boolean (N, dy) array (sorted) and each row's index among them."""
    dy = observed.shape[1]
    if dy <= 62:        # one int64 code per row: far faster than np.unique(axis=0)
        codes = observed.astype(np.int64) @ (np.int64(1) << np.arange(dy - 1, -1, -1))
    else:
        codes = np.packbits(observed, axis=1)
        codes = codes.view(np.dtype((np.void, codes.shape[1]))).ravel()
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return observed[first], inverse.reshape(-1)


def group_components(grp: Group, amp: np.ndarray, mean: np.ndarray, covar: np.ndarray,
                     per_sample_noise: bool, per_sample_R: bool) -> kernels.Components:
    """What the kernels need for one group at the current parameters.

    For a projected group with no or shared noise: T_k = R V_k R^T + S,
    its factors, the gain V_k R^T T_k^-1 (D, dy) and the posterior covariance
    V_k - V_k R^T T_k^-1 R V_k. With per-sample noise: R m_k and R V_k R^T,
    and the lift V_k R^T, V_k (see :func:`pygmmis_ng.fused.stats_per_sample`).
    """
    if per_sample_R or grp.masked or (grp.R is None and per_sample_noise):
        with np.errstate(divide="ignore"):
            return kernels.Components(np.log(amp), mean, covar, None, None, None, None)
    if grp.R is None:
        return kernels.prepare_components(amp, mean, covar, grp.S)
    R = grp.R
    VRt = covar @ R.T                                               # (K, D, dy)
    P = R @ VRt                                                     # (K, dy, dy)
    P = 0.5 * (P + np.swapaxes(P, 1, 2))
    Rm = mean @ R.T
    with np.errstate(divide="ignore"):
        log_amp = np.log(amp)
    if per_sample_noise:
        return kernels.Components(log_amp, Rm, P, None, None, VRt, covar)
    c = kernels.prepare_components(amp, Rm, P, grp.S)
    # T^-1 R V = L^-T L^-1 (V R^T)^T, and the gain is its transpose V R^T T^-1 (K, D, dy)
    Tinv_RV = np.swapaxes(c.prec_chol, 1, 2) @ (c.prec_chol @ np.swapaxes(VRt, 1, 2))
    gain = np.swapaxes(Tinv_RV, 1, 2)
    post = covar - gain @ np.swapaxes(VRt, 1, 2)
    post = 0.5 * (post + np.swapaxes(post, 1, 2))
    return c._replace(gain=gain, post_covar=post)


def chunk_arrays(grp: Group, sl: slice, X: np.ndarray, S: np.ndarray | None,
                 R: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The observed values, per-sample noise and per-sample projections of a chunk's rows."""
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
    return x, S_c, R_c


def chunk_stats(grp: Group, sl: slice, X: np.ndarray, S: np.ndarray | None,
                R: np.ndarray | None, comps: kernels.Components, weight: np.ndarray | None,
                log_bg: np.ndarray | None, nbr: np.ndarray | None, redo: np.ndarray | None
                ) -> kernels.SufficientStats:
    """Sufficient statistics (of the true values) of one chunk of a group."""
    x, S_c, R_c = chunk_arrays(grp, sl, X, S, R)
    if grp.masked:
        A, Mc, Cc, logL, B = fused_masked.stats_masked(x, grp.S if S_c is None else S_c, weight,
                                                       log_bg, comps.mean, comps.covar,
                                                       comps.log_amp)
        return kernels.SufficientStats(A, Mc, Cc, logL,
                                       float(len(x) if weight is None else weight.sum()), B)
    if R_c is not None:
        S_shared = grp.S if S_c is None else S_c
        return projected.chunk_stats(x, R_c, S_shared, comps, weight, log_bg)
    return kernels.chunk_stats(x, comps, S_c, weight, log_bg, nbr, redo, grp.c2)


def chunk_log_joint(grp: Group, sl: slice, X: np.ndarray, S: np.ndarray | None,
                    R: np.ndarray | None, comps: kernels.Components
                    ) -> tuple[np.ndarray, np.ndarray]:
    """log a_k + log N_ik (n, K) of one chunk of a group, and the chi2_ik (n, K)."""
    x, S_c, R_c = chunk_arrays(grp, sl, X, S, R)
    if grp.masked:                      # (numpy) pattern by pattern within the chunk
        return log_joint_chi2(x, None, grp.S if S_c is None else S_c, np.exp(comps.log_amp),
                              comps.mean, comps.covar)
    if R_c is not None:
        return projected.log_joint(x, R_c, grp.S if S_c is None else S_c, comps)
    return kernels.log_joint_chi2(x, comps, S_c)


def log_joint_chi2(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, amp: np.ndarray,
                   mean: np.ndarray, covar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log a_k + log N(y_i | R_i m_k, R_i V_k R_i^T + S_i) over the observed values, and chi2_ik.

    X may hold NaN (missing values); rows are returned in the given order,
    (N, K) each.
    """
    K, D = mean.shape
    layout = make_layout(X, R, S, K, D)
    Xs, Ss, Rs, _ = sorted_rows(layout.order, X, S, R)
    per_S, per_R = S is not None and S.ndim == 3, R is not None and R.ndim == 3
    lj, chi2 = np.empty((X.shape[0], K)), np.empty((X.shape[0], K))
    for grp in layout.groups:
        comps = group_components(grp, amp, mean, covar, per_S, per_R)
        for sl in grp.chunks:
            lj[sl], chi2[sl] = chunk_log_joint(grp, sl, Xs, Ss, Rs, comps)
    return _in_given_order(lj, layout.order), _in_given_order(chi2, layout.order)


def log_joint(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, amp: np.ndarray,
              mean: np.ndarray, covar: np.ndarray) -> np.ndarray:
    """The first of :func:`log_joint_chi2`: for density evaluation with NaN or R."""
    return log_joint_chi2(X, R, S, amp, mean, covar)[0]


def _in_given_order(a: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """Rows computed in a layout's sorted order, put back in the order the data came."""
    if order is None:
        return a
    out = np.empty_like(a)
    out[order] = a
    return out


def _rows(a: np.ndarray | None, order: np.ndarray) -> np.ndarray | None:
    """Per-sample arrays in the sorted order (shared or absent ones as they are)."""
    return a[order] if a is not None and a.ndim == 3 else a


def sorted_rows(order: np.ndarray | None, X: np.ndarray, S: np.ndarray | None = None,
                R: np.ndarray | None = None, weight: np.ndarray | None = None) -> tuple:
    """X, per-sample S and R, and weights in the sorted order of a layout."""
    if order is None:
        return X, S, R, weight
    return X[order], _rows(S, order), _rows(R, order), None if weight is None else weight[order]


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
                bg, X[grp.rows], S if S is None or S.ndim == 2 else S[grp.rows])
            continue
        x = X[grp.rows] if grp.obs is None else X[grp.rows][:, grp.obs]
        if S is not None and S.ndim == 3:
            Sg = S[grp.rows] if grp.obs is None else S[grp.rows][:, grp.obs][:, :, grp.obs]
        else:
            Sg = grp.S
        out[grp.rows] = bg.log_density(x, Sg, dims=grp.obs)
    return out


def background_log_density_rows(bg, X: np.ndarray, S: np.ndarray | None) -> np.ndarray:
    """:func:`background_log_density` for samples in any order (grouped here), (N,)."""
    layout = make_layout(X, None, S, 1, X.shape[1])
    Xs, Ss, _, _ = sorted_rows(layout.order, X, S)
    return _in_given_order(background_log_density(bg, layout, Xs, Ss), layout.order)
