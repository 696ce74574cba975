"""The compiled E-step kernels: one family generated from two skeletons, and its registry.

Every kernel is :mod:`.skeletons` (the loops: a block of samples in SIMD lanes,
or one sample at a time with neighborhoods) filled with :mod:`.algebra` (the
per-pair math, written out for one dimension) and keyed by a
:class:`~.skeletons.Spec` -- skeleton, noise kind, covariance family,
dimension. :func:`kernel` renders a spec's source into a file of the kernel
cache directory (named by a hash of the source and of the helpers it inlines)
and imports it, so numba caches the compiled code next to it like that of any
module: a new process loads a kernel in milliseconds. :func:`spec_for` is the
only place that decides which kernel serves a chunk.

The cache directory is ``$PYGMMIS_NG_KERNEL_DIR``, else
``$XDG_CACHE_HOME/pygmmis_ng`` (``~/.cache/pygmmis_ng``), else a per-user
directory under the system's temporary directory; where none is writable the
kernels are compiled in memory every process. Set ``PYGMMIS_NG_NUMBA=0``
(before import), or the runtime setting ``compiled_kernels`` to False
(:mod:`pygmmis_ng.config`), to use the numpy kernels.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..config import get_settings
from . import algebra, compiled_transforms, lanes, patterns, skeletons
from .compiled_transforms import Q_NEGLIGIBLE, deconvolve, numba
from .skeletons import Spec
from .stats import shared_gain


def enabled() -> bool:
    """Whether the compiled kernels serve (else the numpy kernels of :mod:`.dense`): numba
    is installed and the runtime setting ``compiled_kernels`` is on."""
    return numba is not None and get_settings().compiled_kernels

#: largest dimension written out per noise kind in the lane skeleton (beyond: the
#: per-sample skeleton's loops, or the GEMMs of :mod:`.quadratic` without per-sample noise)
LANES_MAX_D = {"shared": 8, "per_sample": 4}
#: largest dimension written out in the per-sample skeleton (beyond: loops)
SAMPLE_MAX_D = 4


def spec_for(noise: str, family: str, D: int, neighborhoods: bool) -> Spec:
    """The kernel for a chunk: lanes unless neighborhoods are used or D is too large.

    ``family`` 'diag' or 'spherical' (diagonal components and noise) is served by
    one lane kernel for any D above those written out (below, the full lane kernels
    are faster; their second moments hold the diagonal); with neighborhoods, by the
    'full' kernels.
    """
    if family != "full" and not neighborhoods and D > LANES_MAX_D[noise]:
        return Spec("lanes", noise, family, 0)
    if not neighborhoods and D <= LANES_MAX_D[noise]:
        return Spec("lanes", noise, "full", D)
    return Spec("sample", noise, "full", D if D <= SAMPLE_MAX_D else 0)


def registry() -> list[Spec]:
    """Every kernel :func:`spec_for` can choose (with dimension 0 for 'any D')."""
    out = [Spec("lanes", n, f, 0) for n in ("shared", "per_sample") for f in ("diag", "spherical")]
    for noise, top in LANES_MAX_D.items():
        out += [Spec("lanes", noise, "full", D) for D in range(1, top + 1)]
        out += [Spec("sample", noise, "full", D) for D in range(SAMPLE_MAX_D + 1)]
    out += [Spec("lanes", "censored", "full", D) for D in range(1, LANES_MAX_D["per_sample"] + 1)]
    out += [Spec("lanes", "censored_shared", "full", D) for D in range(1, LANES_MAX_D["shared"] + 1)]
    return out + [Spec("sample", n, "full", 0) for n in ("projected", "masked", "masked_shared")]


def _cache_dir() -> Path | None:
    env = os.environ.get("PYGMMIS_NG_KERNEL_DIR")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    for base in ([Path(env)] if env else []) + [Path(xdg) / "pygmmis_ng",
                                                 Path(tempfile.gettempdir()) / f"pygmmis_ng-{uid}"]:
        try:
            base.mkdir(parents=True, exist_ok=True)
            probe = base / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
            return base
        except OSError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def _helpers_hash() -> str:
    """What the generated sources inline besides their own text."""
    h = hashlib.sha256(str(getattr(numba, "__version__", "")).encode())
    for mod in (compiled_transforms, lanes, patterns):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()


_KERNELS: dict = {}
_KERNEL_LOCK = threading.Lock()


def _new_lock() -> None:             # a fork while another thread loads a kernel: a free lock
    global _KERNEL_LOCK
    _KERNEL_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)


def kernel(spec: Spec):
    """The compiled kernel of ``spec`` (rendered to the cache directory, imported): loaded
    once per process, also when the threads of a fit ask for it at the same time."""
    found = _KERNELS.get(spec)
    if found is None:
        with _KERNEL_LOCK:
            found = _KERNELS.get(spec)
            if found is None:
                found = _KERNELS[spec] = _load(spec)
    return found


def _load(spec: Spec):
    src = skeletons.source(spec)
    key = hashlib.sha256((src + _helpers_hash()).encode()).hexdigest()[:16]
    name = f"pygmmis_ng_kernel_{spec.skeleton}_{spec.noise}_{spec.family}_{spec.dim}_{key}"
    where = _cache_dir()
    if where is None:                   # nowhere to write: compile in memory, uncached
        ns: dict = {}
        exec(compile(src.replace("compile_kernel(kernel,", "compile_kernel(kernel, cache=False,"),
                     name, "exec"), ns)
        return ns["kernel"]
    path = where / f"{name}.py"
    if not path.exists():
        tmp = where / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(src)
        os.replace(tmp, path)           # atomic: processes rendering at once agree
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module          # numba's cache finds the kernel's globals by name
    module_spec.loader.exec_module(module)
    return module.kernel


def _flags(nbr: np.ndarray | None, redo: np.ndarray | None, K: int) -> tuple:
    if nbr is None:
        return np.zeros((0, 0), dtype=np.uint8), np.zeros(K, dtype=np.uint8)
    if nbr.dtype != np.uint8 or not nbr.flags.c_contiguous or not nbr.flags.writeable:
        raise ValueError("nbr must be a writable C-contiguous uint8 array (it is updated in place)")
    return nbr, np.ascontiguousarray(redo, dtype=np.uint8)


def run(spec: Spec, x: np.ndarray, S: np.ndarray | None, weight: np.ndarray | None,
        log_bg: np.ndarray | None, mean: np.ndarray, C: np.ndarray, log_c: np.ndarray,
        q_negligible: float, nbr: np.ndarray | None = None, redo: np.ndarray | None = None,
        c2: float = 0.0, R: np.ndarray | None = None) -> tuple[np.ndarray, float, float, int]:
    """Call the kernel of ``spec`` on one chunk: (moment sums (K, NS), logL, B, status)."""
    n = x.shape[0]
    K, D = mean.shape
    sums = np.zeros((K, algebra.moments(D, spec.family)))
    args = (np.ascontiguousarray(x, dtype=float),
            np.zeros((0, 0, 0)) if S is None else np.ascontiguousarray(S, dtype=float),
            np.ones(n) if weight is None else np.ascontiguousarray(weight, dtype=float),
            np.zeros(0) if log_bg is None else np.ascontiguousarray(log_bg, dtype=float),
            int(log_bg is not None), np.ascontiguousarray(mean, dtype=float),
            np.ascontiguousarray(C, dtype=float), np.ascontiguousarray(log_c, dtype=float),
            float(q_negligible), sums)
    if spec.skeleton == "sample":
        args += _flags(nbr, redo, K) + (float(c2), np.zeros((0, 0, 0)) if R is None
                                         else np.ascontiguousarray(R, dtype=float))
    logL, B, status = kernel(spec)(*args)
    return sums, float(logL), float(B), int(status)


def unpack(sums: np.ndarray, D: int, family: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A (K,), first (K, D), second (K, D, D) symmetric) from the moment sums."""
    K = sums.shape[0]
    second = np.zeros((K, D, D))
    if family == "full":
        rows, cols = np.triu_indices(D)
        second[:, rows, cols] = sums[:, 1 + D:]
        second[:, cols, rows] = sums[:, 1 + D:]
    else:
        diag = sums[:, 1 + D:] if family == "diag" else np.repeat(sums[:, 1 + D:] / D, D, axis=1)
        second[:, np.arange(D), np.arange(D)] = diag
    return sums[:, 0].copy(), sums[:, 1:1 + D].copy(), second


def _lift(result: tuple, what: str, family: str, covar: np.ndarray, gain: np.ndarray | None = None,
          post: np.ndarray | None = None) -> tuple:
    """(A, G Σ q u, G [Σ q (u u^T - T^-1)] G^T + A post, logL, B) from a kernel's ``result``
    (G = post = V_k unless given); a status > 0 names the sample whose ``what`` is not
    positive definite."""
    sums, logL, B, status = result
    if status > 0:
        raise np.linalg.LinAlgError(f"{what} is not positive definite for sample {status - 1} "
                                    "of a chunk")
    A, SU, G = unpack(sums, covar.shape[1], family)
    return (A,) + deconvolve(covar if gain is None else gain, covar if post is None else post,
                             A, SU, G) + (logL, B)


def stats_shared(x: np.ndarray, weight: np.ndarray | None, log_bg: np.ndarray | None,
                 mean: np.ndarray, prec_chol: np.ndarray, log_const: np.ndarray,
                 nbr: np.ndarray | None = None, redo: np.ndarray | None = None, c2: float = 0.0,
                 family: str = "full"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, sum q (x - m_k), sum q (x - m_k)(x - m_k)^T, logL and B of one chunk.

    Parameters
    ----------
    x : (n, D);  weight, log_bg : (n,) or None
    mean : (K, D);  prec_chol : (K, D, D) lower L_k^-1 of T_k = V_k (+ S)
    log_const : (K,) log a_k - (D log 2pi + log det T_k) / 2
    nbr, redo, c2 : neighborhoods (``nbr`` (n, K) uint8, updated in place: pair (i, k)
        is evaluated only if flagged, flags of components with ``redo[k]`` are first
        rewritten as chi2_ik < c2; a sample outside every neighborhood meets all components)
    family : 'diag' or 'spherical' when every T_k is diagonal (isotropic): O(D) per pair,
        and only the diagonal (its mean) of the second moments is summed
    """
    D = x.shape[1]
    spec = spec_for("shared", family, D, nbr is not None)
    C = prec_chol if spec.family == "full" else np.diagonal(prec_chol, axis1=1, axis2=2) ** 2
    sums, logL, B, _ = run(spec, x, None, weight, log_bg, mean, C, log_const, 0.0, nbr, redo, c2)
    return unpack(sums, D, spec.family) + (logL, B)


def stats_per_sample(x: np.ndarray, S: np.ndarray, weight: np.ndarray | None,
                     log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                     log_amp: np.ndarray, nbr: np.ndarray | None = None,
                     redo: np.ndarray | None = None, c2: float = 0.0,
                     gain: np.ndarray | None = None, post: np.ndarray | None = None,
                     family: str = "full"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k (of the deconvolved values, centred on the means), logL and B of one
    chunk with per-sample noise S (n, D, D): T_ik = V_k + S_i factorized pair by pair.

    Sums q u and q (u u^T - T^-1) with u = T_ik^-1 (x_i - m_k) are lifted as
    Mc = G sum q u, Cc = G [sum q (u u^T - T^-1)] G^T + A post, with G = post = V_k
    (``gain``, ``post``: V_k R^T and V_k for samples of a shared projection R, whose
    ``mean`` and ``covar`` are then R m_k and R V_k R^T). ``family`` 'diag' or
    'spherical' when V_k and every S_i are diagonal (V_k isotropic); ``nbr``, ``redo``,
    ``c2``: neighborhoods as in :func:`stats_shared`.

    Raises
    ------
    numpy.linalg.LinAlgError
        If some V_k + S_i is not positive definite.
    """
    D = x.shape[1]
    spec = spec_for("per_sample", family, D, nbr is not None)
    log_c = log_amp - 0.5 * D * np.log(2.0 * np.pi)
    C = covar if spec.family == "full" else np.diagonal(covar, axis1=1, axis2=2)
    result = run(spec, x, S, weight, log_bg, mean, C, log_c, Q_NEGLIGIBLE, nbr, redo, c2)
    if result[3] == -1:                 # a determinant out of range: fold it into logs
        spec = Spec("sample", "per_sample", "full", 0)
        result = run(spec, x, S, weight, log_bg, mean, covar, log_c, Q_NEGLIGIBLE, nbr, redo, c2)
    return _lift(result, "V_k + S_i", spec.family, covar, gain, post)


def stats_censored(x: np.ndarray, S: np.ndarray | None, weight: np.ndarray | None,
                   log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                   log_amp: np.ndarray, gain: np.ndarray, post: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None:
    """:func:`stats_per_sample` for samples whose last value is an upper limit (lower limits
    are turned into upper ones by the caller): the lane kernels of noise 'censored'
    (per-sample ``S`` (n, D, D), D <= 4; :func:`.algebra.censored_per_sample`) and
    'censored_shared' (``S`` None or (D, D), D <= 8; :func:`.algebra.censored_shared`, whose
    sums of s = x - m_k are lifted by the gain V R^T T^-1 as for a shared projection).
    ``mean``, ``covar``: the group's values' R m_k, R V_k R^T; ``gain``, ``post``: V_k R^T
    and V_k. None where no lane kernel serves (D too large, or a determinant out of range):
    the caller then uses the general kernel."""
    D = x.shape[1]
    if S is not None and S.ndim == 3:
        if D > LANES_MAX_D["per_sample"]:
            return None
        log_c = log_amp - 0.5 * D * np.log(2.0 * np.pi)
        result = run(Spec("lanes", "censored", "full", D), x, S, weight, log_bg, mean, covar,
                     log_c, Q_NEGLIGIBLE)
        return None if result[3] == -1 else _lift(result, "V_k + S_i", "full", covar, gain, post)
    if D > LANES_MAX_D["shared"]:
        return None
    T = covar if S is None else covar + S[None]
    chol = np.linalg.cholesky(T)
    prec = np.tril(np.linalg.solve(chol, np.broadcast_to(np.eye(D), chol.shape)))
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    log_c = log_amp - 0.5 * (D * np.log(2.0 * np.pi) + log_det)
    result = run(Spec("lanes", "censored_shared", "full", D), x, None, weight, log_bg, mean,
                 prec, log_c, Q_NEGLIGIBLE)
    return _lift(result, "V_k + S", "full", covar, *shared_gain(prec, gain, post))


def stats_projected(y: np.ndarray, R: np.ndarray, S: np.ndarray | None, weight: np.ndarray | None,
                    log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                    log_amp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k (of the true values, centred on the means), logL and B of one chunk
    of samples y (n, dy) with their own projection R (n, dy, D) and noise S (None, (dy, dy)
    or (n, dy, dy)): sums q R^T u and q R^T (u u^T - T^-1) R, u = T_ik^-1 (y_i - R_i m_k),
    lifted by V_k.

    Raises
    ------
    numpy.linalg.LinAlgError
        If some R_i V_k R_i^T + S_i is not positive definite.
    """
    n, dy = y.shape
    S = np.zeros((n, dy, dy)) if S is None else np.broadcast_to(S, (n, dy, dy))
    log_c = log_amp - 0.5 * dy * np.log(2.0 * np.pi)
    result = run(Spec("sample", "projected", "full", 0), y, S, weight, log_bg, mean, covar,
                 log_c, Q_NEGLIGIBLE, R=R)
    return _lift(result, "R_i V_k R_i^T + S_i", "full", covar)


def stats_masked(x: np.ndarray, S: np.ndarray | None, weight: np.ndarray | None,
                 log_bg: np.ndarray | None, mean: np.ndarray, covar: np.ndarray,
                 log_amp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A_k, Mc_k, Cc_k (of the true values, centred on the means), logL and B of one chunk
    of samples with values missing in many patterns (:mod:`.patterns`).

    ``x`` (n, D) with NaN for missing values (every row has a measured one), sorted by
    pattern (any order is correct; runs of one pattern are faster); ``S`` None, (D, D)
    shared or (n, D, D) per-sample noise.

    Raises
    ------
    numpy.linalg.LinAlgError
        If some V_k[o, o] + S_i[o, o] is not positive definite.
    """
    n, D = x.shape
    if S is not None and S.ndim == 3 and S.shape[0] == n and n > 1:
        spec = Spec("sample", "masked", "full", 0)
    else:
        spec = Spec("sample", "masked_shared", "full", 0)
        S = np.zeros((1, D, D)) if S is None else (S[:1] if S.ndim == 3 else S[None])
    result = run(spec, x, S, weight, log_bg, mean, covar, log_amp, Q_NEGLIGIBLE)
    return _lift(result, "V_k + S_i over the measured values", "full", covar)
