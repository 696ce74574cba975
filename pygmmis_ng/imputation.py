"""Imputation of the samples a selection function removed, and the forward model.

Each EM iteration (DESIGN §3) draws M samples from the current model (GMM
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
  b*B ... (b+1)*B - 1 of the sequence, so blocks do not depend on the
  number of workers. (``VARIATES = "pseudo"`` switches to independent
  pseudo-random blocks, for comparison.)
* **Expected rejection.** A draw is weighted by its rejection probability
  1 - Omega_j instead of being kept or dropped by a coin flip
  (Rao-Blackwellization): the same expectation with less variance for
  probabilistic selections, identical for deterministic ones.

:func:`draw` is the public forward model with pyGMMis's signature.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import scipy.special
import scipy.stats
import scipy.stats.qmc

from . import fused, kernels
from ._validation import as_float_array, check_int, check_rng
from .background import Background
from .model import GMM, eval_chunks

#: draws per block of common random numbers (independent of K, D and n_jobs)
IMPUTATION_BLOCK = 65536
#: largest sample :func:`draw` generates at once
MAX_DRAW = 1 << 25
#: "sobol" (scrambled Sobol points) or "pseudo" (PCG64 streams per block)
VARIATES = "sobol"


class CallbackError(RuntimeError):
    """A user callback (sel_callback, covar_callback) raised or returned something invalid."""


def _call(callback: Callable, coords: np.ndarray, name: str, where: str) -> Any:
    try:
        return callback(coords)
    except Exception as exc:  # re-raised with context, KeyboardInterrupt passes through
        raise CallbackError(f"{name} raised {type(exc).__name__}: {exc} (called on {where}, "
                            f"{len(coords)} coordinates)") from exc


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
    if not np.isfinite(omega).all():
        raise ValueError(f"sel_callback returned NaN or inf for {where}")
    if (omega < 0).any() or (omega > 1).any():
        raise ValueError(f"sel_callback must return probabilities in [0, 1]; got values in "
                         f"[{omega.min():.3g}, {omega.max():.3g}] for {where}")
    return omega


def evaluate_noise(covar_callback: Callable, coords: np.ndarray, where: str) -> np.ndarray:
    """Noise covariance(s) of imputed samples: (D, D) shared or (n, D, D), checked.

    Raises
    ------
    CallbackError, ValueError
    """
    n, D = coords.shape
    S = _call(covar_callback, coords, "covar_callback", where)
    S = as_float_array(S, "covar_callback(coords)")
    if S.shape not in ((D, D), (n, D, D)):
        raise ValueError(f"covar_callback must return a ({D}, {D}) covariance for all samples or "
                         f"one per sample, ({n}, {D}, {D}); got shape {S.shape} for {where}")
    if not np.isfinite(S).all():
        raise ValueError(f"covar_callback returned NaN or inf for {where}")
    if not np.allclose(S, np.swapaxes(S, -1, -2), rtol=1e-8, atol=0):
        raise ValueError(f"covar_callback returned non-symmetric covariances for {where}")
    if (np.diagonal(S, axis1=-2, axis2=-1) < 0).any():
        raise ValueError(f"covar_callback returned negative variances for {where}")
    return S


def _noise_root(S: np.ndarray) -> np.ndarray:
    """A matrix square root G with G G^T = S for (D, D) or (n, D, D) PSD S (eigh, clipped)."""
    val, vec = np.linalg.eigh(S)
    return vec * np.sqrt(np.maximum(val, 0.0))[..., None, :]


def add_noise(x: np.ndarray, S: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """x + G eta with G G^T = S, for standard-normal variates eta of shape x.shape."""
    G = _noise_root(S)
    if S.ndim == 2:
        return x + eta @ G.T
    return x + np.einsum("nab,nb->na", G, eta)


class Block(NamedTuple):
    """One block of imputation draws at the current parameters.

    Attributes
    ----------
    coords : ndarray (n, D)   noisy draws (what the selection sees)
    noise : None or ndarray (D, D) / (n, D, D)   their noise covariance
    omega : ndarray (n,)   selection probability of each draw
    """

    coords: np.ndarray
    noise: np.ndarray | None
    omega: np.ndarray


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

    def _uniforms(self, b: int) -> np.ndarray:
        """Block b of the (B, 1 + D (1 + noise + background)) uniform variates."""
        B, D = IMPUTATION_BLOCK, self.D
        d = 1 + D * (1 + self.noise + self.background)
        if VARIATES == "sobol":
            seed = np.random.default_rng(np.random.SeedSequence(self.entropy))
            engine = scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)
            if b:
                engine.fast_forward(b * B)
            return engine.random(B)
        gen = np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(b,)))
        return gen.random((B, d))

    def variates(self, b: int) -> tuple[np.ndarray, ...]:
        """The fixed variates of block b: u (B,), z (B, D), eta (B, D) or None, v (B, D) or None."""
        if b in self._cache:
            return self._cache[b]
        D = self.D
        P = self._uniforms(b)
        u = P[:, 0]
        normals = scipy.special.ndtri(np.clip(P[:, 1:1 + D * (1 + self.noise)], 1e-16, 1 - 1e-16))
        z = normals[:, :D]
        eta = normals[:, D:] if self.noise else None
        v = P[:, 1 + D * (1 + self.noise):] if self.background else None
        out = (u, z, eta, v)
        if (len(self._cache) + 1) * P.size <= self._cache_limit:
            self._cache[b] = out
        return out

    def blocks(self, M: int, amp: np.ndarray, mean: np.ndarray, chol: np.ndarray,
               bg: Background | None, bg_amp: float, covar_callback: Callable | None,
               sel_callback: Callable) -> Iterator[Block]:
        """Yield the M draws in blocks, with their noise and selection probability.

        Parameters
        ----------
        M : int
            Number of draws.
        amp, mean, chol : (K,), (K, D), (K, D, D)
            Signal amplitudes (sum 1), means, Cholesky factors of the covariances.
        bg, bg_amp : the background and its fraction (or None, 0)
        covar_callback, sel_callback : the user's callbacks
        """
        K = amp.size
        cum = np.cumsum(np.append(amp * (1 - bg_amp), bg_amp))
        for b in range(-(-M // IMPUTATION_BLOCK)):
            n = min(IMPUTATION_BLOCK, M - b * IMPUTATION_BLOCK)
            u, z, eta, v = (None if a is None else a[:n] for a in self.variates(b))
            if fused.ENABLED:
                x = fused.draw_transform(u, z, v, cum, mean, chol,
                                         None if bg is None else bg.footprint)[0]
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
                S = evaluate_noise(covar_callback, x, where)
                x = add_noise(x, S, eta)
            yield Block(x, S, evaluate_selection(sel_callback, x, where))


def imputed_stats(p: Any, st: Any, comps: kernels.Components, M: int
                  ) -> tuple[kernels.SufficientStats, float]:
    """Sufficient statistics of M imputation draws at the current parameters.

    Parameters
    ----------
    p : the fit's fixed problem (sampler, callbacks, background, centre, noise)
    st : the current state (amp, centred mean, covar, bg_amp)
    comps : Components of the observed samples' noise (reused when the
        imputed noise is the same shared matrix)
    M : number of draws

    Returns
    -------
    stats : SufficientStats of the draws weighted by 1 - Omega_j (to be
        scaled by N0 / M by the caller)
    omega_sum : sum_j Omega_j (Z = omega_sum / M)
    """
    K, D = st.mean.shape
    amp_eff = st.amp * (1 - st.bg_amp)
    log_alpha = math.log(st.bg_amp) if st.bg_amp > 0 else None
    # Components with a shared noise folded in, keyed by that noise (None: no noise);
    # the per-sample kernel path only uses the noise-free parts, so any entry serves it
    folded = p.S if p.S is not None and p.S.ndim == 2 else None
    comps_by_noise: dict[bytes | None, kernels.Components] = {
        None if folded is None else folded.tobytes(): comps}

    def comps_for(S: np.ndarray | None) -> kernels.Components:
        if S is not None and S.ndim == 3:
            return comps
        key = None if S is None else S.tobytes()
        if key not in comps_by_noise:
            comps_by_noise[key] = kernels.prepare_components(amp_eff, st.mean, st.covar, S)
        return comps_by_noise[key]

    stats = kernels.SufficientStats.zeros(K, D)
    omega_sum = 0.0
    chol = np.linalg.cholesky(st.covar)
    for block in p.sampler.blocks(M, st.amp, st.mean + p.center, chol, p.bg, st.bg_amp,
                                  p.covar_callback, p.sel_callback):
        omega_sum += float(block.omega.sum())
        S = block.noise
        per_sample = S is not None and S.ndim == 3
        if fused.use_for(D, per_sample):
            # the compiled kernel skips weight-0 (selected) draws at no cost: no copies
            rejected = slice(None)
        else:
            rejected = block.omega < 1
            if not rejected.any():
                continue
        y = block.coords[rejected]
        if per_sample:
            S = S[rejected]
        n = len(y)
        cmp = comps_for(S)
        wgt = 1.0 - block.omega[rejected]
        log_bg = None if log_alpha is None else p.bg.log_density(y, S) + log_alpha
        yc = y - p.center
        for sl in eval_chunks(n, K, D, per_sample):
            stats += kernels.chunk_stats(yc[sl], cmp, S[sl] if per_sample else None, wgt[sl],
                                         None if log_bg is None else log_bg[sl])
    return stats, omega_sum


# ---------------------------------------------------------------------------
# forward model
# ---------------------------------------------------------------------------

def _draw_model(gmm: GMM, size: int, covar_callback: Callable | None, background: Background | None,
                gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    bg_size = 0 if background is None else int(gen.binomial(size, background.amp))
    parts = [gmm.draw(size - bg_size, rng=gen)]
    if bg_size:
        parts.append(background.draw(bg_size, rng=gen))
    x = np.concatenate(parts)
    x = x[gen.permutation(len(x))]
    S = None
    if covar_callback is not None:
        S = evaluate_noise(covar_callback, x, "draws")
        x = add_noise(x, S, gen.standard_normal(x.shape))
    return x, S


def poisson_interval(n: int, alpha: float = 0.32) -> tuple[float, float]:
    """Central (1 - alpha) confidence interval of a Poisson mean given n counts (default 68%)."""
    lower = 0.5 * scipy.stats.chi2.ppf(alpha / 2, 2 * n) if n > 0 else 0.0
    upper = 0.5 * scipy.stats.chi2.ppf(1 - alpha / 2, 2 * n + 2)
    return lower, upper


def draw(gmm: GMM, obs_size: int, sel_callback: Callable | None = None, invert_sel: bool = False,
         orig_size: int | None = None, covar_callback: Callable | None = None,
         background: Background | None = None, rng: Any = None, max_tries: int = 100
         ) -> tuple[np.ndarray, np.ndarray | None, int, np.ndarray | None]:
    """Draw from the GMM (and background) with noise and selection, like pyGMMis's ``draw``.

    Draws ``orig_size`` samples from the model, adds noise from
    ``covar_callback``, and keeps each with probability Omega
    (``sel_callback``) -- or 1 - Omega with ``invert_sel``. If the number of
    selected samples is outside the 68% Poisson interval of ``obs_size``, the
    original size is re-estimated as orig_size * obs_size / selected and the
    draw repeated, so the returned sample is consistent with ``obs_size``
    observed samples.

    Parameters
    ----------
    gmm : GMM
    obs_size : int
        Number of samples the selection is meant to keep.
    sel_callback : callable or None
        coords (n, D) -> selection probability (n,) in [0, 1].
    invert_sel : bool
        Return the samples the selection rejects instead.
    orig_size : int or None
        First guess of the size before selection (default ``obs_size``).
    covar_callback : callable or None
        coords (n, D) -> noise covariance (D, D) or (n, D, D) of each draw.
    background : Background or None
        Draw a fraction ``background.amp`` from it.
    rng : None, int, Generator or RandomState
    max_tries : int
        Give up (ValueError) after this many re-draws.

    Returns
    -------
    data : ndarray (n, D)
    covar : None, ndarray (D, D) or (n, D, D)
        Noise covariance of the returned samples.
    orig_size : int
        The (re-estimated) size before selection.
    omega : ndarray (n,) or None
        Selection probability of the returned samples.
    """
    if not isinstance(gmm, GMM):
        raise TypeError(f"gmm must be a pygmmis_ng.GMM, got {type(gmm).__name__}")
    gmm.validate()
    obs_size = check_int(obs_size, "obs_size", minimum=0)
    orig_size = obs_size if orig_size is None else check_int(orig_size, "orig_size", minimum=0)
    if background is not None:
        if not isinstance(background, Background) or background.D != gmm.D:
            raise ValueError(f"background must be a pygmmis_ng.Background with D={gmm.D}")
    for name, cb in (("sel_callback", sel_callback), ("covar_callback", covar_callback)):
        if cb is not None and not callable(cb):
            raise ValueError(f"{name} must be callable or None")
    gen = check_rng(rng)
    data, S = _draw_model(gmm, orig_size, covar_callback, background, gen)
    if sel_callback is None:
        return data, S, orig_size, None
    lower, upper = poisson_interval(obs_size)
    for _ in range(max_tries):
        omega = evaluate_selection(sel_callback, data, "draws")
        sel = gen.random(len(data)) < omega
        n_sel = int(sel.sum())
        if lower <= n_sel <= upper:
            break
        if n_sel == 0 and orig_size > 0 and omega.max() == 0:
            raise ValueError(f"sel_callback gives Omega = 0 for all {orig_size} draws from the model: "
                             "the model puts (almost) no mass where samples can be selected")
        # grow at most 10x per try, and never beyond MAX_DRAW samples
        orig_size = max(1, int(round(orig_size * min(obs_size / max(n_sel, 0.5), 10.0))))
        if orig_size > MAX_DRAW:
            raise ValueError(f"obs_size={obs_size} selected samples would need more than {MAX_DRAW} "
                             "draws: the selected fraction of the model is too small")
        data, S = _draw_model(gmm, orig_size, covar_callback, background, gen)
    else:
        raise ValueError(f"could not draw a sample consistent with obs_size={obs_size} in "
                         f"{max_tries} tries")
    if invert_sel:
        sel = ~sel
    if S is not None and S.ndim == 3:
        S = S[sel]
    return data[sel], S, orig_size, omega[sel]
