"""Initialization strategies for the EM fit.

Each strategy has the pyGMMis callback signature
``init(gmm, data, covar=None, rng=None)`` and sets ``gmm.amp``, ``gmm.mean``
and ``gmm.covar`` in place. All randomness comes from ``rng`` (a
numpy Generator), so a fixed seed gives a fixed initialization.

The built-in strategies also take ``sample_weight`` (the fit passes it; a
callable of the user's gets it if its signature names it). They see the data
as a weighted set (:func:`weighted_support`): the distinct rows with positive
weight, in an order fixed by their values, with their summed weights. So an
integer weight and the same row repeated that many times, or rows in another
order, give the same initialization (and, for the scikit-learn estimator,
the same fit).

==========  ================================================================
name        what it does
==========  ================================================================
random      means at randomly chosen samples (drawn by weight) plus a Gaussian
            offset of scale s, covariances s^2 I, equal amplitudes (pyGMMis
            default).
minmax      means uniform in the bounding box of the data, covariances
            s^2 I, equal amplitudes.
kmeans      sklearn KMeans (one run, seeded from rng, weighted): amplitudes
            from the clusters' weights, means at the centres, covariances
            from the (weighted) cluster members.
gmm         a short sklearn GaussianMixture run (at most 20 iterations,
            k-means++ start, seeded from rng) on the noisy data; with
            unequal weights on a weighted resample of the rows.
none        keep the parameters the GMM already has (they are validated).
warm        as 'none', and under a selection no k-means start competes: the
            fit continues from exactly these parameters (a warm start).
k-means++   means at k-means++ seeds, amplitudes and covariances of their
            cells (scikit-learn's init_params='k-means++').
random_from_data
            means at K distinct samples drawn by weight, amplitudes and
            covariances of their cells (scikit-learn's 'random_from_data').
random_resp an M-step from random responsibilities (scikit-learn's
            init_params='random'; pyGMMis's 'random' is the one above).
==========  ================================================================

s is the "volume-filling" scale of pyGMMis: K balls of radius s fill the
bounding box of the data. A callable with the signature above may be
passed to :func:`pygmmis_ng.fit` as ``init_method`` instead of a name.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

import numpy as np
import scipy.special

from ..data.lazy import stable_average
from ..model import GMM

InitCallback = Callable[..., None]


def _seed(rng: np.random.Generator) -> int:
    """An int seed for libraries that take ``random_state`` (sklearn)."""
    return int(rng.integers(0, 2**31 - 1))


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


def takes_weight(init: InitCallback) -> bool:
    """Whether an init callback accepts ``sample_weight`` (the built-ins do)."""
    if init in INIT_METHODS.values():
        return True
    try:
        return "sample_weight" in inspect.signature(init).parameters
    except (TypeError, ValueError):
        return False


def init_random(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
                sample_weight: np.ndarray | None = None) -> None:
    """Means near samples drawn by weight (offset ~ N(0, s^2 I)), covariances s^2 I."""
    rng = np.random.default_rng(rng)
    rows, w = weighted_support(data, sample_weight)
    s = volume_filling_scale(rows, gmm.K)
    refs = rng.choice(len(rows), size=gmm.K, p=w / w.sum())
    gmm.amp = np.full(gmm.K, 1 / gmm.K)
    gmm.mean = rows[refs] + s * rng.standard_normal((gmm.K, gmm.D))
    gmm.covar = np.tile(s**2 * np.eye(gmm.D), (gmm.K, 1, 1))


def init_minmax(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
                sample_weight: np.ndarray | None = None) -> None:
    """Means uniform in the bounding box of the samples (of positive weight), covariances s^2 I."""
    rng = np.random.default_rng(rng)
    rows, _ = weighted_support(data, sample_weight)
    s = volume_filling_scale(rows, gmm.K)
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    gmm.amp = np.full(gmm.K, 1 / gmm.K)
    gmm.mean = lo + (hi - lo) * rng.random((gmm.K, gmm.D))
    gmm.covar = np.tile(s**2 * np.eye(gmm.D), (gmm.K, 1, 1))


def _cluster_covariances(data: np.ndarray, weight: np.ndarray, labels: np.ndarray,
                         K: int) -> np.ndarray:
    """Weighted covariance of each cluster's members; s^2 (per-axis stretched) for clusters
    with a total weight of at most D."""
    D = data.shape[1]
    var = axis_variances(data, weight)
    unit = stretched_identity(var)
    s2 = volume_filling_scale(data, K) ** 2
    floor = 1e-6 * np.diag(var)
    out = np.empty((K, D, D))
    for k in range(K):
        on = labels == k
        wk = weight[on]
        if wk.sum() <= D:
            out[k] = s2 * unit
        else:
            d = data[on] - np.average(data[on], axis=0, weights=wk)
            out[k] = (d * wk[:, None]).T @ d / wk.sum() + floor
    return out


def init_kmeans(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
                sample_weight: np.ndarray | None = None) -> None:
    """Amplitudes, means and covariances of a weighted k-means clustering (sklearn KMeans).

    k-means runs on the data with every axis scaled to unit variance, so that
    an axis in small units (a flux in erg/s/cm^2 beside a magnitude) is seen.
    """
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(rng)
    rows, w = weighted_support(data, sample_weight)
    center, sd = np.average(rows, axis=0, weights=w), np.sqrt(axis_variances(rows, w))
    K = min(gmm.K, len(rows))
    km = KMeans(n_clusters=K, n_init=1, random_state=_seed(rng)).fit((rows - center) / sd,
                                                                     sample_weight=w)
    labels = km.labels_
    if K < gmm.K:          # fewer distinct rows than components: the others where the data are
        km_centers = np.concatenate([km.cluster_centers_, np.zeros((gmm.K - K, gmm.D))])
    else:
        km_centers = km.cluster_centers_
    mass = np.maximum(np.bincount(labels, weights=w, minlength=gmm.K), w.min())   # empty: 1 row
    gmm.amp = mass / mass.sum()
    gmm.mean = center + km_centers * sd
    gmm.covar = _cluster_covariances(rows, w, labels, gmm.K)


def _standardized(data: np.ndarray, sample_weight: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weighted support (rows, weights) and its rows with every axis at unit variance."""
    rows, w = weighted_support(data, sample_weight)
    center, sd = np.average(rows, axis=0, weights=w), np.sqrt(axis_variances(rows, w))
    return rows, w, (rows - center) / sd


def _from_seeds(gmm: GMM, rows: np.ndarray, w: np.ndarray, std: np.ndarray,
                idx: np.ndarray) -> None:
    """Means at the rows ``idx``; amplitudes and covariances of their (standardized) Voronoi cells."""
    d2 = ((std[:, None, :] - std[idx][None, :, :]) ** 2).sum(axis=2)
    labels = np.argmin(d2, axis=1)
    mass = np.maximum(np.bincount(labels, weights=w, minlength=gmm.K), w.min())
    gmm.amp = mass / mass.sum()
    gmm.mean = rows[idx].copy()
    gmm.covar = _cluster_covariances(rows, w, labels, gmm.K)


def init_kmeans_plusplus(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
                         sample_weight: np.ndarray | None = None) -> None:
    """Means at k-means++ seeds (sklearn's ``kmeans_plusplus``, weighted, on standardized
    axes), amplitudes and covariances of their cells (scikit-learn's 'k-means++')."""
    from sklearn.cluster import kmeans_plusplus

    rng = np.random.default_rng(rng)
    rows, w, std = _standardized(data, sample_weight)
    if len(rows) < gmm.K:
        raise ValueError(f"'k-means++' needs at least K={gmm.K} distinct samples, got {len(rows)}")
    _, idx = kmeans_plusplus(std, gmm.K, sample_weight=w, random_state=_seed(rng))
    _from_seeds(gmm, rows, w, std, idx)


def init_random_from_data(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
                          sample_weight: np.ndarray | None = None) -> None:
    """Means at K distinct samples drawn by weight, amplitudes and covariances of their
    cells (scikit-learn's 'random_from_data')."""
    rng = np.random.default_rng(rng)
    rows, w, std = _standardized(data, sample_weight)
    if len(rows) < gmm.K:
        raise ValueError(f"'random_from_data' needs at least K={gmm.K} distinct samples, got "
                         f"{len(rows)}")
    _from_seeds(gmm, rows, w, std, rng.choice(len(rows), size=gmm.K, replace=False, p=w / w.sum()))


def init_random_resp(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
                     sample_weight: np.ndarray | None = None) -> None:
    """An M-step from uniformly random responsibilities (scikit-learn's 'random'): all means
    near the data mean, covariances near the data covariance."""
    rng = np.random.default_rng(rng)
    rows, w = weighted_support(data, sample_weight)
    q = rng.random((len(rows), gmm.K))
    q *= w[:, None] / q.sum(axis=1, keepdims=True)
    A = q.sum(axis=0)
    mean = (q.T @ rows) / A[:, None]
    floor = 1e-6 * np.diag(axis_variances(rows, w))
    covar = np.empty((gmm.K, gmm.D, gmm.D))
    for k in range(gmm.K):
        d = rows - mean[k]
        covar[k] = (d * q[:, k:k + 1]).T @ d / A[k] + floor
    gmm.amp, gmm.mean, gmm.covar = A / A.sum(), mean, covar


def init_gmm(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
             max_iter: int = 20, sample_weight: np.ndarray | None = None) -> None:
    """A short sklearn GaussianMixture fit (noise ignored) as the starting point.

    Fitted to the data with every axis scaled to unit variance (as k-means).
    sklearn's GaussianMixture takes no weights: with unequal weights it is
    fitted to as many rows drawn (with replacement) by weight.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(rng)
    rows, w = weighted_support(data, sample_weight)
    if np.ptp(w) > 0:
        rows = rows[rng.choice(len(rows), size=max(len(rows), gmm.K), p=w / w.sum())]
    center, sd = rows.mean(axis=0), np.sqrt(axis_variances(rows))
    gm = GaussianMixture(n_components=gmm.K, covariance_type="full", max_iter=max_iter,
                         init_params="k-means++", reg_covar=1e-6, random_state=_seed(rng))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit((rows - center) / sd)
    gmm.amp = gm.weights_ / gm.weights_.sum()
    gmm.mean = center + gm.means_ * sd
    gmm.covar = gm.covariances_ * np.outer(sd, sd)


def init_none(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
              sample_weight: np.ndarray | None = None) -> None:
    """Keep the current parameters; they must form a valid mixture."""
    try:
        gmm.validate()
    except ValueError as exc:
        raise ValueError(f"init_method='none' needs an initialized GMM: {exc}") from None


def init_warm(gmm: GMM, data: np.ndarray, covar: Any = None, rng: Any = None,
              sample_weight: np.ndarray | None = None) -> None:
    """Continue from the current parameters (a warm start): as 'none', but also under a
    selection no k-means start competes with it, so the fit continues the run it was given."""
    try:
        gmm.validate()
    except ValueError as exc:
        raise ValueError(f"init_method='warm' needs an initialized GMM: {exc}") from None


INIT_METHODS: dict[str, InitCallback] = {
    "random": init_random,
    "minmax": init_minmax,
    "kmeans": init_kmeans,
    "gmm": init_gmm,
    "none": init_none,
    "warm": init_warm,
    "k-means++": init_kmeans_plusplus,
    "random_from_data": init_random_from_data,
    "random_resp": init_random_resp,
}


def resolve_init(init_method: Any) -> InitCallback:
    """The init callback for a name (case-insensitive) or a callable.

    ``'auto'`` (the default of :func:`pygmmis_ng.fit`, as in scikit-learn's
    GaussianMixture) is ``'kmeans'``: measured the best start, under a
    selection (where the start decides which optimum EM finds) and without
    one (from 'random', pyGMMis's default, EM crawls: on astroML's K=10 XD
    example it stops 0.002-0.006 per sample short at the default ``tol``).
    """
    if callable(init_method):
        return init_method
    if isinstance(init_method, str) and init_method.lower() == "auto":
        return INIT_METHODS["kmeans"]
    if isinstance(init_method, str) and init_method.lower() in INIT_METHODS:
        return INIT_METHODS[init_method.lower()]
    raise ValueError(f"unknown init_method {init_method!r}; use 'auto', one of "
                     f"{sorted(INIT_METHODS)} or a callable init(gmm, data, covar=None, rng=None)")
