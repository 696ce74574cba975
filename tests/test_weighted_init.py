"""Initializations honour sample_weight: an integer weight is the row repeated, in any row order."""
from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

import pygmmis_ng as ng
from pygmmis_ng.fitting.em.em_loop import reseed_row
from pygmmis_ng.fitting.starts.init import (
    INIT_METHODS,
    ReseedSupport,
    support_index,
    takes_weight,
    weighted_support,
)


def weighted_and_repeated(seed=0, n=60, D=2):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (n // 2, D)), rng.normal(5, 1, (n - n // 2, D))])
    w = rng.integers(0, 4, n)                         # zeros included: those rows are absent
    perm = rng.permutation(n)
    return X[perm], w[perm].astype(float), np.repeat(X, w, axis=0)


def test_the_weighted_support_ignores_order_repetition_and_zero_weights():
    Xw, w, Xr = weighted_and_repeated()
    rows_w, ww = weighted_support(Xw, w)
    rows_r, wr = weighted_support(Xr)
    assert np.array_equal(rows_w, rows_r) and np.array_equal(ww, wr)
    assert ww.sum() == w.sum() and len(rows_w) == (w > 0).sum()
    idx, _ = support_index(Xw, w)
    assert (w[idx] > 0).all()


@pytest.mark.parametrize("name", ["random", "minmax", "kmeans", "gmm"])
def test_integer_weights_initialize_as_repeated_rows(name):
    Xw, w, Xr = weighted_and_repeated(1)
    a, b = ng.GMM(3, 2), ng.GMM(3, 2)
    INIT_METHODS[name](a, Xw, rng=np.random.default_rng(5), sample_weight=w)
    if name == "gmm":      # sklearn's GaussianMixture takes no weights: a weighted resample
        INIT_METHODS[name](b, Xr, rng=np.random.default_rng(5))
        for g in (a, b):
            assert np.isclose(g.amp.sum(), 1) and np.all(np.linalg.eigvalsh(g.covar) > 0)
        return
    INIT_METHODS[name](b, Xr, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.amp, b.amp)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.covar, b.covar, rtol=1e-12, atol=1e-12)


def test_zero_weight_rows_do_not_reach_the_initialization():
    Xw, w, _ = weighted_and_repeated(2)
    far = np.full((5, 2), 1e3)
    X = np.concatenate([Xw, far])
    weight = np.concatenate([w, np.zeros(5)])
    for name in ("minmax", "kmeans", "random"):
        a, b = ng.GMM(2, 2), ng.GMM(2, 2)
        INIT_METHODS[name](a, X, rng=np.random.default_rng(0), sample_weight=weight)
        INIT_METHODS[name](b, Xw, rng=np.random.default_rng(0), sample_weight=w)
        np.testing.assert_allclose(a.mean, b.mean, atol=1e-12)
        assert np.abs(a.mean).max() < 50


@pytest.mark.parametrize("init_method", ["kmeans", "random"])
def test_a_weighted_fit_equals_the_fit_to_repeated_rows(init_method):
    Xw, w, Xr = weighted_and_repeated(3, n=300)
    a, b = ng.GMM(2, 2), ng.GMM(2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra = ng.fit(a, Xw, sample_weight=w, init_method=init_method, rng=7, tol=1e-8)
        rb = ng.fit(b, Xr, init_method=init_method, rng=7, tol=1e-8)
    assert ra.logL == pytest.approx(rb.logL, rel=1e-10)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(a.covar, b.covar, rtol=1e-7, atol=1e-8)


def test_user_callbacks_get_weights_only_if_they_ask():
    seen = {}

    def pygmmis_style(gmm, data, covar=None, rng=None):
        INIT_METHODS["kmeans"](gmm, data, rng=rng)

    def weighted(gmm, data, covar=None, rng=None, sample_weight=None):
        seen["w"] = sample_weight
        INIT_METHODS["kmeans"](gmm, data, rng=rng, sample_weight=sample_weight)

    assert not takes_weight(pygmmis_style) and takes_weight(weighted)
    assert all(takes_weight(f) for f in INIT_METHODS.values())
    Xw, w, _ = weighted_and_repeated(4)
    ng.fit(ng.GMM(2, 2), Xw, sample_weight=w, init_method=pygmmis_style, rng=0)
    ng.fit(ng.GMM(2, 2), Xw, sample_weight=w, init_method=weighted, rng=0)
    np.testing.assert_array_equal(seen["w"], w)


def test_collapsed_components_are_reseeded_at_rows_drawn_by_weight():
    weight = np.array([0.0, 3.0, 1.0, 0.0])
    rows = np.arange(8.0).reshape(4, 2)
    p = types.SimpleNamespace(reseed_support=ReseedSupport(rows, weight))
    gen = np.random.default_rng(0)
    picks = np.array([reseed_row(p, gen) for _ in range(20000)])
    assert set(np.unique(picks)) == {1, 2}
    assert np.mean(picks == 1) == pytest.approx(0.75, abs=0.015)
