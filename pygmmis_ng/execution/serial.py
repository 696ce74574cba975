"""The in-process executor: a fit's tasks in this process, chunks of samples on threads.

The compiled E-step kernels release the GIL, so the chunks of observed samples
(tasks with a ``sl`` field) run on a pool of threads, one per core, without a
process pool's start-up and copies. Their results come back in task order and
the caller adds them in that order, so a fit is bit-identical for any number of
threads. Every other task -- imputation blocks, which call the user's
callbacks, which need not be thread-safe -- runs in order in the calling thread.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .protocol import run_task
from .threadpools import single_threaded_blas


def default_threads() -> int:
    """Threads for the chunks of one process: the CPUs this process may run on
    (``PYGMMIS_NG_THREADS`` overrides)."""
    env = os.environ.get("PYGMMIS_NG_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class SerialExecutor:
    """Runs the tasks in this process, in order (chunks of samples on ``n_threads`` threads)."""

    n_jobs = 1

    def __init__(self, problem: Any, n_threads: int | None = None) -> None:
        self.problem = problem
        self.n_threads = default_threads() if n_threads is None else max(1, n_threads)
        self._threads: ThreadPoolExecutor | None = None
        self._blas: contextlib.AbstractContextManager | None = None

    def map(self, fn: Callable, tasks: Sequence, prefetch: Sequence | None = None) -> list:
        """``[fn(problem, task) for task in tasks]``; ``prefetch`` (the next map's chunks) is
        a hint for executors that read data lazily: the data are here already."""
        tasks = list(tasks)
        if self.n_threads > 1 and len(tasks) > 1 and all(
                getattr(t, "sl", None) is not None for t in tasks):
            if self._threads is None:
                self._blas = single_threaded_blas()
                self._blas.__enter__()
                self._threads = ThreadPoolExecutor(self.n_threads,
                                                   thread_name_prefix="pygmmis_ng-chunk")
            problem = self.problem
            return list(self._threads.map(lambda task: run_task(fn, problem, task), tasks))
        return [run_task(fn, self.problem, task) for task in tasks]

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None
        if self._blas is not None:
            self._blas.__exit__(None, None, None)
            self._blas = None

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
