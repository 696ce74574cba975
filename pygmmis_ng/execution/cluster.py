"""The Dask executor: a fit's tasks on the workers of a ``dask.distributed`` cluster.

:class:`DaskExecutor` lives for one fit, like the process pool, behind the
same interface (``map(fn, tasks)`` in task order). On start it sends the
problem without its per-sample arrays to every worker once, and each chunk
of observed samples -- the fixed chunks of :func:`pygmmis_ng.data.layout.eval_chunks`,
the same for every executor -- as its own small problem holding only that
chunk's rows (data, per-sample noise and projections, weights, background
densities, neighborhood flags). Each iteration then sends only parameters
(the tasks) and gets the chunks' sufficient statistics back, which the fit
adds in task order: the result is bit-identical to ``n_jobs=1``. Imputation
blocks run on the workers from the same fixed blocks. Callbacks travel with
cloudpickle (lambdas work). Tasks appear on the dashboard as
``pygmmis_ng-estep`` and ``pygmmis_ng-impute``. ``close`` releases every
future, so nothing of the fit stays on the cluster.

The inputs are submitted as tasks (not scattered), so the scheduler can make
a lost worker's chunks again on another worker and the fit goes on with the
same answer. This stage takes numpy input (dask arrays are gathered first);
``cutoff`` (whose neighborhood flags the workers would keep) is not yet
available with a client.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: the per-sample fields of the problem a chunk carries (rows of the pattern-sorted samples)
ROW_FIELDS = ("Xc", "S", "R", "weight", "log_bg_obs", "nbr")
#: large arrays only the fitting process uses
PARENT_ONLY_FIELDS = ("Zc", "order", "reseed_index", "reseed_cdf")
#: consecutive chunks are sent (and run) together, in about this many batches per worker: a
#: task per chunk would cost the scheduler ~1 ms each
BATCHES_PER_WORKER = 4


#: seconds between checks on the cluster while waiting for an iteration's results
WAIT_POLL = 1.0
#: seconds without any worker after which a fit gives up
NO_WORKER_TIMEOUT = 30.0


class ClusterLost(RuntimeError):
    """The Dask cluster of a fit has no worker left (for NO_WORKER_TIMEOUT seconds)."""


def check_client(client: Any) -> Any:
    """A ``dask.distributed.Client`` (or None), refused with a clear error otherwise."""
    if client is None:
        return None
    try:
        from distributed import Client
    except ImportError:      # pragma: no cover - only without the extra
        raise ValueError("client needs dask.distributed: pip install \"pygmmis_ng[dask]\"") from None
    if not isinstance(client, Client):
        raise ValueError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    if client.status != "running":
        raise ValueError(f"the dask client is not running (status {client.status!r})")
    return client


def _row_fields(problem: Any) -> list[str]:
    """The fields of ``problem`` that hold one row per sample."""
    out = []
    for field in ROW_FIELDS:
        value = getattr(problem, field)
        if value is None or (field == "S" and not problem.per_sample):
            continue
        out.append(field)
    return out


def _identity(value: Any) -> Any:
    return value


def _run(fn: Callable, problem: Any, task: Any) -> Any:
    return fn(problem, task)


def _run_batch(fn: Callable, lite: Any, batch: list, tasks: list) -> list:
    """``fn`` on each chunk of a batch that has a task (``tasks[j]`` for ``batch[j]``, None:
    no task), on the problem made of ``lite`` and the chunk's rows; the rows rebased."""
    out = []
    for chunk, task in zip(batch, tasks):
        if task is not None:
            n = len(chunk["Xc"])
            out.append(fn(lite._replace(**chunk), task._replace(sl=slice(0, n))))
    return out


class DaskExecutor:
    """The tasks of one fit on a dask.distributed cluster (see the module docstring).

    Parameters
    ----------
    problem : pygmmis_ng.fitting.problem.Problem
    client : dask.distributed.Client
    """

    def __init__(self, problem: Any, client: Any) -> None:
        self.problem = problem
        self.client = client
        self.n_jobs = max(len(client.scheduler_info().get("workers", {})), 1)
        self._lite = None
        self._batches: list = []                          # futures of the chunk batches
        self._where: dict[tuple[int, int], tuple[int, int]] = {}   # chunk -> (batch, position)
        self._futures: list = []
        self._tag = uuid.uuid4().hex[:8]
        self._state = "new"

    def start(self) -> None:
        """Send the problem and the chunks to the workers (once)."""
        if self._state != "new":
            if self._state == "closed":
                raise RuntimeError("this DaskExecutor is closed")
            return
        self._state = "running"
        try:
            p = self.problem
            fields = _row_fields(p)
            lite = p._replace(**{f: None for f in (*fields, *PARENT_ONLY_FIELDS)})
            # submitted, not scattered: the scheduler keeps each input's task, so the chunks
            # of a worker that is lost are made again on another (the same bits: same answer)
            self._lite = self.client.submit(_identity, lite, pure=False,
                                            key=f"pygmmis_ng-problem-{self._tag}")
            slices = [sl for grp in p.groups for sl in grp.chunks]
            n_batches = min(len(slices), BATCHES_PER_WORKER * self.n_jobs)
            bounds = np.linspace(0, len(slices), n_batches + 1).round().astype(int)
            payloads = []
            for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                payloads.append([{f: getattr(p, f)[sl].copy() for f in fields}
                                 for sl in slices[lo:hi]])
                for j, sl in enumerate(slices[lo:hi]):
                    self._where[(sl.start, sl.stop)] = (b, j)
            self._batches = [self.client.submit(_identity, payload, pure=False,
                                                key=f"pygmmis_ng-data-{self._tag}-{b}")
                             for b, payload in enumerate(payloads)]
        except BaseException:
            self.close()
            raise

    def map(self, fn: Callable, tasks: Sequence) -> list:
        """``[fn(problem, task) for task in tasks]`` on the workers, in task order.

        A task with a ``sl`` field (a chunk of observed samples) runs on that chunk's data;
        any other task on the problem alone. Exceptions are re-raised as the workers raised
        them (a callback's arrives as :class:`~pygmmis_ng.CallbackError`).
        """
        self.start()
        tasks = list(tasks)
        tag = f"{self._tag}-{uuid.uuid4().hex[:8]}"
        chunked = [t for t in tasks if getattr(t, "sl", None) is not None]
        if chunked and len(chunked) != len(tasks):
            raise ValueError("a map mixes chunk tasks and other tasks")
        futures, order = [], []
        if chunked:
            per_batch: dict[int, list] = {}
            for i, task in enumerate(tasks):
                b, j = self._where[(task.sl.start, task.sl.stop)]
                per_batch.setdefault(b, []).append((j, i, task))
            for b, items in sorted(per_batch.items()):
                slots: list = [None] * (max(j for j, _, _ in items) + 1)
                for j, _, task in items:
                    slots[j] = task
                futures.append(self.client.submit(
                    _run_batch, fn, self._lite, self._batches[b], slots,
                    key=f"pygmmis_ng-estep-{tag}-{b}", pure=False))
                order += [i for _, i, _ in sorted(items)]
        else:
            futures = [self.client.submit(_run, fn, self._lite, task, pure=False,
                                          key=f"pygmmis_ng-impute-{tag}-{i}")
                       for i, task in enumerate(tasks)]
        try:
            self._wait(futures)
            results = self.client.gather(futures)
        finally:
            self.client.cancel(futures)
        if not chunked:
            return results
        out: list = [None] * len(tasks)
        for i, value in zip(order, (v for batch in results for v in batch)):
            out[i] = value
        return out

    def _wait(self, futures: list) -> None:
        """Wait for ``futures``; raise if the cluster has had no worker for NO_WORKER_TIMEOUT s
        (lost workers are otherwise replaced and their chunks made again)."""
        from distributed import wait

        alone_since = None
        while True:
            try:
                wait(futures, timeout=WAIT_POLL)
                return
            except TimeoutError:
                pass
            if self.client.scheduler_info().get("workers"):
                alone_since = None
                continue
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since > NO_WORKER_TIMEOUT:
                raise ClusterLost(f"the Dask cluster has had no worker for {NO_WORKER_TIMEOUT:g} "
                                  "s: the fit cannot continue (nothing of it is left on the "
                                  "cluster); start workers, or fit without client")

    def close(self) -> None:
        """Release everything the fit holds on the cluster."""
        if self._state == "closed":
            return
        self._state = "closed"
        held = list(self._batches) + ([] if self._lite is None else [self._lite])
        self._batches, self._lite = [], None
        if held:
            try:
                self.client.cancel(held)
            except Exception:      # noqa: BLE001 - a cluster already gone holds nothing
                pass

    def __enter__(self) -> DaskExecutor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
