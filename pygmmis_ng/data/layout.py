"""How the observed samples are laid out for the kernels: fixed chunks, groups by pattern.

A sample y_i (dy values) observes its true D-dimensional x_i through a
projection, y_i = R_i x_i + noise. NaN in y_i marks a value that was not
measured: that row of R_i (of the identity, without ``R``) is dropped. The
marginal of a Gaussian is a Gaussian, so this is exact -- no huge-variance
stand-in as in pyGMMis.

The samples are sorted (stably) by their missingness pattern, and each
pattern becomes a :class:`Group` of consecutive rows:

* without ``R`` and without NaN there is one group with no projection:
  the plain / shared / per-sample noise paths of
  :mod:`pygmmis_ng.kernels.dense`, unchanged;
* a group that shares one projection R_g (a missingness pattern: the
  selection rows of the identity; or a shared ``R``) is the *same*
  problem in the dy_g-dimensional projected space, with components
  R_g m_k, R_g V_k R_g^T (+ noise), and the sums are lifted back to D
  dimensions by rectangular gains
  (:func:`pygmmis_ng.data.observed.group_components`);
* samples with their own projection R_i (``R`` of shape (N, dy, D)) go
  through :mod:`pygmmis_ng.kernels.projected`.

So a shared noise stays O(K dy^3) per group and iteration, and the
compiled kernels serve every group whose own path has one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..config import get_settings
from ..kernels import fused

#: doubles of per-chunk working memory (measured on 2 threads: the quadratic-feature
#: GEMMs of plain/shared noise are 10-20% faster with 3000-9000-row chunks than with
#: 800-2000, and 2-4x faster than with 250; the per-sample path likes long rows)
_CHUNK_BUDGET = {"shared": 1 << 19, "per_sample": 1 << 20}
#: the dimension up to which plain / shared-noise chunks go through the lane kernels
#: (:data:`pygmmis_ng.kernels.fused.LANES_MAX_D`); measured at N=2e5, D=5, K=20 on 2
#: threads: 8 chunks of 25000 rows 10.6 ms per iteration, 63 of 3177 rows 13.6-13.7 ms
_LANES_MAX_D = fused.LANES_MAX_D["shared"]


def eval_chunks(N: int, K: int, D: int, per_sample_noise: bool, max_rows: int | None = None,
                blocks: tuple | None = None, diagonal: bool = False) -> list[slice]:
    """Fixed chunk boundaries for streaming N samples through the kernels.

    The chunk length depends only on (N, K, D, noise kind), never on the
    number of workers, so sums are reduced in the same order everywhere.
    ``max_rows`` caps it (the minibatches of online EM are made of whole
    chunks); ``blocks`` (row counts summing to N, e.g. a dask array's row
    chunks) makes every chunk lie within one block. ``diagonal``: a 'diag' or
    'spherical' fit whose kernels work in O(D) per pair (see
    :func:`pygmmis_ng.kernels.stats.kernel_family`), so rows cost O(D), not O(D^2).
    """
    if per_sample_noise:
        budget, per_row = _CHUNK_BUDGET["per_sample"], K * D * (1 if diagonal else D) + K * D + 2 * K
    elif diagonal:                      # features (1, x, x^2) and the (n, K) log densities
        budget, per_row = _CHUNK_BUDGET["shared"], 2 * D + 4 * K
    else:
        budget, per_row = _CHUNK_BUDGET["shared"], K * D + D * D + 2 * K
        if D <= _LANES_MAX_D:           # the lane kernels hold nothing per row: 8 chunks
            budget, per_row = max(2048, -(-N // 8)), 1      # (for the threads), or 2048 rows
    size = int(np.clip(budget // per_row, 256, 65536))
    if max_rows is not None:
        size = max(1, min(size, int(max_rows)))
    out, start = [], 0
    for n in (N,) if blocks is None else blocks:
        out += [slice(start + i, start + min(i + size, n)) for i in range(0, n, size)]
        start += n
    return out


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
        kernel of :func:`pygmmis_ng.kernels.fused.stats_masked` (more patterns than
        the runtime setting ``masked_patterns``).
    cens : ndarray (dy_g,) of int8 or None
        Censored values of the group (:mod:`pygmmis_ng.kernels.censored`): for each
        observed value 0 (measured), -1 (an upper limit) or +1 (a lower limit); None
        when the group has no limits. ``obs`` then lists the measured columns first.
    """

    rows: slice
    obs: np.ndarray | None
    R: np.ndarray | None
    S: np.ndarray | None
    chunks: tuple
    dy: int
    c2: float = 0.0
    masked: bool = False
    cens: np.ndarray | None = None


class Layout(NamedTuple):
    """Sorted order and groups of the observed samples."""

    order: np.ndarray | None        # sorted row r is original row order[r]; None: unchanged
    groups: tuple


def single_group_layout(N: int, S: np.ndarray | None, K: int, D: int,
                        max_rows: int | None = None, blocks: tuple | None = None,
                        diagonal: bool = False) -> Layout:
    """The layout of N complete samples without projections (one group, rows unchanged), as
    :func:`make_layout` makes it, from the shapes alone (``S``: None, (D, D) or (N, D, D));
    ``max_rows`` and ``blocks`` as in :func:`eval_chunks`."""
    per_sample = S is not None and S.ndim == 3
    return Layout(None, (Group(slice(0, N), None, None, None if per_sample else S,
                               tuple(eval_chunks(N, K, D, per_sample, max_rows, blocks,
                                                 diagonal)), D),))


def make_layout(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, K: int, D: int,
                allow_masked: bool = False, diagonal: bool = False,
                censored: np.ndarray | None = None) -> Layout:
    """Group the samples of data X (N, dy) by missingness pattern.

    ``R``: None, (dy, D) or (N, dy, D); ``S``: None, (dy, dy) or (N, dy, dy).
    The data are not reordered here: the caller applies ``order``.
    ``allow_masked``: one masked group for many patterns (compiled kernels, no R).
    ``diagonal``: chunk lengths of the O(D) kernels (:func:`eval_chunks`) for the group
    of complete samples. ``censored``: None or (N, dy) flags (-1, 0, +1, see
    :func:`pygmmis_ng.data.censoring.check_censored`): a pattern is then which values are
    missing, measured, upper or lower limits, and no group is masked.
    """
    N, dy = X.shape
    per_sample = (S is not None and S.ndim == 3) or (R is not None and R.ndim == 3)
    observed = ~np.isnan(X)
    if censored is not None:
        # 0 missing, 1 measured, 2 upper limit, 3 lower limit
        state = observed * (1 + (censored == -1) + 2 * (censored == 1)).astype(np.int8)
        codes, inverse = _patterns(state)
        patterns, limits = codes > 0, np.where(codes == 2, -1, np.where(codes == 3, 1, 0))
        order = np.argsort(inverse, kind="stable")
    elif observed.all():
        patterns, inverse, order = np.ones((1, dy), dtype=bool), np.zeros(N, dtype=int), None
    else:
        patterns, inverse = _patterns(observed)
        order = np.argsort(inverse, kind="stable")
    if censored is None and allow_masked and R is None and fused.enabled() and \
            len(patterns) > get_settings().masked_patterns:
        # sorted by pattern all the same: the masked kernel reuses a pattern's factors
        chunks = tuple(eval_chunks(N, K, D, True))
        return Layout(order, (Group(slice(0, N), None, None, S if S is not None and S.ndim == 2
                                    else None, chunks, dy, masked=True),))
    counts = np.bincount(inverse, minlength=len(patterns))
    groups = []
    start = 0
    for p, (pattern, n) in enumerate(zip(patterns, counts)):
        obs = None if pattern.all() else np.flatnonzero(pattern)
        cens = None
        if censored is not None and limits[p].any():   # measured values first, then limits
            obs = np.concatenate([np.flatnonzero(pattern & (limits[p] == 0)),
                                  np.flatnonzero(limits[p] != 0)])
            cens = limits[p][obs].astype(np.int8)
            obs = None if obs.size == dy and (obs == np.arange(dy)).all() else obs
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
                       for c in eval_chunks(int(n), K, D, per_sample or cens is not None,
                                            diagonal=diagonal and obs is None and R is None))
        groups.append(Group(slice(start, start + int(n)), obs, Rg, Sg, chunks,
                            int(pattern.sum()), cens=cens))
        start += int(n)
    return Layout(None if order is None or (order == np.arange(N)).all() else order,
                  tuple(groups))


def windowed_layout(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, K: int, D: int,
                    window: int, diagonal: bool = False, censored: np.ndarray | None = None
                    ) -> Layout:
    """The layout of online EM: the rows cut into windows of ``window`` consecutive rows (the
    minibatches), each laid out by :func:`make_layout` on its own -- its samples sorted by
    missingness pattern within the window, its chunks never crossing into another window.
    A minibatch thus holds every pattern of its rows, and the windows keep the rows' order.
    ``censored``: the flags of :func:`make_layout`."""
    N = X.shape[0]
    per = lambda a, lo, hi: a[lo:hi] if a is not None and a.ndim == 3 else a      # noqa: E731
    orders, groups, moved = [], [], False
    for lo in range(0, N, window):
        hi = min(lo + window, N)
        sub = make_layout(X[lo:hi], per(R, lo, hi), per(S, lo, hi), K, D, allow_masked=True,
                          diagonal=diagonal,
                          censored=None if censored is None else censored[lo:hi])
        moved = moved or sub.order is not None
        orders.append(lo + (np.arange(hi - lo) if sub.order is None else sub.order))
        groups += [g._replace(rows=slice(lo + g.rows.start, lo + g.rows.stop),
                              chunks=tuple(slice(lo + c.start, lo + c.stop) for c in g.chunks))
                   for g in sub.groups]
    return Layout(np.concatenate(orders) if moved else None, tuple(groups))


def _patterns(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a boolean (N, dy) array, or of small integers (< 4), sorted, and each
    row's index among them."""
    dy = observed.shape[1]
    if observed.dtype != bool:         # two bits per value
        if dy > 31:
            uniq, inverse = np.unique(observed, axis=0, return_inverse=True)
            return uniq, inverse.reshape(-1)
        codes = observed.astype(np.int64) @ (np.int64(1) << (2 * np.arange(dy - 1, -1, -1)))
    elif dy <= 62:      # one int64 code per row: far faster than np.unique(axis=0)
        codes = observed.astype(np.int64) @ (np.int64(1) << np.arange(dy - 1, -1, -1))
    else:
        codes = np.packbits(observed, axis=1)
        codes = codes.view(np.dtype((np.void, codes.shape[1]))).ravel()
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return observed[first], inverse.reshape(-1)


def in_given_order(a: np.ndarray, order: np.ndarray | None) -> np.ndarray:
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
