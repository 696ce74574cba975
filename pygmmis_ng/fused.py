"""Fused E-step kernels compiled with numba (optional; the numpy kernels are the reference).

:func:`stats_shared` does in one pass over a chunk what
:func:`pygmmis_ng.kernels.chunk_stats` does with a dozen numpy calls for
the no-noise and shared-noise paths: the Mahalanobis distances, the
log-sum-exp, the responsibilities and the moments about each component
mean. Nothing of size n x K is allocated, and the sums run sample by
sample in a fixed order, so the result does not depend on anything but
the chunk.

Set the environment variable ``PYGMMIS_NG_NUMBA=0`` (before import), or
:data:`ENABLED` to False, to use the numpy kernels; without numba installed
they are used anyway.
"""
from __future__ import annotations

import os

import numpy as np

try:  # numba is a dependency, but the numpy path must keep working without it
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

#: whether :mod:`pygmmis_ng.kernels` uses the compiled kernels
ENABLED = numba is not None and os.environ.get("PYGMMIS_NG_NUMBA", "1") != "0"
#: largest dimension for which the fused E-step is used: measured against the
#: numpy kernels on 20k samples (2 cores), it is 1.7-3.6x faster for D <= 3 and
#: any K up to 20, 1.2-1.4x at D = 5, slower at D = 8, where the numpy kernel's
#: threaded GEMM wins
MAX_D = 3


def use_for(D: int, per_sample: bool = False) -> bool:
    """Whether a fused E-step serves this chunk.

    Per-sample noise: always (measured 1.5-2.4x faster than the numpy
    structure-of-arrays kernel for D = 2 ... 10, and without its K x D x D x n
    cache). No or shared noise: for D <= :data:`MAX_D`.
    """
    return ENABLED and (per_sample or D <= MAX_D)


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
    lp = np.empty(K + 1)
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
                if use_nbr and redo[k] == 1:
                    nbr[i, k] = 1 if chi2 < c2 else 0
                    if attempt == 0 and chi2 >= c2:
                        lp[k] = -np.inf
                        continue
                lp[k] = log_const[k] - 0.5 * chi2
                if lp[k] > mx:
                    mx = lp[k]
            if mx > -np.inf or not use_nbr:
                break
        if has_bg:
            lp[K] = log_bg[i]
            if lp[K] > mx:
                mx = lp[K]
        if mx == -np.inf:
            logL = -np.inf
            continue
        tot = 0.0
        for k in range(K + has_bg):
            lp[k] = np.exp(lp[k] - mx)
            tot += lp[k]
        logL += wi * (mx + np.log(tot))
        scale = wi / tot
        if has_bg:
            B += lp[K] * scale
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


def _draw_transform_py(u, z, v, cum, mean, chol, lo, hi, x, comp):
    """Mixture draws from fixed variates (see :func:`draw_transform`), written into x, comp."""
    n, D = z.shape
    K = mean.shape[0]
    total = cum[K]
    for i in range(n):
        t = u[i] * total
        k = 0
        while k < K and cum[k] <= t:        # first k with cum[k] > t (searchsorted 'right')
            k += 1
        comp[i] = k
        if k == K:
            for a in range(D):
                x[i, a] = lo[a] + (hi[a] - lo[a]) * v[i, a]
        else:
            for a in range(D):
                s = mean[k, a]
                for b in range(a + 1):
                    s += chol[k, a, b] * z[i, b]
                x[i, a] = s


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
    lp = np.empty(K + 1)
    u = np.empty((K, D))
    Tinv = np.empty((K, D, D))
    L = np.empty((D, D))
    Li = np.empty((D, D))
    y = np.empty(D)
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
            # Cholesky of T = V_k + S_i (lower, in L)
            logdet = 0.0
            for a in range(D):
                for b in range(a + 1):
                    s = covar[k, a, b] + S[i, a, b]
                    for c in range(b):
                        s -= L[a, c] * L[b, c]
                    if a == b:
                        if not s > 0.0:
                            return logL, B, i + 1
                        L[a, a] = np.sqrt(s)
                        logdet += np.log(L[a, a])
                    else:
                        L[a, b] = s / L[b, b]
            # L^-1 (lower) by forward substitution
            for a in range(D):
                Li[a, a] = 1.0 / L[a, a]
                for b in range(a):
                    s = 0.0
                    for c in range(b, a):
                        s -= L[a, c] * Li[c, b]
                    Li[a, b] = s * Li[a, a]
            # y = L^-1 d, chi2 = |y|^2, u = L^-T y = T^-1 d, T^-1 = L^-T L^-1
            chi2 = 0.0
            for a in range(D):
                s = 0.0
                for b in range(a + 1):
                    s += Li[a, b] * (x[i, b] - mean[k, b])
                y[a] = s
                chi2 += s * s
            for a in range(D):
                s = 0.0
                for c in range(a, D):
                    s += Li[c, a] * y[c]
                u[k, a] = s
                for b in range(a, D):
                    s2 = 0.0
                    for c in range(b, D):
                        s2 += Li[c, a] * Li[c, b]
                    Tinv[k, a, b] = s2
            if use_nbr and redo[k] == 1:
                nbr[i, k] = 1 if chi2 < c2 else 0
                if attempt == 0 and chi2 >= c2:
                    lp[k] = -np.inf
                    continue
            lp[k] = log_amp[k] - 0.5 * (c0 + 2.0 * logdet + chi2)
            if lp[k] > mx:
                mx = lp[k]
          if mx > -np.inf or not use_nbr or attempt == 1:
              break
          attempt = 1                 # outside every neighborhood: evaluate all components
        if has_bg:
            lp[K] = log_bg[i]
            if lp[K] > mx:
                mx = lp[K]
        if mx == -np.inf:
            logL = -np.inf
            continue
        tot = 0.0
        for k in range(K + has_bg):
            lp[k] = np.exp(lp[k] - mx)
            tot += lp[k]
        logL += wi * (mx + np.log(tot))
        scale = wi / tot
        if has_bg:
            B += lp[K] * scale
        for k in range(K):
            q = lp[k] * scale
            if q == 0.0:                    # outside the neighborhood (or underflow): adds 0
                continue
            A[k] += q
            for a in range(D):
                qa = q * u[k, a]
                SU[k, a] += qa
                for b in range(a, D):
                    SUU[k, a, b] += qa * u[k, b]
                    STinv[k, a, b] += q * Tinv[k, a, b]
    return logL, B, 0


def _sandwich_py(G, C, H, out):
    """out_k = G_k C_k H_k^T for stacks of (D, D) matrices, summed in a fixed order."""
    K, D = C.shape[0], C.shape[1]
    tmp = np.empty((D, D))
    for k in range(K):
        for a in range(D):
            for b in range(D):
                s = 0.0
                for c in range(D):
                    s += G[k, a, c] * C[k, c, b]
                tmp[a, b] = s
        for a in range(D):
            for b in range(D):
                s = 0.0
                for c in range(D):
                    s += tmp[a, c] * H[k, b, c]
                out[k, a, b] = s


def _matvec_py(G, v, out):
    """out_k = G_k v_k for (K, D, D) and (K, D), summed in a fixed order."""
    K, D = v.shape
    for k in range(K):
        for a in range(D):
            s = 0.0
            for c in range(D):
                s += G[k, a, c] * v[k, c]
            out[k, a] = s


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)
    _sandwich = _jit(_sandwich_py)
    _matvec = _jit(_matvec_py)
    _stats_shared_jit = _jit(_stats_shared_py)
    _stats_per_sample_jit = _jit(_stats_per_sample_py)
    _draw_transform_jit = _jit(_draw_transform_py)
else:  # pragma: no cover
    _sandwich = _sandwich_py
    _matvec = _matvec_py
    _stats_shared_jit = _stats_shared_py
    _stats_per_sample_jit = _stats_per_sample_py
    _draw_transform_jit = _draw_transform_py


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
    _mirror(Cc)
    return A, Mc, Cc, float(logL), float(B)


def draw_transform(u: np.ndarray, z: np.ndarray, v: np.ndarray | None, cum: np.ndarray,
                   mean: np.ndarray, chol: np.ndarray, footprint: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Turn fixed uniform and normal variates into draws from the mixture (+ background).

    Parameters
    ----------
    u : (n,) uniforms choosing the member: the first k with cum[k] > u * cum[-1]
    z : (n, D) standard normals;  v : (n, D) uniforms for the background, or None
    cum : (K + 1,) cumulative member weights (the last member is the background)
    mean, chol : (K, D), (K, D, D) component means and lower Cholesky factors
    footprint : (2, D) background box, or None

    Returns
    -------
    x : (n, D) draws;  comp : (n,) int member index (K for the background)
    """
    n, D = z.shape
    x = np.empty((n, D))
    comp = np.empty(n, dtype=np.int64)
    lo, hi = (np.zeros(D), np.zeros(D)) if footprint is None else footprint
    _draw_transform_jit(u, z, np.zeros((0, D)) if v is None else v, np.ascontiguousarray(cum),
                        np.ascontiguousarray(mean), np.ascontiguousarray(chol),
                        np.ascontiguousarray(lo, dtype=float), np.ascontiguousarray(hi, dtype=float),
                        x, comp)
    return x, comp


def _mirror(M: np.ndarray) -> None:
    """Copy the upper triangle of each (D, D) matrix of a stack onto its lower one, in place."""
    D = M.shape[-1]
    iu = np.triu_indices(D, 1)
    M[:, iu[1], iu[0]] = M[:, iu[0], iu[1]]


def stats_per_sample(x: np.ndarray, S: np.ndarray, weight: np.ndarray | None,
                     log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                     log_amp: np.ndarray, nbr: np.ndarray | None = None,
                     redo: np.ndarray | None = None, c2: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k, logL and B of one chunk with per-sample noise S (n, D, D).

    Same meaning as :func:`pygmmis_ng.kernels.chunk_stats` (statistics of the
    deconvolved values, centred on the current means).

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
    logL, B, bad = _stats_per_sample_jit(
        np.ascontiguousarray(x), np.ascontiguousarray(S), w, bg, int(log_bg is not None),
        np.ascontiguousarray(mean), np.ascontiguousarray(covar), np.ascontiguousarray(log_amp),
        nbr, redo, float(c2), A, SU, SUU, STinv)
    if bad:
        raise np.linalg.LinAlgError(f"V_k + S_i is not positive definite for sample {bad - 1} "
                                    "of a chunk")
    _mirror(SUU)
    _mirror(STinv)
    return (A,) + deconvolve(covar, None, A, SU, SUU - STinv, covar) + (float(logL), float(B))


def deconvolve(G: np.ndarray, post: np.ndarray | None, A: np.ndarray, Mc: np.ndarray,
               Cc: np.ndarray, H: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(G Mc, G Cc H^T + A post), the latter symmetrized (post defaults to H).

    Shared noise: G = H = V T^-1 (the gain), post = V - V T^-1 V. Per-sample
    noise: G = H = V and post = V (Cc = V (SUU - STinv) V + A V). Computed
    in compiled loops with a fixed summation order, so the result does not
    depend on the memory alignment of the inputs (numpy's einsum does), which
    keeps fits bit-identical across worker processes.
    """
    G = np.ascontiguousarray(G)
    H = G if H is None else np.ascontiguousarray(H)
    post = H if post is None else post
    Mc_out = np.empty_like(Mc)
    Cc_out = np.empty_like(Cc)
    _matvec(G, np.ascontiguousarray(Mc), Mc_out)
    _sandwich(G, np.ascontiguousarray(Cc), H, Cc_out)
    Cc_out += A[:, None, None] * post
    Cc_out = 0.5 * (Cc_out + np.swapaxes(Cc_out, 1, 2))
    return Mc_out, Cc_out
