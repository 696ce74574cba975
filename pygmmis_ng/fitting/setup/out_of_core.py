"""Dask-array input with a client: checked block by block on the cluster, never gathered here.

When ``data`` is a dask array and the fit has a ``client``, the samples stay
where they are (on the workers, or on disk behind ``da.from_zarr``): every
check of :func:`pygmmis_ng.data.validation.check_observed` runs on the
workers over the fixed blocks of :func:`pygmmis_ng.data.lazy.block_bounds`,
which return only what the fit needs of all rows (their total weight, the
mean log selection probability, the extent of each column, whether the
background footprint covers any of them). Only the initialization sample
(at most ``init_sample_rows`` rows) comes to this
process. The E-steps then read the rows chunk by chunk on the workers
(:mod:`pygmmis_ng.execution.cluster`).

Not streamed (a clear error says so): missing values (NaN, which would need
the samples re-sorted by pattern), projections ``R``, ``cutoff``'s
per-sample neighborhoods as output, and split'n'merge, whose candidates
need per-sample responsibilities.
"""
from __future__ import annotations

import math
import sys
import uuid
from typing import Any, NamedTuple

import numpy as np

from ...data.arrays import as_float_array
from ...data.lazy import block_bounds, block_sum, is_lazy, ordered_sum, sample_index
from ...data.validation import check_data, check_noise, check_spread, check_weight_values
from ...selection.imputation import evaluate_selection


class BlockSummary(NamedTuple):
    """What a fit needs to know of one block of rows."""

    weight: float            # summed weight
    lo: np.ndarray           # (D,) smallest value of each column
    hi: np.ndarray           # (D,) largest value of each column
    in_footprint: bool       # some row inside the background footprint
    log_omega: float         # summed (weighted) log selection probability


class LazyInput(NamedTuple):
    """Dask-array samples of a fit, checked, and what the fit needs of all rows."""

    X: Any                   # dask (N, D) float64
    S: Any                   # None, ndarray (D, D), or dask (N, D, D)
    weight: Any              # None or dask (N,)
    N_w: float
    log_omega_mean: float
    sample: tuple            # (X, S, weight) of the initialization rows, numpy


def uses_cluster_data(data: Any, client: Any) -> bool:
    """Whether a fit keeps its samples on the cluster: a dask array ``data`` with a client."""
    return client is not None and is_lazy(data)


def check_lazy_input(data: Any, covar: Any, R: Any, sample_weight: Any, K: int, D: int,
                     client: Any, sel_callback: Any, footprint: Any, gen: np.random.Generator,
                     cutoff: bool, split_n_merge: bool, dtype: Any = np.float64) -> LazyInput:
    """Dask-array samples checked on the cluster (see the module docstring); ``cutoff`` and
    ``split_n_merge``: whether the fit asks for them (refused, as projections ``R`` are)."""
    asked = [name for name, on in (("R (projections)", R is not None), ("cutoff", cutoff),
                                   ("split_n_merge", split_n_merge)) if on]
    if asked:
        raise ValueError(f"{', '.join(asked)} cannot be used with data that stay on the Dask "
                         "cluster (a dask array with client=): pass data.compute() (numpy) if "
                         "they fit in memory")
    da = sys.modules["dask.array"]
    X = _lazy_float(data, "data", dtype)
    if X.ndim != 2 or X.shape[1] != D:
        raise ValueError(f"data must have shape (N, D) with D={D} (the model has D={D} "
                         f"dimensions); got shape {X.shape}")
    N = X.shape[0]
    if N < K:
        raise ValueError(f"K={K} components cannot be fitted to N={N} samples: need N >= K")
    rows = X.chunks[0]
    S = covar
    if covar is not None and (is_lazy(covar) or np.ndim(covar) == 3):
        S = _lazy_float(covar, "covar", dtype) if is_lazy(covar) else \
            as_float_array(covar, "covar", dtype)
        if S.shape != (N, D, D):
            raise ValueError(f"covar (noise covariance) must be None, shape ({D}, {D}) shared by "
                             f"all samples or ({N}, {D}, {D}) one per sample; got shape {S.shape}")
        S = S.rechunk((rows, D, D)) if is_lazy(S) else da.from_array(S, chunks=(rows, D, D))
    elif covar is not None:
        S = check_noise(covar, N, D)
    weight = None
    if sample_weight is not None:
        weight = _lazy_float(sample_weight, "sample_weight") if is_lazy(sample_weight) else \
            as_float_array(sample_weight, "sample_weight")
        if weight.shape != (N,):
            raise ValueError(f"sample_weight must have shape ({N},), got {weight.shape}")
        weight = weight.rechunk((rows,)) if is_lazy(weight) else da.from_array(weight,
                                                                                chunks=(rows,))
    parts = _summaries(client, X, S, weight, D, sel_callback, footprint)
    N_w = _check_summaries(parts, N, weight is not None, footprint)
    log_omega_mean = ordered_sum(p.log_omega for p in parts) / N_w if sel_callback else 0.0
    return LazyInput(X, S, weight, N_w, log_omega_mean,
                     _gather_sample(client, X, S, weight, sample_index(N, gen)))


def _lazy_float(a: Any, name: str, dtype: Any = np.float64) -> Any:
    """A dask array of numbers as ``dtype`` (lazily)."""
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got a dask array of dtype {a.dtype}")
    return a if a.dtype == dtype else a.astype(dtype)


def check_block(lo: int, X: np.ndarray, S: Any, weight: np.ndarray | None, D: int,
                sel_callback: Any, footprint: Any) -> BlockSummary:
    """The checks of a fit's samples on one block of rows (run on a worker)."""
    where = f"rows {lo}..{lo + len(X) - 1} of the dask array"
    try:
        X = check_data(X, D, allow_missing=True)
        if np.isnan(X).any():
            raise ValueError("data contains NaN (missing values): samples with missing values "
                             "must be sorted by pattern, which is not streamed from a dask "
                             "array; pass data.compute() (numpy) with client=")
        if S is not None and np.ndim(S) == 3:
            check_noise(S, len(X), D)
        if weight is not None:
            check_weight_values(weight)
        log_omega = 0.0
        if sel_callback is not None:
            omega = evaluate_selection(sel_callback, X, "the observed samples")
            check_observed_omega(omega, lo)
            log_omega = block_sum(log_terms(omega, weight))
    except ValueError as exc:
        raise ValueError(f"{exc} (in {where})") from None
    inside = False
    if footprint is not None:
        inside = bool(((X > footprint[0]) & (X < footprint[1])).all(axis=1).any())
    return BlockSummary(block_sum(weight) if weight is not None else float(len(X)),
                        X.min(axis=0), X.max(axis=0), inside, log_omega)


def check_observed_omega(omega: np.ndarray, first_row: int = 0) -> None:
    """Omega at the observed samples (rows from ``first_row``) must be > 0."""
    zero = np.flatnonzero(omega == 0)
    if zero.size:
        raise ValueError(f"sel_callback gives Omega = 0 for {zero.size} observed sample(s) (first: "
                         f"row {first_row + zero[0]}): observed samples must have a non-zero "
                         "selection probability; the callback is likely wrong. If it returns a "
                         "random draw of the selection (pyGMMis's tests/test_3D.py: "
                         "rng.rand(len(coords)) > coords[:, 0]), return the selection "
                         "probability instead (np.clip(1 - coords[:, 0], 0, 1)): the fit draws "
                         "from it itself")


def log_terms(omega: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
    """The (weighted) log selection probabilities whose block sums give the mean log Omega."""
    return np.log(omega) if weight is None else np.log(omega) * weight


def _summaries(client: Any, X: Any, S: Any, weight: Any, D: int, sel_callback: Any,
               footprint: Any) -> list[BlockSummary]:
    """:func:`check_block` on every block, on the workers, in block order."""
    import dask

    shared = S if S is None or np.ndim(S) == 2 else None
    tag = uuid.uuid4().hex[:8]           # the callbacks are part of the task: keys of its own
    tasks = []
    for lo, hi in block_bounds(X.shape[0]):
        tasks.append(dask.delayed(check_block, pure=True)(
            lo, X[lo:hi], shared if shared is not None or S is None else S[lo:hi],
            None if weight is None else weight[lo:hi], D, sel_callback, footprint,
            dask_key_name=f"pygmmis_ng-check-{tag}-{lo}"))
    return _compute(client, tasks)


def _compute(client: Any, collections: list) -> list:
    """``collections`` computed on the cluster and gathered; their futures released after
    (cancelled only on an error: the keys of the data are shared with other computations)."""
    futures = client.compute(collections)
    try:
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise


def _check_summaries(parts: list[BlockSummary], N: int, weighted: bool, footprint: Any) -> float:
    """The checks of all rows together; returns the total weight."""
    N_w = ordered_sum(p.weight for p in parts) if weighted else float(N)
    if weighted and not (math.isfinite(N_w) and N_w > 0):
        raise ValueError("sample_weight sums to zero: nothing to fit" if N_w == 0 else
                         "sample_weight sums to inf: rescale the weights")
    check_spread(np.max([p.hi for p in parts], axis=0) - np.min([p.lo for p in parts], axis=0))
    if footprint is not None and not any(p.in_footprint for p in parts):
        raise ValueError("the background footprint contains none of the data: it must cover the "
                         "region where background samples can be observed")
    return N_w


def _gather_sample(client: Any, X: Any, S: Any, weight: Any, idx: np.ndarray | None) -> tuple:
    """The initialization rows (numpy): all rows, or those of ``idx``."""
    def rows(a: Any) -> Any:
        return a if idx is None else a[idx]
    lazy = [rows(X)] + [rows(a) for a in (S, weight) if a is not None and is_lazy(a)]
    # copied: arrays received from a worker can start at any byte, numpy's own at 16
    got = iter([np.array(a) for a in _compute(client, lazy)])
    Xs = next(got)
    Ss = next(got) if S is not None and is_lazy(S) else S
    ws = next(got) if weight is not None else None
    return Xs, Ss, ws
