"""Imputation of the samples a selection function removed, and the forward model.

Each EM iteration (docs/design.md, "Imputation") draws M samples from the current model (GMM
plus background) with noise from ``covar_callback``, evaluates the selection
probability Omega of each, and lets the unselected part fill in what the
observed samples lack: draw j enters the sufficient statistics with weight
(N0 / M) (1 - Omega_j), where N0 = N / Z and Z = mean_j Omega_j is the
Monte-Carlo estimate of the selected fraction. Three choices keep the
Monte-Carlo noise of this step small:

* **Common random numbers.** Draw j always uses the same uniform and normal
  variates; only the parameters that transform them change. The imputation
  is then a smooth, deterministic function of the parameters, EM converges
  to a fixed point instead of jittering around it, and restarts are
  compared on the same draws.
* **Quasi-random variates.** The variates are points of one scrambled
  Sobol sequence (seeded from the fit's rng), which fill the unit cube far
  more evenly than pseudo-random points: the Monte-Carlo error of Z and of
  the imputed statistics falls faster than 1/sqrt(M). Block b holds points
  b*B ... (b+1)*B - 1 of the sequence (B: the runtime setting
  ``imputation_block``, :mod:`pygmmis_ng.config`), so blocks do not depend on the
  number of workers. (The runtime setting ``imputation_variates="pseudo"`` switches to independent
  pseudo-random blocks, for comparison.)
* **Expected rejection.** A draw is weighted by its rejection probability
  1 - Omega_j instead of being kept or dropped by a coin flip
  (Rao-Blackwellization): the same expectation with less variance for
  probabilistic selections, identical for deterministic ones.

The public forward model :func:`pygmmis_ng.draw` is in :mod:`.forward`.
"""
from __future__ import annotations

import functools
import math
import signal
import threading
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.special
import scipy.stats
import scipy.stats.qmc

from ..config import get_settings
from ..data.layout import eval_chunks
from ..data.validation import as_float_array
from ..kernels import compiled_transforms, dense, fused
from ..kernels.stats import SufficientStats, prepare_components
from .background import Background


class CallbackError(RuntimeError):
    """A user callback (sel_callback, covar_callback) raised or returned something invalid."""


def _call(callback: Callable, coords: np.ndarray, name: str, where: str) -> Any:
    """``callback`` on a private copy of ``coords``: a callback that writes into its argument
    changes neither the caller's data nor the fit's imputation draws (the copy costs far
    less than the evaluation of the draws)."""
    try:
        return callback(np.array(coords, dtype=np.float64, order="C"))
    except KeyboardInterrupt as exc:    # Ctrl-C passes; a callback's own is its error
        if _ctrl_c_arrives_here():
            raise
        raise CallbackError(f"{name} raised KeyboardInterrupt (called on {where}, {len(coords)} "
                            "coordinates) where Ctrl-C does not arrive (a worker process or a "
                            "thread): the callback raised it itself") from exc
    except Exception as exc:  # re-raised with context
        raise CallbackError(f"{name} raised {type(exc).__name__}: {exc} (called on {where}, "
                            f"{len(coords)} coordinates)") from exc


def _ctrl_c_arrives_here() -> bool:
    """Whether a KeyboardInterrupt here can be the user's Ctrl-C: in the main thread of a
    process that does not ignore SIGINT (our pool's workers do; Dask runs tasks in threads)."""
    return threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is not signal.SIG_IGN


def evaluate_selection(sel_callback: Callable, coords: np.ndarray, where: str) -> np.ndarray:
    """Omega(coords) from the user's callback, checked: shape (n,), finite, in [0, 1].

    Raises
    ------
    CallbackError
        If the callback raises (chained to the original exception).
    ValueError
        If it returns the wrong shape, NaN, or values outside [0, 1].
    """
    omega = _call(sel_callback, coords, "sel_callback", where)
    omega = as_float_array(omega, "sel_callback(coords)")
    n = len(coords)
    if omega.shape != (n,):
        raise ValueError(f"sel_callback must return the selection probability of each sample, "
                         f"shape ({n},); got shape {omega.shape} for {where}")
    lo, hi = (omega.min(), omega.max()) if n else (0.0, 1.0)   # NaN propagates into both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"sel_callback returned NaN or inf for {where}")
    if lo < 0 or hi > 1:
        raise ValueError(f"sel_callback must return probabilities in [0, 1]; got values in "
                         f"[{lo:.3g}, {hi:.3g}] for {where}")
    return omega


def _callback_noise(covar_callback: Callable, coords: np.ndarray, where: str) -> np.ndarray:
    """covar_callback(coords), checked for shape, finiteness, symmetry and the sign of the
    variances, and symmetrized (exactly symmetric results are returned as they are)."""
    n, D = coords.shape
    S = _call(covar_callback, coords, "covar_callback", where)
    S = as_float_array(S, "covar_callback(coords)")
    if S.shape not in ((D, D), (n, D, D)):
        raise ValueError(f"covar_callback must return a ({D}, {D}) covariance for all samples or "
                         f"one per sample, ({n}, {D}, {D}); got shape {S.shape} for {where}")
    if not np.isfinite(S).all():
        raise ValueError(f"covar_callback returned NaN or inf for {where}")
    St = np.swapaxes(S, -1, -2)
    if not (np.abs(S - St) <= 1e-8 * np.abs(St)).all():
        raise ValueError(f"covar_callback returned non-symmetric covariances for {where}")
    if (np.diagonal(S, axis1=-2, axis2=-1) < 0).any():
        raise ValueError(f"covar_callback returned negative variances for {where}")
    return 0.5 * (S + St)


def _noise_eigh(S: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of (D, D) or (n, D, D) noise, refused unless PSD
    (one decomposition serves the check and the noise root; a shared matrix's is cached)."""
    val, vec = (_shared_noise_eigh(S.tobytes(), S.shape[0]) if S.ndim == 2
                else np.linalg.eigh(S))
    low = val.reshape(-1, val.shape[-1])
    scale = np.maximum(np.abs(low).max(axis=1), np.finfo(float).tiny)
    bad = np.flatnonzero(low[:, 0] < -1e-10 * scale)
    if bad.size:
        raise ValueError(f"covar_callback returned {bad.size} covariance(s) that are not positive "
                         f"semi-definite (smallest eigenvalue {low[bad[0], 0]:.3g}) for {where}")
    return val, vec


@functools.lru_cache(maxsize=8)
def _shared_noise_eigh(S_bytes: bytes, D: int) -> tuple[np.ndarray, np.ndarray]:
    """``eigh`` of one (D, D) matrix, cached by value (a callback that returns the same
    matrix on every iteration needs one eigendecomposition per fit)."""
    val, vec = np.linalg.eigh(np.frombuffer(S_bytes).reshape(D, D))
    val.flags.writeable = vec.flags.writeable = False
    return val, vec


def evaluate_noise(covar_callback: Callable, coords: np.ndarray, where: str) -> np.ndarray:
    """Noise covariance(s) at ``coords``: (D, D) shared or (n, D, D), checked (also PSD).

    Raises
    ------
    CallbackError, ValueError
    """
    S = _callback_noise(covar_callback, coords, where)
    _noise_eigh(S, where)
    return S


def noisy(covar_callback: Callable, x: np.ndarray, eta: np.ndarray, where: str
          ) -> tuple[np.ndarray, np.ndarray]:
    """Noisy draws ``x + G eta`` with ``G G^T = S = covar_callback(x)`` (checked as by
    :func:`evaluate_noise`), for standard-normal variates ``eta`` of shape x.shape; and S."""
    S = _callback_noise(covar_callback, x, where)
    val, vec = _noise_eigh(S, where)
    G = vec * np.sqrt(np.maximum(val, 0.0))[..., None, :]
    if S.ndim == 2:
        return x + eta @ G.T, S
    return x + np.einsum("nab,nb->na", G, eta), S


class Block(NamedTuple):
    """One block of imputation draws at the current parameters.

    Attributes
    ----------
    coords : ndarray (n, D)   noisy draws (what the selection sees)
    noise : None or ndarray (D, D) / (n, D, D)   their noise covariance
    omega : ndarray (n,)   selection probability of each draw
    member : ndarray (n,) of int   the component each draw came from (K: the background)
    """

    coords: np.ndarray
    noise: np.ndarray | None
    omega: np.ndarray
    member: np.ndarray


class ImputationSampler:
    """Common-random-number draws from a mixture (plus background) through noise and selection.

    Parameters
    ----------
    entropy : int
        Seed of all imputation variates of one fit.
    D : int
    background : bool
        Whether the model has a background (then uniform variates are drawn too).
    noise : bool
        Whether imputed samples get noise (then normal noise variates are drawn).
    """

    def __init__(self, entropy: int, D: int, background: bool, noise: bool) -> None:
        self.entropy = int(entropy)
        self.D = D
        self.background = background
        self.noise = noise
        self._cache: dict[int, tuple[np.ndarray, ...]] = {}
        self._cache_limit = 1 << 24        # doubles of variates kept between iterations
        self._engine: Any = None           # the Sobol sequence, positioned at block _pos
        self._pos, self._shape = 0, (0, 0)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # a worker gets the sampler without its sequence's position (made again there)
        state = dict(self.__dict__, _engine=None, _pos=0)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _sobol_block(self, b: int, d: int, B: int) -> np.ndarray:
        """Points b*B ... (b+1)*B - 1 of the fit's scrambled Sobol sequence. The sequence is
        kept at the end of the last block made, so blocks made in order (those beyond the
        cache, every iteration) skip nothing; a block behind it starts the sequence again.
        (Fast-forwarding from the start for every block made the E-step's cost quadratic in
        the number of draws beyond the cache.)"""
        with self._lock:
            if self._engine is None or b < self._pos or (d, B) != self._shape:
                seed = np.random.default_rng(np.random.SeedSequence(self.entropy))
                self._engine = scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)
                self._pos, self._shape = 0, (d, B)
            if b > self._pos:
                self._engine.fast_forward((b - self._pos) * B)
            out = self._engine.random(B)
            self._pos = b + 1
            return out

    def _uniforms(self, b: int, fresh: int = -1, n: int = 0) -> np.ndarray:
        """Block b of the (B, 1 + D (1 + noise + background)) uniform variates; with ``fresh``
        >= 0 the first n points of block b of the randomization ``fresh`` instead: its own
        scrambling of the Sobol sequence (online EM draws each update from its own)."""
        B, D = get_settings().imputation_block, self.D
        d = 1 + D * (1 + self.noise + self.background)
        sobol = get_settings().imputation_variates == "sobol"
        if fresh >= 0:
            seq = np.random.SeedSequence(self.entropy, spawn_key=(fresh, b))
            if not sobol:
                return np.random.default_rng(seq).random((n, d))
            engine = scipy.stats.qmc.Sobol(d, scramble=True, seed=np.random.default_rng(seq))
            with warnings.catch_warnings():     # the first n points: a prefix of a 2^m net
                warnings.filterwarnings("ignore", "The balance properties", UserWarning)
                return engine.random(n)
        if sobol:
            return self._sobol_block(b, d, B)
        gen = np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(b,)))
        return gen.random((B, d))

    def variates(self, b: int, fresh: int = -1, n: int = 0) -> tuple[np.ndarray, ...]:
        """The fixed variates of block b: u (B,), z (B, D), eta (B, D) or None, v (B, D) or None
        (``fresh`` >= 0: n variates of block b of that randomization, not kept)."""
        if fresh < 0 and b in self._cache:
            return self._cache[b]
        D = self.D
        P = self._uniforms(b, fresh, n)
        u = P[:, 0]
        normals = scipy.special.ndtri(np.clip(P[:, 1:1 + D * (1 + self.noise)], 1e-16, 1 - 1e-16))
        z = normals[:, :D]
        eta = normals[:, D:] if self.noise else None
        v = P[:, 1 + D * (1 + self.noise):] if self.background else None
        out = (u, z, eta, v)
        if fresh < 0 and (len(self._cache) + 1) * P.size <= self._cache_limit:
            self._cache[b] = out
        return out

    def block(self, b: int, n: int, amp: np.ndarray, mean: np.ndarray, chol: np.ndarray,
              bg: Background | None, bg_amp: float, covar_callback: Callable | None,
              sel_callback: Callable, fresh: int = -1) -> Block:
        """The first n draws of block b, with their noise and selection probability.

        Parameters
        ----------
        b, n : int
            Block index and number of draws (at most the ``imputation_block`` setting).
        fresh : int
            -1: the fit's common variates; >= 0: those of the randomization ``fresh``.
        amp, mean, chol : (K,), (K, D), (K, D, D)
            Signal amplitudes (sum 1), means, Cholesky factors of the covariances.
        bg, bg_amp : the background and its fraction (or None, 0)
        covar_callback, sel_callback : the user's callbacks
        """
        K = amp.size
        cum = np.cumsum(np.append(amp * (1 - bg_amp), bg_amp))
        u, z, eta, v = (None if a is None else a[:n] for a in self.variates(b, fresh, n))
        if fused.enabled():
            x, comp = compiled_transforms.draw_transform(u, z, v, cum, mean, chol,
                                                         None if bg is None else bg.footprint)
        else:
            comp = np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), K)
            is_bg = comp == K
            k_sig = np.where(is_bg, 0, comp)
            x = mean[k_sig] + np.einsum("nab,nb->na", chol[k_sig], z)
            if is_bg.any():
                lo, hi = bg.footprint
                x[is_bg] = lo + (hi - lo) * v[is_bg]
        where = f"imputation draws (block {b})"
        S = None
        if covar_callback is not None:
            x, S = noisy(covar_callback, x, eta, where)
        return Block(x, S, evaluate_selection(sel_callback, x, where), comp)


def block_sizes(M: int) -> list[tuple[int, int]]:
    """(block index, number of draws) of the blocks that hold M draws."""
    B = get_settings().imputation_block
    return [(b, min(B, M - b * B)) for b in range(-(-M // B))]


class BlockTask(NamedTuple):
    """What a worker needs to compute the statistics of one block of imputation draws."""

    b: int
    n: int
    amp: np.ndarray             # signal amplitudes (sum 1)
    mean: np.ndarray            # centred means
    covar: np.ndarray
    bg_amp: float
    fresh: int = -1             # >= 0: draws of their own randomization (online EM's update)


def _draw_block(p: Any, task: BlockTask) -> Block:
    """The draws of ``task`` at its parameters (coordinates of the data, not centred)."""
    return p.sampler.block(task.b, task.n, task.amp, task.mean + p.center,
                           np.linalg.cholesky(task.covar), p.bg, task.bg_amp,
                           p.imputation.covar_callback, p.imputation.sel_callback, task.fresh)


def _member_sums(block: Block, K: int) -> tuple[np.ndarray, np.ndarray]:
    """sum_j Omega_j and the number of draws of each member (K + 1,) (K: the background)."""
    return (np.bincount(block.member, weights=block.omega, minlength=K + 1),
            np.bincount(block.member, minlength=K + 1).astype(float))


def block_omega(p: Any, task: BlockTask) -> tuple[np.ndarray, np.ndarray]:
    """The selection alone of one block of imputation draws: sum_j Omega_j and the number of
    draws of each member (K + 1,), as :func:`block_stats` returns them."""
    return _member_sums(_draw_block(p, task), task.mean.shape[0])


def block_stats(p: Any, task: BlockTask) -> tuple[SufficientStats, np.ndarray, np.ndarray]:
    """Sufficient statistics of one block of imputation draws, weighted by 1 - Omega_j.

    Parameters
    ----------
    p : the fit's fixed problem (sampler, callbacks, background, centre)
    task : BlockTask

    Returns
    -------
    stats : SufficientStats of the block (to be scaled by N0 / M by the caller)
    omega : ndarray (K + 1,), sum_j Omega_j over the draws of each member (K: background)
    draws : ndarray (K + 1,), the number of draws of each member
    """
    K, D = task.mean.shape
    amp_eff = task.amp * (1 - task.bg_amp)
    log_alpha = math.log(task.bg_amp) if task.bg_amp > 0 else None
    block = _draw_block(p, task)
    stats = SufficientStats.zeros(K, D)
    omega, draws = _member_sums(block, K)
    S = block.noise
    per_sample = S is not None and S.ndim == 3
    # with one shared noise matrix the components fold it in; per-sample noise stays apart
    # (its rows are not read here)
    comps = prepare_components(amp_eff, task.mean, task.covar, S)
    if dense.kernel_path(D, per_sample, comps.quad is not None, False) in dense.SKIPS_WEIGHTLESS:
        # the fused kernels skip weight-0 (selected) draws at no cost: no copies
        rejected = slice(None)
    else:
        rejected = block.omega < 1
        if not rejected.any():
            return stats, omega, draws
    y = block.coords[rejected]
    if per_sample:
        S = S[rejected]
    wgt = 1.0 - block.omega[rejected]
    log_bg = None if log_alpha is None else p.bg.log_density(y, S) + log_alpha
    yc = y - p.center
    for sl in eval_chunks(len(y), K, D, per_sample):
        stats += dense.chunk_stats(yc[sl], comps, S[sl] if per_sample else None, wgt[sl],
                                     None if log_bg is None else log_bg[sl])
    return stats, omega, draws
