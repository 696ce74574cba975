"""Rows the fit sees as a whole: dask arrays, fixed reduction blocks, the initialization sample.

A fit needs a few quantities of all its samples beyond the E-step sums:
their total weight, the mean log selection probability, and the centre,
scales and extent of the data, the points the initialization and the
re-seeding of collapsed components draw from. Two rules make these the
same bits whether the samples are a numpy array in this process or a dask
array on a cluster that is never gathered here:

* sums over all rows are taken over fixed blocks of :data:`REDUCE_ROWS`
  rows, each correctly rounded (:func:`block_sum`), and added in block
  order (:func:`block_bounds`, :func:`ordered_sum`);
* the initialization, the data's centre and scales and the re-seeding see
  at most ``init_sample_rows`` rows (a runtime setting, :mod:`pygmmis_ng.config`):
  all of them, or that many drawn once from the fit's random stream
  (:func:`sample_index`). k-means on more rows than that buys nothing but time.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..config import get_settings
from ..kernels.compiled_transforms import column_sums

#: rows of the blocks over which whole-data sums are taken (and added in block order)
REDUCE_ROWS = 1 << 16


def is_lazy(a: Any) -> bool:
    """Whether ``a`` is a dask array (without importing dask when nobody has)."""
    if "dask.array" not in sys.modules:
        return False
    return isinstance(a, sys.modules["dask.array"].Array)


def block_bounds(N: int) -> list[tuple[int, int]]:
    """The fixed blocks ``[(lo, hi), ...]`` of N rows over which whole-data sums are taken."""
    return [(lo, min(lo + REDUCE_ROWS, N)) for lo in range(0, N, REDUCE_ROWS)]


def ordered_sum(parts: Iterable[float]) -> float:
    """The blocks' partial sums added in block order (the same bits for any executor)."""
    total = 0.0
    for part in parts:
        total += float(part)
    return total


def total_weight(weight: np.ndarray | None, N: int) -> float:
    """The summed sample weight (N without weights), block by block."""
    if weight is None:
        return float(N)
    return ordered_sum(block_sum(weight[lo:hi]) for lo, hi in block_bounds(N))


def block_sum(values: np.ndarray) -> float:
    """The correctly rounded sum of a block (math.fsum): numpy's sum depends on the memory
    alignment of the values (its SIMD loops), so the same rows held elsewhere could differ."""
    return math.fsum(values)


def stable_average(values: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """The (weighted) average of the rows of ``values`` (n, D) -> (D,), summed row by row
    with compensation: numpy's average depends on where in memory the values lie (an array
    received from a Dask worker can start at any byte), this does not."""
    if weight is None:
        return column_sums(values) / len(values)
    return column_sums(values, weight) / math.fsum(weight)


def sample_index(N: int, gen: np.random.Generator) -> np.ndarray | None:
    """Rows (sorted) the initialization sees: None (all) for N up to the runtime setting
    ``init_sample_rows``, else that many of them drawn without replacement from ``gen``."""
    rows = get_settings().init_sample_rows
    if N <= rows:
        return None
    return np.sort(gen.choice(N, size=rows, replace=False))


def chunk_bytes(arrays: Iterable[Any], rows: int) -> int:
    """Bytes that ``rows`` rows of the per-sample ``arrays`` hold together."""
    return int(sum(rows * int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize
                   for a in arrays))
