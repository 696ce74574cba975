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

from ...model import GMM
from ..problem.scales import (  # noqa: F401  (public through pygmmis_ng.init)
    ReseedSupport,
    axis_variances,
    constant_axes,
    data_variance,
    stretched_identity,
    support_index,
    volume_filling_scale,
    weighted_support,
)

InitCallback = Callable[..., None]


def _seed(rng: np.random.Generator) -> int:
    """An int seed for libraries that take ``random_state`` (sklearn)."""
    return int(rng.integers(0, 2**31 - 1))


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
