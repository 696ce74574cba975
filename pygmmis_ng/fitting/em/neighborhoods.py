"""Component neighborhoods: which samples lie within a chi^2 cut of a component.

``cutoff`` is given, as in pyGMMis, in "1D-equivalent sigmas": a cut that
keeps the same probability mass a +-cutoff sigma interval keeps in 1D.
With a ``cutoff`` the compiled kernels evaluate each component only on the
samples flagged in its neighborhood. The flags are stored with a margin
(:data:`NB_SHIFT`, :data:`NB_SCALE`), so they hold every sample within the
cutoff of the current component, and are rewritten only for the components
that moved or grew (:func:`stale_neighborhoods`). :func:`neighborhoods`
gives the final ones as index lists (pyGMMis's ``U``).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.stats

from ...data.observed import chunk_log_joint
from ..problem.problem import Problem, State


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
        q such that P(chi^2_D < q) = P(abs(z) < cutoff) for a standard normal z.
    """
    confidence_1d = 1.0 - 2.0 * scipy.stats.norm.sf(cutoff)
    return float(scipy.stats.chi2.ppf(confidence_1d, D))


def neighborhoods(p: Problem, comps: list, cutoff: float) -> list[np.ndarray]:
    """Indices of the samples within ``cutoff`` (1D sigmas) of each component.

    Parameters
    ----------
    p : Problem (its groups of observed samples and their order)
    comps : the groups' components (:func:`.estep.group_comps`)
    cutoff : float

    Returns
    -------
    list of K int arrays, the sorted indices (rows of the data as given) of
    each neighborhood; chi2 is taken over each sample's measured values
    """
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


#: stored neighborhoods stay valid while a component's mean moves less than NB_SHIFT of its
#: (reference) sigma and its covariance grows by less than NB_SCALE in sigma; they are
#: stored with the Mahalanobis radius NB_SCALE * r_cut + NB_SHIFT, so they always hold
#: every sample within the cutoff radius r_cut of the current component
NB_SHIFT = 0.5
NB_SCALE = 1.1


def neighborhood_chi2(D: int, cutoff: float) -> float:
    """chi2 radius of the stored neighborhoods for a cutoff (1D-equivalent sigmas)."""
    return float((NB_SCALE * math.sqrt(chi2_cutoff(D, cutoff)) + NB_SHIFT) ** 2)


def stale_neighborhoods(ref: tuple | None, st: State) -> tuple[np.ndarray, tuple]:
    """Components whose stored neighborhood is stale, and the updated references."""
    K, D = st.mean.shape
    if ref is None:
        return np.ones(K, dtype=np.uint8), (st.mean.copy(), np.linalg.cholesky(st.covar))
    mean_ref, chol_ref = ref
    r = np.linalg.solve(chol_ref, (st.mean - mean_ref)[:, :, None])[:, :, 0]
    Li = np.linalg.inv(chol_ref)
    ev = np.linalg.eigvalsh(Li @ st.covar @ np.swapaxes(Li, 1, 2))
    # stale: moved, grown (the stored set may miss samples), or shrunk a lot (wasteful)
    stale = ((r**2).sum(axis=1) > NB_SHIFT**2) | (ev[:, -1] > NB_SCALE**2) | (ev[:, -1] < 0.25)
    mean_ref, chol_ref = mean_ref.copy(), chol_ref.copy()
    if stale.any():
        mean_ref[stale] = st.mean[stale]
        chol_ref[stale] = np.linalg.cholesky(st.covar[stale])
    return stale.astype(np.uint8), (mean_ref, chol_ref)
