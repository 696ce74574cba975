"""Test problems with a known truth: the pyGMMis paper's 2D and 3D problems,
and (from :mod:`.pairs`) random pairs of class densities with a chosen AUC.

Each function returns a :class:`Dataset`: the observed (noisy, selected)
data, their noise covariance, the selection callback, the true GMM, the
background (if any) and the complete noise-free sample before selection.
Selection callbacks return probabilities Omega(coords) in [0, 1], the
convention of :func:`pygmmis_ng.fit`; the observed sample keeps each noisy
draw with probability Omega.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..data.validation import check_float, check_int, check_rng
from ..model import GMM
from ..selection.background import Background
from .pairs import GMMPair, gmm_pair

__all__ = ["Dataset", "paper_2d", "paper_2d_truth", "paper_3d", "paper_3d_truth",
           "slope_selection", "GMMPair", "gmm_pair"]


class Dataset(NamedTuple):
    """A test problem with known truth.

    Attributes
    ----------
    data : ndarray (N_obs, D)
        Observed samples: noisy and selected.
    covar : ndarray (D, D) or None
        Their noise covariance (shared).
    sel_callback : callable
        Omega(coords) -> (n,) selection probability.
    truth : GMM
        The density the signal was drawn from.
    background : Background or None
        The background model with its true ``amp``, if contaminated.
    orig : ndarray (N, D)
        The noise-free signal sample before selection.
    selection : str
        Name of the selection.
    """

    data: np.ndarray
    covar: np.ndarray | None
    sel_callback: Callable[[np.ndarray], np.ndarray]
    truth: GMM
    background: Background | None
    orig: np.ndarray
    selection: str

    def __repr__(self) -> str:
        """One line: the shapes of the arrays, not their values."""
        def shape(a):
            return "None" if a is None else f"<array {'x'.join(map(str, np.shape(a)))}>"
        bg = "None" if self.background is None else f"<Background amp={self.background.amp:g}>"
        return (f"Dataset(data={shape(self.data)}, covar={shape(self.covar)}, "
                f"sel_callback={getattr(self.sel_callback, '__name__', 'callable')}, "
                f"truth=<GMM K={self.truth.K} D={self.truth.D}>, background={bg}, "
                f"orig={shape(self.orig)}, selection={self.selection!r})")


# ---- the 2D problem (Melchior & Goulding 2018, section 4) -------------------

def paper_2d_truth() -> GMM:
    """The 3-component 2D mixture of the pyGMMis paper."""
    gmm = GMM(K=3, D=2)
    amp = np.array([0.36060026, 0.27986906, 0.206774])
    gmm.amp = amp / amp.sum()
    gmm.mean = np.array([[0.08016886, 0.21300697],
                         [0.70306351, 0.6709532],
                         [0.01087670, 0.852077]]) * 10
    gmm.covar = np.array([[[0.08530014, -0.00314178], [-0.00314178, 0.00541106]],
                          [[0.03053402, 0.0125736], [0.0125736, 0.01075791]],
                          [[0.00258605, 0.00409287], [0.00409287, 0.01065186]]]) * 100
    return gmm


#: the paper's box [0, 10]^2 and hole (centre (6.5, 6), radius 2)
BOX = np.array([[0.0, 0.0], [10.0, 10.0]])
HOLE = (6.5, 6.0, 2.0)
#: footprint of the 2D background
FOOTPRINT_2D = np.array([[-10.0, -10.0], [20.0, 20.0]])


def _box(coords: np.ndarray) -> np.ndarray:
    return ((coords > BOX[0]) & (coords < BOX[1])).all(axis=1).astype(float)


def _hole(coords: np.ndarray) -> np.ndarray:
    x, y, r = HOLE
    return (((coords[:, 0] - x) ** 2 + (coords[:, 1] - y) ** 2) > r**2).astype(float)


def _box_with_hole(coords: np.ndarray) -> np.ndarray:
    return _box(coords) * _hole(coords)


def _cut(coords: np.ndarray) -> np.ndarray:
    return (coords[:, 0] < 6).astype(float)


def _half(coords: np.ndarray) -> np.ndarray:
    return np.full(len(coords), 0.5)


def _none(coords: np.ndarray) -> np.ndarray:
    return np.ones(len(coords))


#: selection callbacks of the 2D problem, by name
SELECTIONS_2D: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "box": _box, "hole": _hole, "box_with_hole": _box_with_hole, "cut": _cut,
    "half": _half, "none": _none,
}


def _observe(orig: np.ndarray, sigma: float, sel_callback: Callable, gen: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray | None]:
    D = orig.shape[1]
    noisy = orig + gen.normal(0.0, sigma, size=orig.shape) if sigma > 0 else orig.copy()
    keep = gen.random(len(noisy)) < sel_callback(noisy)
    return noisy[keep], (sigma**2 * np.eye(D) if sigma > 0 else None)


def paper_2d(N: int = 400, selection: str = "box_with_hole", sigma: float = 0.5,
             bg_amp: float = 0.0, rng: Any = None) -> Dataset:
    """The pyGMMis paper's 2D test problem.

    N signal samples are drawn from :func:`paper_2d_truth` (plus
    ``bg_amp / (1 - bg_amp) * N`` uniform background samples on
    [-10, 20]^2), isotropic Gaussian noise of dispersion ``sigma`` is added,
    and the selection is applied to the noisy samples.

    Parameters
    ----------
    N : int
        Number of signal samples before noise and selection (the paper uses 400).
    selection : {'box', 'hole', 'box_with_hole', 'cut', 'half', 'none'}
        Box [0, 10]^2; outside the circle of radius 2 around (6.5, 6); both;
        x < 6; a random half (Omega = 0.5); no selection.
    sigma : float >= 0
        Noise dispersion.
    bg_amp : float in [0, 1)
        Background fraction of the complete sample.
    rng : None, int, Generator or RandomState

    Returns
    -------
    Dataset
    """
    N = check_int(N, "N", minimum=1)
    if selection not in SELECTIONS_2D:
        raise ValueError(f"unknown selection {selection!r}; use one of {sorted(SELECTIONS_2D)}")
    sigma = check_float(sigma, "sigma", minimum=0.0)
    bg_amp = check_float(bg_amp, "bg_amp", minimum=0.0)
    if bg_amp >= 1:
        raise ValueError(f"bg_amp must be < 1, got {bg_amp}")
    gen = check_rng(rng)
    truth = paper_2d_truth()
    orig = truth.draw(N, rng=gen)
    background = None
    complete = orig
    if bg_amp > 0:
        background = Background(FOOTPRINT_2D, amp=bg_amp)
        n_bg = int(bg_amp / (1 - bg_amp) * N)
        complete = np.concatenate([orig, background.draw(n_bg, rng=gen)])
    cb = SELECTIONS_2D[selection]
    data, covar = _observe(complete, sigma, cb, gen)
    return Dataset(data, covar, cb, truth, background, orig, selection)


# ---- the 3D problem (Melchior & Goulding 2018, section 5) -------------------

def slope_selection(coords: np.ndarray) -> np.ndarray:
    """Omega = 1 - x_0, clipped to [0, 1]: the paper's 3D selection."""
    return np.clip(1.0 - coords[:, 0], 0.0, 1.0)


def paper_3d_truth(K: int = 50, w: float = 0.01, rng: Any = None) -> GMM:
    """K components in the unit cube: Dirichlet(1) amplitudes, uniform means,
    randomly rotated covariances with axis dispersions w + U(0, 1/30)."""
    K = check_int(K, "K", minimum=1)
    gen = check_rng(rng)
    D = 3
    gmm = GMM(K=K, D=D)
    gmm.amp = gen.dirichlet(np.ones(K))
    gmm.mean = gen.random((K, D))
    covar = np.empty((K, D, D))
    for k in range(K):
        Q, _ = np.linalg.qr(gen.normal(size=(D, D)))
        covar[k] = Q @ np.diag((w + gen.random(D) / 30) ** 2) @ Q.T
    gmm.covar = 0.5 * (covar + np.swapaxes(covar, 1, 2))
    return gmm


def paper_3d(N: int = 10000, K: int = 50, sigma: float = 0.0, rng: Any = None) -> Dataset:
    """The pyGMMis paper's 3D problem: K random components in the unit cube,
    observed with probability 1 - x (and optional isotropic noise ``sigma``)."""
    N = check_int(N, "N", minimum=1)
    sigma = check_float(sigma, "sigma", minimum=0.0)
    gen = check_rng(rng)
    truth = paper_3d_truth(K, rng=gen)
    orig = truth.draw(N, rng=gen)
    data, covar = _observe(orig, sigma, slope_selection, gen)
    return Dataset(data, covar, slope_selection, truth, None, orig, "slope")
