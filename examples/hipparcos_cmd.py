"""A deconvolved colour-magnitude diagram of the Hipparcos-2 stars.
================================================================

    python examples/hipparcos_cmd.py [--smoke] [--out DIR]

Each of ~57 000 stars with a parallax better than 20% has a B-V colour and an
absolute magnitude M_Hp = Hp + 5 log10(parallax / 100 mas). The magnitude's
error is mostly the parallax's, 5 / ln 10 * sigma_plx / plx: 0.2 mag for a
typical star and up to 1 mag at the cut, so the observed diagram is blurred
along the magnitude axis. Extreme deconvolution with each star's own errors
recovers the diagram the stars would show with perfect parallaxes.

What to compare with the published diagrams (Perryman et al. 1997, Fig. 1 of
the Hipparcos Catalogue; van Leeuwen 2007): a narrow main sequence from
B-V ~ 0 (M ~ 0.5) to B-V ~ 1.4 (M ~ 9), the turn-off and subgiants near
B-V ~ 0.5-0.9, the giant branch rising to the red, and the red clump of
core-helium-burning giants as a compact peak at B-V ~ 1.0, M_Hp ~ 1 (its
true spread in absolute magnitude is a few tenths of a magnitude). The
deconvolved clump is about half as wide in magnitude (FWHM ~0.6 mag) as the
clump one gets by fitting the same mixture to the observed stars and
ignoring their errors (~1.1 mag).
"""
import argparse

import numpy as np

import pygmmis_ng as ng
from pygmmis_ng.tools import hipparcos

CLUMP_BOX = ((0.85, 1.25), (-0.5, 2.5))     # B-V and M_Hp around the red clump


#: no component narrower than this (mag): without a floor the likelihood's maximum puts a
#: component of zero width on the clump (deconvolution allows it; a fit run to its maximum
#: finds it), as Bovy et al. (2009) floor their velocity components
W = 0.02


def fit_cmd(sample, K=20, seed=0, deconvolve=True):
    gmm = ng.GMM(K=K, D=2)
    result = ng.fit(gmm, sample.X, covar=sample.covar if deconvolve else None,
                    init_method="kmeans", tol=1e-6, rng=seed, w=W)
    return gmm, result


def clump_peak(gmm):
    """(B-V, M) of the density maximum in CLUMP_BOX, and the clump's FWHM in M there.

    The FWHM is measured along the magnitude axis through the peak, on a
    0.005 mag grid: the extent over which the density stays above half its
    peak value.
    """
    (c0, c1), (m0, m1) = CLUMP_BOX
    c, m = np.meshgrid(np.linspace(c0, c1, 81), np.linspace(m0, m1, 601))
    dens = gmm(np.column_stack([c.ravel(), m.ravel()])).reshape(c.shape)
    i, j = np.unravel_index(dens.argmax(), dens.shape)
    above = dens[:, j] > dens[i, j] / 2
    lo, hi = i, i
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < len(above) - 1 and above[hi + 1]:
        hi += 1
    return np.array([c[i, j], m[i, j]]), float(m[hi, j] - m[lo, j])


def cmd_figure(sample, fits):
    """The observed diagram, then each fit: ``fits`` holds (gmm, name, clump peak, FWHM)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 5.2), sharex=True, sharey=True,
                             layout="constrained")
    extent = (-0.3, 2.0, 12.0, -3.0)
    axes[0].hist2d(*sample.X.T, bins=[115, 150], range=[extent[:2], extent[3:1:-1]],
                   cmap="Greys", norm="log")
    axes[0].set_title(f"observed: {len(sample.X)} stars")
    c, m = np.meshgrid(np.linspace(*extent[:2], 231), np.linspace(extent[3], extent[2], 301))
    grid = np.column_stack([c.ravel(), m.ravel()])
    for ax, (gmm, name, peak, width) in zip(axes[1:], fits):
        dens = gmm(grid).reshape(c.shape)
        im = ax.imshow(np.log10(dens + 1e-12), origin="lower", aspect="auto", cmap="Greys",
                       extent=(extent[0], extent[1], extent[3], extent[2]),
                       vmin=np.log10(dens.max()) - 3.5)
        ax.plot(*peak, "o", mfc="none", color="tab:red", ms=12,
                label=f"red clump peak, FWHM {width:.2f} mag")
        ax.legend(loc="lower left", fontsize=8)
        ax.set_title(f"K={gmm.K} mixture, {name}")
    for ax in axes:
        ax.set_xlabel("B - V")
    axes[0].set_ylabel("M_Hp")
    axes[0].set_ylim(extent[2], extent[3])
    fig.colorbar(im, ax=axes, label="log10 density", shrink=0.9)
    return fig


def main(smoke=False, out=None, seed=0):
    cat = hipparcos.read_hip2()
    sample = hipparcos.colour_magnitude(cat, n=10000 if smoke else None, rng=seed)
    xd, result = fit_cmd(sample, seed=seed)
    plain, _ = fit_cmd(sample, seed=seed, deconvolve=False)
    peak, width = clump_peak(xd)
    peak_plain, width_plain = clump_peak(plain)
    sd_m = np.sqrt(sample.covar[:, 1, 1])
    print(f"{len(sample.X)} stars, median error in M_Hp {np.median(sd_m):.2f} mag; K=20: "
          f"{result.n_iter} iterations, {result.elapsed:.1f} s")
    print(f"red clump peak at B-V = {peak[0]:.2f}, M_Hp = {peak[1]:.2f}; its FWHM in M_Hp "
          f"{width:.2f} mag deconvolved, {width_plain:.2f} mag with the errors ignored")
    fig = cmd_figure(sample, [(plain, "errors ignored", peak_plain, width_plain),
                              (xd, "deconvolved", peak, width)])
    if out is not None:
        import matplotlib.pyplot as plt

        fig.savefig(f"{out}/hipparcos_cmd.png", dpi=100)
        plt.close(fig)
    return {"n_stars": len(sample.X), "clump": peak, "clump_width": width,
            "clump_width_plain": width_plain, "seconds": result.elapsed, "gmm": xd}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="10000 stars, a quick run")
    parser.add_argument("--out", default=None, help="folder for hipparcos_cmd.png")
    args = parser.parse_args()
    main(smoke=args.smoke, out=args.out)
