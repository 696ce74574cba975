"""Samples in memory-mapped files: read chunk by chunk, never copied whole.

A fit centres its samples once (y_i - c). For data in memory, that is one
array; for a memory-mapped array (``np.memmap``, ``np.load(..., mmap_mode='r')``)
that copy would bring the whole file into memory. :class:`CentredRows` stands
in for the centred array instead: it holds the mapping and the centre, and
each chunk a kernel reads is centred as it is read -- with the same
arithmetic as the copy, so the fit is bitwise the same. Per-sample noise in a
mapped file is read chunk by chunk as it is (the kernels convert each chunk to
float64). Process-pool workers inherit the mapping (fork) or reopen the file
(pickling): the data are never copied into shared memory.

Used for complete samples without projections (missing values would need
the rows re-sorted by pattern, which is a copy).
"""
from __future__ import annotations

import mmap
from typing import Any

import numpy as np


def is_memory_mapped(a: Any) -> bool:
    """Whether the array ``a`` (or the array it views) lives in a memory-mapped file."""
    while isinstance(a, np.ndarray):
        if isinstance(a, np.memmap):
            return True
        a = a.base
    return isinstance(a, mmap.mmap)


class CentredRows:
    """The rows of ``base`` (N, D) minus ``center`` (D,), computed chunk by chunk.

    ``rows[sl]`` equals ``np.subtract(base[sl], center)`` stored as ``base``'s
    dtype -- what :func:`pygmmis_ng.fitting.setup.prepare.prepare_problem` stores for
    data in memory.
    """

    def __init__(self, base: np.ndarray, center: np.ndarray) -> None:
        self.base = base
        self.center = np.asarray(center, dtype=np.float64)
        self.shape, self.dtype, self.ndim = base.shape, base.dtype, base.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = np.asarray(self.base[key])
        return np.subtract(rows, self.center, out=np.empty(rows.shape, rows.dtype),
                           casting="same_kind")

    def __reduce__(self) -> tuple:
        # to another process: the file reopened, never the rows (a plain array travels whole)
        mapped = _mapping(self.base)
        if mapped is None:
            return CentredRows, (np.asarray(self.base), self.center)
        return _reopen, (*mapped, self.center)


def _mapping(a: np.ndarray) -> tuple | None:
    """(filename, dtype, shape, byte offset in the file, strides) of a view into an np.memmap
    opened read-only or read-write, else None (a copy-on-write mapping may differ from its
    file). The offset is measured from the array that holds the mapping itself (a slice of a
    memmap keeps its parent's ``offset``)."""
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not isinstance(root, np.memmap) or not isinstance(root.base, mmap.mmap) or \
            root.filename is None or root.mode not in ("r", "r+"):
        return None
    start = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return root.filename, a.dtype.str, a.shape, root.offset + start, a.strides


def _reopen(filename: str, dtype: str, shape: tuple, offset: int, strides: tuple,
            center: np.ndarray) -> CentredRows:
    """The view (``offset`` in the file of its first element, ``strides`` of any sign) of the
    file mapped again, read-only."""
    low = offset + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
    high = offset + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) + \
        np.dtype(dtype).itemsize
    raw = np.memmap(filename, dtype=np.uint8, mode="r", offset=low, shape=(high - low,))
    view = np.ndarray(shape, dtype=np.dtype(dtype), buffer=raw, offset=offset - low,
                      strides=strides)
    return CentredRows(view, center)
