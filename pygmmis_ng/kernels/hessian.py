"""The observed-data log-likelihood's second derivatives on one chunk (numba; Python without it).

Sample i observes y_i = R_i x_i + noise (R_i: a projection, the rows of the
identity a missingness pattern keeps, or the identity); component k gives it
the density phi_ik = N(y_i | R_i m_k, T_ik), T_ik = R_i V_k R_i^T + S_i. With
P = T_ik^-1, the D-space quantities

    B_ik = R_i^T P R_i,     c_ik = R_i^T P (y_i - R_i m_k)

carry every derivative of log phi_ik with respect to the component's mean and
the unique entries v of its covariance (dV_j = E_ab + E_ba, or E_aa):

    d/dm   = c,                       d/dv_j = tr(G dV_j),  G = (c c^T - B) / 2
    d2/dm2 = -B,   d2/dm dv_j = -B u_j,   d2/dv_i dv_j = tr(B dV_i B dV_j) / 2 - u_i^T B u_j

with u_j = dV_j c. For the log-likelihood l_i = log sum_j pi_j phi_ij (the
last member j = K the background, of fixed density) and e_ik the gradient of
log phi_ik in component k's coordinates (mean, then v), the Hessian is

    sum_i w_i [ sum_j q_ij (d2 z_ij + dz_ij dz_ij^T) - s_i s_i^T ],  s_i = sum_j q_ij dz_ij,

z_ij = log pi_j + log phi_ij. :func:`hessian_sums` accumulates what that needs
from one chunk; :mod:`pygmmis_ng.fitting.em.newton` assembles it in the fit's
coordinates (amplitudes, background fraction, covariance family, frozen
parameters).

Sums (all weighted by w_i, over the samples of the chunk, in order):

* ``A`` (K+1,): q_ij;  ``Q2`` (K+1, K+1): q_ij q_il;
* ``G`` (K, nb): q_ik e_ik;  ``OWN`` (K, nb, nb): q_ik (H_ik + e_ik e_ik^T);
* ``QE`` (K, K+1, nb): q_ik q_ij e_ik;
* ``CROSS`` (K, K, nb, nb): q_ik q_il e_ik e_il^T for k <= l (upper blocks);
* ``logL``: l_i.

Pairs with a responsibility below :data:`Q_NEGLIGIBLE` add nothing (as in the
E-step kernels).
"""
from __future__ import annotations

import numpy as np

from .compiled_transforms import Q_NEGLIGIBLE, compile_kernel, inverse_gram, lower_inverse
from .patterns import factor


def unique_entries(D: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (a <= b) of the D (D + 1) / 2 unique entries of a symmetric matrix, in
    the order of the covariance coordinates."""
    a, b = np.triu_indices(D)
    return a.astype(np.int64), b.astype(np.int64)


def _pair_py(x_i, R_i, T, mean_k, D, dy, L, Li, P, r, a, c, B, PR, identity):
    """Factor T (dy x dy) into its Cholesky L and form c, B of one pair (R_i the identity
    if ``identity``); returns log phi (or nan if T is not positive definite)."""
    logdet = factor(T, dy, L)
    if logdet == -np.inf:
        return np.nan
    lower_inverse(L, dy, Li)
    inverse_gram(Li, dy, P)                               # P = Li^T Li = T^-1
    for p in range(dy):
        for q in range(p):
            P[p, q] = P[q, p]
    chi2 = 0.0
    for p in range(dy):
        s = x_i[p]
        if identity:
            s -= mean_k[p]
        else:
            for t in range(D):
                s -= R_i[p, t] * mean_k[t]
        r[p] = s
    for p in range(dy):
        s = 0.0
        for q in range(dy):
            s += P[p, q] * r[q]
        a[p] = s
        chi2 += r[p] * s
    if identity:                                          # c = a, B = P
        for t in range(D):
            c[t] = a[t]
            for u in range(D):
                B[t, u] = P[t, u]
    else:
        for t in range(D):
            s = 0.0
            for p in range(dy):
                s += R_i[p, t] * a[p]
            c[t] = s
        for p in range(dy):                               # PR = P R, then B = R^T (P R)
            for u in range(D):
                s = 0.0
                for q in range(dy):
                    s += P[p, q] * R_i[q, u]
                PR[p, u] = s
        for t in range(D):
            for u in range(t, D):
                s = 0.0
                for p in range(dy):
                    s += R_i[p, t] * PR[p, u]
                B[t, u] = s
                B[u, t] = s
    return -0.5 * (dy * np.log(2.0 * np.pi) + 2.0 * logdet + chi2)


_pair = compile_kernel(_pair_py, inline=True)


def _local_py(c, B, D, ea, eb, nv, e, U, BU, H):
    """Gradient e (nb,) and Hessian H (nb, nb) of log phi in (mean, v) coordinates."""
    for t in range(D):
        e[t] = c[t]
    for j in range(nv):
        p, q = ea[j], eb[j]
        if p == q:
            e[D + j] = 0.5 * (c[p] * c[p] - B[p, p])
        else:
            e[D + j] = c[p] * c[q] - B[p, q]
        for t in range(D):                                # u_j = dV_j c
            U[j, t] = 0.0
        if p == q:
            U[j, p] = c[p]
        else:
            U[j, p] = c[q]
            U[j, q] = c[p]
        for t in range(D):                                # B u_j
            s = 0.0
            for u in range(D):
                s += B[t, u] * U[j, u]
            BU[j, t] = s
    for t in range(D):
        for u in range(D):
            H[t, u] = -B[t, u]
        for j in range(nv):
            H[t, D + j] = -BU[j, t]
            H[D + j, t] = -BU[j, t]
    for i in range(nv):
        p, q = ea[i], eb[i]
        for j in range(i, nv):
            r, s_ = ea[j], eb[j]
            # tr(B dV_i B dV_j) = sum over (p', q') in S_i, (r', s') in S_j of B[s', p'] B[q', r']
            tr = B[s_, p] * B[q, r]
            if r != s_:
                tr += B[r, p] * B[q, s_]
            if p != q:
                tr += B[s_, q] * B[p, r]
                if r != s_:
                    tr += B[r, q] * B[p, s_]
            uBu = 0.0
            for t in range(D):
                uBu += U[i, t] * BU[j, t]
            v = 0.5 * tr - uBu
            H[D + i, D + j] = v
            H[D + j, D + i] = v


_local = compile_kernel(_local_py, inline=True)


def _hessian_sums_py(x, R, S, weight, log_bg, log_pi, mean, covar, ea, eb, identity,
                     A, Q2, G, OWN, QE, CROSS):
    """Add one chunk's sums (see the module docstring), sample by sample in a fixed order
    (no BLAS: its sums depend on the memory alignment of the rows, and a fit must not depend
    on the executor); returns sum_i w_i l_i.

    x (n, dy); R (n, dy, D) (unused if ``identity``); S (n, dy, dy); weight (n,); log_bg (n,)
    log background density (read if log_pi[K] > -inf); log_pi (K+1,); mean (K, D); covar
    (K, D, D). Returns nan if some T_ik is not positive definite.
    """
    n, dy = x.shape
    K, D = mean.shape
    nv = ea.shape[0]
    nb = D + nv
    T = np.empty((dy, dy))
    L = np.empty((dy, dy))
    Li = np.empty((dy, dy))
    P = np.empty((dy, dy))
    r = np.empty(dy)
    a = np.empty(dy)
    cs = np.empty((K, D))
    Bs = np.empty((K, D, D))
    z = np.empty(K + 1)
    q = np.empty(K + 1)
    e = np.empty((K, nb))
    U = np.empty((nv, D))
    BU = np.empty((nv, D))
    H = np.empty((nb, nb))
    RV = np.empty((dy, D))
    PR = np.empty((dy, D))
    active = np.empty(K, dtype=np.int64)
    logL = 0.0
    has_bg = log_pi[K] > -np.inf
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        mx = -np.inf
        for k in range(K):
            if identity:                                  # T = V + S
                for p in range(dy):
                    for s_ in range(p + 1):
                        T[p, s_] = covar[k, p, s_] + S[i, p, s_]
            else:                                         # T = (R V) R^T + S
                for p in range(dy):
                    for u in range(D):
                        v = 0.0
                        for t in range(D):
                            v += R[i, p, t] * covar[k, t, u]
                        RV[p, u] = v
                for p in range(dy):
                    for s_ in range(p + 1):
                        v = S[i, p, s_]
                        for u in range(D):
                            v += RV[p, u] * R[i, s_, u]
                        T[p, s_] = v
            lphi = _pair(x[i], R[0] if identity else R[i], T, mean[k], D, dy, L, Li, P, r,
                         a, cs[k], Bs[k], PR, identity)
            if np.isnan(lphi):
                return np.nan
            z[k] = log_pi[k] + lphi
            if z[k] > mx:
                mx = z[k]
        z[K] = log_pi[K] + log_bg[i] if has_bg else -np.inf
        if z[K] > mx:
            mx = z[K]
        tot = 0.0
        for j in range(K + 1):
            q[j] = np.exp(z[j] - mx)
            tot += q[j]
        logL += wi * (mx + np.log(tot))
        n_act = 0
        for j in range(K + 1):
            q[j] /= tot
            if q[j] < Q_NEGLIGIBLE:
                q[j] = 0.0
            elif j < K:
                active[n_act] = j
                n_act += 1
        for j in range(K + 1):
            if q[j] == 0.0:
                continue
            A[j] += wi * q[j]
            for j2 in range(K + 1):
                Q2[j, j2] += wi * q[j] * q[j2]
        for m in range(n_act):
            k = active[m]
            _local(cs[k], Bs[k], D, ea, eb, nv, e[k], U, BU, H)
            wq = wi * q[k]
            for t in range(nb):
                G[k, t] += wq * e[k, t]
                for u in range(t, nb):
                    OWN[k, t, u] += wq * (H[t, u] + e[k, t] * e[k, u])
                for j in range(K + 1):
                    QE[k, j, t] += wq * q[j] * e[k, t]
        for m in range(n_act):                            # pairs of members: k <= k2
            k = active[m]
            for m2 in range(m, n_act):
                k2 = active[m2]
                wqq = wi * q[k] * q[k2]
                for t in range(nb):
                    for u in range(nb):
                        CROSS[k, k2, t, u] += wqq * e[k, t] * e[k2, u]
    return logL


_hessian_sums_jit = compile_kernel(_hessian_sums_py)


def hessian_sums(x: np.ndarray, R: np.ndarray | None, S: np.ndarray, weight: np.ndarray,
                 log_bg: np.ndarray, log_pi: np.ndarray, mean: np.ndarray,
                 covar: np.ndarray) -> dict:
    """The sums of one chunk (see the module docstring), as a dict of arrays (``logL`` a float).

    Parameters
    ----------
    x : (n, dy);  R : (n, dy, D), or None for the identity;  S : (n, dy, dy) (zeros for no
    noise)
    weight : (n,);  log_bg : (n,) log background density (ignored if log_pi[K] = -inf)
    log_pi : (K + 1,) log mixture weights, the background's last;  mean : (K, D);
    covar : (K, D, D)
    """
    K, D = mean.shape
    ea, eb = unique_entries(D)
    nb = D + len(ea)
    identity = R is None
    if identity:
        R = np.zeros((1, 1, 1))
    out = {"A": np.zeros(K + 1), "Q2": np.zeros((K + 1, K + 1)), "G": np.zeros((K, nb)),
           "OWN": np.zeros((K, nb, nb)), "QE": np.zeros((K, K + 1, nb)),
           "CROSS": np.zeros((K, K, nb, nb))}
    logL = _hessian_sums_jit(np.ascontiguousarray(x, dtype=np.float64),
                             np.ascontiguousarray(R, dtype=np.float64),
                             np.ascontiguousarray(S, dtype=np.float64),
                             np.ascontiguousarray(weight, dtype=np.float64),
                             np.ascontiguousarray(log_bg, dtype=np.float64),
                             np.ascontiguousarray(log_pi, dtype=np.float64),
                             np.ascontiguousarray(mean, dtype=np.float64),
                             np.ascontiguousarray(covar, dtype=np.float64), ea, eb, identity,
                             out["A"], out["Q2"], out["G"], out["OWN"], out["QE"],
                             out["CROSS"])
    if np.isnan(logL):
        raise FloatingPointError("a component's covariance plus noise is not positive definite")
    iu = np.triu_indices(nb, 1)
    for k in range(K):
        own = out["OWN"][k]
        own[iu[1], iu[0]] = own[iu]
    out["logL"] = float(logL)
    return out
