"""What every executor is (:class:`Executor`) and how it runs one task (:func:`run_task`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..config import use


@runtime_checkable
class Executor(Protocol):
    """Runs the tasks of a fit: :class:`~.serial.SerialExecutor` (this process, chunks on
    threads), :class:`~.pool.PoolExecutor` (worker processes over shared memory) and
    :class:`~.cluster.DaskExecutor` (a Dask cluster) are the three.

    ``map(fn, tasks)`` returns ``[fn(problem, task) for task in tasks]`` in task order
    (the caller adds partial sums in that order: bit-identical results for every
    executor); ``prefetch`` names the chunks the next call will read (a hint). An
    executor lives for one fit, as a context manager, and ``close`` releases what it holds
    (threads, processes, shared memory, cluster state), also after an error or Ctrl-C.
    """

    n_jobs: int

    def map(self, fn: Callable, tasks: Sequence, prefetch: Sequence | None = None) -> list: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: Any) -> None: ...


def run_task(fn: Callable, problem: Any, task: Any) -> Any:
    """``fn(problem, task)`` under the runtime settings the problem carries
    (:mod:`pygmmis_ng.config`): a thread or worker process computes with the settings of
    the fit that sent the task, not with its own defaults."""
    with use(getattr(problem, "settings", None)):
        return fn(problem, task)
