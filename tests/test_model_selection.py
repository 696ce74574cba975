"""BIC/AIC on the fit result and the scan over K: closed forms and recovery of the true K."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import make_truth

import pygmmis_ng as ng
from pygmmis_ng.tools import datasets


def test_bic_aic_of_one_gaussian_match_the_closed_form():
    rng = np.random.default_rng(0)
    D, N = 3, 4000
    X = rng.multivariate_normal([1.0, -2.0, 0.5], [[2, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]], N)
    res = ng.fit(ng.GMM(1, D), X, init_method="kmeans", tol=1e-10, rng=0)
    Sigma = np.cov(X.T, bias=True)                       # the maximum-likelihood covariance
    logL = -0.5 * (D * (1 + np.log(2 * np.pi)) + np.linalg.slogdet(Sigma)[1])
    p = D + D * (D + 1) // 2
    assert res.n_params == p
    assert res.logL == pytest.approx(logL, abs=1e-9)
    assert res.bic == pytest.approx(-2 * N * logL + p * np.log(N), rel=1e-10)
    assert res.aic == pytest.approx(-2 * N * logL + 2 * p, rel=1e-10)


def test_n_params_counts_frozen_and_background():
    truth = make_truth()
    X = truth.draw(600, rng=1)
    r = ng.fit(truth.copy(), X, init_method="none", frozen=[0], maxiter=3, miniter=0)
    # free: amplitudes of components 1, 2 share what 0 leaves (1 dof); 2 means; 2 covariances
    assert r.n_params == 1 + 2 * 2 + 2 * 3
    bg = ng.Background(np.array([[-10.0, -10.0], [20.0, 20.0]]))
    r = ng.fit(truth.copy(), X, init_method="none", background=bg, maxiter=3, miniter=0)
    assert r.n_params == 2 + 3 * 2 + 3 * 3 + 1
    w = np.full(len(X), 2.0)
    r = ng.fit(truth.copy(), X, init_method="none", sample_weight=w, maxiter=3, miniter=0)
    assert r.weight_sum == 2 * len(X)


def test_scan_K_picks_the_true_K_on_separated_data():
    X = make_truth().draw(3000, rng=2)
    scan = ng.scan_K(X, range(1, 6), init_method="kmeans", n_init=2, tol=1e-6, rng=3)
    assert [r.K for r in scan.rows] == [1, 2, 3, 4, 5]
    assert scan.best("bic") == 3
    bics = [r.bic for r in scan.rows]
    assert bics[2] < min(bics[:2]) - 100                 # missing a component costs a lot
    assert set(scan.gmms) == {1, 2, 3, 4, 5} and scan.gmms[3].K == 3
    assert "BIC" in str(scan) and len(str(scan).splitlines()) == 6
    # a row does not depend on the other K scanned
    again = ng.scan_K(X, [3], init_method="kmeans", n_init=2, tol=1e-6, rng=3)
    assert again.rows[0] == scan.rows[2]
    with pytest.raises(ValueError, match="criterion"):
        scan.best("dic")


def test_scan_K_with_selection_uses_the_observed_data_likelihood():
    ds = datasets.paper_2d(N=3000, selection="box", sigma=0.0, rng=4)
    scan = ng.scan_K(ds.data, [1, 3], sel_callback=ds.sel_callback, init_method="kmeans",
                     tol=1e-4, rng=5)
    assert scan.best("bic") == 3
    for row in scan.rows:
        assert np.isfinite(row.bic) and row.n_params == row.K - 1 + row.K * 5


@pytest.mark.parametrize("bad, match", [([], "empty"), ([2, 2], "repeated"), ([0], "K"),
                                        ([1.5], "K")])
def test_scan_K_rejects_bad_K(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ng.scan_K(np.random.default_rng(0).normal(size=(50, 2)), bad)


def test_scan_K_rejects_frozen():
    with pytest.raises(ValueError, match="frozen"):
        ng.scan_K(np.zeros((10, 2)) + np.arange(10)[:, None], [1, 2], frozen=[0])
