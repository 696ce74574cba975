"""The Hipparcos-2 example: catalogue reading, the geometry, and the headline numbers."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import run_example

from pygmmis_ng.tools import hipparcos as H


@pytest.fixture(scope="module")
def cat():
    return H.read_hip2()


def _icrs_unit(ra, dec):
    return np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _fields(C, sigma, u):
    """The catalogue's 15 fields of covariance C (Michalik et al. 2014, Appendix B): U upper
    triangular with C = u^2 (U^T U)^-1, column by column, the diagonal stored as U_ii s_i / u."""
    U = np.linalg.cholesky(np.linalg.inv(C / u**2)).T      # (C / u^2)^-1 = U^T U, U upper
    stored = U.copy()
    stored[np.diag_indices(5)] *= sigma / u
    return [stored[i, j] for j in range(5) for i in range(j + 1)]


def test_weight_matrix_fields_give_back_a_known_covariance():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 5, 5))
    C = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(5)
    sigma = np.sqrt(np.diagonal(C, axis1=1, axis2=2))
    n_transits = np.array([30.0, 90, 150, 400])
    f2 = np.array([-1.5, 0.0, 0.9, 12.0])
    u = H.unit_weight_factor(n_transits, f2)
    # u^2 = Q / nu: the chi-square per degree of freedom that F2 (Wilson-Hilferty) stands for
    nu = n_transits - 5
    chi2 = nu * (1 - 2 / (9 * nu) + f2 * np.sqrt(2 / (9 * nu))) ** 3
    np.testing.assert_allclose(u**2, chi2 / nu, rtol=1e-12)
    fields = np.array([_fields(c, s, uu) for c, s, uu in zip(C, sigma, u)])
    got = H.astrometric_covariance(sigma, fields, n_transits, f2)
    np.testing.assert_allclose(got, C, rtol=1e-10)
    np.testing.assert_allclose(got[:, 4, 4], sigma[:, 4] ** 2, rtol=1e-12)   # by construction


def test_fields_that_give_no_covariance_give_nan():
    ones = np.ones((3, 5))
    fields = np.array(_fields(np.eye(5), np.ones(5), 1.0))
    W = np.array([fields, fields, np.zeros(15)])
    errors = np.array([[1.0, 1, 1, 1, 1], [1.0, 0, 1, 1, 1], [1.0, 1, 1, 1, 1]])
    C = H.astrometric_covariance(errors, W, np.array([4.0, 30, 30]), np.zeros(3))
    assert np.isnan(C).all()                  # nu <= 0, an error of 0, a singular matrix
    C = H.astrometric_covariance(ones[:1], W[:1], np.array([30.0]), np.zeros(1))
    assert np.isfinite(C).all()


def test_the_recipe_gives_back_the_catalogue_errors_to_the_rounding(cat):
    """Five-parameter solutions: sqrt(C_ii) is the catalogue's sigma_i to the rounding of the
    fields (0.005 on each of the 15 fields, on each sigma and on F2, propagated to first
    order), C_55 exactly; the other solution types are left out (NaN)."""
    from pygmmis_ng.tools.hipparcos import _COL

    table = np.loadtxt(H._catalog_path())
    five = table[:, 1].astype(int) % 10 == 5
    assert (~five).sum() == 2843 and np.isnan(cat.astrometric_covar[~five]).all()
    uncapped = five & (table[:, _COL["f2"]] < 99)           # F2 = 99.0 is the field's cap
    sigma = table[uncapped][:, _COL["errors"]]
    args = [sigma, table[uncapped][:, _COL["weights"]], table[uncapped][:, _COL["n_transits"]],
            table[uncapped][:, _COL["f2"]]]

    def sd(a):
        return np.sqrt(np.diagonal(H.astrometric_covariance(*a), axis1=1, axis2=2))

    s0 = sd(args)
    bound = np.full_like(s0, 0.005)             # the catalogue's sigma itself is rounded
    h = 1e-6
    for k, width in ((0, 5), (1, 15), (3, None)):
        for j in range(width or 1):
            a = [x.copy() for x in args]
            if width is None:
                a[k] += h
            else:
                a[k][:, j] += h
            bound += np.abs(sd(a) - s0) / h * 0.005
    within = np.abs(s0 - sigma) <= bound + 1e-9
    assert within.all(axis=1).mean() > 0.999
    assert np.median(np.abs(s0 - sigma) / sigma) < 0.003
    np.testing.assert_allclose(s0[:, 4], sigma[:, 4], rtol=1e-9)


def test_galactic_centre_and_pole():
    # Sgr A* direction (l = b = 0) and the north Galactic pole, ICRS (Hipparcos Vol. 1)
    gc = _icrs_unit(np.radians(266.40499), np.radians(-28.93617))
    ngp = _icrs_unit(np.radians(192.85948), np.radians(27.12825))
    np.testing.assert_allclose(H.ICRS_TO_GALACTIC @ gc, [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(H.ICRS_TO_GALACTIC @ ngp, [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(H.ICRS_TO_GALACTIC @ H.ICRS_TO_GALACTIC.T, np.eye(3), atol=1e-12)


def test_projection_is_the_proper_motion_of_a_moving_star():
    """R v against the finite-difference motion of a star on the sky."""
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(0, 2 * np.pi, 20), rng.uniform(-1.4, 1.4, 20)
    v_gal = rng.normal(0, 30, size=(20, 3))                 # km/s
    R = H.sky_projection(ra, dec)
    dist = 50.0                                             # pc; parallax 20 mas
    for i in range(20):
        r = dist * _icrs_unit(ra[i], dec[i])
        v_icrs = H.ICRS_TO_GALACTIC.T @ v_gal[i]
        dt = 1e-4
        ends = []
        for step in (-dt, dt):                              # central difference
            r2 = r + v_icrs * step
            ends.append((np.arctan2(r2[1], r2[0]), np.arcsin(r2[2] / np.linalg.norm(r2))))
        dra = (ends[1][0] - ends[0][0] + np.pi) % (2 * np.pi) - np.pi
        # angular rate times distance is the transverse speed
        rate = np.array([dra * np.cos(dec[i]), ends[1][1] - ends[0][1]]) / (2 * dt) * dist
        np.testing.assert_allclose(R[i] @ v_gal[i], rate, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(2), (20, 2, 2)),
                               atol=1e-12)


def _fake_catalogue(rng, n=500):
    C = np.zeros((n, 5, 5))
    A = rng.normal(size=(n, 5, 5)) * 0.3
    C[:] = A @ np.swapaxes(A, 1, 2) + np.diag([0.5, 0.5, 0.8, 1.0, 1.2])
    return H.Hip2(hip=np.arange(n), solution=np.full(n, 5), ra=rng.uniform(0, 6, n),
                  dec=rng.uniform(-1.5, 1.5, n), parallax=rng.uniform(20, 80, n),
                  pm=rng.normal(0, 100, (n, 2)), astrometric_covar=C,
                  hp=rng.uniform(4, 9, n), e_hp=np.full(n, 0.01), bv=rng.uniform(0, 1.5, n),
                  e_bv=np.full(n, 0.02))


def test_velocity_noise_is_the_propagated_astrometric_covariance():
    rng = np.random.default_rng(2)
    cat = _fake_catalogue(rng)
    s = H.tangential_velocities(cat)
    assert len(s.y) == 500
    k = H.KM_S_PER_MAS_YR_PER_MAS
    np.testing.assert_allclose(s.y, k * cat.pm / cat.parallax[:, None])
    # numerical Jacobian of y(plx, mu) for a few stars
    for i in range(5):
        p0 = np.array([cat.parallax[i], *cat.pm[i]])
        f = lambda p: k * p[1:] / p[0]                      # noqa: E731
        J = np.column_stack([(f(p0 + h) - f(p0 - h)) / 2e-6 for h in np.eye(3) * 1e-6])
        C3 = cat.astrometric_covar[i, 2:, 2:]
        np.testing.assert_allclose(s.covar[i], J @ C3 @ J.T, rtol=1e-6)


def test_cuts_and_subsampling(cat):
    s = H.tangential_velocities(cat)
    err = cat.errors[:, 2]                     # the catalogue's parallax errors
    keep = (cat.solution % 10 == 5) & (err > 0) & (cat.parallax > 10 * err)
    assert len(s.y) == keep.sum() and 25_000 < len(s.y) < 35_000
    a = H.tangential_velocities(cat, n=100, rng=3)
    b = H.tangential_velocities(cat, n=100, rng=3)
    assert len(a.y) == 100 and np.array_equal(a.hip, b.hip) and np.isin(a.hip, s.hip).all()
    c = H.colour_magnitude(cat, n=50, rng=0)
    assert c.X.shape == (50, 2) and np.all(c.covar[:, 1, 1] > 0)
    with pytest.raises(ValueError, match="min_parallax_snr"):
        H.tangential_velocities(cat, min_parallax_snr=-1)
    with pytest.raises((ValueError, TypeError), match="n"):
        H.colour_magnitude(cat, n=0)


def test_catalogue_errors_are_the_covariance_diagonal(cat):
    assert len(cat.hip) == 117_955 and repr(cat) == "Hip2(<117955 stars>)"
    C = cat.astrometric_covar
    five = cat.solution % 10 == 5
    assert np.all(np.linalg.eigvalsh(C[five][::50]) > 0)
    row = np.flatnonzero(cat.hip == 1)[0]
    # to the rounding of the fields (see the test of the recipe)
    np.testing.assert_allclose(np.sqrt(np.diagonal(C[row])), [1.29, 0.66, 1.33, 1.25, 0.75],
                               atol=0.01)
    assert cat.parallax[row] == 4.55 and cat.bv[row] == 0.482


def test_a_file_that_is_not_hip2_is_refused(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="41 columns"):
        H.read_hip2(bad)


def test_velocity_ellipsoid_of_one_gaussian():
    from pygmmis_ng import GMM

    g = GMM(K=1, D=3)
    g.amp, g.mean = [1.0], [[1.0, 2.0, 3.0]]
    g.covar = [[[4.0, 1.0, 0], [1.0, 1.0, 0], [0, 0, 9.0]]]
    e = H.velocity_ellipsoid(g)
    np.testing.assert_allclose(e["dispersion"], [2, 1, 3])
    assert e["vertex_deviation"] == pytest.approx(0.5 * np.degrees(np.arctan(2 / 3)))
    with pytest.raises(ValueError, match="D = 3"):
        H.velocity_ellipsoid(GMM(K=1, D=2))


def test_velocity_example_reaches_the_published_solar_motion(tmp_path):
    r = run_example("hipparcos_velocities", out=str(tmp_path))
    U, V, W = r["mean"]
    sU, sV, sW = r["dispersion"]
    assert r["n_stars"] == 6000
    assert -13 < U < -8.5 and -9 < W < -5.5 and -23 < V < -14   # -(U, W)_sun = -(10.0, 7.2)
    assert sU > sV > sW > 10
    assert 5 < r["vertex_deviation"] < 20
    assert (tmp_path / "hipparcos_velocities.png").stat().st_size > 10_000


def test_cmd_example_finds_a_sharper_red_clump(tmp_path):
    r = run_example("hipparcos_cmd", out=str(tmp_path))
    bv, M = r["clump"]
    assert 0.95 < bv < 1.12 and 0.6 < M < 1.3
    assert r["clump_width"] < 0.8 * r["clump_width_plain"]
    assert (tmp_path / "hipparcos_cmd.png").stat().st_size > 10_000


def test_the_parallax_cut_as_a_selection_gives_the_population_back(tmp_path):
    """Issue 37: the population of parallax > 20 mas seen through cuts at parallax / error
    > 5 (nearly complete) and > 10 (7% removed). Without the selection model N0 is what
    was observed; with it, cut 10 gives back the nearly complete cut's population size and
    its velocity ellipsoid (run to tol 1e-7: EM crawls under this selection)."""
    r = run_example("hipparcos_parallax_cut", out=str(tmp_path))
    rows = {(row["cut"], row["selection"]): row for row in r["rows"]}
    full, plain10, sel10 = rows[5.0, True], rows[10.0, False], rows[10.0, True]
    assert plain10["orig_size"] == plain10["n_stars"] < 0.95 * full["n_stars"]
    assert sel10["orig_size"] == pytest.approx(full["orig_size"], rel=0.04)
    assert full["orig_size"] == pytest.approx(full["n_stars"], rel=0.03)   # nearly complete
    np.testing.assert_allclose(sel10["dispersion"], full["dispersion"], atol=2.0)
    np.testing.assert_allclose(sel10["mean"], full["mean"], atol=1.5)
    assert (tmp_path / "hipparcos_parallax_cut.png").stat().st_size > 10_000
