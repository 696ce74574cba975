"""Non-detections as upper limits: a flux-flux diagram with a detection limit.
===========================================================================

    python examples/censored_nondetections.py [--smoke] [--N 5000] [--seed 0] [--out DIR]

Two populations of sources have fluxes in two bands. Every source is detected in
band 1; in band 2 a source counts as detected only when its *measured* flux
exceeds three times its own noise (the depth differs from field to field). The
others are non-detections: the catalogue gives their 3-sigma limit as an upper
limit. Most sources of the faint population fall below it, about a third of all
sources.

Three fits of the same K=2 mixture, each deconvolving the per-sample noise, are
compared with the known truth:

1. dropping the non-detections (the faint population loses most of its members
   and what is left of it is the top of its band-2 distribution);
2. plugging in the limits as if they were measured fluxes;
3. the censored fit: ``censored=-1`` marks each limit, and the likelihood of a
   non-detection is the density of its band-1 flux times the probability that
   its noisy band-2 flux lies below the limit.

For each fit the script prints the errors of the amplitudes, means and
covariances against the truth, and the mean log-density it gives to fresh
noise-free draws from the truth (the truth's own is the best possible). The
figure shows the detections, the limits as downward markers, and each fit's 1-
and 2-sigma ellipses over the truth's.
"""
import argparse
import time
import warnings

import numpy as np

import pygmmis_ng as ng


def make_truth():
    """The source populations in (band-1 flux, band-2 flux), noise-free."""
    truth = ng.GMM(K=2, D=2)
    truth.amp = [0.55, 0.45]
    truth.mean = [[5.0, 4.0],              # bright in band 2: nearly always detected
                  [3.0, 1.0]]              # faint in band 2: mostly below the limit
    truth.covar = [[[1.0, 0.6], [0.6, 0.8]],
                   [[0.6, 0.25], [0.25, 0.4]]]
    return truth


def observe(truth, N, rng):
    """Noisy fluxes, upper limits at 3 sigma in band 2, and the censoring flags.

    Returns data (N, 2) (band 2: the measured flux, or the limit of a non-detection),
    the per-sample noise covariances (N, 2, 2), the flags (N, 2) in {0, -1} and the
    noise-free fluxes.
    """
    x = truth.draw(N, rng=rng)
    sd = np.column_stack([rng.uniform(0.2, 0.5, N),        # band-1 noise
                          rng.uniform(0.3, 0.7, N)])       # band-2 noise: varies with depth
    noise = sd[:, :, None] ** 2 * np.eye(2)
    y = x + sd * rng.standard_normal((N, 2))               # what the instrument measures
    limit = 3 * sd[:, 1]                                   # detection: 3 sigma in band 2
    undetected = y[:, 1] < limit
    data = y.copy()
    data[undetected, 1] = limit[undetected]                # reported: the upper limit
    censored = np.zeros((N, 2), dtype=int)
    censored[undetected, 1] = -1                           # the noisy flux lies below
    return data, noise, censored, x


def errors(gmm, truth):
    """Per truth component: |amplitude error|, |mean error| and the relative
    covariance error ||V - V_true||_F / ||V_true||_F, after matching components."""
    order = ng.match_components(gmm, truth)
    amp = np.abs(gmm.amp[order] - truth.amp)
    mean = np.linalg.norm(gmm.mean[order] - truth.mean, axis=1)
    covar = (np.linalg.norm(gmm.covar[order] - truth.covar, axis=(1, 2))
             / np.linalg.norm(truth.covar, axis=(1, 2)))
    return amp, mean, covar


def three_fits(data, noise, censored, seed, **options):
    """The K=2 mixture fitted three ways, each deconvolving the noise; and the seconds
    each fit took. ``options`` go to :func:`pygmmis_ng.fit`."""
    det = censored[:, 1] == 0
    fits, seconds = {}, {}
    for name, (X, S, C) in (("dropping non-detections", (data[det], noise[det], None)),
                            ("limits as measurements", (data, noise, None)),
                            ("censored fit", (data, noise, censored))):
        gmm = ng.GMM(K=2, D=2)
        t = time.perf_counter()
        ng.fit(gmm, X, covar=S, censored=C, **{"init_method": "kmeans", "tol": 1e-6,
                                               "rng": seed, **options})
        seconds[name], fits[name] = time.perf_counter() - t, gmm
    return fits, seconds


def figure(data, censored, truth, fits):
    """The detections, the limits (downward markers) and each fit's ellipses over the
    truth's; ``fits`` holds (name, gmm, held-out logL)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from pygmmis_ng.tools.plots import plot_ellipses

    det = censored[:, 1] == 0
    fig, axes = plt.subplots(1, len(fits), figsize=(15, 5.2), sharex=True, sharey=True,
                             layout="constrained")
    for ax, (name, gmm, logL) in zip(axes, fits):
        ax.plot(*data[det].T, ".", ms=2, color="0.55", alpha=0.5)
        ax.plot(*data[~det].T, marker=7, ls="none", ms=3, color="C0", alpha=0.35)
        plot_ellipses(ax, truth, ec="k", ls="--", lw=1.2)
        plot_ellipses(ax, gmm, ec="C3")
        ax.set_title(f"{name}\nheld-out logL {logL:.3f}", fontsize=10)
        ax.set_xlabel("flux in band 1")
    axes[0].set_ylabel("flux in band 2")
    axes[0].legend(handles=[
        Line2D([], [], marker=".", ls="none", color="0.55", label="detections"),
        Line2D([], [], marker=7, ls="none", color="C0", label="upper limits (non-detections)"),
        Line2D([], [], color="k", ls="--", label="truth: 1, 2 sigma"),
        Line2D([], [], color="C3", label="fit: 1, 2 sigma")], loc="upper left", fontsize=8)
    axes[0].set_ylim(-1.5, 7.5)
    return fig


def main(smoke=False, N=None, seed=0, out=None):
    N = N or (2000 if smoke else 5000)
    rng = np.random.default_rng(seed)
    truth = make_truth()
    data, noise, censored, _ = observe(truth, N, rng)
    det = censored[:, 1] == 0
    print(f"{N} sources, {np.mean(~det):.1%} not detected in band 2 (upper limits)")

    with warnings.catch_warnings():          # a few iterations on a few rows: the kernels
        warnings.simplefilter("ignore")      # compile here, not inside the first timed fit
        three_fits(data[:300], noise[:300], censored[:300], seed, maxiter=3)
    fits, seconds = three_fits(data, noise, censored, seed)

    # fresh noise-free sources from the truth: which fitted density describes them best
    fresh = truth.draw(20000, rng=np.random.default_rng(seed + 1))
    logL_truth = float(np.mean(truth.logL(fresh)))
    print(f"\n{'':24s}{'time':>7s}{'held-out':>10s}{'vs truth':>10s}  "
          f"{'|d amp|':>14s}  {'|d mean|':>14s}  {'|d V| / |V|':>14s}")
    print(f"{'':24s}{'[s]':>7s}{'logL':>10s}{'':>10s}  "
          f"{'bright  faint':>14s}  {'bright  faint':>14s}  {'bright  faint':>14s}")
    print(f"{'truth':24s}{'':7s}{logL_truth:10.4f}{0:+10.4f}")
    result = {"nondetected": float(np.mean(~det)), "logL_truth": logL_truth}
    for name, gmm in fits.items():
        logL = float(np.mean(gmm.logL(fresh)))
        amp, mean, covar = errors(gmm, truth)
        print(f"{name:24s}{seconds[name]:7.2f}{logL:10.4f}{logL - logL_truth:+10.4f}  "
              + "  ".join(f"{e[0]:6.3f} {e[1]:6.3f}" for e in (amp, mean, covar)))
        result[name] = {"logL": logL, "amp_error": amp, "mean_error": mean,
                        "covar_error": covar, "seconds": seconds[name]}

    import matplotlib.pyplot as plt

    fig = figure(data, censored, truth,
                 [(name, gmm, result[name]["logL"]) for name, gmm in fits.items()])
    if out is not None:
        fig.savefig(f"{out}/censored_nondetections.png", dpi=100)
        plt.close(fig)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="2000 sources, a quick run")
    parser.add_argument("--N", type=int, default=None, help="sources (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", default=None, help="folder for censored_nondetections.png")
    main(**vars(parser.parse_args()))
