"""The Hipparcos parallax cut as a selection: velocities, parallaxes and their errors together.

A sample cut at parallax / error > c is a selection on observed quantities. It
biases the velocity distribution where the kinematics depend on what the cut
acts on: at a given distance the cut keeps the stars with small parallax
errors, the brighter (more luminous, younger, kinematically colder) ones. To
model it, the mixture must hold what the cut acts on, and every imputed star
must have it. The population is the five-parameter stars with a measured
parallax p > p_min (default 20 mas); the latent coordinates are

    x = (U, V, W, t, s),   t = L ln(p - p_min),   s = L ln sigma_p        (L = 10)

with t and s as measured (a star knows its measured parallax and its error
exactly; the velocity's noise holds the parallax error, as in
:func:`.hipparcos.tangential_velocities`). t maps the population's hard edge at
p_min to -inf, so the mixture needs no edge, and L = 10 makes the velocity
floor ``w`` = 4 (km/s)^2 a floor of 0.2 in ln p and ln sigma. A star observes
y = (v_alpha*, v_delta, t, s) = R_i x + noise, R_i = blockdiag(sky projection
(2, 3), I_2), and passes the cut if

    Omega(x) = 1[p_min + exp(t / L) > c exp(s / L)]

Imputed stars are complete: a velocity (no sky position is needed), a
parallax and an error; their draws are noise-free (``covar_callback`` gives
zeros), the cut acting on the measured parallax they stand for.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..data.validation import check_float
from ..model import GMM
from .hipparcos import Hip2, _good_parallax, parallax_error, tangential_velocities

__all__ = ["ParallaxSample", "parallax_sample", "cut_probability", "velocity_part", "L"]


#: scale of the log coordinates (units of 1/L in ln)
L = 10.0


class ParallaxSample(NamedTuple):
    """Stars with parallax > ``parallax_min`` and parallax / error > ``snr``.

    Attributes
    ----------
    y : ndarray (n, 4)
        (v_alpha*, v_delta) in km/s, t = L ln(parallax - parallax_min), s = L ln(error).
    covar : ndarray (n, 4, 4)
        Their noise: the tangential velocities' (2, 2), t and s exact.
    R : ndarray (n, 4, 5)
        blockdiag(sky projection, I_2): y = R x + noise, x = (U, V, W, t, s).
    hip : ndarray (n,)
    parallax_min, snr : float
        The cuts.
    """

    y: np.ndarray
    covar: np.ndarray
    R: np.ndarray
    hip: np.ndarray
    parallax_min: float
    snr: float

    def __repr__(self) -> str:
        return (f"ParallaxSample(<{len(self.y)} stars, parallax > {self.parallax_min:g} mas, "
                f"parallax/error > {self.snr:g}>)")


def parallax_sample(cat: Hip2, snr: float, parallax_min: float = 20.0) -> ParallaxSample:
    """The five-parameter stars of ``cat`` with parallax > ``parallax_min`` (mas) and
    parallax / error > ``snr``, as the observations of this module's model."""
    snr = check_float(snr, "snr", minimum=0.0)
    parallax_min = check_float(parallax_min, "parallax_min", minimum=0.0)
    keep = _good_parallax(cat, snr) & (cat.parallax > parallax_min)
    v = tangential_velocities(cat, snr)
    rows = np.isin(v.hip, cat.hip[keep])
    idx = np.flatnonzero(keep)
    n = len(idx)
    y = np.column_stack([v.y[rows], L * np.log(cat.parallax[idx] - parallax_min),
                         L * np.log(parallax_error(cat)[idx])])
    covar = np.zeros((n, 4, 4))
    covar[:, :2, :2] = v.covar[rows]
    R = np.zeros((n, 4, 5))
    R[:, :2, :3] = v.R[rows]
    R[:, 2, 3] = R[:, 3, 4] = 1.0
    return ParallaxSample(y, covar, R, cat.hip[idx], parallax_min, snr)


def cut_probability(coords: np.ndarray, snr: float, parallax_min: float = 20.0) -> np.ndarray:
    """Omega: 1 where a star at latent ``coords`` (n, 5) passes parallax / error > ``snr``."""
    plx = parallax_min + np.exp(coords[:, 3] / L)
    return (plx > snr * np.exp(coords[:, 4] / L)).astype(float)


def velocity_part(gmm: GMM) -> GMM:
    """The (U, V, W) marginal of a mixture over this module's x."""
    out = GMM(K=gmm.K, D=3)
    out.amp, out.mean, out.covar = gmm.amp, gmm.mean[:, :3], gmm.covar[:, :3, :3]
    return out
