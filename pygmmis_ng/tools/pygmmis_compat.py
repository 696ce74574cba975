"""pyGMMis 1.2.3 names that pygmmis_ng keeps for code ported by changing the import.

``import pygmmis_ng as pygmmis`` then finds the initialization callbacks,
``covar_callback_default`` and ``createShared`` under their pyGMMis names, with
pyGMMis's signatures and meanings (the fits themselves go through
:func:`pygmmis_ng.fit`, whose keywords are pyGMMis's). The README's "Porting
from pyGMMis" lists where pygmmis_ng deliberately differs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data.validation import check_rng
from ..fitting.starts.init import init_kmeans, init_minmax, volume_filling_scale
from ..model import GMM


def _components(gmm: GMM, k: Any) -> np.ndarray:
    """Indices of the components ``k`` selects (None: all), as pyGMMis's ``k`` argument."""
    return np.arange(gmm.K)[slice(None) if k is None else k].reshape(-1)


def _set(gmm: GMM, idx: np.ndarray, mean: np.ndarray, s: float) -> None:
    gmm.amp[idx] = 1.0 / gmm.K
    gmm.mean[idx] = mean
    gmm.covar[idx] = s**2 * np.eye(gmm.D)


def initFromDataMinMax(gmm: GMM, data: Any, covar: Any = None, s: float | None = None,  # noqa: N802
                       k: Any = None, rng: Any = np.random) -> None:
    """pyGMMis's 'minmax' callback: means uniform in the data's bounding box, covariances
    s^2 I (s volume-filling if None), amplitudes 1/K; only components ``k`` if given."""
    data = np.asarray(data, dtype=float)
    idx = _components(gmm, k)
    tmp = GMM(gmm.K, gmm.D)
    init_minmax(tmp, data, rng=check_rng(rng))
    _set(gmm, idx, tmp.mean[idx], volume_filling_scale(data, gmm.K) if s is None else s)


def initFromDataAtRandom(gmm: GMM, data: Any, covar: Any = None, s: float | None = None,  # noqa: N802
                         k: Any = None, rng: Any = np.random) -> None:
    """pyGMMis's 'random' callback: each mean a random sample plus an N(0, s^2 I) offset,
    covariances s^2 I (s volume-filling if None), amplitudes 1/K; only components ``k``."""
    data = np.asarray(data, dtype=float)
    gen = check_rng(rng)
    idx = _components(gmm, k)
    s = volume_filling_scale(data, gmm.K) if s is None else s
    refs = gen.integers(0, len(data), size=idx.size)
    _set(gmm, idx, data[refs] + s * gen.standard_normal((idx.size, gmm.D)), s)


def initFromKMeans(gmm: GMM, data: Any, covar: Any = None, rng: Any = np.random) -> None:  # noqa: N802
    """pyGMMis's 'kmeans' callback: the clusters of a k-means run (here reproducible from
    ``rng``; pyGMMis's scipy kmeans2 was not)."""
    init_kmeans(gmm, np.asarray(data, dtype=float), rng=check_rng(rng))


def covar_callback_default(coords: np.ndarray, default: Any = None) -> np.ndarray:
    """pyGMMis's noise callback for imputed samples: the one ``default`` (D, D) covariance
    for every coordinate; use it as ``functools.partial(covar_callback_default, default=S)``."""
    D = np.shape(coords)[1]
    default = None if default is None else np.asarray(default, dtype=float)
    if default is None or default.shape != (D, D):
        raise ValueError(f"covar_callback_default needs default=<a ({D}, {D}) covariance>, got "
                         f"{None if default is None else default.shape}")
    return default


def createShared(a: Any, dtype: Any = None) -> np.ndarray:  # noqa: N802
    """A plain copy of ``a`` as float64 (pyGMMis put arrays in multiprocessing memory for its
    pool; pygmmis_ng's process pools share the fit's arrays themselves)."""
    return np.array(a, dtype=float)
