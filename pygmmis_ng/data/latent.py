"""Latent D-dimensional points standing for projected or incomplete samples.

The initializations (and the re-seeding of collapsed components) work on
points in the D-dimensional space of the mixture. For samples with missing
values or projections those are estimates: the posterior means of a single
Gaussian N(mu, Sigma) fitted to all samples by extreme deconvolution,

    z_i = mu + Sigma R_i^T (R_i Sigma R_i^T + S_i)^-1 (y_i - R_i mu),

the regression (conditional-mean) imputation of missing values, shrunk
along noisy or unobserved directions. (The pseudo-inverse R_i^+ y_i would
blow up the noise where R_i is nearly singular and leave k-means chasing
outliers.) mu and Sigma come from at most :data:`FIT_ITERATIONS` EM iterations on
at most :data:`FIT_ROWS` evenly spaced samples, started from the
least-squares mean; the same data always give the same points.
"""
from __future__ import annotations

import numpy as np

#: EM iterations of the one-Gaussian fit (an initialization needs no more)
FIT_ITERATIONS = 30
#: ... or until mu and Sigma change by less than this (relative to Sigma's scale)
FIT_TOL = 1e-4
#: at most this many samples (evenly spaced) are used to fit mu and Sigma
FIT_ROWS = 5_000
#: doubles per (n, D, D) working array when computing the points: bounds the memory
BLOCK_DOUBLES = 1 << 22


def fill_latent(X: np.ndarray, R: np.ndarray | None, S: np.ndarray | None,
                weight: np.ndarray | None, D: int) -> np.ndarray:
    """Latent points (N, D) for data X (N, dy) with NaN, projections R and noise S.

    Parameters
    ----------
    X : (N, dy), NaN where not measured
    R : None (identity), (dy, D) or (N, dy, D)
    S : None, (dy, dy) or (N, dy, dy) noise (entries at missing values ignored)
    weight : None or (N,)

    Raises
    ------
    ValueError
        If some direction of the D-dimensional space is observed by no
        sample (sum_i w_i R_i^T R_i singular): the model is not identified.
    """
    X = np.asarray(X, dtype=np.float64)         # float32 storage (fit's dtype=): float64 here
    N = X.shape[0]
    w = np.ones(N) if weight is None else weight
    if R is None:
        return _fill_missing(X, w)
    F = np.zeros((D, D))
    b = np.zeros(D)
    for sl in _blocks(N, D):
        Rz, yz, _ = _zeroed(X[sl], R, None, sl, D)
        F += np.einsum("n,nad,nae->de", w[sl], Rz, Rz)
        b += np.einsum("n,nad,na->d", w[sl], Rz, yz)
    # rank of F after Jacobi scaling: independent of the units of the latent axes
    d = np.sqrt(np.diag(F))
    ev = np.linalg.eigvalsh(F / np.outer(d, d)) if (d > 0).all() else np.zeros(1)
    if not ev[0] > 1e-10 * max(ev[-1], np.finfo(float).tiny):
        raise ValueError("the projections R (with the missing values) leave some direction of "
                         f"the D={D}-dimensional space unobserved by every sample (sum of "
                         "R_i^T R_i is singular): the model is not identified there; use a "
                         "smaller D or add samples that observe those directions")
    mu = np.linalg.solve(F, b)
    # one Gaussian by extreme deconvolution on evenly spaced rows
    rows = np.unique(np.linspace(0, N - 1, min(N, FIT_ROWS)).astype(int))
    Rz, yz, Sz = _zeroed(X[rows], R, S, rows, D)
    wr = w[rows] if w[rows].sum() > 0 else np.ones(rows.size)
    wr = wr / wr.sum()
    Sigma = _start_covariance(R, yz, Rz, mu, wr)
    for _ in range(FIT_ITERATIONS):
        zb, B = _posterior(yz, Rz, Sz, mu, Sigma, wr)
        mu_new = wr @ zb
        d = zb - mu_new
        new = (d * wr[:, None]).T @ d + B
        new = 0.5 * (new + new.T) + 1e-12 * np.trace(new) * np.eye(D)
        scale = np.trace(new) / D
        change = max(np.abs(new - Sigma).max(), np.abs(mu_new - mu).max() ** 2) / scale
        mu, Sigma = mu_new, new
        if change < FIT_TOL:
            break
    Z = np.empty((N, D))
    for sl in _blocks(N, D):
        Rz, yz, Sz = _zeroed(X[sl], R, S, sl, D)
        Z[sl] = _posterior(yz, Rz, Sz, mu, Sigma)[0]
    return Z


def _fill_missing(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Missing values (no R): conditional means under the available-case mean and covariance.

    The weighted mean of each feature over the samples that measure it and the
    covariance of each pair over the samples that measure both (made positive
    definite) estimate mu and Sigma without an iteration (consistent for
    values missing at random); each sample keeps its measured values and gets
    mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o) for the others. Noise is ignored
    here, as it is for complete data (their latent points are the data).
    """
    N, D = X.shape
    obs = ~np.isnan(X)
    counts = w @ obs
    empty = np.flatnonzero(counts <= 0)
    if empty.size:
        raise ValueError(f"data: feature(s) {empty.tolist()} are missing (NaN) in every sample "
                         "(with non-zero weight): their distribution cannot be fitted; "
                         "drop those columns")
    mu = (w @ np.where(obs, X, 0.0)) / counts
    d = np.where(obs, X - mu, 0.0) * np.sqrt(w)[:, None]
    pair = (obs * w[:, None]).T @ obs
    C = (d.T @ d) / np.where(pair > 0, pair, 1.0)
    val, vec = np.linalg.eigh(0.5 * (C + C.T))
    Sigma = (vec * np.maximum(val, 1e-6 * max(val[-1], 1e-300))) @ vec.T
    # a feature constant where measured is filled with that constant: the eigenvalue
    # floor must not couple it to the others (it would add spurious spread)
    const = np.diag(C) <= 0
    Sigma[const] = Sigma[:, const] = 0.0
    Sigma[const, const] = 1.0
    Z = np.where(obs, X, mu)
    incomplete = np.flatnonzero(~obs.all(axis=1))
    for start in range(0, incomplete.size, _block_rows(D)):
        rows = incomplete[start:start + _block_rows(D)]
        o = obs[rows]
        # T = Sigma on the measured block, identity on the missing one (decoupled)
        both = o[:, :, None] & o[:, None, :]
        T = np.where(both, Sigma, 0.0) + np.einsum("na,ab->nab", (~o).astype(float), np.eye(D))
        r = np.where(o, X[rows] - mu, 0.0)
        u = np.linalg.solve(T, r[:, :, None])[:, :, 0]
        fill = mu + np.where(o, 0.0, (Sigma @ np.where(o, u, 0.0).T).T)
        Z[rows] = np.where(o, X[rows], fill)
    return Z


def _start_covariance(R, yz, Rz, mu, wr) -> np.ndarray:
    """Start of the one-Gaussian fit with projections: isotropic at the residual scale."""
    D = mu.size
    resid = yz - Rz @ mu
    return np.eye(D) * max(float(wr @ (resid**2).sum(axis=1)) / max(Rz.shape[1], 1), 1e-12)


def _block_rows(D: int) -> int:
    return int(np.clip(BLOCK_DOUBLES // (D * D), 64, 1 << 14))


def _blocks(N: int, D: int) -> list[slice]:
    n = _block_rows(D)
    return [slice(i, min(i + n, N)) for i in range(0, N, n)]


def _zeroed(y: np.ndarray, R: np.ndarray | None, S: np.ndarray | None, rows, D: int):
    """Projections (n, dy, D), values (n, dy) and noise (n, dy, dy) with missing rows zeroed."""
    n, dy = y.shape
    obs = ~np.isnan(y)
    if R is None:
        Rn = np.broadcast_to(np.eye(D), (n, D, D))
    else:
        Rn = np.broadcast_to(R, (n, dy, D)) if R.ndim == 2 else R[rows]
    Rz = np.where(obs[:, :, None], Rn, 0.0).astype(np.float64, copy=False)
    Sz = None
    if S is not None:
        Sn = np.broadcast_to(S, (n, dy, dy)) if S.ndim == 2 else S[rows]
        Sz = np.where(obs[:, :, None] & obs[:, None, :], Sn, 0.0).astype(np.float64, copy=False)
    return Rz, np.where(obs, y, 0.0), Sz


def _posterior(yz, Rz, Sz, mu, Sigma, wr=None):
    """Posterior means (n, D) of x_i under N(mu, Sigma), and sum_i wr_i B_i (D, D) if ``wr``.

    Rows of missing values (zero in Rz, yz, Sz) get a unit diagonal in T, so
    they decouple and contribute nothing.
    """
    n, dy = yz.shape
    RS = Rz @ Sigma                                            # (n, dy, D)
    T = RS @ np.swapaxes(Rz, 1, 2)
    if Sz is not None:
        T = T + Sz
    scale = np.trace(T, axis1=1, axis2=2) / dy
    missing = ~(np.abs(Rz).sum(axis=2) > 0)
    T = T + np.einsum("na,ab->nab", missing.astype(float), np.eye(dy))
    T = T + 1e-12 * (scale[:, None, None] + 1.0) * np.eye(dy)      # rank-deficient R_i, no noise
    resid = (yz - Rz @ mu)[:, :, None]
    RSt = np.swapaxes(RS, 1, 2)
    if wr is None:
        return mu + (RSt @ np.linalg.solve(T, resid))[:, :, 0], None
    sol = np.linalg.solve(T, np.concatenate([resid, RS], axis=2))
    z = mu + (RSt @ sol[:, :, :1])[:, :, 0]
    B = Sigma * wr.sum() - np.tensordot(wr, RSt @ sol[:, :, 1:], axes=1)
    return z, B
