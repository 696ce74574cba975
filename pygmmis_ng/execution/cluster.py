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

This first stage holds the chunks in the workers' memory as scattered data;
``cutoff`` (whose neighborhood flags the workers would keep) is not yet
available with a client.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

#: the per-sample fields of the problem a chunk carries (rows of the pattern-sorted samples)
ROW_FIELDS = ("Xc", "S", "R", "weight", "log_bg_obs", "nbr")
#: large arrays only the fitting process uses
PARENT_ONLY_FIELDS = ("Zc", "order", "reseed_index", "reseed_cdf")


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


def _run(fn: Callable, problem: Any, task: Any) -> Any:
    return fn(problem, task)


def _run_chunk(fn: Callable, lite: Any, chunk: dict, task: Any) -> Any:
    """``fn`` on the problem made of ``lite`` and one chunk's rows; the task's rows rebased."""
    n = len(chunk["Xc"])
    return fn(lite._replace(**chunk), task._replace(sl=slice(0, n)))


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
        self._chunks: dict[tuple[int, int], Any] = {}
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
            [self._lite] = self.client.scatter([lite], broadcast=True, hash=False)
            slices = [sl for grp in p.groups for sl in grp.chunks]
            payloads = [{f: getattr(p, f)[sl].copy() for f in fields} for sl in slices]
            futures = self.client.scatter(payloads, hash=False)
            self._chunks = {(sl.start, sl.stop): f for sl, f in zip(slices, futures)}
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
        futures = []
        for i, task in enumerate(tasks):
            sl = getattr(task, "sl", None)
            if sl is not None:
                key = f"pygmmis_ng-estep-{self._tag}-{uuid.uuid4().hex[:8]}-{i}"
                fut = self.client.submit(_run_chunk, fn, self._lite,
                                         self._chunks[(sl.start, sl.stop)], task, key=key,
                                         pure=False)
            else:
                key = f"pygmmis_ng-impute-{self._tag}-{uuid.uuid4().hex[:8]}-{i}"
                fut = self.client.submit(_run, fn, self._lite, task, key=key, pure=False)
            futures.append(fut)
        try:
            return self.client.gather(futures)
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        """Release everything the fit holds on the cluster."""
        if self._state == "closed":
            return
        self._state = "closed"
        held = list(self._chunks.values()) + ([] if self._lite is None else [self._lite])
        self._chunks, self._lite = {}, None
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
