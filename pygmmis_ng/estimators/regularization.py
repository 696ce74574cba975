"""The dispersion floor ``w`` of a class density, chosen from the class's data.

:class:`~pygmmis_ng.estimators.classifier.GenerativeClassifier` with ``w="auto"``
calls :func:`choose_w` once per class. The choice is a cross-validated
likelihood that needs no EM (the cost of a few E-steps of one Gaussian per
candidate):

* the class's distinct rows, in lexicographic order, are dealt in turn to
  ``n_folds`` folds: equal rows share a fold (an integer weight is the same
  as repeating a row) and neither the row order nor random_state matters,
  so the choice is deterministic and uses no randomness;
* on each training part, one Gaussian from available-case moments (the
  weighted mean of each feature over the rows that measured it, each
  covariance entry over the rows that measured both, minus the mean noise
  there: a moment estimate of the deconvolved covariance);
* for each candidate w, the covariance with every eigenvalue raised to at
  least w^2 (exactly what ``fit``'s ``w`` does in the M-step) scores the
  held-out part: the weighted sum of each row's log-density, marginal over
  its measured features, with its own noise added;
* the w with the highest held-out log-likelihood summed over the folds wins.

The candidates are ``w^2 = s * mu`` for ``s`` in :data:`FLOOR_GRID` (0, and
1e-4 to 1 with four steps per decade), ``mu`` the mean variance of the
class's features. Features that are exactly constant within the class are
left out of the choice: their likelihood is unbounded as their variance goes
to 0, so the held-out data cannot choose a floor for them; ``fit`` keeps
their variance at max(w^2, 1e-6 of the data's scale). Nearly constant ones
(the border pixels of digits, nonzero in a few samples) are what the floor
is for, and they drive the choice. Ties go to the smallest w, so a class
that needs no floor gets ``w = 0`` and its fit is exactly the unregularized
one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data.validation import check_noise

#: candidate floors w^2 in units of the mean feature variance of the class
FLOOR_GRID = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, 17)])
#: number of folds of the held-out likelihood
N_FOLDS = 3
#: doubles of working memory per block of rows evaluated one by one
_BLOCK_DOUBLES = 1 << 20


def choose_w(X: np.ndarray, covar: Any = None, sample_weight: Any = None,
             n_folds: int = N_FOLDS, grid: Any = None) -> float:
    """The dispersion floor ``w`` that maximizes the held-out likelihood of one Gaussian.

    Parameters
    ----------
    X : ndarray (N, D)
        The samples of one class; NaN marks a missing feature.
    covar : None, (D, D) or (N, D, D)
        Noise covariance of the samples (entries at missing values are ignored).
    sample_weight : None or (N,)
        Non-negative weights of the samples.
    n_folds : int
        Folds of the cross-validation (fewer if there are fewer samples).
    grid : None or array-like
        Candidate floors ``w^2`` in units of the mean feature variance;
        :data:`FLOOR_GRID` by default.

    Returns
    -------
    float
        ``w`` in data units; 0.0 if the class has fewer than two samples with
        positive weight or no feature that varies.
    """
    X = np.asarray(X, dtype=float)
    S = check_noise(covar, X.shape[0], X.shape[1], observed=~np.isnan(X))
    weight = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
    rows = weight > 0
    X, weight, S = X[rows], weight[rows], _rows(S, rows)
    keep = _varying_axes(X, weight)
    if not keep.any():
        return 0.0
    X = X[:, keep]
    group = _distinct_rows(X)
    n_folds = min(n_folds, int(group.max(initial=-1)) + 1)
    if n_folds < 2:                                  # a single distinct sample
        return 0.0
    if S is not None:
        S = S[..., keep, :][..., keep]
    grid = FLOOR_GRID if grid is None else np.asarray(grid, dtype=float)
    floors = grid * _mean_variance(X, weight)
    full = _moments(X, weight, S)
    fold = group % n_folds
    score = np.zeros(len(floors))
    for f in range(n_folds):
        tr, va = fold != f, fold == f
        mean, C = _moments(X[tr], weight[tr], _rows(S, tr), fallback=full)
        score += _heldout(X[va], _rows(S, va), weight[va], mean, C, floors)
    return float(np.sqrt(floors[int(np.argmax(score))]))


def _distinct_rows(X: np.ndarray) -> np.ndarray:
    """Rank (N,) of each row among the distinct rows in lexicographic order (NaN equal NaN).

    The folds deal the ranks in turn: equal rows share a fold and the row
    order does not matter, so an integer weight is the same as repeating a
    row, and no fold holds out a copy of a row another fold trains on.
    """
    nan = np.isnan(X)
    key = np.column_stack([nan, np.where(nan, 0.0, X + 0.0)])    # + 0.0: -0.0 == 0.0
    order = np.lexsort(key.T[::-1])
    new = np.ones(len(X), dtype=bool)
    new[1:] = (key[order[1:]] != key[order[:-1]]).any(axis=1)
    rank = np.empty(len(X), dtype=int)
    rank[order] = np.cumsum(new) - 1
    return rank


def _rows(S: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The noise of the selected rows (a shared or absent noise stays as it is)."""
    return S[rows] if S is not None and S.ndim == 3 else S


def _varying_axes(X: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Features (D,) whose measured values are not all equal (rounding aside)."""
    M = ~np.isnan(X)
    W = M * weight[:, None]
    wsum = W.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(M, X, 0.0).T @ weight / wsum
        var = (W * np.where(M, X - mean, 0.0) ** 2).sum(axis=0) / wsum
    return (wsum > 0) & (var > 1e-24 * np.maximum(mean**2, np.finfo(float).tiny))


def _mean_variance(X: np.ndarray, weight: np.ndarray) -> float:
    """Mean over the features of the (noisy) variance of their measured values."""
    M = ~np.isnan(X)
    W = M * weight[:, None]
    mean = (W * np.where(M, X, 0.0)).sum(axis=0) / W.sum(axis=0)
    return float(((W * np.where(M, X - mean, 0.0) ** 2).sum(axis=0) / W.sum(axis=0)).mean())


def _moments(X: np.ndarray, weight: np.ndarray, S: np.ndarray | None,
             fallback: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Available-case mean (D,) and deconvolved covariance (D, D) of weighted rows.

    Entries no row measured (a pair of features never seen together) come
    from ``fallback`` (or are 0). The covariance need not be positive
    definite; the eigenvalue floor takes care of that.
    """
    M = ~np.isnan(X)
    Mf = M.astype(float)
    W = Mf * weight[:, None]
    wsum = W.sum(axis=0)
    pair = W.T @ Mf                                   # sum of weights measuring j and k
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (W * np.where(M, X, 0.0)).sum(axis=0) / wsum
        if fallback is not None:
            mean = np.where(wsum > 0, mean, fallback[0])
        Z = np.where(M, X - mean, 0.0)
        C = (Z * weight[:, None]).T @ Z
        if S is not None and S.ndim == 2:
            C -= pair * S
        elif S is not None:
            C -= np.einsum("ij,ik,ijk->jk", W, Mf, S)
        C = C / pair
    seen = pair > 0
    C = np.where(seen, C, 0.0 if fallback is None else fallback[1])
    return np.nan_to_num(mean), 0.5 * (C + C.T)


def _heldout(X: np.ndarray, S: np.ndarray | None, weight: np.ndarray, mean: np.ndarray,
             C: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """Weighted held-out log-likelihood of the rows for each floor (G,).

    The Gaussian N(mean, C with eigenvalues >= floor) is evaluated on each
    row's measured features with its noise added; a floor whose covariance
    is not positive definite scores -inf.
    """
    val, vec = np.linalg.eigh(C)
    M = ~np.isnan(X)
    R = np.where(M, X - mean, 0.0)
    alike = M.all(axis=1) if S is None or S.ndim == 2 else np.zeros(len(X), bool)
    out = np.empty(len(floors))
    for g, floor in enumerate(floors):
        V = (vec * np.maximum(val, floor)) @ vec.T
        try:
            ll = _loglik_shared(R[alike], V if S is None else V + S) @ weight[alike]
            ll += _loglik_rows(R[~alike], M[~alike], V, _rows(S, ~alike)) @ weight[~alike]
        except np.linalg.LinAlgError:
            ll = -np.inf
        out[g] = ll
    return out


def _loglik_shared(R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log N(r | 0, T) of complete residual rows (n, d) with one covariance T."""
    if not len(R):
        return np.zeros(0)
    L = np.linalg.cholesky(T)
    z = np.linalg.solve(L, R.T)
    logdet = 2 * np.log(np.diag(L)).sum()
    return -0.5 * (R.shape[1] * np.log(2 * np.pi) + logdet + (z**2).sum(axis=0))


def _loglik_rows(R: np.ndarray, M: np.ndarray, V: np.ndarray,
                 S: np.ndarray | None) -> np.ndarray:
    """log N(r_i | 0, V + S_i) over each row's measured features (M (n, d)).

    Each row's covariance is padded with the identity on its missing
    features (whose residual is 0), which leaves the log-density of the
    measured ones unchanged and lets all rows of a block share one batched
    Cholesky factorization.
    """
    n, d = R.shape
    out = np.zeros(n)
    step = max(1, _BLOCK_DOUBLES // (d * d))
    for a in range(0, n, step):
        m = M[a:a + step]
        both = m[:, :, None] & m[:, None, :]
        T = V + (0.0 if S is None else S if S.ndim == 2 else S[a:a + step])
        T = np.where(both, np.broadcast_to(T, both.shape), 0.0)
        T[:, np.arange(d), np.arange(d)] += ~m
        L = np.linalg.cholesky(T)
        z = np.linalg.solve(L, R[a:a + step, :, None])[..., 0]
        logdet = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        out[a:a + step] = -0.5 * (m.sum(axis=1) * np.log(2 * np.pi) + logdet
                                  + (z**2).sum(axis=1))
    return out
