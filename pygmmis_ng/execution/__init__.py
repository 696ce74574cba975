"""Executors: run the tasks of one EM iteration, serially, in a process pool or on Dask.

A fit splits its work into fixed tasks -- chunks of the observed samples
(:func:`pygmmis_ng.data.layout.eval_chunks`) and blocks of imputation draws
(the runtime setting ``imputation_block``, :mod:`pygmmis_ng.config`) -- whose
boundaries do not depend on the number of workers. An executor is a context
manager with ``map(fn, tasks) -> list`` that returns ``fn(problem, task)`` for
every task, in task order; the caller adds the partial sums in that order, so
a fixed seed gives bit-identical fits with every executor. It lives for one
fit and releases everything it holds on ``close`` (also after an exception or
Ctrl-C; :mod:`.interrupts` holds Ctrl-C back while processes start or stop).
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from .cluster import ClusterLost, ClusterStalled, DaskExecutor
from .pool import PoolExecutor, WorkerDied
from .serial import SerialExecutor
from .threadpools import in_daemonic_process

__all__ = ["SerialExecutor", "PoolExecutor", "DaskExecutor", "ClusterLost", "ClusterStalled",
           "WorkerDied", "make_executor", "resolve_n_jobs"]


def resolve_n_jobs(n_jobs: int) -> int:
    """Number of worker processes for ``n_jobs`` (-1: one per CPU)."""
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of a warning that points at the first frame outside this package."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def make_executor(problem: Any, n_jobs: int, client: Any = None) -> Any:
    """The executor: on the Dask cluster of ``client``, else for ``n_jobs`` workers (serial
    for 1)."""
    if client is not None:
        return DaskExecutor(problem, client)
    n = resolve_n_jobs(n_jobs)
    if n == 1:
        return SerialExecutor(problem)
    if in_daemonic_process():
        warnings.warn(f"n_jobs={n_jobs}: this process is a daemonic worker (of a "
                      "multiprocessing pool), which may not start processes; the fit runs its "
                      f"chunks on {n} threads instead (the same result)", UserWarning,
                      stacklevel=_caller_stacklevel())
        return SerialExecutor(problem, n_threads=n)
    return PoolExecutor(problem, n)
