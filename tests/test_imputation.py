"""Imputation (sel_callback), the background model and the forward model draw(),
checked against independent truth: closed forms, scipy brute force and known models."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import log_ndtr

import pygmmis_ng as ng
from pygmmis_ng.selection.forward import poisson_interval
from pygmmis_ng.tools.compare import match_components


def two_blobs() -> ng.GMM:
    """A 2-component 2D model, both components well inside [-5, 9] x [-5, 6]."""
    gmm = ng.GMM(K=2, D=2)
    gmm.amp = [0.6, 0.4]
    gmm.mean = [[0.0, 0.0], [4.0, 1.0]]
    gmm.covar = [[[1.0, 0.3], [0.3, 0.6]], [[0.5, -0.1], [-0.1, 0.8]]]
    return gmm


def mahalanobis(x, mean, covar) -> float:
    d = np.asarray(x) - np.asarray(mean)
    return float(np.sqrt(d @ np.linalg.solve(covar, d)))


def mvn_logL(gmm: ng.GMM, X: np.ndarray) -> float:
    """Mean log-density of a mixture, independently with scipy."""
    p = sum(gmm.amp[k] * stats.multivariate_normal.pdf(X, gmm.mean[k], gmm.covar[k]) for k in range(gmm.K))
    return float(np.mean(np.log(p)))


# ---------------------------------------------------------------------------
# 1. truncated normal in 1D
# ---------------------------------------------------------------------------

MU, SD, CUT = 0.3, 1.2, 0.8


def _truncated_nll(theta, x):
    """Negative log-likelihood of N(m, s) truncated to x < CUT (closed form)."""
    m, s = theta
    return -(stats.norm.logpdf(x, m, s).sum() - len(x) * log_ndtr((CUT - m) / s))


def _hessian(f, theta, h=1e-4):
    theta = np.asarray(theta, float)
    n = theta.size
    E = np.eye(n) * h
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            H[i, j] = (f(theta + E[i] + E[j]) - f(theta + E[i] - E[j]) - f(theta - E[i] + E[j])
                       + f(theta - E[i] - E[j])) / (4 * h * h)
    return H


def test_truncated_normal_1d():
    rng = np.random.default_rng(1)
    N_total = 5000
    x = rng.normal(MU, SD, size=(N_total, 1))
    obs = x[x[:, 0] < CUT]
    gmm = ng.GMM(1, 1)
    res = ng.fit(gmm, obs, sel_callback=lambda c: (c[:, 0] < CUT).astype(float), init_method="kmeans",
                 tol=1e-6, oversampling=10, maxiter=500, rng=1)
    assert res.converged
    m, s = gmm.mean[0, 0], np.sqrt(gmm.covar[0, 0, 0])

    # (a) the fit is the maximum of the exact truncated likelihood (scipy, no Monte Carlo) ...
    mle = optimize.minimize(_truncated_nll, [obs.mean(), obs.std()], args=(obs[:, 0],),
                            method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-11}).x
    cov = np.linalg.inv(_hessian(lambda t: _truncated_nll(t, obs[:, 0]), mle))
    se_m, se_s = np.sqrt(np.diag(cov))
    assert abs(m - mle[0]) < 0.1 * se_m
    assert abs(s - mle[1]) < 0.1 * se_s
    # ... and agrees with the truth within its standard errors
    assert abs(m - MU) < 4 * se_m
    assert abs(s - SD) < 4 * se_s

    # (b) closed-form cross-check: the truncated normal is an exponential family, so at the
    # maximum its first two moments equal the sample moments of the observed data
    b = (CUT - m) / s
    t_mean, t_var = stats.truncnorm.stats(-np.inf, b, loc=m, scale=s, moments="mv")
    n = len(obs)
    assert abs(t_mean - obs.mean()) < 0.1 * obs.std() / np.sqrt(n)
    assert abs(t_var - obs.var()) < 0.1 * obs.var() * np.sqrt(2 / n)

    # (c) the original size is N_obs / Phi(b) of the fit, and N_total within its error
    # (binomial scatter of N_obs plus the propagated parameter uncertainty, delta method)
    assert res.orig_size == pytest.approx(n / stats.norm.cdf(b), rel=2e-3)
    assert res.n_imputed == pytest.approx(res.orig_size - n)
    P = stats.norm.cdf((CUT - MU) / SD)
    eps = 1e-6
    grad = np.array([(log_ndtr((CUT - MU - eps) / SD) - log_ndtr((CUT - MU + eps) / SD)) / (2 * eps),
                     (log_ndtr((CUT - MU) / (SD + eps)) - log_ndtr((CUT - MU) / (SD - eps))) / (2 * eps)])
    se_N0 = N_total * np.sqrt((1 - P) / (N_total * P) + grad @ cov @ grad)
    assert abs(res.orig_size - N_total) < 4 * se_N0
    assert abs(res.orig_size - N_total) < 4 * 0.15 * N_total    # and the test is not vacuous
    assert se_N0 < 0.15 * N_total


def test_truncated_normal_small_tol_converges():
    rng = np.random.default_rng(0)
    x = rng.normal(MU, SD, size=(5000, 1))
    obs = x[x[:, 0] < CUT]
    gmm = ng.GMM(1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ng.ConvergenceWarning)
        res = ng.fit(gmm, obs, sel_callback=lambda c: (c[:, 0] < CUT).astype(float),
                     init_method="kmeans", tol=1e-6, oversampling=10, maxiter=250, rng=0)
    h = res.history
    assert res.converged, f"last logL changes {np.diff(h[-5:])}"


# ---------------------------------------------------------------------------
# 2. a constant selection probability changes nothing but the size
# ---------------------------------------------------------------------------

def test_constant_omega_equals_no_selection():
    truth = two_blobs()
    X = truth.draw(3000, rng=0)
    plain, half = ng.GMM(2, 2), ng.GMM(2, 2)
    r0 = ng.fit(plain, X, init_method="kmeans", tol=1e-6, rng=5)
    r1 = ng.fit(half, X, init_method="kmeans", tol=1e-6, rng=5, oversampling=10,
                sel_callback=lambda c: np.full(len(c), 0.5))
    assert r0.converged and r1.converged
    p0, p1 = match_components(plain, truth), match_components(half, truth)
    for k in range(2):
        a, b = p0[k], p1[k]
        assert mahalanobis(half.mean[b], plain.mean[a], plain.covar[a]) < 0.02
        np.testing.assert_allclose(half.covar[b], plain.covar[a], atol=0.02 * np.abs(plain.covar[a]).max())
        assert half.amp[b] == pytest.approx(plain.amp[a], abs=0.005)
        assert mahalanobis(plain.mean[a], truth.mean[k], truth.covar[k]) < 0.1    # the fit itself is right
    # Z = 0.5 exactly, so N0 = 2 N and the observed-data logL is unchanged
    assert r1.orig_size == pytest.approx(2 * len(X), rel=1e-12)
    assert r1.n_imputed == pytest.approx(len(X), rel=1e-12)
    assert r1.logL == pytest.approx(r0.logL, abs=1e-4)
    assert r0.orig_size == len(X)


# ---------------------------------------------------------------------------
# 3. background amplitude
# ---------------------------------------------------------------------------

FOOTPRINT = np.array([[-5.0, -5.0], [9.0, 6.0]])


def _contaminated(seed, N=4000, bg_frac=0.2):
    rng = np.random.default_rng(seed)
    n_bg = int(bg_frac * N)
    X = np.concatenate([two_blobs().draw(N - n_bg, rng=rng),
                        ng.Background(FOOTPRINT).draw(n_bg, rng=rng)])
    return X[rng.permutation(N)], rng


def _assert_blobs_recovered(gmm):
    """Both means of :func:`two_blobs` within 0.15 sigma; returns the truth and the matching."""
    truth = two_blobs()
    perm = match_components(gmm, truth)
    for k in range(2):
        assert mahalanobis(gmm.mean[perm[k]], truth.mean[k], truth.covar[k]) < 0.15
    return truth, perm


@pytest.mark.parametrize("seed", [0, 1])
def test_background_amp_recovered(seed):
    X, _ = _contaminated(seed)
    bg = ng.Background(FOOTPRINT, amp=0.0)
    gmm = ng.GMM(2, 2)
    res = ng.fit(gmm, X, background=bg, init_method="kmeans", tol=1e-6, rng=seed)
    assert res.converged
    assert abs(bg.amp - 0.2) < 0.03
    assert res.bg_amp == bg.amp
    _assert_blobs_recovered(gmm)
    # the fitted amplitude maximizes the likelihood: +-0.01 is worse (checked with scipy densities)
    def total_logL(alpha):
        p = (1 - alpha) * sum(gmm.amp[k] * stats.multivariate_normal.pdf(X, gmm.mean[k], gmm.covar[k])
                              for k in range(2))
        return np.log(p + alpha * bg.p * ((X > FOOTPRINT[0]) & (X < FOOTPRINT[1])).all(axis=1)).mean()
    assert res.logL == pytest.approx(total_logL(bg.amp), abs=1e-9)
    assert total_logL(bg.amp) > max(total_logL(bg.amp - 0.01), total_logL(bg.amp + 0.01))


def test_background_amp_recovered_with_noise():
    """Isotropic noise smears background samples across the footprint's faces: only the
    erf-convolved background density explains those outside."""
    X, rng = _contaminated(2)
    sigma = 0.6
    Y = X + rng.normal(0.0, sigma, X.shape)
    outside = ~((Y > FOOTPRINT[0]) & (Y < FOOTPRINT[1])).all(axis=1)
    assert outside.sum() > 20                       # the convolution matters for this data
    bg = ng.Background(FOOTPRINT, amp=0.0)
    gmm = ng.GMM(2, 2)
    res = ng.fit(gmm, Y, covar=sigma**2 * np.eye(2), background=bg, init_method="kmeans", tol=1e-6, rng=2)
    assert res.converged and np.isfinite(res.logL)
    assert abs(bg.amp - 0.2) < 0.03
    assert res.bg_amp == bg.amp
    truth, perm = _assert_blobs_recovered(gmm)
    for k in range(2):
        # deconvolved: the intrinsic covariance, not truth + sigma^2
        np.testing.assert_allclose(gmm.covar[perm[k]], truth.covar[k], atol=0.15)


# ---------------------------------------------------------------------------
# 4. the noise-convolved background density
# ---------------------------------------------------------------------------

def _box_mass(x, lo, hi, sd):
    """P(lo < x - e < hi) per axis for e ~ N(0, sd), from the accurate tail of each side."""
    a, a2 = (x - lo) / sd, (x - hi) / sd           # mass = Phi(a) - Phi(a2), a > a2
    upper = a2 > 0
    return np.where(upper, stats.norm.sf(a2) - stats.norm.sf(a), stats.norm.cdf(a) - stats.norm.cdf(a2))


def test_background_log_density_matches_scipy():
    lo, hi = np.array([0.0, -1.0]), np.array([2.0, 0.5])
    bg = ng.Background([lo, hi], amp=0.3)
    rng = np.random.default_rng(0)
    X = rng.uniform([-1.0, -2.0], [3.0, 1.5], size=(500, 2))
    vol = 2.0 * 1.5
    assert bg.p == pytest.approx(1 / vol)
    # shared diagonal noise
    sd = np.array([0.3, 0.2])
    expected = np.log(np.prod(_box_mass(X, lo, hi, sd), axis=1) / vol)
    np.testing.assert_allclose(bg.log_density(X, np.diag(sd**2)), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(bg(X, np.diag(sd**2)), np.exp(expected), rtol=1e-9)
    np.testing.assert_allclose(bg(X, np.diag(sd**2), as_log=True), expected, rtol=0, atol=1e-9)
    # per-sample diagonal noise
    sds = rng.uniform(0.05, 0.5, size=(500, 2))
    S = sds[:, :, None] ** 2 * np.eye(2)
    expected = np.log(np.prod(_box_mass(X, lo, hi, sds), axis=1) / vol)
    np.testing.assert_allclose(bg.log_density(X, S), expected, rtol=0, atol=1e-9)
    # correlated noise: documented to use the diagonal only
    S_full = S.copy()
    S_full[:, 0, 1] = S_full[:, 1, 0] = 0.5 * sds[:, 0] * sds[:, 1]
    np.testing.assert_array_equal(bg.log_density(X, S_full), bg.log_density(X, S))
    # without noise: 1/volume inside, 0 outside
    inside = ((X > lo) & (X < hi)).all(axis=1)
    assert inside.any() and (~inside).any()
    p0 = bg(X)
    np.testing.assert_allclose(p0[inside], 1 / vol, rtol=1e-12)
    assert (p0[~inside] == 0).all()


def test_background_convolved_density_is_normalized():
    lo, hi = np.array([0.0, 0.0]), np.array([2.0, 1.0])
    bg = ng.Background([lo, hi])
    h = 0.01
    gx, gy = np.meshgrid(np.arange(-3.0, 5.0, h) + h / 2, np.arange(-3.0, 4.0, h) + h / 2)
    G = np.column_stack([gx.ravel(), gy.ravel()])
    for S in (np.diag([0.3**2, 0.2**2]), np.diag([0.05**2, 0.6**2])):
        p = bg(G, S)
        assert p.sum() * h * h == pytest.approx(1.0, abs=1e-5)
        outside = ~((G > lo) & (G < hi)).all(axis=1)
        assert p[outside].sum() * h * h > 0.05          # mass leaks out of the box, yet sums to 1


def test_background_log_density_tail_narrow_footprint():
    lo, hi = np.array([0.0]), np.array([0.1])
    bg = ng.Background([lo, hi])
    x = np.array([[-4.9], [-5.1], [-6.0], [5.2], [-10.0]])
    sd = 1.0
    # log(Phi(a) - Phi(a2)) on the lower tail, stably: logPhi(a) + log1p(-exp(logPhi(a2) - logPhi(a)))
    a, a2 = (x[:, 0] - lo) / sd, (x[:, 0] - hi) / sd
    lower = a < 0
    la = np.where(lower, stats.norm.logcdf(a), stats.norm.logsf(a2))
    lb = np.where(lower, stats.norm.logcdf(a2), stats.norm.logsf(a))
    expected = la + np.log1p(-np.exp(lb - la)) - np.log(0.1)
    np.testing.assert_allclose(bg.log_density(x, np.eye(1) * sd**2), expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# 5. the forward model draw()
# ---------------------------------------------------------------------------

def _unit_normal_1d() -> ng.GMM:
    gmm = ng.GMM(1, 1)
    gmm.amp, gmm.mean, gmm.covar = [1.0], [[0.0]], [[[1.0]]]
    return gmm


def _above(c):
    return (c[:, 0] > 0.25).astype(float)


P_ABOVE = stats.norm.sf(0.25)        # ~0.40


def garwood(n):
    """68% Poisson interval of the mean given n counts, via the gamma distribution."""
    lower = stats.gamma.ppf(0.16, n) if n > 0 else 0.0
    return lower, stats.gamma.ppf(0.84, n + 1)


@pytest.mark.parametrize("obs_size", [30, 300, 3000])
def test_draw_sizes_are_poisson_consistent(obs_size):
    gmm = _unit_normal_1d()
    lower, upper = garwood(obs_size)
    assert np.allclose(poisson_interval(obs_size), (lower, upper))
    for seed in range(3):
        data, covar, orig_size, omega = ng.draw(gmm, obs_size, sel_callback=_above, rng=seed)
        assert covar is None
        assert data.shape[1] == 1
        assert lower <= len(data) <= upper
        assert (_above(data) == 1).all()
        np.testing.assert_array_equal(omega, _above(data))
        assert abs(orig_size * P_ABOVE - obs_size) < 5 * np.sqrt(obs_size)

        rej, _, orig_inv, omega_inv = ng.draw(gmm, obs_size, sel_callback=_above, invert_sel=True, rng=seed)
        assert len(rej) > 0 and (_above(rej) == 0).all()
        assert (omega_inv == 0).all()
        # deterministic selection: the rejected samples are the complement of an accepted set
        # whose size lies in the Poisson interval
        assert orig_inv - upper <= len(rej) <= orig_inv - lower
        assert abs(orig_inv * P_ABOVE - obs_size) < 5 * np.sqrt(obs_size)


def test_draw_probabilistic_selection_keeps_fraction():
    gmm = _unit_normal_1d()
    data, _, orig_size, omega = ng.draw(gmm, 4000, sel_callback=lambda c: np.full(len(c), 0.4), rng=3)
    lower, upper = garwood(4000)
    assert lower <= len(data) <= upper
    assert (omega == 0.4).all()
    assert abs(orig_size * 0.4 - 4000) < 5 * np.sqrt(4000)
    # selection independent of position: the kept sample is still N(0, 1)
    assert stats.kstest(data[:, 0], "norm").pvalue > 1e-3


def test_draw_without_selection_returns_orig_size():
    data, covar, orig_size, omega = ng.draw(two_blobs(), 123, rng=0)
    assert data.shape == (123, 2) and orig_size == 123 and covar is None and omega is None


def test_draw_covar_callback_shared_noise():
    point = ng.GMM(1, 2)
    point.amp, point.mean, point.covar = [1.0], [[1.0, -2.0]], [1e-12 * np.eye(2)]
    S = np.array([[0.5, 0.2], [0.2, 0.3]])
    n = 20000
    data, covar, orig_size, _ = ng.draw(point, n, covar_callback=lambda c: S, rng=4)
    assert data.shape == (n, 2) and orig_size == n
    np.testing.assert_array_equal(covar, S)
    emp = np.cov(data.T)
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / n)
    assert (np.abs(emp - S) < 4 * se).all()
    assert (np.abs(data.mean(0) - [1.0, -2.0]) < 4 * np.sqrt(np.diag(S) / n)).all()


def test_draw_covar_callback_per_sample_with_selection():
    """Two point sources far apart with different noise; the returned covariances stay
    aligned with the returned (selected) rows."""
    pts = ng.GMM(2, 2)
    pts.amp, pts.mean = [0.5, 0.5], [[0.0, 0.0], [100.0, 0.0]]
    pts.covar = np.tile(1e-12 * np.eye(2), (2, 1, 1))
    S_left, S_right = np.diag([0.2, 0.05]), np.diag([1.0, 0.5])

    def covar_cb(c):
        return np.where((c[:, 0] < 50)[:, None, None], S_left, S_right)

    def keep_upper(c):
        return (c[:, 1] > 0).astype(float)

    data, covar, orig_size, omega = ng.draw(pts, 4000, sel_callback=keep_upper, covar_callback=covar_cb,
                                            rng=5)
    assert covar.shape == (len(data), 2, 2)
    left = data[:, 0] < 50
    assert (covar[left] == S_left).all() and (covar[~left] == S_right).all()
    assert (data[:, 1] > 0).all() and (omega == 1).all()
    # x is unaffected by the selection on y: its variance is the noise variance of each source
    for mask, var in ((left, 0.2), (~left, 1.0)):
        x = data[mask, 0]
        assert abs(x.var() - var) < 4 * var * np.sqrt(2 / len(x))
    # y is a half-normal: E[y^2] equals the noise variance
    for mask, var in ((left, 0.05), (~left, 0.5)):
        y = data[mask, 1]
        assert abs(np.mean(y**2) - var) < 4 * var * np.sqrt(2 / len(y))
    assert abs(orig_size * 0.5 - 4000) < 5 * np.sqrt(4000)


# ---------------------------------------------------------------------------
# 6. frozen components with imputation
# ---------------------------------------------------------------------------

def _cut_data(seed=0, N=4000):
    truth = two_blobs()
    X = truth.draw(N, rng=seed)
    return truth, X[X[:, 0] < 4.5]


def _cut(c):
    return (c[:, 0] < 4.5).astype(float)


def test_frozen_component_with_imputation():
    truth, X = _cut_data()
    gmm = ng.GMM(2, 2)
    gmm.amp = [0.6, 0.4]
    gmm.mean = [truth.mean[0], [0.0, 0.0]]
    gmm.covar = [truth.covar[0], np.eye(2)]
    a0, m0, c0 = gmm.amp[0].copy(), gmm.mean[0].copy(), gmm.covar[0].copy()
    res = ng.fit(gmm, X, sel_callback=_cut, frozen=[0], init_method="kmeans", tol=1e-5,
                 maxiter=300, rng=0)
    assert gmm.amp[0] == a0
    np.testing.assert_array_equal(gmm.mean[0], m0)
    np.testing.assert_array_equal(gmm.covar[0], c0)
    assert gmm.amp.sum() == pytest.approx(1.0, abs=1e-12)
    # the free component recovers the truth's half-cut component
    assert mahalanobis(gmm.mean[1], truth.mean[1], truth.covar[1]) < 0.3
    np.testing.assert_allclose(gmm.covar[1], truth.covar[1], atol=0.15)
    assert res.orig_size == pytest.approx(4000, rel=0.08)


def test_frozen_mean_and_covar_with_imputation():
    truth, X = _cut_data(seed=1)
    gmm = ng.GMM(2, 2)
    gmm.amp = [0.5, 0.5]
    gmm.mean = [truth.mean[1], [0.0, 0.0]]
    gmm.covar = [truth.covar[1], np.eye(2)]
    m0, c0 = gmm.mean[0].copy(), gmm.covar[0].copy()
    ng.fit(gmm, X, sel_callback=_cut, frozen={"mean": [0], "covar": [0]}, init_method="kmeans",
           tol=1e-5, maxiter=300, rng=1)
    np.testing.assert_array_equal(gmm.mean[0], m0)
    np.testing.assert_array_equal(gmm.covar[0], c0)
    assert gmm.amp.sum() == pytest.approx(1.0, abs=1e-12)
    # the free amplitude of the frozen (mostly cut away) component is the truth's
    assert gmm.amp[0] == pytest.approx(0.4, abs=0.04)
    assert mahalanobis(gmm.mean[1], truth.mean[0], truth.covar[0]) < 0.2


# ---------------------------------------------------------------------------
# 7. reproducibility
# ---------------------------------------------------------------------------

def _fit_state(seed):
    ds = ng.datasets.paper_2d(N=1500, selection="box", sigma=0.3, bg_amp=0.1, rng=3)
    gmm = ng.GMM(3, 2)
    bg = ng.Background(ng.datasets.FOOTPRINT_2D, amp=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ng.ConvergenceWarning)
        res = ng.fit(gmm, ds.data, covar=ds.covar, sel_callback=ds.sel_callback,
                     covar_callback=lambda c: ds.covar, background=bg, init_method="kmeans",
                     maxiter=40, rng=seed)
    return gmm, bg, res, ds


def test_fit_reproducible_with_selection_and_background():
    g1, b1, r1, ds = _fit_state(7)
    g2, b2, r2, _ = _fit_state(7)
    for a, b in ((g1.amp, g2.amp), (g1.mean, g2.mean), (g1.covar, g2.covar), (r1.history, r2.history)):
        np.testing.assert_array_equal(a, b)
    assert b1.amp == b2.amp and r1.orig_size == r2.orig_size and r1.logL == r2.logL
    assert r1.n_iter == r2.n_iter

    g3, b3, r3, _ = _fit_state(8)
    assert not np.array_equal(g1.mean, g3.mean)
    assert r1.logL != r3.logL and r1.orig_size != r3.orig_size
    # ... but only by Monte-Carlo / initialization noise
    perm = match_components(g3, g1)
    for k in range(3):
        assert mahalanobis(g3.mean[perm[k]], g1.mean[k], g1.covar[k]) < 0.3
    assert abs(b3.amp - b1.amp) < 0.05
    assert r3.orig_size == pytest.approx(r1.orig_size, rel=0.1)
    assert r3.logL == pytest.approx(r1.logL, abs=0.05)


# ---------------------------------------------------------------------------
# 8. the paper's 2D problem
# ---------------------------------------------------------------------------

def test_paper_2d_box_selection():
    ds = ng.datasets.paper_2d(N=2000, selection="box", sigma=0.0, rng=1)
    held_out = ds.truth.draw(5000, rng=11)
    fitted, naive = ng.GMM(3, 2), ng.GMM(3, 2)
    res = ng.fit(fitted, ds.data, sel_callback=ds.sel_callback, init_method="kmeans", n_init=3, rng=1)
    ng.fit(naive, ds.data, init_method="kmeans", n_init=3, rng=1)
    # the k-means restarts compete after the cheap first phase; the best one is finished
    assert res.restarts_logL.shape == (3,) and res.chosen == res.restarts_logL.argmax()
    truth_score = mvn_logL(ds.truth, held_out)
    fit_score, naive_score = mvn_logL(fitted, held_out), mvn_logL(naive, held_out)
    assert truth_score - 0.15 < fit_score <= truth_score + 0.02
    assert fit_score > naive_score + 0.3
    # the truth's size before selection is 2000; the fit's estimate is in the right range
    assert len(ds.data) < 0.75 * 2000
    assert 0.85 * 2000 < res.orig_size < 1.15 * 2000


def test_paper_dataset_has_seven_fields_and_a_one_line_repr():
    ds = ng.datasets.paper_2d(1000, bg_amp=0.1, rng=0)
    assert ds._fields == ("data", "covar", "sel_callback", "truth", "background", "orig",
                          "selection")
    text = repr(ds)
    assert "\n" not in text and len(text) < 300
    assert f"data=<array {len(ds.data)}x2>" in text and "truth=<GMM K=3 D=2>" in text
    assert "background=<Background amp=0.1>" in text and "selection='box_with_hole'" in text


def test_sobol_blocks_in_any_order_are_the_points_of_one_sequence():
    """The sampler keeps its Sobol sequence positioned (no fast-forward from the start per
    block); any order of blocks, and a pickled copy, give the points b*B ... of one
    sequence, as made from scratch."""
    import pickle

    import scipy.stats.qmc

    from pygmmis_ng.config import settings
    from pygmmis_ng.selection.imputation import ImputationSampler

    def from_scratch(b):
        seed = np.random.default_rng(np.random.SeedSequence(123))
        engine = scipy.stats.qmc.Sobol(7, scramble=True, seed=seed)
        if b:
            engine.fast_forward(b * 1024)
        return engine.random(1024)

    with settings(imputation_block=1024):
        sampler = ImputationSampler(123, 2, True, True)
        for b in [0, 1, 2, 5, 3, 3, 0, 7, 8]:
            assert np.array_equal(sampler._uniforms(b), from_scratch(b))
        copy = pickle.loads(pickle.dumps(sampler))
        assert np.array_equal(copy._uniforms(4), from_scratch(4))
        # online EM's fresh randomizations are their own sequences, not blocks of this one
        fresh = sampler._uniforms(4, fresh=1, n=1024)
        assert fresh.shape == (1024, 7) and not np.array_equal(fresh, from_scratch(4))
        assert np.array_equal(fresh, copy._uniforms(4, fresh=1, n=1024))


def test_projected_samples_under_a_selection_on_a_measured_latent_coordinate():
    """Issue 37: R with sel_callback. Each sample sees y = R_i x with a random row mixing both
    coordinates and the second one directly, and the selection cuts that one. The data are
    the complete x in disguise (x_0 = (y_0 - sin t y_1) / cos t), so the fit must be the
    complete-data fit under the same selection, up to the Jacobian's constant in logL."""
    rng = np.random.default_rng(0)
    truth = ng.GMM(2, 2)
    truth.amp, truth.mean = [0.6, 0.4], [[0.0, 0.0], [3.0, 2.0]]
    truth.covar = [[[1.0, 0.6], [0.6, 1.0]], [[1.5, -0.5], [-0.5, 0.8]]]
    x = truth.draw(12000, rng=rng)

    def cut(c):
        return (c[:, 1] > 0.5).astype(float)

    x = x[cut(x) > 0]
    t = rng.uniform(-0.5, 0.5, len(x))
    R = np.zeros((len(x), 2, 2))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 1] = np.cos(t), np.sin(t), 1.0
    y = np.einsum("nij,nj->ni", R, x)
    complete, projected = ng.GMM(2, 2), ng.GMM(2, 2)
    r_c = ng.fit(complete, x, sel_callback=cut, rng=3)
    r_p = ng.fit(projected, y, R=R, sel_callback=cut, rng=3)
    ic, ip = np.argsort(complete.mean[:, 0]), np.argsort(projected.mean[:, 0])
    np.testing.assert_allclose(projected.mean[ip], complete.mean[ic], atol=0.02)
    np.testing.assert_allclose(projected.covar[ip], complete.covar[ic], atol=0.04)
    np.testing.assert_allclose(projected.amp[ip], complete.amp[ic], atol=0.01)
    # N0 lies along EM's crawl under a selection: both stop within tol of the maximum in
    # logL, a percent apart in N0
    assert r_p.orig_size == pytest.approx(r_c.orig_size, rel=0.03)
    assert r_c.orig_size > 1.2 * len(x)                     # the cut removed a lot
    # log p(y_i) = log p(x_i) - log |det R_i|
    jac = np.mean(np.log(np.abs(np.cos(t))))
    assert r_p.logL == pytest.approx(r_c.logL - jac, abs=3 * np.hypot(r_p.logL_se, r_c.logL_se))
