"""Choosing the number of components: BIC and AIC over a range of K.

:func:`scan_K` fits one mixture per K with the same keywords as
:func:`pygmmis_ng.fit` (noise, selection, background, ...) and returns a
table of the observed-data log-likelihood, the number of free parameters and
the information criteria (see :attr:`FitResult.bic`, :attr:`FitResult.aic`),
like the BIC-over-K workflow of the seed documents::

    scan = ng.scan_K(data, range(1, 8), covar=noise, init_method="kmeans", rng=0)
    print(scan)                       # one row per K
    gmm = scan.gmms[scan.best("bic")]
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from ..data.validation import check_data, check_int, check_rng
from ..fitting.fitter import fit
from ..fitting.problem.progress import check_progress, fit_progress
from ..model import GMM


class KScanRow(NamedTuple):
    K: int
    logL: float             # mean observed-data log-likelihood per sample
    n_params: int
    bic: float
    aic: float
    converged: bool
    n_iter: int


class KScan(NamedTuple):
    """The result of :func:`scan_K`: one row and one fitted GMM per K."""

    rows: list[KScanRow]
    gmms: dict[int, GMM]

    def best(self, criterion: str = "bic") -> int:
        """The K with the lowest ``'bic'`` or ``'aic'``."""
        if criterion not in ("bic", "aic"):
            raise ValueError(f"criterion must be 'bic' or 'aic', got {criterion!r}")
        return min(self.rows, key=lambda row: getattr(row, criterion)).K

    def __str__(self) -> str:
        lines = [f"{'K':>4s} {'logL':>12s} {'n_params':>9s} {'BIC':>14s} {'AIC':>14s} conv"]
        for r in self.rows:
            lines.append(f"{r.K:4d} {r.logL:12.5f} {r.n_params:9d} {r.bic:14.2f} {r.aic:14.2f} "
                         f"{'yes' if r.converged else 'no'}")
        return "\n".join(lines)


def scan_K(data: Any, Ks: Iterable[int], rng: Any = None, progress: bool | None = None,
           **fit_kwargs: Any) -> KScan:
    """Fit a mixture for every K and tabulate BIC and AIC.

    Parameters
    ----------
    data : array-like (N, D), NaN for missing values, or (N, dy) with ``R``
    Ks : iterable of int >= 1
        The numbers of components to try (each once, in the given order).
    rng : None, int, Generator or RandomState
        Each K gets its own stream, derived from this one and K, so a row
        does not depend on which other K are scanned.
    progress : None, True or False
        One progress bar over the values of K (the fits show none of their
        own); None: in interactive sessions once the scan has run for 3 s.
    **fit_kwargs
        Passed to :func:`pygmmis_ng.fit` (``covar``, ``R``, ``sel_callback``,
        ``init_method``, ``n_init``, ``tol``, ...); not ``frozen``.

    Returns
    -------
    KScan
    """
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"data must have shape (N, D), got shape {arr.shape}")
    X = check_data(arr, arr.shape[1], allow_missing=True)
    R = fit_kwargs.get("R")
    D = X.shape[1] if R is None else np.shape(R)[-1]
    Ks = [check_int(K, "K", minimum=1) for K in Ks]
    if not Ks:
        raise ValueError("Ks is empty: give at least one number of components")
    if len(set(Ks)) != len(Ks):
        raise ValueError(f"Ks has repeated values: {Ks}")
    if "frozen" in fit_kwargs:
        raise ValueError("frozen components have no meaning across different K")
    progress = check_progress(progress)
    entropy = int(check_rng(rng).integers(2**62))
    rows, gmms = [], {}
    with fit_progress(progress, desc="scan_K", unit="K", total=len(Ks)) as clock:
        for K in Ks:
            gmm = GMM(K, D)
            child = np.random.SeedSequence(entropy, spawn_key=(K,))    # keyed by K, not position
            res = fit(gmm, X, rng=np.random.default_rng(child), **fit_kwargs)
            rows.append(KScanRow(K, res.logL, res.n_params, res.bic, res.aic, res.converged,
                                 res.n_iter))
            gmms[K] = gmm
            if clock.bar is not None:
                clock.bar.set_postfix({"K": K, "BIC": f"{res.bic:.1f}"}, refresh=False)
                clock.bar.update(1)
    return KScan(rows, gmms)
