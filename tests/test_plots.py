"""Plots (Agg backend): ellipse geometry against an independent construction, density grids."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import pygmmis_ng as ng  # noqa: E402
from pygmmis_ng.tools.plots import ellipse_params, plot_density, plot_ellipses  # noqa: E402


def model():
    g = ng.GMM(2, 3)
    g.amp = [0.3, 0.7]
    g.mean = [[0, 1, 2], [3, -1, 0]]
    g.covar = [[[2.0, 0.6, 0.1], [0.6, 1.0, 0.0], [0.1, 0.0, 0.5]], np.diag([0.2, 1.5, 1.0])]
    return g


def test_ellipse_holds_the_one_sigma_probability_and_is_oriented_by_the_covariance():
    g = model()
    centre, width, height, angle = ellipse_params(g, dims=(0, 1), nsig=1.0)
    np.testing.assert_allclose(centre, g.mean[:, :2])
    rng = np.random.default_rng(0)
    for k in range(2):
        C = g.covar[k][:2, :2]
        pts = rng.multivariate_normal(centre[k], C, 200000)
        # points inside the ellipse (rotate into its frame)
        t = np.radians(angle[k])
        R = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        u = (pts - centre[k]) @ R.T
        inside = (u[:, 0] / (width[k] / 2)) ** 2 + (u[:, 1] / (height[k] / 2)) ** 2 < 1
        assert inside.mean() == pytest.approx(0.6827, abs=0.005)
    # component 1 is axis-aligned with its long axis along y (variance 1.5 > 0.2)
    assert abs(abs(angle[1]) - 90) < 1e-6


def test_plot_functions_draw_and_return_what_they_drew():
    g = model()
    fig, ax = plt.subplots()
    patches = plot_ellipses(ax, g, dims=(0, 2), nsig=(1, 2))
    assert len(patches) == 4 and len(ax.patches) == 4

    def sel(c):
        return (c[:, 0] < 2).astype(float)

    dens = plot_density(ax, g, (-4, 6, -4, 5), dims=(0, 1), sel_callback=sel, resolution=50)
    x, y = np.linspace(-4, 6, 50), np.linspace(-4, 5, 50)
    expected = g.marginal([0, 1])(np.column_stack([np.full(50, x[7]), y]))
    np.testing.assert_allclose(dens[:, 7], expected)
    plt.close(fig)
