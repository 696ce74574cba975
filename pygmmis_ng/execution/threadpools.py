"""Other libraries' thread pools, held so that a fit never hangs and never changes them for good.

Two kinds of thread pool live in the libraries a fit calls:

* **BLAS** (OpenBLAS): the kernels call it on chunk-sized matrices from
  several threads, or from one worker process per core; BLAS's own threads
  on top would oversubscribe the cores (measured: 2x slower, and erratic),
  and a GEMM's result does not depend on them. The limit is process-wide, so
  the fits running at the same time in one process share one reference
  count: the first sets it, the last restores what was there before.
* **OpenMP** (the GNU libgomp scikit-learn ships): ``KMeans`` starts a team
  of OpenMP threads that does not survive ``fork``. A process forked after
  it ran with more than one thread hangs in its next OpenMP region, so every
  default fit inside a ``multiprocessing`` pool would hang after a fit in the
  parent. Every initialization (ours and the user's callables) therefore
  runs with OpenMP at one thread (:func:`single_threaded_openmp`). The limit
  is per thread in OpenMP, so a fit in another thread is not touched.
  Measured on 2 cores (``KMeans(n_init=1)``, N = 2^12..2^18, D = 2..5,
  K = 5..20): one thread takes 0.66-1.22x the time of two; k-means is a small
  part of a fit. It also makes the start independent of the machine's core
  count: two threads give centres 1e-14 away from one thread's, so a fit's
  bits depended on where it ran.

:func:`in_daemonic_process` tells whether this process may start worker
processes (a ``multiprocessing`` pool's workers may not).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Iterator

from threadpoolctl import ThreadpoolController

_BLAS_LOCK = threading.Lock()
_blas_users = 0
_blas_limit = None


def _reset_after_fork() -> None:
    """In a forked child: a new lock (the parent's may have been held by a thread that is not
    here) and no users (the fits of the parent's other threads did not come along)."""
    global _BLAS_LOCK, _blas_users, _blas_limit
    _BLAS_LOCK, _blas_users, _blas_limit = threading.Lock(), 0, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread while any fit of this process holds this context (the
    limit before the first is restored when the last leaves)."""
    global _blas_users, _blas_limit
    with _BLAS_LOCK:
        if _blas_users == 0:
            _blas_limit = ThreadpoolController().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


@contextlib.contextmanager
def single_threaded_openmp() -> Iterator[None]:
    """OpenMP at one thread in the calling thread while the context is open (see the module
    docstring: fork safety). scikit-learn's OpenMP library is loaded first, so the limit holds
    for the k-means it runs here also when this is the process's first fit."""
    import sklearn.cluster  # noqa: F401  (loads scikit-learn's OpenMP runtime)

    with ThreadpoolController().limit(limits=1, user_api="openmp"):
        yield


def in_daemonic_process() -> bool:
    """Whether this process is a daemonic ``multiprocessing`` worker (which may not start
    processes of its own)."""
    return bool(multiprocessing.current_process().daemon)
