"""Small compiled transforms beside the fused E-step (numba; plain Python without it).

* :func:`draw_transform`: mixture (+ background) draws from fixed variates;
* :func:`deconvolve`: the per-component products that turn moment sums into
  deconvolved statistics, in loops with a fixed summation order, so that a
  chunk's result does not depend on the memory alignment of its inputs
  (numpy's einsum does: that would break bit-identical fits across worker
  processes).
"""
from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None


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


def _sandwich_py(G, C, H, out):
    """out_k = G_k C_k H_k^T for stacks G, H (K, P, Q) and C (K, Q, Q), in a fixed order."""
    K, P, Q = G.shape
    tmp = np.empty((P, Q))
    for k in range(K):
        for a in range(P):
            for b in range(Q):
                s = 0.0
                for c in range(Q):
                    s += G[k, a, c] * C[k, c, b]
                tmp[a, b] = s
        for a in range(P):
            for b in range(P):
                s = 0.0
                for c in range(Q):
                    s += tmp[a, c] * H[k, b, c]
                out[k, a, b] = s


def _matvec_py(G, v, out):
    """out_k = G_k v_k for (K, P, Q) and (K, Q), summed in a fixed order."""
    K, P, Q = G.shape
    for k in range(K):
        for a in range(P):
            s = 0.0
            for c in range(Q):
                s += G[k, a, c] * v[k, c]
            out[k, a] = s


def _column_sums_py(values, weight, has_weight, out):
    """out[d] = sum_i w_i values[i, d], rows in order, compensated (Neumaier); the columns
    side by side (a row at a time, as the array lies in memory)."""
    n, D = values.shape
    s = np.zeros(D)
    c = np.zeros(D)
    for i in range(n):
        wi = weight[i] if has_weight else 1.0
        for d in range(D):
            v = values[i, d] * wi if has_weight else values[i, d]
            t = s[d] + v
            c[d] += ((s[d] - t) + v) if abs(s[d]) >= abs(v) else ((v - t) + s[d])
            s[d] = t
    for d in range(D):
        out[d] = s[d] + c[d]


#: a responsibility below this is treated as 0 by the per-sample-noise, masked and projected
#: kernels (the inverse and the moments of such a pair are not added: far below rounding)
Q_NEGLIGIBLE = 1e-13
#: a product of Cholesky diagonals is folded into the log det once it leaves this range
#: (so that it neither overflows nor underflows)
DET_MIN, DET_MAX = 1e-150, 1e150


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


def compile_kernel(fn, inline: bool = False, cache: bool = True, contract: bool = False):
    """``fn`` compiled by numba (cached on disk, GIL released), or ``fn`` itself without numba.

    ``inline=True`` inlines it into the compiled kernels that call it (a called
    helper cost up to 30% in the E-step kernels). Division follows numpy's rules
    (x / 0 is inf or nan, no exception): Python's ZeroDivisionError check is an
    exit from every loop that divides, and a loop with an exit is not vectorized.
    ``contract=True`` lets the compiler fuse a * b + c into one instruction (FMA): 17%
    faster lane kernels, and more accurate, but a machine without FMA rounds differently
    (the same machine always gives the same bits).
    """
    if numba is None:  # pragma: no cover - exercised only where numba is missing
        return fn
    return numba.njit(cache=cache, nogil=True, error_model="numpy",
                      fastmath={"contract"} if contract else False,
                      inline="always" if inline else "never")(fn)


_sandwich = compile_kernel(_sandwich_py)
_column_sums = compile_kernel(_column_sums_py)
_matvec = compile_kernel(_matvec_py)
_draw_transform_jit = compile_kernel(_draw_transform_py)


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


def column_sums(values: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """sum_i w_i values[i] (D,) of an (n, D) array: compensated, rows in order, so
    accurate to a few ulp and the same bits wherever the arrays lie in memory
    (numpy's sums use SIMD loops whose order depends on the alignment)."""
    out = np.empty(values.shape[1])
    w = np.zeros(0) if weight is None else np.ascontiguousarray(weight, dtype=float)
    _column_sums(np.ascontiguousarray(values, dtype=float), w, weight is not None, out)
    return out


def deconvolve(G: np.ndarray, post: np.ndarray | None, A: np.ndarray, Mc: np.ndarray,
               Cc: np.ndarray, H: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(G Mc, G Cc H^T + A post), the latter symmetrized (post defaults to H).

    Shared noise: G = H = V T^-1 (the gain), post = V - V T^-1 V. Per-sample
    noise: G = H = V and post = V (Cc = V (SUU - STinv) V + A V). With a
    projection R the gains are rectangular, (K, D, dy): V R^T T^-1, or V R^T
    for per-sample noise, lifting sums over dy-dimensional observations to
    statistics of the D-dimensional true values. Computed
    in compiled loops with a fixed summation order, so the result does not
    depend on the memory alignment of the inputs (numpy's einsum does), which
    keeps fits bit-identical across worker processes.
    """
    G = np.ascontiguousarray(G)
    H = G if H is None else np.ascontiguousarray(H)
    post = H if post is None else post
    K, P = G.shape[:2]
    Mc_out = np.empty((K, P))
    Cc_out = np.empty((K, P, P))
    _matvec(G, np.ascontiguousarray(Mc), Mc_out)
    _sandwich(G, np.ascontiguousarray(Cc), H, Cc_out)
    Cc_out += A[:, None, None] * post
    Cc_out = 0.5 * (Cc_out + np.swapaxes(Cc_out, 1, 2))
    return Mc_out, Cc_out


def _weigh_members_py(lp, K, has_bg, log_bg, i, mx, wi, logL, B):
    """Sample i's members relative to the largest, in place, added to logL and B.

    lp[:K] holds log a_k N_ik (-inf for skipped pairs); the background member
    log_bg[i] goes to lp[K], and the largest log density to lp[K + 1]. Returns
    (tot, scale, logL, B): tot = 0 when no member can produce the sample (logL is
    then -inf), scale = wi / tot turns lp[k] into w_i q_ik.
    """
    lp[K] = -np.inf
    if has_bg:
        lp[K] = log_bg[i]
        if lp[K] > mx:
            mx = lp[K]
    lp[K + 1] = mx
    if mx == -np.inf:
        return 0.0, 0.0, -np.inf, B
    tot = 0.0
    for k in range(K + 1):
        lp[k] = np.exp(lp[k] - mx)
        tot += lp[k]
    scale = wi / tot
    return tot, scale, logL + wi * (mx + np.log(tot)), B + lp[K] * scale


def _keep_member_py(lp, k, log_p, chi2, use_nbr, redo, nbr, i, c2, attempt, mx):
    """lp[k] = log_p for pair (i, k), and the new largest member; with neighborhoods the
    flag of a component being remade (``redo[k]``) is rewritten as chi2 < c2 first, and a
    pair outside it is skipped (-inf) on the first attempt."""
    if use_nbr and redo[k] == 1:
        nbr[i, k] = 1 if chi2 < c2 else 0
        if attempt == 0 and chi2 >= c2:
            lp[k] = -np.inf
            return mx
    lp[k] = log_p
    return log_p if log_p > mx else mx


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01          # ln 2 split so that k ln2_hi is exact
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0                   # 1.5 * 2^52: (t + _ROUND) - _ROUND rounds t


def _exp_parts_py(x):
    """exp(x) = p * 2^k for -1000 < x < 700, as (p, k): p = exp(r) with r = x - k ln 2,
    |r| <= ln2 / 2, by its Taylor series to r^13 (error below 1e-17), written without
    branches or library calls so that the compiler vectorizes the loops that call it.
    The caller forms 2^k (see :func:`pow2`); within 1 ulp of numpy's exp."""
    kf = (x * _LOG2E + _ROUND) - _ROUND
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p, kf


def _pow2_bits_py(kf):
    """The bits of the float 2^k for an integral float -1022 <= k <= 1023 (an int64 to be
    viewed as float64)."""
    return (np.int64(kf) + 1023) << 52


if numba is not None:
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def float_of_bits(typingctx, b):
        """The float64 whose bits are the int64 ``b`` (a bitcast: free, and vectorizable
        where a view of an array is not)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return numba.types.float64(numba.types.int64), codegen

    @intrinsic
    def bits_of_float(typingctx, x):
        """The int64 bits of the float64 ``x`` (a bitcast)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(64))
        return numba.types.int64(numba.types.float64), codegen
else:  # pragma: no cover - exercised only where numba is missing
    def float_of_bits(b):
        return np.array(b, dtype=np.int64).view(np.float64)[()]

    def bits_of_float(x):
        return np.array(x, dtype=np.float64).view(np.int64)[()]


def _exp_branch_free_py(x):
    """exp(x) for -1000 < x < 700 (see :func:`_exp_parts_py`), in a form loops vectorize."""
    p, kf = exp_parts(x)
    return p * float_of_bits(pow2_bits(kf))


exp_parts = compile_kernel(_exp_parts_py, inline=True)
pow2_bits = compile_kernel(_pow2_bits_py, inline=True)
exp_branch_free = compile_kernel(_exp_branch_free_py, inline=True)
keep_member = compile_kernel(_keep_member_py, inline=True)
weigh_members = compile_kernel(_weigh_members_py, inline=True)
fold_det = compile_kernel(_fold_det_py, inline=True)
lower_inverse = compile_kernel(_lower_inverse_py, inline=True)
back_solve = compile_kernel(_back_solve_py, inline=True)
inverse_gram = compile_kernel(_inverse_gram_py, inline=True)
