"""The M-step: new parameters from summed sufficient statistics, and collapse detection."""
from __future__ import annotations

import numpy as np

from ...kernels.stats import SufficientStats
from ..problem.option_entries import TABLE
from ..problem.option_table import check_option

#: a component whose summed responsibility falls below this fraction of the
#: samples, or whose covariance has an eigenvalue below this fraction of the
#: data variance, has collapsed and is re-seeded
COLLAPSE_EPS = 1e-12
#: the covariance families of scikit-learn's GaussianMixture, all fitted by exact M-steps


def check_covariance_type(covariance_type: object) -> str:
    """One of the covariance families, by the option table's rule (a ValueError naming them)."""
    return check_option(TABLE, "covariance_type", covariance_type)


def m_step(stats: SufficientStats, amp: np.ndarray, mean: np.ndarray,
           covar: np.ndarray, w: float, frozen: dict[str, np.ndarray],
           covariance_type: str = "full", reg_covar: float = 0.0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New GMM parameters from the sufficient statistics.

    Means: m_k + Mc_k / A_k. Covariances V_k = C_k / A_k are centred on the
    new mean (on the frozen one if the mean is frozen). With ``w > 0`` every
    eigenvalue of V_k is raised to at least w^2: the exact M-step of the
    likelihood constrained to component dispersions >= w (Ingrassia 2004),
    so EM stays monotone and components wider than w are not biased.
    (pyGMMis instead adds a prior, V_k = (C_k + w^2 (N/K + 1) I) / (A_k + 1),
    which shifts every component and, along directions a selection leaves
    poorly constrained, drags components far from the likelihood maximum.)
    ``covariance_type`` restricts the covariances as in scikit-learn (see
    :func:`constrain`): the expected complete-data log-likelihood of each
    component is that of a Gaussian with scatter C_k / A_k, also when the
    samples are noisy, projected, missing or imputed, so its maximum over
    diagonal, isotropic or shared covariances is the projection of the
    scatter onto the family: the constrained M-steps are exact and EM stays
    monotone. ``reg_covar`` is then added to every variance (scikit-learn's
    regularization), before the floor ``w``.
    Amplitudes are A_k / sum A (the GMM is the signal density; a background
    fraction is updated separately by :func:`background_amp`); with frozen
    amplitudes the free ones share what the frozen ones leave.
    """
    A = stats.A
    A_safe = np.where(A > 0, A, 1.0)
    delta = stats.Mc / A_safe[:, None]
    free_m = ~frozen["mean"]
    free_c = ~frozen["covar"]
    free_a = ~frozen["amp"]
    new_mean = mean.copy()
    new_mean[free_m] += delta[free_m]
    C = stats.Cc.copy()
    C[free_m] -= A[free_m, None, None] * delta[free_m, :, None] * delta[free_m, None, :]
    if covariance_type == "tied":
        V = np.broadcast_to(C.sum(axis=0) / max(A.sum(), np.finfo(float).tiny), C.shape).copy()
    else:
        V = constrain(C / A_safe[:, None, None], A, covariance_type)
    if reg_covar > 0:
        V = V + reg_covar * np.eye(V.shape[1])
    if w > 0:
        V = eigenvalue_floor(V, w**2)
    new_covar = covar.copy()
    new_covar[free_c] = 0.5 * (V[free_c] + np.swapaxes(V[free_c], 1, 2))
    new_amp = amp.copy()
    if free_a.all():
        new_amp = A / A.sum()
    else:
        new_amp[free_a] = A[free_a] / A[free_a].sum() * (1 - amp[~free_a].sum())
    return new_amp, new_mean, new_covar


def constrain(V: np.ndarray, weight: np.ndarray, covariance_type: str) -> np.ndarray:
    """Covariances (K, D, D) projected onto a scikit-learn family, as full matrices.

    'full': unchanged; 'diag': the diagonal of each; 'spherical': the mean
    variance of each times I; 'tied': the ``weight``-weighted mean of all
    (weights (K,), e.g. the amplitudes), one matrix shared by every component.
    Each is the maximum-likelihood member of its family for a component whose
    scatter is V_k (weighted by ``weight_k`` for 'tied').
    """
    if covariance_type == "full":
        return V
    K, D = V.shape[:2]
    if covariance_type == "tied":
        wt = np.asarray(weight, dtype=float)
        shared = np.tensordot(wt / wt.sum(), V, axes=1) if wt.sum() > 0 else V.mean(axis=0)
        return np.broadcast_to(0.5 * (shared + shared.T), V.shape).copy()
    var = np.diagonal(V, axis1=1, axis2=2)
    if covariance_type == "spherical":
        var = np.repeat(var.mean(axis=1, keepdims=True), D, axis=1)
    out = np.zeros_like(V)
    out[:, np.arange(D), np.arange(D)] = var
    return out


def eigenvalue_floor(V: np.ndarray, floor: float) -> np.ndarray:
    """Symmetric matrices (K, D, D) with every eigenvalue raised to at least ``floor``."""
    V = 0.5 * (V + np.swapaxes(V, 1, 2))
    val, vec = np.linalg.eigh(V)
    low = (val < floor).any(axis=1)
    if low.any():
        val = np.maximum(val[low], floor)
        V = V.copy()
        V[low] = (vec[low] * val[:, None, :]) @ np.swapaxes(vec[low], 1, 2)
    return V


def background_amp(stats: SufficientStats, amp_min: float, amp_max: float) -> float:
    """New background fraction B / (sum A + B), clipped to [amp_min, amp_max] (and below 1)."""
    total = stats.A.sum() + stats.B
    alpha = stats.B / total if total > 0 else 0.0
    return float(np.clip(alpha, amp_min, min(amp_max, 1 - 1e-9)))


def renormalize_free(amp: np.ndarray, frozen_amp: np.ndarray) -> None:
    """Scale the free amplitudes in place so that all sum to 1 around the frozen ones."""
    free = ~frozen_amp
    if free.any():
        amp[free] *= (1 - amp[frozen_amp].sum()) / amp[free].sum()


def collapsed(A: np.ndarray, covar: np.ndarray, total: float, scale2: np.ndarray) -> np.ndarray:
    """Components with (almost) no samples or a (numerically) singular covariance.

    Singular relative to the data: the smallest eigenvalue of V_k with each
    axis in units of its data sigma (``scale2`` (D,), the data variances).
    """
    return (A <= COLLAPSE_EPS * total) | (scaled_eig_min(covar, scale2) <= COLLAPSE_EPS)


def scaled_eig_min(covar: np.ndarray, scale2: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of each covariance with the axes in units of the data sigma."""
    s = np.sqrt(np.asarray(scale2, dtype=float))
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(covar).all(axis=(1, 2))
        eig_min = np.full(len(covar), -np.inf)
        if finite.any():
            eig_min[finite] = np.linalg.eigvalsh(covar[finite] / np.outer(s, s))[:, 0]
    return eig_min


def pin_constant_axes(covar: np.ndarray, const: np.ndarray, floor: np.ndarray,
                      free: np.ndarray) -> None:
    """Along axes where the data are constant: no covariance with the others and the
    variance ``floor[a]``, in place for the ``free`` components (the likelihood is
    unbounded there; this is scikit-learn's ``reg_covar`` on those axes only)."""
    idx = np.flatnonzero(const)
    for k in np.flatnonzero(free):
        covar[k, idx, :] = 0.0
        covar[k, :, idx] = 0.0
        covar[k, idx, idx] = floor[idx]
