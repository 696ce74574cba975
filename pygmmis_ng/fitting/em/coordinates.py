"""The fit's free parameters as one vector, and the log-likelihood's gradient and Hessian in it.

Coordinates (:class:`Coordinates`), in this order:

* ``u``: the mixture weights, unconstrained: eta_k = log(a_k / a_ref) for the
  free amplitudes but the last free one (the reference), and beta =
  logit(alpha) for a fitted background fraction alpha. The weights of the
  K + 1 members (components, then the background) are pi_k = (1 - alpha) a_k
  and pi_K = alpha; frozen amplitudes keep their value and the free ones
  share the rest (as in the M-step);
* per component, its mean (unless frozen) and its covariance in its family
  (unless frozen): 'full' the D (D + 1) / 2 unique entries, 'diag' the D
  variances, 'spherical' one variance; 'tied' one shared matrix (its unique
  entries) for all components.

Means are measured in units of the data's mean sigma and covariances in its
square (``Coordinates.sigma``), so that the curvatures stay finite for data of
any scale (at 1e-90 a covariance's is 1e360 in the data's units).

The kernel (:mod:`pygmmis_ng.kernels.hessian`) works in the full coordinates
(u, then each component's mean and unique covariance entries);
:func:`assemble` turns its sums into the Hessian there and :class:`Coordinates`
maps it to the fit's. The gradient comes from the E-step's sufficient
statistics (Fisher's identity): d/dm_k = V_k^-1 Mc_k, d/dV_k = V_k^-1 (Cc_k -
A_k V_k) V_k^-1 / 2, d/dlog pi_j = A_j (the background's B).
"""
from __future__ import annotations

import numpy as np

from ...kernels.hessian import unique_entries
from ...kernels.stats import SufficientStats
from ..problem.problem import Problem, State


def _family_map(D: int, covariance_type: str) -> np.ndarray:
    """(nv_full, n_family): the unique covariance entries as a linear function of the family's
    own coordinates (identity for 'full')."""
    a, b = unique_entries(D)
    if covariance_type in ("full", "tied"):
        return np.eye(len(a))
    diag = np.flatnonzero(a == b)
    if covariance_type == "diag":
        M = np.zeros((len(a), D))
        M[diag, np.arange(D)] = 1.0
        return M
    M = np.zeros((len(a), 1))                        # spherical: sigma^2 on the diagonal
    M[diag, 0] = 1.0
    return M


class Coordinates:
    """The free parameters of a run as a vector (see the module docstring).

    Parameters
    ----------
    p : Problem
    fit_bg_amp : bool
        Whether the background fraction is a coordinate (fitted and not at a bound).
    """

    def __init__(self, p: Problem, K: int, D: int, fit_bg_amp: bool) -> None:
        self.K, self.D = K, D
        self.sigma = float(np.sqrt(np.mean(p.scale2)))
        self.masks = p.em.masks
        self.covariance_type = p.em.covariance_type
        ea, _ = unique_entries(D)
        self.nv = len(ea)
        self.nb = D + self.nv
        free_amp = np.flatnonzero(~p.em.masks["amp"])
        self.eta_idx = free_amp[:-1]                 # the last free amplitude is the reference
        self.free_amp = free_amp
        self.fit_bg_amp = fit_bg_amp
        self.n_u = len(self.eta_idx) + int(fit_bg_amp)
        # the linear map from the component coordinates to the full ones (K nb)
        fam = _family_map(D, p.em.covariance_type)
        blocks, col = [], 0
        cols = []
        for k in range(K):
            if not p.em.masks["mean"][k]:
                cols.append(("mean", k))
        if p.em.covariance_type == "tied":
            if not p.em.masks["covar"].all():
                cols.append(("tied", -1))
        else:
            cols += [("covar", k) for k in range(K) if not p.em.masks["covar"][k]]
        widths = {"mean": D, "covar": fam.shape[1], "tied": fam.shape[1]}
        n_theta = sum(widths[kind] for kind, _ in cols)
        Tm = np.zeros((K * self.nb, n_theta))
        for kind, k in cols:
            w = widths[kind]
            if kind == "mean":
                Tm[k * self.nb:k * self.nb + D, col:col + w] = np.eye(D)
            elif kind == "covar":
                Tm[k * self.nb + D:(k + 1) * self.nb, col:col + w] = fam
            else:
                for j in range(K):
                    Tm[j * self.nb + D:(j + 1) * self.nb, col:col + w] = fam
            blocks.append((kind, k, col, w))
            col += w
        self.blocks = blocks
        self.T = Tm
        self.size = self.n_u + n_theta

    # -- weights ------------------------------------------------------------------------
    def log_pi(self, st: State) -> np.ndarray:
        """log of the K + 1 member weights (the background's last; -inf without one)."""
        with np.errstate(divide="ignore"):
            return np.log(np.append((1 - st.bg_amp) * st.amp, st.bg_amp))

    def weight_jacobians(self, st: State) -> tuple[np.ndarray, np.ndarray]:
        """Lambda (K + 1, n_u) = d log pi_j / du, and the Hessians (K + 1, n_u, n_u) of log pi_j."""
        K, n_eta = self.K, len(self.eta_idx)
        Lam = np.zeros((K + 1, self.n_u))
        Hess = np.zeros((K + 1, self.n_u, self.n_u))
        if len(self.free_amp):
            s = st.amp[self.free_amp] / st.amp[self.free_amp].sum()
            se = s[:-1]                              # softmax weights of the eta coordinates
            for j, k in enumerate(self.free_amp):
                d = -se.copy()
                if j < n_eta:
                    d[j] += 1.0
                Lam[k, :n_eta] = d
                Hess[k, :n_eta, :n_eta] = -(np.diag(se) - np.outer(se, se))
        if self.fit_bg_amp:
            alpha = st.bg_amp
            Lam[:K, -1] = -alpha
            Lam[K, -1] = 1.0 - alpha
            Hess[:, -1, -1] = -alpha * (1.0 - alpha)
        return Lam, Hess

    # -- the vector and back ---------------------------------------------------------------
    def reduce(self, g_full: np.ndarray, H_full: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """Gradient (and Hessian) from the full coordinates (u, K nb) to the fit's."""
        n_u = self.n_u
        g = np.concatenate([g_full[:n_u], self.T.T @ g_full[n_u:]])
        if H_full is None:
            return g, None
        H = np.empty((self.size, self.size))
        H[:n_u, :n_u] = H_full[:n_u, :n_u]
        H[:n_u, n_u:] = H_full[:n_u, n_u:] @ self.T
        H[n_u:, :n_u] = H[:n_u, n_u:].T
        H[n_u:, n_u:] = self.T.T @ H_full[n_u:, n_u:] @ self.T
        return g, H

    def sizes(self, st: State) -> np.ndarray:
        """Each coordinate's natural size at st: 1 for the weights' log-ratios, a component's
        sigma along the axis for its mean, sqrt(V_aa V_bb) for a covariance entry (all in
        units of Coordinates.sigma). A step of this size changes a parameter by as much as
        it is; a covariance may then stop being positive definite."""
        out = np.ones(self.size)
        D = self.D
        ea, eb = unique_entries(D)
        fam = _family_map(D, self.covariance_type)
        for kind, k, col, w in self.blocks:
            V = st.covar[max(k, 0)] / self.sigma**2
            d = np.sqrt(np.diag(V))
            o = self.n_u + col
            if kind == "mean":
                out[o:o + w] = d
            else:
                entry = d[ea] * d[eb]
                out[o:o + w] = [entry[fam[:, j] != 0].max() for j in range(w)]
        return out

    def step(self, st: State, s: np.ndarray) -> State:
        """The state moved by ``s`` (covariances may come out indefinite: the caller checks)."""
        K, D = self.K, self.D
        amp, mean, covar = st.amp.copy(), st.mean.copy(), st.covar.copy()
        bg_amp = st.bg_amp
        n_eta = len(self.eta_idx)
        if n_eta:
            ref = self.free_amp[-1]
            log_ratio = np.log(amp[self.eta_idx]) - np.log(amp[ref]) + s[:n_eta]
            z = np.append(log_ratio, 0.0)
            w = np.exp(z - z.max())
            amp[self.free_amp] = w / w.sum() * amp[self.free_amp].sum()
        if self.fit_bg_amp:
            beta = np.log(bg_amp) - np.log1p(-bg_amp) + s[self.n_u - 1]
            bg_amp = float(1.0 / (1.0 + np.exp(-beta)))
        ea, eb = unique_entries(D)
        fam = _family_map(D, self.covariance_type)
        for kind, k, col, w in self.blocks:
            d = s[self.n_u + col:self.n_u + col + w]
            if kind == "mean":
                mean[k] += self.sigma * d
                continue
            dv = self.sigma**2 * (fam @ d)
            dV = np.zeros((D, D))
            dV[ea, eb] = dv
            dV[eb, ea] = dv
            for j in (range(K) if kind == "tied" else (k,)):
                covar[j] = covar[j] + dV
        return State(amp, mean, covar, bg_amp, st.N0)


def full_gradient(co: Coordinates, st: State, stats: SufficientStats) -> np.ndarray:
    """The gradient of the summed log-likelihood in the full coordinates, from the E-step's
    sums at ``st`` (centred on its means)."""
    K, D, nb = co.K, co.D, co.nb
    ea, eb = unique_entries(D)
    Lam, _ = co.weight_jacobians(st)
    A = np.append(stats.A, stats.B)
    g = np.empty(co.n_u + K * nb)
    g[:co.n_u] = Lam.T @ A
    s = co.sigma                                   # in units of sigma (see Coordinates)
    V = st.covar / s**2
    Vinv = np.linalg.inv(V)
    for k in range(K):
        o = co.n_u + k * nb
        g[o:o + D] = Vinv[k] @ (stats.Mc[k] / s)
        G = 0.5 * Vinv[k] @ (stats.Cc[k] / s**2 - stats.A[k] * V[k]) @ Vinv[k]
        g[o + D:o + nb] = np.where(ea == eb, 1.0, 2.0) * G[ea, eb]
    return g


def assemble(co: Coordinates, st: State, sums: dict) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of the summed log-likelihood in the full coordinates, from the
    kernel's sums (see :mod:`pygmmis_ng.kernels.hessian`)."""
    K, nb, n_u = co.K, co.nb, co.n_u
    Lam, Hlog = co.weight_jacobians(st)
    A, Q2, G = sums["A"], sums["Q2"], sums["G"]
    P = n_u + K * nb
    g = np.empty(P)
    H = np.zeros((P, P))
    g[:n_u] = Lam.T @ A
    H[:n_u, :n_u] = np.tensordot(A, Hlog, axes=1) + Lam.T @ (np.diag(A) - Q2) @ Lam
    for k in range(K):
        o = slice(n_u + k * nb, n_u + (k + 1) * nb)
        g[o] = G[k]
        H[o, o] += sums["OWN"][k]
        cross_u = np.outer(Lam[k], G[k]) - Lam.T @ sums["QE"][k]
        H[:n_u, o] += cross_u
        H[o, :n_u] += cross_u.T
        for j in range(k, K):
            oj = slice(n_u + j * nb, n_u + (j + 1) * nb)
            C = sums["CROSS"][k, j]
            H[o, oj] -= C
            if j != k:
                H[oj, o] -= C.T
    return g, H
