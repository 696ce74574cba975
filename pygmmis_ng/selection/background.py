"""A uniform background on a box, fitted together with the mixture.

The full model of a sample is ``(1 - amp) * GMM + amp * Background``: the
GMM's amplitudes always sum to 1 (it is the density of the signal) and
``Background.amp`` is the fraction of background samples. pyGMMis instead
rescales the GMM amplitudes to sum to ``1 - amp``.

With noise S the background density of an observed sample y is the box
convolved with N(0, S): for diagonal S exactly the product over dimensions
of ``(erf((y_d - lo_d) / sqrt(2 S_dd)) - erf((y_d - hi_d) / sqrt(2 S_dd))) / 2``
divided by the box volume. For correlated (full) S the same product of the
per-axis marginals is used: it is exact wherever the sample is more than a
few sigma from the footprint's faces (the density is then 1/volume either
way) and an approximation of the rectangle probability only near the
faces. Keep the footprint well beyond the selected region and this does not
matter.
"""
from __future__ import annotations

import copy as _copy
from typing import Any

import numpy as np
from scipy.special import log_ndtr, ndtr

from ..data.validation import as_float_array, check_float, check_int, check_rng


class Background:
    """Uniform background on a rectangular footprint.

    Parameters
    ----------
    footprint : array-like (2, D)
        Lower and upper corner of the box, ``footprint[1] > footprint[0]``.
    amp : float in [0, 1]
        Fraction of all (selected and unselected) samples that come from the
        background.

    Attributes
    ----------
    footprint : ndarray (2, D)
    amp : float
    adjust_amp : bool
        Whether :func:`pygmmis_ng.fit` fits ``amp`` (default True).
    amp_min, amp_max : float
        Bounds of the fitted amplitude (default 0 and 1).
    """

    def __init__(self, footprint: Any, amp: float = 0.0) -> None:
        fp = as_float_array(footprint, "footprint")
        if fp.ndim != 2 or fp.shape[0] != 2 or fp.shape[1] < 1:
            raise ValueError("footprint must have shape (2, D): the lower and the upper corner "
                             f"of the box; got shape {fp.shape}")
        if not np.isfinite(fp).all():
            raise ValueError("footprint must be finite")
        if not (fp[1] > fp[0]).all():
            raise ValueError("footprint[1] (upper corner) must exceed footprint[0] (lower corner) "
                             "in every dimension")
        self.footprint = fp.copy()
        self.amp = amp
        self.adjust_amp = True
        self.amp_min = 0.0
        self.amp_max = 1.0

    @property
    def D(self) -> int:
        """Dimension of the footprint."""
        return self.footprint.shape[1]

    @property
    def amp(self) -> float:
        return self._amp

    @amp.setter
    def amp(self, value: Any) -> None:
        value = check_float(value, "Background.amp", minimum=0.0)
        if value >= 1:
            raise ValueError(f"Background.amp must be < 1 (a fraction of the samples), got {value}")
        self._amp = value

    @property
    def volume(self) -> float:
        return float(np.prod(self.footprint[1] - self.footprint[0]))

    @property
    def p(self) -> float:
        """Density inside the footprint: 1 / volume."""
        return 1.0 / self.volume

    def validate(self) -> None:
        """Check the amplitude bounds (and that amp lies within them)."""
        lo = check_float(self.amp_min, "Background.amp_min", minimum=0.0)
        hi = check_float(self.amp_max, "Background.amp_max", minimum=0.0)
        if not lo <= hi <= 1:
            raise ValueError(f"Background needs 0 <= amp_min <= amp_max <= 1, got "
                             f"amp_min={lo}, amp_max={hi}")
        if not isinstance(self.adjust_amp, (bool, np.bool_)):
            raise ValueError(f"Background.adjust_amp must be a bool, got {self.adjust_amp!r}")
        self.amp = self.amp

    def copy(self) -> Background:
        return _copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"Background(footprint={self.footprint.tolist()}, amp={self.amp:.4g})"

    def log_density(self, coords: np.ndarray, covar: np.ndarray | None = None,
                    dims: np.ndarray | None = None, censored: np.ndarray | None = None
                    ) -> np.ndarray:
        """log of the (noise-convolved) background density, not weighted by amp.

        Parameters
        ----------
        coords : ndarray (N, D), or (N, len(dims))
        covar : None, ndarray (D, D) or (N, D, D) (or of the ``dims`` only)
            Noise covariance; only its diagonal is used (see module notes).
        dims : None or int array
            Evaluate the marginal density of these dimensions (the
            measured features of samples with missing ones).
        censored : None or int array (len(dims) or D,)
            Values that are limits (-1: upper, +1: lower; the same for every sample): their
            term is the probability that the (noisy) value lies beyond the limit, a
            fraction of the box's side (see :func:`censored_log_fraction`).

        Returns
        -------
        ndarray (N,): log(1/volume) inside, -inf outside without noise.
        """
        x = np.asarray(coords, dtype=float)
        lo, hi = self.footprint if dims is None else self.footprint[:, dims]
        if censored is not None and np.any(censored):
            lim = np.flatnonzero(censored)
            meas = np.flatnonzero(np.asarray(censored) == 0)
            S = None if covar is None else np.asarray(covar, dtype=float)
            var = None if S is None else np.diagonal(S, axis1=-2, axis2=-1)
            out = censored_log_fraction(x[:, lim], lo[lim], hi[lim], censored[lim],
                                        None if var is None else var[..., lim])
            if meas.size:
                Sm = None if S is None else S[..., meas[:, None], meas]
                sub = Background(np.stack([lo[meas], hi[meas]]))
                out = out + sub.log_density(x[:, meas], Sm)
            return out
        log_p = np.full(x.shape[0], -np.log(hi - lo).sum())
        if covar is None:
            inside = ((x > lo) & (x < hi)).all(axis=1)
            log_p[~inside] = -np.inf
            return log_p
        S = np.asarray(covar, dtype=float)
        var = np.diagonal(S, axis1=-2, axis2=-1)            # (D,) or (N, D)
        sd = np.sqrt(np.broadcast_to(var, x.shape))
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (x - lo) / sd                                # P(lo < x - e < hi) for e ~ N(0, sd)
            b = (hi - x) / sd
            # log(Phi(a) + Phi(b) - 1), computed stably as log(1 - Phi(-a) - Phi(-b))
            log_mass = np.log1p(-np.exp(log_ndtr(-a)) - np.exp(log_ndtr(-b)))
            # far outside one face the mass Phi(m) - Phi(-M) (m = min(a, b), M = max(a, b))
            # cancels in the form above: log Phi(m) + log(1 - Phi(-M) / Phi(m)) instead
            m, big = np.minimum(a, b), np.maximum(a, b)
            tail = m < -5
            if tail.any():
                lm = log_ndtr(m)
                log_tail = lm + np.log1p(-np.exp(np.minimum(log_ndtr(-big) - lm, 0.0)))
                log_mass = np.where(tail, log_tail, log_mass)
            zero_sd = sd == 0
            if zero_sd.any():
                inside = (x > lo) & (x < hi)
                log_mass = np.where(zero_sd, np.where(inside, 0.0, -np.inf), log_mass)
        return log_p + log_mass.sum(axis=1)

    def __call__(self, coords: Any, covar: Any = None, as_log: bool = False) -> np.ndarray:
        """Density of the background (not weighted by amp), like ``GMM.__call__``."""
        x = as_float_array(coords, "coords")
        if x.ndim == 1:
            x = x[None]
        log_p = self.log_density(x, None if covar is None else as_float_array(covar, "covar"))
        return log_p if as_log else np.exp(log_p)

    def draw(self, size: int = 1, rng: Any = None) -> np.ndarray:
        """Uniform samples in the footprint, shape (size, D)."""
        size = check_int(size, "size", minimum=0)
        gen = check_rng(rng)
        lo, hi = self.footprint
        return lo + (hi - lo) * gen.random((size, self.D))


def censored_log_fraction(limit: np.ndarray, lo: np.ndarray, hi: np.ndarray, side: np.ndarray,
                          var: np.ndarray | None) -> np.ndarray:
    """sum over the limited values of log P(y beyond the limit) for y uniform on [lo, hi]
    (+ noise N(0, var)): ``side`` -1 for y < limit, +1 for y > limit; (n,) of limits (n, c).

    Without noise the fraction of the side below the limit, (clip(l, lo, hi) - lo) /
    (hi - lo); with noise of standard deviation s its convolution,
    s (G((l - lo)/s) - G((l - hi)/s)) / (hi - lo) with G(t) = t Phi(t) + phi(t).
    """
    lim = np.where(side < 0, limit, -limit)           # y > l is -y < -l: a box flipped
    a, b = np.where(side < 0, lo, -hi), np.where(side < 0, hi, -lo)
    width = b - a
    frac = np.clip((lim - a) / width, 0.0, 1.0)       # without noise
    if var is not None:
        s = np.sqrt(np.broadcast_to(var, lim.shape))
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (lim - a) / s, (lim - b) / s
            g = lambda t: t * ndtr(t) + np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)  # noqa: E731
            frac = np.where(s > 0, s * (g(t1) - g(t2)) / width, frac)
    with np.errstate(divide="ignore"):
        return np.log(np.clip(frac, 0.0, 1.0)).sum(axis=1)


def check_background(background: Any, X: np.ndarray | None, D: int) -> Any:
    """A validated copy of the fit's background (or None); it must cover some data (unless
    ``X`` is None: the caller checks that)."""
    if background is None:
        return None
    if not isinstance(background, Background):
        raise TypeError(f"background must be a pygmmis_ng.Background, got {type(background).__name__}")
    if background.D != D:
        raise ValueError(f"background footprint has D={background.D} dimensions, the model D={D}")
    background.validate()
    lo, hi = background.footprint
    if X is not None and not (((X > lo) & (X < hi)) | np.isnan(X)).all(axis=1).any():
        raise ValueError("the background footprint contains none of the data: it must cover the "
                         "region where background samples can be observed")
    return background.copy()
