"""The many-pattern (masked) E-step kernel against a brute-force numpy sum, sample by sample
(issue 18: the kernel was rewritten to keep a pattern's factors and sums while it lasts)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_spd
from scipy.special import logsumexp

from pygmmis_ng.kernels import fused

pytestmark = pytest.mark.skipif(not fused.enabled(), reason="the masked kernel is compiled")


def _problem(seed, n=600, K=4, D=6, frac=0.35, noise="shared"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)) * 2
    x[rng.random((n, D)) < frac] = np.nan
    x[np.isnan(x).all(axis=1), 0] = 0.5
    x = x[np.argsort(rng.integers(0, 4, n), kind="stable")]     # runs of patterns, and breaks
    S = {"none": None, "shared": random_spd(rng, 1, D, 0.05, 0.5)[0],
         "per-sample": random_spd(rng, n, D, 0.05, 0.5)}[noise]
    mean = rng.normal(size=(K, D))
    covar = random_spd(rng, K, D, 0.3, 3.0)
    log_amp = np.log(rng.dirichlet(np.ones(K)) * 0.9)
    weight = rng.uniform(0, 2, n)
    weight[::7] = 0.0
    log_bg = np.full(n, np.log(0.1 / 400.0))
    return x, S, weight, log_bg, mean, covar, log_amp


def _brute_force(x, S, weight, log_bg, mean, covar, log_amp):
    """A, Mc, Cc, logL, B from the definitions: per sample the marginal over its measured
    values o, u = T^-1 (x_o - m_o), Mc = V Σ E^T u, Cc = V [Σ E^T (u u^T - T^-1) E] V + A V."""
    K, D = mean.shape
    A, SU, G = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    logL = B = 0.0
    for i in range(len(x)):
        o = ~np.isnan(x[i])
        Si = np.zeros((D, D)) if S is None else (S if S.ndim == 2 else S[i])
        T = covar[:, o][:, :, o] + Si[o][:, o]
        d = x[i, o] - mean[:, o]
        Tinv = np.linalg.inv(T)
        u = np.einsum("kab,kb->ka", Tinv, d)
        lp = log_amp - 0.5 * (o.sum() * np.log(2 * np.pi) + np.linalg.slogdet(T)[1]
                              + np.einsum("ka,ka->k", d, u))
        tot = logsumexp(np.append(lp, log_bg[i]))
        q = weight[i] * np.exp(lp - tot)
        logL += weight[i] * tot
        B += weight[i] * np.exp(log_bg[i] - tot)
        A += q
        SU[:, o] += q[:, None] * u
        G[np.ix_(range(K), o, o)] += q[:, None, None] * (u[:, :, None] * u[:, None, :] - Tinv)
    Mc = np.einsum("kab,kb->ka", covar, SU)
    Cc = covar @ G @ covar + A[:, None, None] * covar
    return A, Mc, Cc, logL, B


@pytest.mark.parametrize("noise", ["none", "shared", "per-sample"])
def test_masked_kernel_equals_brute_force(noise):
    args = _problem(1, noise=noise)
    got = fused.stats_masked(*args)
    want = _brute_force(*args)
    for g, w in zip(got[:3], want[:3]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)
    assert got[3] == pytest.approx(want[3], rel=1e-12)
    assert got[4] == pytest.approx(want[4], rel=1e-10)


def test_masked_kernel_complete_rows_and_one_pattern_per_sample():
    """Edge cases of the pattern runs: every row complete (one run), and every row its own
    pattern (a run of one: the shared factors are remade for each sample)."""
    x, S, weight, log_bg, mean, covar, log_amp = _problem(2, frac=0.0)
    for xs in (x, np.where(np.eye(6, dtype=bool)[np.arange(len(x)) % 6], np.nan, x)):
        got = fused.stats_masked(xs, S, weight, log_bg, mean, covar, log_amp)
        want = _brute_force(xs, S, weight, log_bg, mean, covar, log_amp)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("noise", ["shared", "per-sample"])
def test_masked_kernel_reports_the_sample_with_a_non_definite_T(noise):
    x, S, weight, log_bg, mean, covar, log_amp = _problem(3, noise=noise)
    covar = covar.copy()
    bad = np.flatnonzero(~np.isnan(x[:, 2]) & (weight > 0))[0]
    covar[1, 2, 2] = -50.0              # V_1 + S is not PD wherever x_2 is measured
    with pytest.raises(np.linalg.LinAlgError, match=f"sample {bad} of a chunk"):
        fused.stats_masked(x, S, weight, log_bg, mean, covar, log_amp)


@pytest.mark.parametrize("scale", [1e-60, 1e60])
@pytest.mark.parametrize("kernel", ["general", "masked", "projected"])
def test_log_det_as_one_log_of_a_product_survives_extreme_scales(kernel, scale):
    """The kernels take log det T as the log of the product of the Cholesky diagonals; at
    D = 8 and a scale of 1e±60 that product (1e±480) leaves the float range, so it must be
    folded into the log as it grows. Units change logL by -(sum_i w_i dy_i) log(scale) and
    nothing else."""
    x, S, weight, log_bg, mean, covar, log_amp = _problem(4, D=8, noise="per-sample",
                                                          frac=0.2 if kernel == "masked" else 0.0)
    log_bg = None
    if kernel == "projected":
        R = np.random.default_rng(5).normal(size=(len(x), 8, 8))
        S = np.einsum("nab,ncb->nac", R, R) * 0.1 + 0.1 * np.eye(8)

        def run(s):
            return fused.stats_projected(x * s, R, S * s**2, weight, log_bg,
                                         mean * s, covar * s**2, log_amp)
    else:
        call = fused.stats_per_sample if kernel == "general" else fused.stats_masked

        def run(s):
            return call(x * s, S * s**2, weight, log_bg, mean * s, covar * s**2, log_amp)
    base, scaled = run(1.0), run(scale)
    dims = (~np.isnan(x)).sum(axis=1)
    assert np.isfinite(scaled[3])
    assert scaled[3] == pytest.approx(base[3] - np.sum(weight * dims) * np.log(scale), rel=1e-12)
    np.testing.assert_allclose(scaled[0], base[0], rtol=1e-9)
    np.testing.assert_allclose(scaled[1] / scale, base[1], rtol=1e-8, atol=1e-8)
