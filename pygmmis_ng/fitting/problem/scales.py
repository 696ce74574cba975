"""The data's scales and where collapsed components are re-seeded.

The units in which a fit judges and floors its components (each axis's
variance, the volume-filling scale of pyGMMis, the axes along which the data
are constant) and the weighted set of distinct rows a collapsed component is
re-seeded at: fixed quantities of a fit, computed once from the latent points
of its initialization rows (:mod:`pygmmis_ng.fitting.setup.prepare`).
"""
from __future__ import annotations

import numpy as np
import scipy.special

from ...data.lazy import stable_average


def data_variance(data: np.ndarray) -> float:
    """Average per-dimension variance of the data (>0), the unit for floors."""
    var = float(np.mean(np.var(data, axis=0)))
    return var if var > 0 else 1.0


def axis_variances(data: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Variance of the data along each axis (D,), the units of the fit's floors.

    Axes along which the data do not vary get the geometric mean of the
    others (1 if none varies), so every unit is positive.
    """
    var = stable_average((data - stable_average(data, weight)) ** 2, weight)
    pos = ~constant_axes(data, weight)
    fill = float(np.exp(np.log(var[pos]).mean())) if pos.any() else 1.0
    return np.where(pos, var, fill)


def stretched_identity(var: np.ndarray) -> np.ndarray:
    """diag(var) / geometric mean(var): the identity stretched along each axis as the data
    are, with unit determinant (so s^2 times it keeps a volume-filling scale s)."""
    return np.diag(var / np.exp(np.log(var).mean()))


def constant_axes(data: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Axes (D,) bool along which the data do not vary (spread at the rounding level of
    the values counts as none)."""
    mean = stable_average(data, weight)
    var = stable_average((data - mean) ** 2, weight)
    return ~(var > 1e-24 * np.maximum(mean**2, np.finfo(float).tiny))


def volume_filling_scale(data: np.ndarray, K: int) -> float:
    """Radius s such that K D-balls of radius s fill the data's bounding box.

    Dimensions in which the data do not extend are ignored; if the data
    occupy a single point, the scale falls back to 1.
    """
    span = data.max(axis=0) - data.min(axis=0)
    span = span[span > 0]
    if span.size == 0:
        return 1.0
    D = data.shape[1]
    # geometric mean span, so degenerate dimensions do not zero the volume; in logs,
    # so that large D or extreme units do not overflow
    log_vol = D * np.log(span).mean()
    log_s = (log_vol - np.log(K) + scipy.special.gammaln(D * 0.5 + 1)) / D - 0.5 * np.log(np.pi)
    return float(np.exp(log_s))


def _row_hash(data: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's values (N,): equal rows, equal hashes."""
    bits = np.ascontiguousarray(data + 0.0).view(np.uint64)      # + 0.0: -0.0 hashes as 0.0
    h = np.full(len(data), np.uint64(0xCBF29CE484222325))
    prime = np.uint64(0x100000001B3)
    for j in range(data.shape[1]):
        h = (h ^ bits[:, j]) * prime
        h ^= h >> np.uint64(31)
    return h


def support_index(data: np.ndarray, sample_weight: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The data as a weighted set: one row index per distinct row of positive weight.

    The rows come in the order of a hash of their values, so the set does not
    depend on the order of the data, nor on whether a row is repeated or given
    an integer weight.

    Returns
    -------
    index : ndarray (M,) of int, rows of ``data``
    weights : ndarray (M,), > 0, the summed weights of each distinct row
    """
    w = np.ones(len(data)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    keep = np.flatnonzero(w > 0)
    _, first, inverse = np.unique(_row_hash(data[keep]), return_index=True, return_inverse=True)
    return keep[first], np.bincount(inverse.reshape(-1), weights=w[keep])


class ReseedSupport:
    """Where collapsed components are re-seeded: the distinct rows of positive weight of
    :func:`support_index`, found on the first re-seed (most fits never re-seed, and are
    spared the hashing pass over the data)."""

    def __init__(self, data: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        self._source: tuple | None = (data, sample_weight)
        self._made: tuple[np.ndarray, np.ndarray] | None = None

    def index_cdf(self) -> tuple[np.ndarray, np.ndarray]:
        """(row index (M,), cumulative summed weights (M,)) of the distinct rows."""
        if self._made is None:
            index, w = support_index(*self._source)
            self._made, self._source = (index, np.cumsum(w)), None
        return self._made


def weighted_support(data: np.ndarray, sample_weight: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows (M, D) of positive weight and their summed weights (M,); see
    :func:`support_index`."""
    index, w = support_index(data, sample_weight)
    return data[index], w
