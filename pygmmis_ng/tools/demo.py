"""The README's main job: the pyGMMis paper's 2D test with four methods.

N samples are drawn from a 3-component mixture, isotropic noise (sd 0.5) is
added and only samples inside the box [0, 10]^2 but outside a circle are
kept. Four fits of the same observed data are compared by the mean
log-density they give to fresh noise-free draws of the truth:

1. standard EM (ignores noise and selection),
2. noise deconvolution (extreme deconvolution, ignores selection),
3. GMMis (imputation of the unselected samples, ignores noise),
4. GMMis + deconvolution (both).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..fitting.fitter import fit
from ..model import GMM
from .compare import heldout_logL
from .datasets import BOX, HOLE, Dataset, paper_2d

#: fit settings of the paper (w, cutoff, oversampling) plus our init
FIT_KW = dict(w=0.1, cutoff=5, oversampling=10, init_method="kmeans", n_init=3, tol=1e-4)

METHODS = ("standard EM", "deconvolution", "GMMis", "GMMis + deconvolution")


def _fit_kwargs(method: str, ds: Dataset) -> dict[str, Any]:
    kw: dict[str, Any] = dict(FIT_KW)
    if "deconvolution" in method:
        kw["covar"] = ds.covar
    if method.startswith("GMMis"):
        kw["sel_callback"] = ds.sel_callback
        if "covar" in kw:
            noise = ds.covar
            kw["covar_callback"] = lambda coords: noise
    return kw


def run_demo(N: int = 4000, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit the four methods to one realization of the paper's 2D problem.

    Parameters
    ----------
    N : int
        Samples drawn before noise and selection (about half are observed).
    seed : int
    progress : callable(str) or None
        Called with a short message before and after each fit.

    Returns
    -------
    dict with 'dataset' (a :class:`~pygmmis_ng.tools.datasets.Dataset`), 'methods'
    (name -> dict(gmm, result, seconds, heldout)) and 'truth_heldout'.
    """
    ds = paper_2d(N=N, selection="box_with_hole", sigma=0.5, rng=seed)
    say = progress or (lambda msg: None)
    methods = {}
    for i, name in enumerate(METHODS, 1):
        say(f"[{i}/{len(METHODS)}] {name} ...")
        gmm = GMM(K=3, D=2)
        t0 = time.perf_counter()
        result = fit(gmm, ds.data, rng=seed, **_fit_kwargs(name, ds))
        seconds = time.perf_counter() - t0
        methods[name] = dict(gmm=gmm, result=result, seconds=seconds,
                             heldout=heldout_logL(gmm, ds.truth, rng=seed + 1))
        say(f"[{i}/{len(METHODS)}] {name}: {seconds:.1f} s, {result.n_iter} iterations")
    return dict(dataset=ds, methods=methods, N=N,
                truth_heldout=heldout_logL(ds.truth, ds.truth, rng=seed + 1))


def format_report(out: dict[str, Any]) -> str:
    """A plain-text table of :func:`run_demo`'s output."""
    ds = out["dataset"]
    lines = [f"pygmmis_ng demo: the pyGMMis paper's 2D test, N={out['N']} samples, "
             f"{len(ds.data)} observed",
             "(noise sd 0.5; selection: inside the box [0,10]^2, outside the circle r=2 at (6.5, 6))",
             "",
             "mean log-density of 20000 fresh noise-free truth draws (higher is better):",
             f"  {'method':24s} {'time [s]':>9s} {'logL':>9s} {'vs truth':>9s}",
             f"  {'truth':24s} {'':>9s} {out['truth_heldout']:9.4f} {0:+9.4f}"]
    for name, m in out["methods"].items():
        lines.append(f"  {name:24s} {m['seconds']:9.2f} {m['heldout']:9.4f} "
                     f"{m['heldout'] - out['truth_heldout']:+9.4f}")
    return "\n".join(lines)


#: extent of the demo's panels and the lowest density drawn (log10)
EXTENT, LOG_FLOOR = (-5.0, 15.0), -4.0


def _density_panel(ax: Any, gmm: GMM, ds: Dataset, title: str, levels: np.ndarray,
                   points: np.ndarray, label: str) -> Any:
    """One panel: log10 density of ``gmm`` on the shared levels, ``points``, the selection."""
    from matplotlib import patches

    grid = np.linspace(*EXTENT, 150)
    xx, yy = np.meshgrid(grid, grid)
    dens = gmm(np.column_stack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    with np.errstate(divide="ignore"):
        logd = np.clip(np.log10(dens), levels[0], levels[-1])
    filled = ax.contourf(grid, grid, logd, levels=levels, cmap="Greys")
    ax.plot(points[:, 0], points[:, 1], ".", ms=1.5, color="tab:blue", alpha=0.5, label=label)
    ax.add_patch(patches.Rectangle(BOX[0], *(BOX[1] - BOX[0]), fc="none", ec="tab:red", ls="--",
                                   label="selection boundary"))
    ax.add_patch(patches.Circle(HOLE[:2], HOLE[2], fc="none", ec="tab:red", ls="--"))
    ax.set(xlim=EXTENT, ylim=EXTENT, aspect="equal", xlabel="x", ylabel="y")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=7, markerscale=5, framealpha=0.8)
    return filled


def _score_panel(ax: Any, out: dict[str, Any]) -> None:
    """Bars: each method's held-out mean log-density minus the truth's (0 is perfect)."""
    names = list(out["methods"])
    gaps = [out["methods"][n]["heldout"] - out["truth_heldout"] for n in names]
    ax.barh(range(len(names)), gaps, color=["tab:gray"] * (len(names) - 1) + ["tab:green"])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.0, color="k", lw=1)
    ax.set_xlim(1.3 * min(min(gaps), -0.1), 0.1)
    ax.set_xlabel("held-out logL − truth's (0 = as good as the truth)")
    ax.set_title("score on 20000 fresh noise-free draws of the truth", fontsize=10)
    for i, g in enumerate(gaps):
        ax.annotate(f"{g:+.3f}", (g, i), xytext=(-3 if g < 0 else 3, 0), fontsize=8,
                    textcoords="offset points", ha="right" if g < 0 else "left", va="center")


def figure_demo(out: dict[str, Any]) -> Any:
    """The demo's figure: the truth, each method's fitted density, and their scores.

    Every density panel shares one colour scale (log10 density, with a colour
    bar), shows the observed samples and the selection boundary (the box, minus
    the circle), and gives its held-out score in the title. Needs matplotlib.
    """
    import matplotlib.pyplot as plt

    ds = out["dataset"]
    truth_max = np.log10(ds.truth(ds.truth.mean).max())
    levels = np.arange(LOG_FLOOR, np.ceil(truth_max * 2) / 2 + 0.25, 0.5)
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5), layout="constrained")
    axes = axes.ravel()
    filled = _density_panel(axes[0], ds.truth, ds,
                            f"truth: {len(ds.orig)} draws before noise and selection\n"
                            f"held-out logL {out['truth_heldout']:.3f}",
                            levels, ds.orig, "draws before noise and selection")
    for ax, (name, m) in zip(axes[1:5], out["methods"].items()):
        gap = m["heldout"] - out["truth_heldout"]
        _density_panel(ax, m["gmm"], ds, f"{name}\nheld-out logL {m['heldout']:.3f} "
                       f"({gap:+.3f} vs truth)", levels, ds.data,
                       f"observed samples ({len(ds.data)})")
    _score_panel(axes[5], out)
    fig.colorbar(filled, ax=axes[:5].tolist(), shrink=0.6, label="log10 density")
    fig.suptitle(f"pyGMMis paper's 2D test: noise sd 0.5, observed only inside the box and "
                 f"outside the circle ({len(ds.data)} of {out['N']} samples)")
    return fig


def plot_demo(out: dict[str, Any], filename: str | Path) -> Path:
    """Write :func:`figure_demo` to ``filename`` (PNG, Agg backend); needs matplotlib
    (``pip install "pygmmis_ng[plot]"``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = figure_demo(out)
    path = Path(filename)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
