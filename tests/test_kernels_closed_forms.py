"""The closed-form per-sample-noise kernels (D = 1 ... 4) equal the general compiled kernel
(issue 18)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_spd

from pygmmis_ng.kernels import compiled, compiled_d3, compiled_d4, compiled_d12

CLOSED = {1: compiled_d12.stats_per_sample_d1, 2: compiled_d12.stats_per_sample_d2,
          3: compiled_d3.stats_per_sample_d3, 4: compiled_d4.stats_per_sample_d4}


def _problem(seed, n=4000, K=6, D=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)) * 3
    S = random_spd(rng, n, D, 0.02, 3.0)
    mean = rng.normal(size=(K, D)) * 3
    covar = random_spd(rng, K, D, 0.05, 4.0)
    weight = rng.uniform(0, 2, n)
    weight[::11] = 0.0
    log_amp = np.log(rng.dirichlet(np.ones(K)) * 0.9)
    log_bg = np.full(n, np.log(0.1 / 500.0))
    return x, S, weight, log_bg, mean, covar, log_amp


def _both(x, S, weight, log_bg, mean, covar, log_amp, nbr=None, redo=None, c2=0.0):
    K, D = mean.shape
    out = []
    for kernel in ("general", "closed"):
        sums = [np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), np.zeros((K, D, D))]
        flags = np.zeros((0, 0), np.uint8) if nbr is None else nbr.copy()
        args = (x, S, weight, log_bg, 1, mean, covar, log_amp, flags,
                np.zeros(K, np.uint8) if redo is None else redo, c2)
        if kernel == "closed":
            res = CLOSED[D](*args, compiled.Q_NEGLIGIBLE, *sums)
        else:
            res = compiled._stats_per_sample_jit(*args, *sums)
        out.append((res, sums, flags))
    return out


@pytest.mark.parametrize("D", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_equals_the_general_kernel(seed, D):
    (ra, sa, _), (rb, sb, _) = _both(*_problem(seed, D=D))
    assert ra[2] == rb[2] == 0
    assert rb[0] == pytest.approx(ra[0], rel=1e-13)                 # logL
    assert rb[1] == pytest.approx(ra[1], rel=1e-12)                 # background
    for a, b in zip(sa, sb):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-12 * np.abs(a).max())


@pytest.mark.parametrize("D", [1, 2, 3, 4])
def test_neighborhood_flags_are_those_of_the_general_kernel(D):
    x, S, weight, log_bg, mean, covar, log_amp = _problem(3, D=D)
    K = mean.shape[0]
    nbr = np.zeros((len(x), K), np.uint8)
    redo = np.ones(K, np.uint8)
    (ra, sa, fa), (rb, sb, fb) = _both(x, S, weight, log_bg, mean, covar, log_amp, nbr, redo,
                                        c2=9.0)
    assert fa.any() and not fa.all()                        # the cutoff does cut
    assert np.array_equal(fa, fb)
    # a later pass that redoes only some components reads the stored flags of the others
    redo2 = np.array([1, 0, 0, 1, 0, 0], np.uint8)
    (ra, sa, fa), (rb, sb, fb) = _both(x, S, weight, log_bg, mean * 1.01, covar, log_amp,
                                        fa, redo2, c2=9.0)
    assert np.array_equal(fa, fb) and ra[0] == pytest.approx(rb[0], rel=1e-13)
    for a, b in zip(sa, sb):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-12 * np.abs(a).max())


@pytest.mark.parametrize("D", [1, 2, 3, 4])
def test_a_covariance_that_is_not_positive_definite_is_reported_at_its_sample(D):
    x, S, weight, log_bg, mean, covar, log_amp = _problem(4, n=50, D=D)
    S = S.copy()
    S[17] = -10.0 * np.eye(D)
    (ra, _, _), (rb, _, _) = _both(x, S, weight, log_bg, mean, covar, log_amp)
    assert ra[2] == rb[2] == 18                             # 1 + the sample's index
    with pytest.raises(np.linalg.LinAlgError, match="sample 17"):
        compiled.stats_per_sample(x, S, weight, log_bg, mean, covar, log_amp)
