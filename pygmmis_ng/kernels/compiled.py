"""Fused E-step kernels compiled with numba (optional; the numpy kernels are the reference).

:func:`stats_shared` (no or shared noise) and :func:`stats_per_sample`
(per-sample noise: V_k + S_i factorized pair by pair) do in one pass over a
chunk what :func:`pygmmis_ng.kernels.dense.chunk_stats` does with many numpy
calls: the Mahalanobis distances, the log-sum-exp, the responsibilities and
the moments. Nothing of size n x K (or K x D x D x n) is allocated, pairs
outside the neighborhoods of a ``cutoff`` fit are skipped, and the sums run
sample by sample in a fixed order, so the result does not depend on
anything but the chunk.

Set the environment variable ``PYGMMIS_NG_NUMBA=0`` (before import), or
:data:`ENABLED` to False, to use the numpy kernels; without numba installed
they are used anyway.
"""
from __future__ import annotations

import os

import numpy as np

from .compiled_d3 import stats_per_sample_d3
from .compiled_d4 import stats_per_sample_d4
from .compiled_d12 import stats_per_sample_d1, stats_per_sample_d2
from .compiled_transforms import (
    compile_kernel,
    deconvolve,
    keep_member,
    mirror_upper,
    weigh_members,
)

try:  # numba is a dependency, but the numpy path must keep working without it
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

#: a responsibility below this is treated as 0 by the per-sample kernel (the inverse and
#: the moments of such a pair are not computed; the effect is far below the rounding of
#: the sums over samples)
Q_NEGLIGIBLE = 1e-13
#: a product of Cholesky diagonals is folded into the log det once it leaves this range
#: (so that it neither overflows nor underflows)
DET_MIN, DET_MAX = 1e-150, 1e150
#: whether :mod:`pygmmis_ng.kernels.dense` uses the compiled kernels
ENABLED = numba is not None and os.environ.get("PYGMMIS_NG_NUMBA", "1") != "0"
#: largest dimension for which the fused E-step without per-sample noise serves
#: (when the quadratic-feature GEMMs of :mod:`.quadratic` cannot: see
#: :func:`pygmmis_ng.kernels.dense.kernel_path`): measured against the numpy
#: kernels on 20k samples (2 cores), it is 1.7-3.6x faster for D <= 3 and any K
#: up to 20, 1.2-1.4x at D = 5, slower at D = 8
MAX_D = 3


def _lower_inverse_py(L, n, out):
    """out[:n, :n] = L[:n, :n]^-1 for a lower-triangular L (forward substitution)."""
    for a in range(n):
        out[a, a] = 1.0 / L[a, a]
        for b in range(a):
            s = 0.0
            for c in range(b, a):
                s -= L[a, c] * out[c, b]
            out[a, b] = s * out[a, a]


def _back_solve_py(Li, y, n, out):
    """out[:n] = Li[:n, :n]^T y[:n] for a lower-triangular Li (u = L^-T L^-1 d from y = L^-1 d)."""
    for a in range(n):
        s = 0.0
        for c in range(a, n):
            s += Li[c, a] * y[c]
        out[a] = s


def _inverse_gram_py(Li, n, out):
    """Upper triangle of out[:n, :n] = Li^T Li (T^-1 = L^-T L^-1 for Li = L^-1)."""
    for a in range(n):
        for b in range(a, n):
            s = 0.0
            for c in range(b, n):
                s += Li[c, a] * Li[c, b]
            out[a, b] = s


def _fold_det_py(diag, det, logdet):
    """(det * diag, logdet), the product folded into logdet once it leaves
    [DET_MIN, DET_MAX]: log det T as 2 (logdet + log det) of the Cholesky diagonals'
    product, one log per pair at ordinary scales instead of one per dimension."""
    det *= diag
    if not DET_MIN < det < DET_MAX:
        return 1.0, logdet + np.log(det)
    return det, logdet


def _stats_shared_py(x, weight, log_bg, has_bg, mean, prec_chol, log_const, nbr, redo, c2,
                     A, Mc, Cc):
    """Sums of one chunk for components with per-component factors L_k^-1.

    Parameters
    ----------
    x : (n, D) samples;  weight : (n,) sample weights
    log_bg : (n,) log amplitude-weighted background density (read if has_bg)
    mean : (K, D);  prec_chol : (K, D, D) lower L_k^-1
    log_const : (K,) log a_k - (D log 2pi + log det T_k) / 2
    nbr : (n, K) uint8 neighborhood flags, or shape (0, 0) for none: pair (i, k)
        is evaluated only if nbr[i, k]; for components with redo[k] the flag
        is first rewritten as chi2_ik < c2. A sample outside every
        neighborhood is evaluated against all components.
    redo : (K,) uint8;  c2 : float
    A, Mc, Cc : (K,), (K, D), (K, D, D) accumulators (added to; Cc's upper
        triangle only, the caller mirrors it)

    Returns
    -------
    logL, B : sum_i w_i log p(x_i) and sum_i w_i q_i,bg
    """
    n, D = x.shape
    K = mean.shape[0]
    lp = np.empty(K + 2)
    d = np.empty((K, D))
    logL = 0.0
    B = 0.0
    use_nbr = nbr.shape[0] > 0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        for attempt in range(2):
            mx = -np.inf
            for k in range(K):
                if use_nbr and attempt == 0 and redo[k] == 0 and nbr[i, k] == 0:
                    lp[k] = -np.inf
                    continue
                chi2 = 0.0
                for a in range(D):
                    d[k, a] = x[i, a] - mean[k, a]
                for a in range(D):
                    s = 0.0
                    for b in range(a + 1):
                        s += prec_chol[k, a, b] * d[k, b]
                    chi2 += s * s
                log_p = log_const[k] - 0.5 * chi2
                mx = keep_member(lp, k, log_p, chi2, use_nbr, redo, nbr, i, c2, attempt, mx)
            if mx > -np.inf or not use_nbr:
                break
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, wi, logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            q = lp[k] * scale
            if q == 0.0:                    # outside the neighborhood (or underflow): adds 0
                continue
            A[k] += q
            for a in range(D):
                qa = q * d[k, a]
                Mc[k, a] += qa
                for b in range(a, D):
                    Cc[k, a, b] += qa * d[k, b]
    return logL, B


def _stats_per_sample_py(x, S, weight, log_bg, has_bg, mean, covar, log_amp, nbr, redo, c2,
                         A, SU, SUU, STinv):
    """Sums of one chunk with per-sample noise: T_ik = V_k + S_i factorized per pair.

    Accumulates A_k = sum q, SU_k = sum q u, SUU_k = sum q u u^T and
    STinv_k = sum q T^-1 (upper triangles) with u = T_ik^-1 (x_i - m_k), from
    which the caller forms Mc = V SU and Cc = V (SUU - STinv) V + A V.
    ``nbr``, ``redo``, ``c2``: neighborhoods as in :func:`_stats_shared_py`.

    Returns
    -------
    logL, B, bad : bad = 1 + index of the first sample with a T_ik that is
        not positive definite (0 if none; the sums are then incomplete)
    """
    n, D = x.shape
    K = mean.shape[0]
    lp = np.empty(K + 2)
    Ls = np.empty((K, D, D))                # chol(T_ik) of the current sample, per component
    ys = np.empty((K, D))                   # L^-1 (x_i - m_k)
    u = np.empty(D)
    Tinv = np.empty((D, D))
    Li = np.empty((D, D))
    c0 = D * np.log(2.0 * np.pi)
    logL = 0.0
    B = 0.0
    use_nbr = nbr.shape[0] > 0
    for i in range(n):
        wi = weight[i]
        if wi == 0.0:
            continue
        attempt = 0
        while True:
            mx = -np.inf
            for k in range(K):
                if use_nbr and attempt == 0 and redo[k] == 0 and nbr[i, k] == 0:
                    lp[k] = -np.inf
                    continue
                # Cholesky of T = V_k + S_i (lower), then y = L^-1 d by forward substitution;
                # log det T = 2 log prod L_aa, one log per pair unless the product is extreme
                logdet = 0.0
                det = 1.0
                chi2 = 0.0
                for a in range(D):
                    for b in range(a + 1):
                        s = covar[k, a, b] + S[i, a, b]
                        for c in range(b):
                            s -= Ls[k, a, c] * Ls[k, b, c]
                        if a == b:
                            if not s > 0.0:
                                return logL, B, i + 1
                            Ls[k, a, a] = np.sqrt(s)
                            det, logdet = _fold_det(Ls[k, a, a], det, logdet)
                        else:
                            Ls[k, a, b] = s / Ls[k, b, b]
                    s = x[i, a] - mean[k, a]
                    for c in range(a):
                        s -= Ls[k, a, c] * ys[k, c]
                    ys[k, a] = s / Ls[k, a, a]
                    chi2 += ys[k, a] * ys[k, a]
                log_p = log_amp[k] - 0.5 * (c0 + chi2) - (logdet + np.log(det))
                mx = keep_member(lp, k, log_p, chi2, use_nbr, redo, nbr, i, c2, attempt, mx)
            if mx > -np.inf or not use_nbr or attempt == 1:
                break
            attempt = 1                 # outside every neighborhood: evaluate all components
        tot, scale, logL, B = weigh_members(lp, K, has_bg, log_bg, i, mx, wi, logL, B)
        if tot == 0.0:                      # no member can produce this sample
            continue
        for k in range(K):
            if lp[k] < Q_NEGLIGIBLE * tot:  # responsibility < 1e-13 (or outside the neighborhood)
                continue
            q = lp[k] * scale
            # L^-1 (lower), u = L^-T y = T^-1 d, T^-1 = L^-T L^-1 (upper triangle)
            _lower_inverse(Ls[k], D, Li)
            _back_solve(Li, ys[k], D, u)
            _inverse_gram(Li, D, Tinv)
            A[k] += q
            for a in range(D):
                qa = q * u[a]
                SU[k, a] += qa
                for b in range(a, D):
                    SUU[k, a, b] += qa * u[b]
                    STinv[k, a, b] += q * Tinv[a, b]
    return logL, B, 0


_fold_det = compile_kernel(_fold_det_py, inline=True)
_lower_inverse = compile_kernel(_lower_inverse_py, inline=True)
_back_solve = compile_kernel(_back_solve_py, inline=True)
_inverse_gram = compile_kernel(_inverse_gram_py, inline=True)
_stats_shared_jit = compile_kernel(_stats_shared_py)
_stats_per_sample_jit = compile_kernel(_stats_per_sample_py)


def _nbr_args(nbr: np.ndarray | None, redo: np.ndarray | None, K: int) -> tuple:
    if nbr is None:
        return np.zeros((0, 0), dtype=np.uint8), np.zeros(K, dtype=np.uint8)
    if nbr.dtype != np.uint8 or not nbr.flags.c_contiguous or not nbr.flags.writeable:
        raise ValueError("nbr must be a writable C-contiguous uint8 array (it is updated in place)")
    return nbr, np.ascontiguousarray(redo, dtype=np.uint8)


def stats_shared(x: np.ndarray, weight: np.ndarray | None, log_bg: np.ndarray | None,
                 mean: np.ndarray, prec_chol: np.ndarray, log_const: np.ndarray,
                 nbr: np.ndarray | None = None, redo: np.ndarray | None = None, c2: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, sum q (x - m_k), sum q (x - m_k)(x - m_k)^T, logL and B of one chunk.

    See :func:`_stats_shared_py` for the arguments; ``weight``, ``log_bg``
    and ``nbr`` may be None. Returns (A, Mc, Cc, logL, B) with Cc symmetric.
    """
    n, D = x.shape
    K = mean.shape[0]
    A = np.zeros(K)
    Mc = np.zeros((K, D))
    Cc = np.zeros((K, D, D))
    w = np.ones(n) if weight is None else np.ascontiguousarray(weight, dtype=float)
    bg = np.zeros(0) if log_bg is None else np.ascontiguousarray(log_bg, dtype=float)
    nbr, redo = _nbr_args(nbr, redo, K)
    logL, B = _stats_shared_jit(np.ascontiguousarray(x), w, bg, int(log_bg is not None),
                                np.ascontiguousarray(mean), np.ascontiguousarray(prec_chol),
                                np.ascontiguousarray(log_const), nbr, redo, float(c2), A, Mc, Cc)
    mirror_upper(Cc)
    return A, Mc, Cc, float(logL), float(B)


def stats_per_sample(x: np.ndarray, S: np.ndarray, weight: np.ndarray | None,
                     log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                     log_amp: np.ndarray, nbr: np.ndarray | None = None,
                     redo: np.ndarray | None = None, c2: float = 0.0,
                     gain: np.ndarray | None = None, post: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k, logL and B of one chunk with per-sample noise S (n, D, D).

    Same meaning as :func:`pygmmis_ng.kernels.dense.chunk_stats` (statistics of the
    deconvolved values, centred on the current means). For samples y = R x +
    noise of a shared projection R, ``mean`` and ``covar`` are the projected
    R m_k and R V_k R^T, and ``gain`` = V_k R^T (K, D', D), ``post`` = V_k
    (K, D', D') lift the sums to the D'-dimensional true values.

    Raises
    ------
    numpy.linalg.LinAlgError
        If some V_k + S_i is not positive definite.
    """
    n, D = x.shape
    K = mean.shape[0]
    A = np.zeros(K)
    SU = np.zeros((K, D))
    SUU = np.zeros((K, D, D))
    STinv = np.zeros((K, D, D))
    w = np.ones(n) if weight is None else np.ascontiguousarray(weight, dtype=float)
    bg = np.zeros(0) if log_bg is None else np.ascontiguousarray(log_bg, dtype=float)
    nbr, redo = _nbr_args(nbr, redo, K)
    args = (np.ascontiguousarray(x), np.ascontiguousarray(S), w, bg, int(log_bg is not None),
            np.ascontiguousarray(mean), np.ascontiguousarray(covar),
            np.ascontiguousarray(log_amp), nbr, redo, float(c2))
    closed = {1: stats_per_sample_d1, 2: stats_per_sample_d2, 3: stats_per_sample_d3,
              4: stats_per_sample_d4}.get(D)
    if closed is not None:          # closed forms (kernels/compiled_d12.py, _d3.py, _d4.py)
        logL, B, bad = closed(*args, Q_NEGLIGIBLE, A, SU, SUU, STinv)
    else:
        logL, B, bad = _stats_per_sample_jit(*args, A, SU, SUU, STinv)
    if bad:
        raise np.linalg.LinAlgError(f"V_k + S_i is not positive definite for sample {bad - 1} "
                                    "of a chunk")
    mirror_upper(SUU)
    mirror_upper(STinv)
    if gain is None:
        gain = post = covar
    return (A,) + deconvolve(gain, post, A, SU, SUU - STinv) + (float(logL), float(B))
