"""The process-pool executor: a fit's tasks on worker processes over shared memory.

:class:`PoolExecutor` lives for one fit: on entering its ``with`` block it
copies the large read-only arrays of the problem (data, noise, weights,
background densities) into ``multiprocessing.shared_memory`` segments once
and starts the worker processes once (they attach to the segments and
rebuild the problem); ``map`` then hands each worker one task at a time
over its own pipe. Closing it -- always, by ``with``, also after an
exception or Ctrl-C -- terminates the workers and unlinks every segment.

Ctrl-C (SIGINT) belongs to the parent:

* Workers ignore it: they are forked with SIGINT blocked (so not even the
  moment between fork and their first line can be interrupted) and set it
  to SIG_IGN before unblocking it.
* The parent holds SIGINT back (``pthread_sigmask``) while it creates the
  segments and forks the workers, and while it stops them: the at-fork
  handlers (logging's among them) then always run to the end -- a
  KeyboardInterrupt inside one would be printed as "Exception ignored" and
  lost -- and nothing is half created or half released. A Ctrl-C that came
  meanwhile is raised when SIGINT is unblocked, at a point where the
  executor cleans up after itself.
* While waiting for results the parent sleeps in ``poll`` on the workers'
  pipes and process sentinels, which a signal interrupts at once, also
  while a worker runs a slow user callback.

There are no helper threads and no locks shared with the workers, so a
worker that dies (killed for memory, a crash in compiled code, ``os._exit``
in a user callback) cannot leave anything blocked: its sentinel wakes the
parent, which raises :class:`WorkerDied` with the worker's exit code or
signal.

User callbacks (``sel_callback``, ``covar_callback``) run in the workers.
With the "fork" start method (Linux) they are inherited and need not be
picklable; elsewhere they must be.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import secrets
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing import connection, shared_memory
from multiprocessing.pool import RemoteTraceback
from typing import Any

import numpy as np

from ..data.mapped import CentredRows, is_memory_mapped
from .fields import FLAG_FIELD, PARENT_ONLY_FIELDS, ROW_FIELDS
from .interrupts import sigint_deferred
from .protocol import run_task
from .threadpools import single_threaded_blas

logger = logging.getLogger("pygmmis_ng")

#: the problem's arrays that go to shared memory (fields of fitting.problem.Problem)
SHARED_FIELDS = (*ROW_FIELDS, FLAG_FIELD)
#: those the workers write to (each task only its own chunk's rows)
WRITABLE_FIELDS = (FLAG_FIELD,)
#: prefix of our shared-memory segment names (tests look for leftovers by it)
SEGMENT_PREFIX = "pygmmis_ng_"
#: seconds the workers get to exit after SIGTERM before they are killed (SIGKILL)
TERMINATE_GRACE = 0.5
#: seconds to wait for the exit status of a worker whose pipe broke
DEATH_GRACE = 1.0

#: signals that mean the worker crashed (a fault in compiled code)
_CRASH_SIGNALS = {getattr(signal, name) for name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE",
                                                     "SIGABRT") if hasattr(signal, name)}


class WorkerDied(RuntimeError):
    """A worker process of a parallel fit ended unexpectedly (the message says how)."""


def explain_exit(exitcode: int | None) -> str:
    """What a worker's exit code (negative: killed by that signal) says about its death."""
    if exitcode is None:
        return "it ended for an unknown reason (no exit status)"
    if exitcode < 0:
        sig = -exitcode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown signal"
        if sig == getattr(signal, "SIGKILL", None):
            return (f"it was killed by signal {sig} ({name}), most likely by the system's "
                    "out-of-memory killer (see the kernel log, e.g. dmesg); try a smaller n_jobs "
                    "or less data")
        if sig in _CRASH_SIGNALS:
            return (f"it crashed with signal {sig} ({name}): a fault in compiled code, e.g. an "
                    "extension module called by a user callback")
        return f"it was killed by signal {sig} ({name}), sent from outside the fit"
    return (f"it exited by itself with exit code {exitcode}: a user callback (sel_callback, "
            "covar_callback) probably called os._exit() or sys.exit() (exit code 1 also follows "
            "an uncaught error in the worker, see its traceback on stderr)")


# ---------------------------------------------------------------------------
# the worker process
# ---------------------------------------------------------------------------

def _attach(name: str) -> shared_memory.SharedMemory:
    try:   # Python >= 3.13: do not let this process's resource tracker own the segment
        return shared_memory.SharedMemory(name=name, track=False)
    except TypeError:
        return shared_memory.SharedMemory(name=name)


def _rebuild(lite: Any, specs: dict) -> tuple[Any, list]:
    """The problem with its shared arrays attached (and the attachments, to keep alive)."""
    arrays, segments = {}, []
    for field, (name, shape, dtype) in specs.items():
        shm = _attach(name)
        segments.append(shm)
        arr = np.ndarray(shape, dtype=np.dtype(dtype), buffer=shm.buf)
        arr.flags.writeable = field in WRITABLE_FIELDS
        arrays[field] = arr
    return lite._replace(**arrays), segments


def _portable(exc: BaseException) -> tuple[BaseException, str]:
    """An exception that survives pickling (else a RuntimeError naming it), and its traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc, tb


def _worker(conn: connection.Connection, lite: Any, specs: dict, inherited: list) -> None:
    """A worker's life: ignore Ctrl-C, rebuild the problem, run tasks until the pipe closes.

    A task's exception (also a KeyboardInterrupt a callback raises itself) goes back to the
    parent; SystemExit (``sys.exit`` in a callback) ends the worker with its code.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # forked with SIGINT blocked ...
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})   # ... now ignored
    for other in inherited:      # the parent's ends of earlier workers' pipes (fork): a worker
        other.close()            # must see EOF when the parent goes away
    problem, _segments = _rebuild(lite, specs)
    single_threaded_blas().__enter__()                   # one worker per core: for its life
    while True:
        try:
            fn, index, task = conn.recv()
        except (EOFError, OSError):                      # the parent closed the pool, or died
            return
        try:
            reply = (index, True, run_task(fn, problem, task))
        except (Exception, KeyboardInterrupt) as exc:
            reply = (index, False, _portable(exc))
        try:
            conn.send(reply)
        except (BrokenPipeError, ConnectionResetError):  # the parent is gone
            return


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


# ---------------------------------------------------------------------------
# the parent's side
# ---------------------------------------------------------------------------

class PoolExecutor:
    """Worker processes over shared memory for the duration of one fit.

    The workers start when the ``with`` block is entered (or at the first
    ``map``) and stop on ``close``, which ``with`` calls on every exit.

    Parameters
    ----------
    problem : pygmmis_ng.fitting.problem.problem.Problem
        Its arrays named in :data:`SHARED_FIELDS` are shared; the rest is
        handed to the workers when they start.
    n_jobs : int >= 2
    """

    def __init__(self, problem: Any, n_jobs: int) -> None:
        self.problem = problem
        self.n_jobs = n_jobs
        self._segments: list[shared_memory.SharedMemory] = []
        self._procs: list = []
        self._conns: list[connection.Connection] = []
        self._busy: dict[int, int] = {}        # worker -> number of the map of its task
        self._maps = 0
        self._state = "new"

    def start(self) -> None:
        """Share the arrays and start the workers (once); Ctrl-C is held back meanwhile."""
        if self._state != "new":
            if self._state == "closed":
                raise RuntimeError("this PoolExecutor is closed")
            return
        self._state = "running"
        logger.debug("starting %d worker processes", self.n_jobs)
        try:
            with sigint_deferred():        # a Ctrl-C meanwhile is raised on leaving the block
                lite, specs = self._share()
                ctx = _context()
                for _ in range(self.n_jobs):
                    self._spawn(ctx, lite, specs)
        except BaseException:
            self.close()
            raise

    def _share(self) -> tuple[Any, dict]:
        """Copy the shared fields into new segments; the problem without them, and their specs."""
        specs = {}
        for field in SHARED_FIELDS:
            arr = getattr(self.problem, field)
            if arr is None or isinstance(arr, CentredRows) or is_memory_mapped(arr):
                continue        # (memory-mapped rows: inherited, or the file reopened)
            arr = np.ascontiguousarray(arr)
            shm = shared_memory.SharedMemory(
                create=True, size=max(arr.nbytes, 1),
                name=f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(6)}")
            self._segments.append(shm)
            np.ndarray(arr.shape, dtype=arr.dtype, buffer=shm.buf)[...] = arr
            specs[field] = (shm.name, arr.shape, arr.dtype.str)
        lite = self.problem._replace(**{field: None for field in (*specs, *PARENT_ONLY_FIELDS)})
        return lite, specs

    def _spawn(self, ctx: Any, lite: Any, specs: dict) -> None:
        ours, theirs = ctx.Pipe()
        self._conns.append(ours)
        inherited = list(self._conns[:-1]) if ctx.get_start_method() == "fork" else []
        proc = ctx.Process(target=_worker, args=(theirs, lite, specs, inherited), daemon=True,
                           name=f"pygmmis_ng-worker-{len(self._conns)}")
        try:
            proc.start()
        finally:
            theirs.close()
        self._procs.append(proc)

    def map(self, fn: Callable, tasks: Sequence, prefetch: Sequence | None = None) -> list:
        """``[fn(problem, task) for task in tasks]``, computed by the workers, in task order.
        (``prefetch``, the next map's chunks, is a hint for executors that read data lazily:
        the data are in shared memory already.)

        Each worker runs one task at a time. A map that ends early (a task raised) leaves
        workers busy with its other tasks: their replies are recognized by the map's number
        and dropped by a later map.

        Raises
        ------
        WorkerDied
            If a worker process ends while the tasks run.
        Exception
            The first exception a task raised (its remote traceback chained).
        """
        self.start()
        tasks = list(tasks)
        self._maps += 1
        current = self._maps
        results: list = [None] * len(tasks)
        todo = list(range(len(tasks) - 1, -1, -1))          # popped from the end: task order
        left = len(tasks)
        while left:
            for w in range(self.n_jobs):
                if todo and w not in self._busy:
                    i = todo.pop()
                    self._send(w, (fn, (current, i), tasks[i]))
                    self._busy[w] = current
            # sleeps in poll(): a signal (Ctrl-C) interrupts it at once
            ready = set(connection.wait([*(self._conns[w] for w in self._busy),
                                         *(proc.sentinel for proc in self._procs)]))
            for w in list(self._busy):
                if self._conns[w] in ready:
                    (m, i), ok, value = self._receive(w)
                    del self._busy[w]
                    if m != current:                        # of a map that ended early
                        continue
                    if not ok:
                        exc, tb = value
                        raise exc from RemoteTraceback(tb)
                    results[i] = value
                    left -= 1
            for w, proc in enumerate(self._procs):
                if proc.sentinel in ready:
                    raise self._died(w)
        return results

    def _send(self, w: int, message: tuple) -> None:
        try:
            self._conns[w].send(message)
        except (BrokenPipeError, ConnectionResetError):
            raise self._died(w) from None

    def _receive(self, w: int) -> tuple:
        try:
            return self._conns[w].recv()
        except (EOFError, ConnectionResetError):
            raise self._died(w) from None

    def _died(self, w: int) -> WorkerDied:
        proc = self._procs[w]
        proc.join(DEATH_GRACE)
        return WorkerDied(f"a worker process of the fit (pid {proc.pid}) died while the fit was "
                          f"running: {explain_exit(proc.exitcode)}")

    def close(self) -> None:
        """Stop the workers and unlink every segment (idempotent); Ctrl-C is held back meanwhile."""
        with sigint_deferred():
            self._state, self._busy = "closed", {}
            procs, self._procs = self._procs, []
            conns, self._conns = self._conns, []
            for proc in procs:
                if proc.exitcode is None:
                    proc.terminate()
            for conn in conns:
                conn.close()
            deadline = time.monotonic() + TERMINATE_GRACE
            for proc in procs:
                proc.join(max(deadline - time.monotonic(), 0.0))
                if proc.exitcode is None:          # SIGTERM handled or ignored by user code
                    proc.kill()
                    proc.join()
                proc.close()
            segments, self._segments = self._segments, []
            for shm in segments:
                shm.close()
                try:
                    shm.unlink()
                except FileNotFoundError:
                    pass
            if procs:
                logger.debug("stopped %d worker processes", len(procs))

    def __enter__(self) -> PoolExecutor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
