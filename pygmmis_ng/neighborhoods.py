"""Component neighborhoods: which samples lie within a chi^2 cut of a component.

``cutoff`` is given, as in pyGMMis, in "1D-equivalent sigmas": a cut that
keeps the same probability mass a +-cutoff sigma interval keeps in 1D.
In this release the neighborhoods are reported by :func:`pygmmis_ng.fit`
(as pyGMMis's ``U``) while the fit itself stays exact; using them to skip
work is the subject of the scaling work.
"""
from __future__ import annotations

import numpy as np
import scipy.stats

from . import kernels


def chi2_cutoff(D: int, cutoff: float = 3.0) -> float:
    """The chi^2 limit in D dimensions equivalent to a ``cutoff``-sigma cut in 1D.

    Parameters
    ----------
    D : int
        Dimension.
    cutoff : float
        Half-width of the 1D interval in sigmas.

    Returns
    -------
    float
        q such that P(chi^2_D < q) = P(|z| < cutoff) for a standard normal z.
    """
    confidence_1d = 1.0 - 2.0 * scipy.stats.norm.sf(cutoff)
    return float(scipy.stats.chi2.ppf(confidence_1d, D))


def neighborhoods(X: np.ndarray, comps: kernels.Components, S: np.ndarray | None,
                  chunks: list[slice], cutoff: float) -> list[np.ndarray]:
    """Indices of the samples within ``cutoff`` (1D sigmas) of each component.

    Parameters
    ----------
    X : ndarray (N, D)
    comps : Components (with the noise folded in for absent/shared noise)
    S : None or ndarray (N, D, D) per-sample noise
    chunks : fixed chunks of the samples
    cutoff : float

    Returns
    -------
    list of K int arrays, the sorted sample indices of each neighborhood
    """
    K, D = comps.mean.shape
    limit = chi2_cutoff(D, cutoff)
    parts: list[list[np.ndarray]] = [[] for _ in range(K)]
    per_sample = S is not None and S.ndim == 3
    for sl in chunks:
        chi2 = kernels.mahalanobis(X[sl], comps, S[sl] if per_sample else None)
        for k in range(K):
            parts[k].append(sl.start + np.flatnonzero(chi2[:, k] < limit))
    return [np.concatenate(p) if p else np.empty(0, dtype=int) for p in parts]
