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
same answer.

Samples in dask arrays (:mod:`pygmmis_ng.fitting.setup.out_of_core`) never come to
the client: each batch of chunks is a task reading its rows of the arrays.
If all of them take at most the runtime setting ``persist_share`` of the workers' memory,
the batches are computed once and kept on the workers; otherwise every
E-step reads them again (from zarr, HDF5, ...), a batch of about
``stream_batch_bytes`` at a time, so a worker holds a few batches,
not the data.

Online EM maps a few chunks at a time. Its chunks then lie within the dask
array's row blocks, and a streamed batch is one block, of which a map reads
only the rows of its chunks (:func:`_needed_rows`); ``map(..., prefetch=)``
starts reading the next minibatch's rows before the client's M-step, so the
workers do not wait for it.

With ``cutoff``, the neighborhood flags of each chunk stay on the worker
that ran it (:func:`_run_batch`), tagged with the pass that made them; a
chunk whose flags are missing or of another pass makes them again from the
components the fit sends along (:class:`pygmmis_ng.fitting.em.estep.ObservedTask`),
so a lost worker does not change the answer here either.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..config import get_settings
from ..data.lazy import chunk_bytes, is_lazy
from .cluster_tasks import (  # noqa: F401 (_FLAGS, _PROBLEMS: what the workers hold)
    _FLAGS,
    _PROBLEMS,
    _chunk_payload,
    _forget,
    _identity,
    _run,
    _run_batch,
)
from .cluster_watch import QUERY_TIMEOUT, ClusterLost, ClusterStalled, Watchdog, stall_timeout, within
from .fields import FLAG_FIELD, PARENT_ONLY_FIELDS, ROW_FIELDS

__all__ = ["DaskExecutor", "ClusterLost", "ClusterStalled", "check_client"]

#: not sent with the problem: the neighborhood flags stay on the workers (see _run_batch)
NOT_SENT = (*PARENT_ONLY_FIELDS, FLAG_FIELD)
#: consecutive chunks are sent (and run) together, in about this many batches per worker: a
#: task per chunk would cost the scheduler ~1 ms each
BATCHES_PER_WORKER = 4


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
    stall_timeout()                  # its configured stall timeout is valid
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


def _block_starts(slices: list, blocks: tuple, default: np.ndarray) -> np.ndarray:
    """Batch boundaries (chunk indices) at the starts of a dask array's row blocks, if every
    chunk lies within one block (the layout of online EM, whose minibatches are whole blocks:
    a streamed batch then reads each block once), else ``default``."""
    ends = np.cumsum(blocks)
    block = np.searchsorted(ends, [sl.start for sl in slices], side="right")
    if not np.array_equal(block, np.searchsorted(ends, [sl.stop - 1 for sl in slices],
                                                 side="right")):
        return default
    return np.append(np.flatnonzero(np.diff(block, prepend=-1)), len(slices))


def _needed_rows(fields: dict, rows: list, used: list) -> tuple[dict, list]:
    """A streamed batch's rows cut to the span of the chunks a map uses (``used``: positions
    in the batch), the chunks' rows rebased on it (unused chunks outside it become empty):
    online EM reads a part of a large row block per minibatch, not the whole block."""
    lo, hi = min(rows[j][0] for j in used), max(rows[j][1] for j in used)
    if (lo, hi) == (rows[0][0], rows[-1][1]):
        return fields, rows
    return ({f: a[lo:hi] for f, a in fields.items()},
            [(min(max(a - lo, 0), hi - lo), min(max(b - lo, 0), hi - lo)) for a, b in rows])


def _slots(items: list) -> list:
    """A batch's tasks by position in the batch (None: no task for that chunk)."""
    slots: list = [None] * (max(j for j, _, _ in items) + 1)
    for j, _, task in items:
        slots[j] = task
    return slots


class DaskExecutor:
    """The tasks of one fit on a dask.distributed cluster (see the module docstring).

    Parameters
    ----------
    problem : pygmmis_ng.fitting.problem.problem.Problem
    client : dask.distributed.Client
    """

    def __init__(self, problem: Any, client: Any) -> None:
        self.problem = problem
        self.client = client
        self.n_jobs = max(len(client.scheduler_info().get("workers", {})), 1)
        self._lite = None
        self._batches: list = []                          # futures of the chunk batches
        self._where: dict[tuple[int, int], tuple[int, int]] = {}   # chunk -> (batch, position)
        self._tag = uuid.uuid4().hex[:8]
        self._state = "new"
        self._payloads: list = []        # per batch: its chunks, or the task reading them
        self._prefetched: dict = {}      # (batch, chunk positions) -> future of their rows
        self.streamed = False            # dask-array rows read again each E-step
        self.stall_timeout = stall_timeout()     # dask config pygmmis_ng.stall-timeout

    def start(self) -> None:
        """Send the problem and the chunks to the workers (once)."""
        if self._state != "new":
            if self._state == "closed":
                raise RuntimeError("this DaskExecutor is closed")
            return
        self._state = "running"
        try:
            import cloudpickle

            p = self.problem
            fields = _row_fields(p)
            lite = p._replace(**{f: None for f in (*fields, *NOT_SENT)})
            # submitted, not scattered: the scheduler keeps each input's task, so the chunks
            # of a worker that is lost are made again on another (the same bits: same answer)
            # (as bytes: see _problem)
            self._lite = self.client.submit(_identity, cloudpickle.dumps(lite), pure=False,
                                            key=f"pygmmis_ng-problem-{self._tag}")
            slices = [sl for grp in p.groups for sl in grp.chunks]
            lazy = [f for f in fields if is_lazy(getattr(p, f))]
            n_batches = min(len(slices), BATCHES_PER_WORKER * self.n_jobs)
            if lazy:
                row_bytes = max(chunk_bytes([getattr(p, f) for f in fields], 1), 1)
                self.streamed = not self._fits_in_memory(row_bytes * p.Xc.shape[0])
                if self.streamed:
                    n_rows = max(1, get_settings().stream_batch_bytes // row_bytes)
                    n_batches = max(n_batches, min(len(slices), -(-p.Xc.shape[0] // n_rows)))
            bounds = np.linspace(0, len(slices), n_batches + 1).round().astype(int)
            if self.streamed:       # chunks within the row blocks (online EM): read block by block
                bounds = _block_starts(slices, p.Xc.chunks[0], bounds)
            for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                for j, sl in enumerate(slices[lo:hi]):
                    self._where[(sl.start, sl.stop)] = (b, j)
                self._payloads.append(self._payload(fields, slices[lo:hi], b, bool(lazy)))
            if lazy and not self.streamed:
                self._batches = self.client.compute(self._payloads)
            elif not lazy:
                self._batches = [self.client.submit(_identity, payload, pure=False,
                                                    key=f"pygmmis_ng-data-{self._tag}-{b}")
                                 for b, payload in enumerate(self._payloads)]
            if not self.streamed:
                self._payloads = []
        except BaseException:
            self.close()
            raise

    def _payload(self, fields: list, slices: list, b: int, lazy: bool) -> Any:
        """Batch b's chunks: a list of dicts of numpy rows; lazy: the task making it (kept
        on the workers), or when streamed, the rows (dask) and chunks it is made of."""
        p = self.problem
        if not lazy:
            return [{f: getattr(p, f)[sl].copy() for f in fields} for sl in slices]
        import dask

        lo, hi = slices[0].start, slices[-1].stop
        parts = ({f: getattr(p, f)[lo:hi] for f in fields},
                 [(sl.start - lo, sl.stop - lo) for sl in slices])
        if self.streamed:
            return parts
        return dask.delayed(_chunk_payload, pure=False)(
            *parts, dask_key_name=f"pygmmis_ng-data-{self._tag}-{b}")

    def _fits_in_memory(self, nbytes: int) -> bool:
        """Whether ``nbytes`` take at most ``persist_share`` of the workers' memory (no limit: yes)."""
        limits = [w.get("memory_limit") or 0
                  for w in self.client.scheduler_info().get("workers", {}).values()]
        if not limits or min(limits) == 0:
            return True
        return nbytes <= get_settings().persist_share * sum(limits)

    def _batch_tasks(self, fn: Callable, per_batch: dict, tag: str) -> list:
        """The futures of one E-step's batches (reading the rows again when streamed)."""
        if not self.streamed:
            return [self.client.submit(_run_batch, fn, self._lite, self._batches[b],
                                       _slots(items), self._tag,
                                       key=f"pygmmis_ng-estep-{tag}-{b}", pure=False)
                    for b, items in sorted(per_batch.items())]
        import dask

        graphs = []
        for b, items in sorted(per_batch.items()):
            used = tuple(sorted(j for j, _, _ in items))
            payload = self._prefetched.pop((b, used), None)      # read while the last map ran
            if payload is None:
                payload = self._read(b, used, tag)
            graphs.append(dask.delayed(_run_batch, pure=False)(
                fn, self._lite, payload, dask.delayed(_slots(items), traverse=False),
                self._tag, dask_key_name=f"pygmmis_ng-estep-{tag}-{b}"))
        return self.client.compute(graphs)

    def _read(self, b: int, used: tuple, tag: str) -> Any:
        """The task reading the rows of batch b's chunks at positions ``used`` (streamed)."""
        import dask

        fields, rows = _needed_rows(*self._payloads[b], list(used))
        return dask.delayed(_chunk_payload, pure=False)(
            fields, rows, dask_key_name=f"pygmmis_ng-data-{tag}-{b}")

    def _prefetch(self, slices: Sequence) -> None:
        """Start reading the rows of the chunks ``slices`` (streamed data): submitted after the
        current map's tasks, they run on workers that wait for the client's next map."""
        per_batch: dict[int, list] = {}
        for sl in slices:
            b, j = self._where[(sl.start, sl.stop)]
            per_batch.setdefault(b, []).append(j)
        tag = f"{self._tag}-{uuid.uuid4().hex[:8]}"
        for b, used in sorted(per_batch.items()):
            key = (b, tuple(sorted(used)))
            if key not in self._prefetched:
                self._prefetched[key] = self.client.compute(self._read(b, key[1], tag))

    def map(self, fn: Callable, tasks: Sequence, prefetch: Sequence | None = None) -> list:
        """``[fn(problem, task) for task in tasks]`` on the workers, in task order.

        A task with a ``sl`` field (a chunk of observed samples) runs on that chunk's data;
        any other task on the problem alone. Exceptions are re-raised as the workers raised
        them (a callback's arrives as :class:`~pygmmis_ng.CallbackError`). ``prefetch``: the
        chunks (slices) the next map will use; streamed rows are read for it meanwhile.
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
            futures = self._batch_tasks(fn, per_batch, tag)
            for _, items in sorted(per_batch.items()):
                order += [i for _, i, _ in sorted(items)]
        else:
            futures = [self.client.submit(_run, fn, self._lite, task, self._tag, pure=False,
                                          key=f"pygmmis_ng-impute-{tag}-{i}")
                       for i, task in enumerate(tasks)]
        if prefetch and self.streamed:
            self._prefetch(prefetch)
        try:
            self._wait(futures)
            results = self.client.gather(futures)
        except BaseException:
            within(QUERY_TIMEOUT, self.client.cancel, futures)      # stop what still runs
            raise
        del futures                           # released (keys shared with the data: not cancelled)
        if not chunked:
            return results
        out: list = [None] * len(tasks)
        for i, value in zip(order, (v for batch in results for v in batch)):
            out[i] = value
        return out

    def _wait(self, futures: list) -> None:
        """Wait for ``futures``, watched (:mod:`.cluster_watch`): raise if the cluster has had
        no worker, or the fit no progress, for too long (lost workers are otherwise replaced
        and their chunks made again)."""
        from distributed import wait

        from . import cluster_watch

        watch = Watchdog(self.client, self.stall_timeout)
        while True:
            try:
                wait(futures, timeout=cluster_watch.WAIT_POLL)
                return
            except TimeoutError:
                pass
            watch.check(futures)

    def close(self) -> None:
        """Release everything the fit holds on the cluster."""
        if self._state == "closed":
            return
        started, self._state = self._state != "new", "closed"
        held = list(self._batches) + list(self._prefetched.values()) + \
            ([] if self._lite is None else [self._lite])
        self._batches, self._lite, self._payloads, self._prefetched = [], None, [], {}
        try:
            # with a deadline each: a scheduler that stopped answering must not hang the fit
            if held:
                within(QUERY_TIMEOUT, self.client.cancel, held)
            if started:
                within(QUERY_TIMEOUT, self.client.run, _forget, self._tag)
        except Exception:      # noqa: BLE001 - a cluster already gone holds nothing
            pass

    def __enter__(self) -> DaskExecutor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
