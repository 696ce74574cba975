"""Component neighborhoods: which samples lie within a chi^2 cut of a component.

``cutoff`` is given, as in pyGMMis, in "1D-equivalent sigmas": a cut that
keeps the same probability mass a +-cutoff sigma interval keeps in 1D.
In this release the neighborhoods are reported by :func:`pygmmis_ng.fit`
(as pyGMMis's ``U``) while the fit itself stays exact; using them to skip
work is the subject of the scaling work.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats


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


def neighborhoods(p: Any, comps: list, cutoff: float) -> list[np.ndarray]:
    """Indices of the samples within ``cutoff`` (1D sigmas) of each component.

    Parameters
    ----------
    p : em_loop.Problem (its groups of observed samples and their order)
    comps : the groups' components (em_loop.group_comps)
    cutoff : float

    Returns
    -------
    list of K int arrays, the sorted indices (rows of the data as given) of
    each neighborhood; chi2 is taken over each sample's measured values
    """
    from .observed import chunk_log_joint

    K = comps[0].log_amp.size
    parts: list[list[np.ndarray]] = [[] for _ in range(K)]
    limits = np.array([np.inf] + [chi2_cutoff(d, cutoff) for d in range(1, p.Xc.shape[1] + 1)])
    for grp, c in zip(p.groups, comps):
        for sl in grp.chunks:
            chi2 = chunk_log_joint(grp, sl, p.Xc, p.S, p.R, c)[1]
            # the chi2 of each sample is over its measured values (dy of its pattern)
            limit = limits[(~np.isnan(p.Xc[sl])).sum(axis=1)] if grp.masked else limits[grp.dy]
            for k in range(K):
                parts[k].append(sl.start + np.flatnonzero(chi2[:, k] < limit))
    out = [np.concatenate(q) if q else np.empty(0, dtype=int) for q in parts]
    if p.order is not None:
        out = [np.sort(p.order[idx]) for idx in out]
    return out
