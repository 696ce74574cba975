"""The velocity distribution of nearby stars from Hipparcos-2 proper motions.
==========================================================================

    python examples/hipparcos_velocities.py [--smoke] [--out DIR]

The problem extreme deconvolution was made for (Bovy, Hogg & Roweis 2009,
ApJ 700, 1794). Hipparcos measured where each star is, how it moves across the
sky and its parallax, but not its radial velocity: each star gives two of the
three components of its velocity v = (U, V, W), y_i = R_i v_i + noise, with its
own projection R_i (the directions east and north on the sky, in Galactic
coordinates) and its own noise (from the proper-motion and parallax errors and
their correlations). From ~29 000 stars with parallaxes better than 10% we fit
a 10-component mixture to the 3-D velocities that no star observed completely.

What to compare with the published picture (Dehnen & Binney 1998; Dehnen 1998;
Bovy, Hogg & Roweis 2009):

* the mean velocity of the sample is minus the Sun's motion: U ~ -10 to -11
  km/s and W ~ -7 km/s (Dehnen & Binney: U_sun = 10.0, W_sun = 7.2); V lags
  further (asymmetric drift of the older stars);
* the dispersions order as sigma_U > sigma_V > sigma_W, and the (U, V)
  ellipse is tilted by a vertex deviation of ~10 degrees;
* the density in (U, V) is not smooth: narrow components sit at the known
  moving groups (Sirius, Hyades, Pleiades, the Hercules stream), which are
  marked on the figure at their published places.
"""
import argparse

import numpy as np

import pygmmis_ng as ng
from pygmmis_ng.tools import hipparcos

# moving groups (U, V) in km/s as read from Dehnen (1998) and Bovy et al. (2009), approximate
MOVING_GROUPS = {"Sirius": (9, 3), "Coma Ber.": (-10, -5), "Hyades": (-40, -20),
                 "Pleiades": (-12, -22), "Hercules": (-42, -51)}


def fit_velocities(sample, K=10, seed=0):
    """Extreme deconvolution of the projected velocities; w = 4 (km/s)^2 as Bovy et al."""
    gmm = ng.GMM(K=K, D=3)
    result = ng.fit(gmm, sample.y, covar=sample.covar, R=sample.R, init_method="kmeans",
                    w=4.0, tol=1e-6, rng=seed)
    return gmm, result


def velocity_figure(gmm, ellipsoid):
    """The deconvolved density in the (U, V), (U, W) and (V, W) planes."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), layout="constrained")
    names, lims = "UVW", [(-110, 90), (-110, 50), (-70, 60)]
    for ax, (i, j) in zip(axes, [(0, 1), (0, 2), (1, 2)]):
        u, v = np.meshgrid(np.linspace(*lims[i], 201), np.linspace(*lims[j], 201))
        dens = gmm.marginal([i, j])(np.column_stack([u.ravel(), v.ravel()])).reshape(u.shape)
        im = ax.imshow(np.log10(dens + 1e-12), origin="lower", extent=(*lims[i], *lims[j]),
                       vmin=np.log10(dens.max()) - 3, cmap="Greys", aspect="auto")
        ax.plot(*ellipsoid["mean"][[i, j]], "+", color="tab:red", ms=12, mew=2,
                label="mean velocity")
        ax.set_xlabel(f"{names[i]} [km/s]")
        ax.set_ylabel(f"{names[j]} [km/s]")
    for name, (U, V) in MOVING_GROUPS.items():
        axes[0].plot(U, V, "o", mfc="none", color="tab:orange", ms=9)
        axes[0].annotate(name, (U, V), xytext=(5, 5), textcoords="offset points",
                         color="tab:orange", fontsize=8)
    axes[0].plot([], [], "o", mfc="none", color="tab:orange", label="published moving groups")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.colorbar(im, ax=axes, label="log10 deconvolved density", shrink=0.9)
    fig.suptitle("Hipparcos-2: velocity distribution deconvolved from 2-D tangential velocities")
    return fig


def main(smoke=False, out=None, seed=0):
    cat = hipparcos.read_hip2()
    sample = hipparcos.tangential_velocities(cat, n=6000 if smoke else None, rng=seed)
    gmm, result = fit_velocities(sample, seed=seed)
    ell = hipparcos.velocity_ellipsoid(gmm)
    print(f"{len(sample.y)} stars with parallax/error > 10, K=10: {result.n_iter} iterations, "
          f"{result.elapsed:.1f} s, mean logL {result.logL:.4f}")
    print("mean (U, V, W)      ", np.round(ell["mean"], 1), "km/s")
    print("dispersion (U, V, W)", np.round(ell["dispersion"], 1), "km/s")
    print(f"vertex deviation     {ell['vertex_deviation']:.1f} deg")
    print("components (amp, mean, sd), narrowest in U first:")
    for k in np.argsort(np.sqrt(gmm.covar[:, 0, 0])):
        print(f"  {gmm.amp[k]:.3f}  {np.round(gmm.mean[k], 1)}  "
              f"{np.round(np.sqrt(np.diagonal(gmm.covar[k])), 1)}")
    fig = velocity_figure(gmm, ell)
    if out is not None:
        import matplotlib.pyplot as plt

        fig.savefig(f"{out}/hipparcos_velocities.png", dpi=100)
        plt.close(fig)
    return {"n_stars": len(sample.y), "gmm": gmm, "seconds": result.elapsed, **ell}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="6000 stars, a quick run")
    parser.add_argument("--out", default=None, help="folder for hipparcos_velocities.png")
    args = parser.parse_args()
    main(smoke=args.smoke, out=args.out)
