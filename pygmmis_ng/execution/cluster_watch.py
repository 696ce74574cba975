"""The Dask executor's watchdog: a fit on a cluster that stops making progress raises, it never
waits forever.

While the client waits for an iteration's tasks (:meth:`.cluster.DaskExecutor.map`)
it polls the cluster every :data:`WAIT_POLL` seconds:

* no worker left for ``no_worker_timeout`` seconds (a runtime setting): :class:`ClusterLost`;
* workers alive (or a scheduler that does not answer), but no task of the
  fit finished for ``stall-timeout`` seconds: :class:`ClusterStalled`, naming
  the unfinished tasks and the workers they are on.

The timeout is dask configuration, read when a fit starts::

    dask.config.set({"pygmmis_ng.stall-timeout": "10 minutes"})   # default 300 s; None: off

Every question to the scheduler is asked with a deadline
(:data:`QUERY_TIMEOUT`), so a scheduler that stopped answering cannot hang
the fit either.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import get_settings

#: seconds between checks on the cluster while waiting for an iteration's results
WAIT_POLL = 1.0
#: the dask configuration key of the stall timeout, and its default
STALL_KEY = "pygmmis_ng.stall-timeout"
STALL_DEFAULT = "300s"
#: seconds the scheduler gets to answer a question of the watchdog
QUERY_TIMEOUT = 10.0
#: at most this many unfinished tasks are named in a ClusterStalled message
NAMED_TASKS = 8


class ClusterLost(RuntimeError):
    """The Dask cluster of a fit has no worker left (for ``no_worker_timeout`` seconds)."""


class ClusterStalled(RuntimeError):
    """No task of a fit on a Dask cluster finished for ``pygmmis_ng.stall-timeout`` seconds.

    Attributes
    ----------
    tasks : dict
        The unfinished tasks' keys and, for each, the workers processing it (empty: on none).
    waited : float
        Seconds since the last task finished.
    """

    def __init__(self, message: str, tasks: dict, waited: float) -> None:
        super().__init__(message)
        self.tasks = tasks
        self.waited = waited


def stall_timeout() -> float | None:
    """Seconds from dask's configuration (``pygmmis_ng.stall-timeout``; None/False: no limit),
    refused with a ValueError if it is not a positive duration."""
    import dask.config
    from dask.utils import parse_timedelta

    value = dask.config.get(STALL_KEY, STALL_DEFAULT)
    if value is None or value is False:
        return None
    try:
        seconds = parse_timedelta(value, default="s")
    except Exception:       # noqa: BLE001 - dask's parser fails in several ways on bad values
        seconds = None
    if seconds is None or not seconds > 0:
        raise ValueError(f"dask config {STALL_KEY!r} must be a positive duration (e.g. 300 or "
                         f"'10 minutes') or None, got {value!r}")
    return float(seconds)


def within(seconds: float, fn: Callable, *args: Any) -> tuple[bool, Any]:
    """``(True, fn(*args))``, or ``(False, None)`` if it did not return within ``seconds`` (it
    goes on in a daemon thread); its exception is raised here."""
    box: list = []

    def call() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:          # noqa: BLE001 - re-raised in the caller
            box.append((False, exc))

    worker = threading.Thread(target=call, daemon=True, name="pygmmis_ng-dask-query")
    worker.start()
    worker.join(seconds)
    if not box:
        return False, None
    ok, value = box[0]
    if not ok:
        raise value
    return True, value


class Watchdog:
    """Progress of one wait for a map's futures (see the module docstring)."""

    def __init__(self, client: Any, timeout: float | None) -> None:
        self.client = client
        self.timeout = timeout
        self.done = 0
        self.progress_at = time.monotonic()
        self.alone_since: float | None = None

    def _workers(self) -> dict | None:
        """The scheduler's workers, or None if it did not answer within QUERY_TIMEOUT."""
        answered, info = within(QUERY_TIMEOUT, self.client.scheduler_info)
        return info.get("workers", {}) if answered else None

    def check(self, futures: list) -> None:
        """After a poll that did not see all of ``futures`` finish: raise if the cluster has
        had no worker, or the fit no progress, for too long."""
        now = time.monotonic()
        done = sum(f.done() for f in futures)
        if done > self.done:
            self.done, self.progress_at = done, now
        workers = self._workers()
        if workers == {}:
            self.alone_since = self.alone_since or now
            if now - self.alone_since > get_settings().no_worker_timeout:
                raise ClusterLost(f"the Dask cluster has had no worker for "
                                  f"{get_settings().no_worker_timeout:g} "
                                  "s: the fit cannot continue (nothing of it is left on the "
                                  "cluster); start workers, or fit without client")
            return
        self.alone_since = None
        if self.timeout is not None and now - self.progress_at > self.timeout:
            raise self._stalled(futures, workers, now - self.progress_at)

    def _stalled(self, futures: list, workers: dict | None, waited: float) -> ClusterStalled:
        pending = [f.key for f in futures if not f.done()]
        answered, processing = within(QUERY_TIMEOUT, self.client.processing)
        where: dict = {str(key): [] for key in pending}
        for worker, keys in (processing or {}).items():
            for key in keys:
                if str(key) in where:
                    where[str(key)].append(worker)
        named = "; ".join(f"{key} ({'on ' + ', '.join(ws) if ws else 'on no worker'})"
                          for key, ws in list(where.items())[:NAMED_TASKS])
        more = f" and {len(where) - NAMED_TASKS} more" if len(where) > NAMED_TASKS else ""
        if workers is None or not answered:
            state = f"the scheduler did not answer within {QUERY_TIMEOUT:g} s"
        else:
            state = f"{len(workers)} worker(s) alive: {', '.join(sorted(workers))}"
        return ClusterStalled(
            f"no task of this fit finished for {waited:.0f} s ({state}); unfinished: {named}{more}. "
            "The fit's tasks were cancelled and its data released; a task blocked inside a "
            "worker keeps that worker's thread until it returns (client.restart_workers frees "
            f"it). If tasks legitimately take longer, raise dask config {STALL_KEY!r} "
            "(None: wait forever).", where, waited)
