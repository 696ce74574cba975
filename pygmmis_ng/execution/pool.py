"""The process-pool executor: a fit's tasks on worker processes over shared memory.

:class:`PoolExecutor` lives for one fit: it copies the large read-only
arrays of the problem (data, noise, weights, background densities) into
``multiprocessing.shared_memory`` segments once, starts the worker
processes once (they attach to the segments and rebuild the problem), and
maps each iteration's tasks over them with parmap. Closing it -- always, by
``with``, also after an exception or Ctrl-C -- terminates the workers and
unlinks every segment. Workers ignore SIGINT, so Ctrl-C reaches the parent
only, which then shuts everything down.

User callbacks (``sel_callback``, ``covar_callback``) run in the workers.
With the "fork" start method (Linux) they are inherited and need not be
picklable; elsewhere they must be.
"""
from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
from collections.abc import Callable, Sequence
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import parmap

#: the problem's arrays that go to shared memory (fields of fitting.problem.Problem)
SHARED_FIELDS = ("Xc", "S", "R", "weight", "log_bg_obs", "nbr")
#: large arrays only the parent process uses (not sent to the workers)
PARENT_ONLY_FIELDS = ("Zc", "order", "reseed_index", "reseed_cdf")
#: those the workers write to (each task only its own chunk's rows)
WRITABLE_FIELDS = ("nbr",)
#: prefix of our shared-memory segment names (tests look for leftovers by it)
SEGMENT_PREFIX = "pygmmis_ng_"

#: seconds between checks that every worker is still alive while waiting for results
WATCH_INTERVAL = 0.2


class WorkerDied(RuntimeError):
    """A worker process of a parallel fit ended unexpectedly."""


_worker_problem: Any = None          # the problem, rebuilt once in each worker
_worker_segments: list = []          # keeps the worker's attachments alive


def _attach(name: str) -> shared_memory.SharedMemory:
    try:   # Python >= 3.13: do not let this process's resource tracker own the segment
        return shared_memory.SharedMemory(name=name, track=False)
    except TypeError:
        return shared_memory.SharedMemory(name=name)


def _init_worker(lite: Any, specs: dict) -> None:
    """Worker start: ignore Ctrl-C, attach to the segments, rebuild the problem."""
    global _worker_problem
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    arrays = {}
    for field, (name, shape, dtype) in specs.items():
        shm = _attach(name)
        _worker_segments.append(shm)
        arr = np.ndarray(shape, dtype=np.dtype(dtype), buffer=shm.buf)
        arr.flags.writeable = field in WRITABLE_FIELDS
        arrays[field] = arr
    _worker_problem = lite._replace(**arrays)


def _run_task(task: Any, fn: Callable) -> Any:
    return fn(_worker_problem, task)


class PoolExecutor:
    """A process pool over shared memory for the duration of one fit.

    Parameters
    ----------
    problem : pygmmis_ng.fitting.problem.Problem
        Its arrays named in :data:`SHARED_FIELDS` are shared; the rest is
        handed to the workers when they start.
    n_jobs : int >= 2
    """

    def __init__(self, problem: Any, n_jobs: int) -> None:
        self.n_jobs = n_jobs
        self._segments: list[shared_memory.SharedMemory] = []
        self._pool = None
        self._workers: list = []
        try:
            specs = {}
            for field in SHARED_FIELDS:
                arr = getattr(problem, field)
                if arr is None:
                    continue
                arr = np.ascontiguousarray(arr)
                shm = shared_memory.SharedMemory(
                    create=True, size=max(arr.nbytes, 1),
                    name=f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(6)}")
                self._segments.append(shm)
                np.ndarray(arr.shape, dtype=arr.dtype, buffer=shm.buf)[...] = arr
                specs[field] = (shm.name, arr.shape, arr.dtype.str)
            lite = problem._replace(**{field: None for field in (*specs, *PARENT_ONLY_FIELDS)})
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            self._pool = ctx.Pool(n_jobs, initializer=_init_worker, initargs=(lite, specs))
            self._workers = list(getattr(self._pool, "_pool", []))
        except BaseException:
            self.close()
            raise

    def map(self, fn: Callable, tasks: Sequence) -> list:
        result = parmap.map_async(_run_task, list(tasks), fn, pm_pool=self._pool, pm_chunksize=1)
        # multiprocessing.Pool replaces a worker that dies (killed for memory, a crash in
        # compiled code) and loses its task: waiting on the result would never end
        while not result.ready():
            result.wait(WATCH_INTERVAL)
            if self._a_worker_died() and not result.ready():
                raise WorkerDied("a worker process of the fit died (killed for lack of memory?); "
                                 "try a smaller n_jobs")
        return result.get()

    def _a_worker_died(self) -> bool:
        # an original worker has exited, or the pool has replaced one behind our back
        if any(w.exitcode is not None for w in self._workers):
            return True
        current = {w.pid for w in list(getattr(self._pool, "_pool", []))}
        return bool(current) and current != {w.pid for w in self._workers}

    def close(self) -> None:
        """Stop the workers and unlink every segment (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            if self._a_worker_died():
                # a worker that died while holding the task queue's read lock would block
                # terminate() forever (it takes that lock): release it on the dead one's behalf
                try:
                    pool._inqueue._rlock.release()
                except (AttributeError, ValueError):      # not held (ValueError) or no such lock
                    pass
            pool.terminate()
            pool.join()
        segments, self._segments = self._segments, []
        for shm in segments:
            shm.close()
            try:
                shm.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
