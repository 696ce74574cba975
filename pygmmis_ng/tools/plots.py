"""Plots of mixtures (matplotlib, an optional extra: ``pip install "pygmmis_ng[plot]"``).

* :func:`ellipse_params` / :func:`plot_ellipses`: confidence ellipses of the
  components in two chosen dimensions (the marginal of each component);
* :func:`plot_density`: density contours of the 2D marginal, with the region
  a selection function rejects shaded.

Every function draws on a given matplotlib ``Axes`` and returns what it drew.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats

from ..model import GMM


def ellipse_params(gmm: GMM, dims: tuple[int, int] = (0, 1), nsig: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres (K, 2), full widths (K,), full heights (K,) and angles (K,) in degrees.

    The ellipse of component k holds the same probability as the +-nsig
    interval of a 1D Gaussian (the chi2 quantile in 2 dimensions), for the
    component's marginal in ``dims``.
    """
    m = gmm.marginal(list(dims))
    val, vec = np.linalg.eigh(m.covar)                    # ascending eigenvalues
    r = np.sqrt(scipy.stats.chi2.ppf(1 - 2 * scipy.stats.norm.sf(nsig), 2))
    width = 2 * r * np.sqrt(val[:, 1])
    height = 2 * r * np.sqrt(val[:, 0])
    angle = np.degrees(np.arctan2(vec[:, 1, 1], vec[:, 0, 1]))
    return m.mean, width, height, angle


def plot_ellipses(ax: Any, gmm: GMM, dims: tuple[int, int] = (0, 1),
                  nsig: tuple[float, ...] = (1.0, 2.0), **kwargs: Any) -> list:
    """Confidence ellipses of every component (line width follows the amplitude)."""
    from matplotlib.patches import Ellipse

    kwargs = {"fc": "none", "ec": "C3", **kwargs}
    lw_fixed = kwargs.pop("lw", None)
    patches = []
    for s in nsig:
        centre, width, height, angle = ellipse_params(gmm, dims, s)
        for k in range(gmm.K):
            lw = lw_fixed if lw_fixed is not None else 0.5 + 2.5 * gmm.amp[k] / gmm.amp.max()
            e = Ellipse(centre[k], width[k], height[k], angle=angle[k], lw=lw, **kwargs)
            ax.add_patch(e)
            patches.append(e)
    ax.autoscale_view()
    return patches


def plot_density(ax: Any, gmm: GMM, extent: tuple[float, float, float, float],
                 dims: tuple[int, int] = (0, 1), sel_callback: Any = None,
                 resolution: int = 120, levels: int = 10, cmap: str = "Greys") -> np.ndarray:
    """Contours of the density of the marginal in ``dims`` over ``extent`` (x0, x1, y0, y1).

    With ``sel_callback`` (on the marginal's 2 coordinates) the rejected
    region (Omega < 0.5) is hatched. Returns the density grid (resolution,
    resolution), rows along y.
    """
    x = np.linspace(extent[0], extent[1], resolution)
    y = np.linspace(extent[2], extent[3], resolution)
    xx, yy = np.meshgrid(x, y)
    coords = np.column_stack([xx.ravel(), yy.ravel()])
    dens = gmm.marginal(list(dims))(coords).reshape(resolution, resolution)
    ax.contourf(x, y, dens, levels, cmap=cmap)
    if sel_callback is not None:
        omega = np.asarray(sel_callback(coords), dtype=float).reshape(resolution, resolution)
        ax.contourf(x, y, omega < 0.5, levels=[0.5, 1.5], colors="none", hatches=["//"])
        ax.contour(x, y, omega, levels=[0.5], colors="C0", linestyles="--")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    return dens
