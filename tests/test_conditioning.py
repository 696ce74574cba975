"""GMM.marginal and GMM.condition against densities of the full mixture (Bayes' rule)."""
from __future__ import annotations

import numpy as np
import pytest

import pygmmis_ng as ng


def model(D=3, K=3, seed=0):
    rng = np.random.default_rng(seed)
    g = ng.GMM(K, D)
    g.amp = rng.dirichlet(np.ones(K) * 3)
    g.mean = rng.normal(0, 2, (K, D))
    A = rng.normal(size=(K, D, D))
    g.covar = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
    return g


@pytest.mark.parametrize("dims", [[0], [2], [0, 2], [True, False, True]])
def test_marginal_density_is_the_full_density_with_the_rest_missing(dims):
    g = model()
    m = g.marginal(dims)
    keep = np.flatnonzero(dims) if isinstance(dims[0], bool) else np.asarray(dims)
    x = np.random.default_rng(1).normal(size=(50, keep.size))
    full = np.full((50, 3), np.nan)
    full[:, keep] = x
    np.testing.assert_allclose(m.logL(x), g.logL(full), atol=1e-12)
    # and integrating the full density numerically (1D marginal of a 2D model)
    g2 = model(D=2, K=2, seed=3)
    grid = np.linspace(-40, 40, 40001)
    for x0 in (-1.0, 0.5, 2.0):
        pts = np.column_stack([np.full_like(grid, x0), grid])
        numeric = np.trapezoid(g2(pts), grid)
        assert g2.marginal([0])(np.array([x0])) == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("dims", [[1], [0, 2], [2]])
def test_conditional_density_is_joint_over_marginal(dims):
    g = model()
    rng = np.random.default_rng(2)
    v = rng.normal(size=len(dims))
    c = g.condition(v, dims)
    rest = np.setdiff1d(np.arange(3), dims)
    assert c.D == rest.size and c.amp.sum() == pytest.approx(1.0)
    x = rng.normal(size=(40, rest.size))
    full = np.empty((40, 3))
    full[:, rest] = x
    full[:, dims] = v
    expected = g.logL(full) - g.marginal(dims).logL(v[None])[0]
    np.testing.assert_allclose(c.logL(x), expected, atol=1e-10)


def test_condition_on_noisy_values():
    """Given y = x[d] + e, e ~ N(0, S): p(x_r | y) = p(x_r, y) / p(y), where (x_r, y) is
    the mixture convolved with noise on d only."""
    g = model()
    S = np.array([[0.3, 0.1], [0.1, 0.2]])
    v = np.array([0.4, -1.0])
    c = g.condition(v, [0, 2], noise=S)
    noise_full = np.zeros((3, 3))
    noise_full[np.ix_([0, 2], [0, 2])] = S
    x = np.random.default_rng(3).normal(size=(30, 1))
    full = np.column_stack([np.full(30, v[0]), x[:, 0], np.full(30, v[1])])
    expected = g.logL(full, covar=noise_full) - g.marginal([0, 2]).logL(v[None], covar=S)[0]
    np.testing.assert_allclose(c.logL(x), expected, atol=1e-10)


def test_conditioning_errors():
    g = model()
    with pytest.raises(ValueError, match="fewer than all D dimensions"):
        g.condition([0, 0, 0], [0, 1, 2])
    with pytest.raises(ValueError, match="values must be 2 finite numbers"):
        g.condition([0.0], [0, 1])
    with pytest.raises(ValueError, match="out of range for D=3"):
        g.marginal([3])
    with pytest.raises(ValueError, match="repeated dimensions"):
        g.marginal([1, 1])
    with pytest.raises(ValueError, match="non-empty sequence of dimension indices"):
        g.marginal([])
