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


def plot_demo(out: dict[str, Any], filename: str | Path) -> Path:
    """Write the 4-panel figure (density of each fit, observed data, selection).

    Needs matplotlib (``pip install "pygmmis_ng[plot]"``); uses the Agg backend.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patches

    ds = out["dataset"]
    B = 120
    grid = np.linspace(-5, 15, B)
    xx, yy = np.meshgrid(grid, grid)
    coords = np.column_stack([xx.ravel(), yy.ravel()])
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6), layout="constrained")
    for ax, (name, m) in zip(axes, out["methods"].items()):
        dens = np.arcsinh(m["gmm"](coords).reshape(B, B) / 1e-4)
        ax.contourf(grid, grid, dens, 10, cmap="Greys")
        ax.plot(ds.data[:, 0], ds.data[:, 1], ".", ms=1.5, color="tab:blue", alpha=0.6)
        ax.add_patch(patches.Rectangle(BOX[0], *(BOX[1] - BOX[0]), fc="none", ec="k", ls="--"))
        ax.add_patch(patches.Circle(HOLE[:2], HOLE[2], fc="none", ec="k", ls="--"))
        ax.set_title(f"{name}\nlogL {m['heldout']:.3f} (truth {out['truth_heldout']:.3f})",
                     fontsize=10)
        ax.set_xlim(-5, 15)
        ax.set_ylim(-5, 15)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    path = Path(filename)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
