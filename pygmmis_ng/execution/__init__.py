"""Executors: run the tasks of one EM iteration, serially, in a process pool or on Dask.

A fit splits its work into fixed tasks -- chunks of the observed samples
(:func:`pygmmis_ng.data.layout.eval_chunks`) and blocks of imputation draws
(:data:`pygmmis_ng.selection.imputation.IMPUTATION_BLOCK`) -- whose
boundaries do not depend on the number of workers. An executor is a context
manager with ``map(fn, tasks) -> list`` that returns ``fn(problem, task)`` for
every task, in task order; the caller adds the partial sums in that order, so
a fixed seed gives bit-identical fits with every executor. It lives for one
fit and releases everything it holds on ``close`` (also after an exception or
Ctrl-C; :mod:`.interrupts` holds Ctrl-C back while processes start or stop).
"""
from __future__ import annotations

import os
from typing import Any

from .cluster import ClusterLost, DaskExecutor
from .pool import PoolExecutor, WorkerDied
from .serial import SerialExecutor

__all__ = ["SerialExecutor", "PoolExecutor", "DaskExecutor", "ClusterLost", "WorkerDied",
           "make_executor", "resolve_n_jobs"]


def resolve_n_jobs(n_jobs: int) -> int:
    """Number of worker processes for ``n_jobs`` (-1: one per CPU)."""
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


def make_executor(problem: Any, n_jobs: int, client: Any = None) -> Any:
    """The executor: on the Dask cluster of ``client``, else for ``n_jobs`` workers (serial
    for 1)."""
    if client is not None:
        return DaskExecutor(problem, client)
    n = resolve_n_jobs(n_jobs)
    return SerialExecutor(problem) if n == 1 else PoolExecutor(problem, n)
