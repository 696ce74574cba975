"""What the Dask executor's tasks run on the workers (:mod:`.cluster` submits them).

A worker unpickles a fit's problem once (:func:`_problem`), runs the chunk
tasks of a batch on its rows (:func:`_run_batch`, keeping ``cutoff``'s
neighborhood flags between passes), reads streamed rows into chunks
(:func:`_chunk_payload`) and forgets a fit when it ends (:func:`_forget`).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .protocol import run_task

#: neighborhood flags of the chunks a worker ran: (fit tag, first row) -> (pass, flags)
_FLAGS: dict = {}
#: the problems a worker unpickled, by fit tag (see _problem)
_PROBLEMS: dict = {}
_PROBLEMS_LOCK = threading.Lock()


def _identity(value: Any) -> Any:
    return value


def _problem(blob: bytes, tag: str) -> Any:
    """Fit ``tag``'s problem on this worker, unpickled once from the bytes the client sent.

    The problem travels between workers as these bytes, never as the object: a worker
    pickling the object to hand it to another raced with tasks unpickling callbacks into
    the same globals ("dictionary changed size during iteration"), and the worker that
    needed it then waited for it forever.
    """
    import cloudpickle

    with _PROBLEMS_LOCK:
        if tag not in _PROBLEMS:
            _PROBLEMS[tag] = cloudpickle.loads(blob)
        return _PROBLEMS[tag]


def _run(fn: Callable, blob: bytes, task: Any, tag: str) -> Any:
    return run_task(fn, _problem(blob, tag), task)


def _run_batch(fn: Callable, blob: bytes, batch: list, tasks: list, tag: str) -> list:
    """``fn`` on each chunk of a batch that has a task (``tasks[j]`` for ``batch[j]``, None:
    no task), on fit ``tag``'s problem (:func:`_problem`) with the chunk's rows; the rows
    rebased. A task with neighborhoods (``redo``) gets the chunk's flags kept on this
    worker, or new ones with ``rebuild`` if those are missing or not of its pass
    ``nb_version``."""
    lite = _problem(blob, tag)
    out = []
    for chunk, task in zip(batch, tasks):
        if task is None:
            continue
        n = len(chunk["Xc"])
        redo = getattr(task, "redo", None)
        if redo is None:
            out.append(run_task(fn, lite._replace(**chunk), task._replace(sl=slice(0, n))))
            continue
        key = (tag, task.sl.start)
        version, flags = _FLAGS.pop(key, (None, None))
        fresh = flags is None or version != task.nb_version
        if fresh:
            flags = np.zeros((n, len(redo)), dtype=np.uint8)
        out.append(run_task(fn, lite._replace(**chunk, nbr=flags),
                            task._replace(sl=slice(0, n), rebuild=fresh)))
        _FLAGS[key] = (task.nb_version + 1, flags)
    return out


def _chunk_payload(fields: dict, rows: list) -> list:
    """A batch's chunks (dicts of their rows of each field) from the batch's rows ``fields``;
    ``rows``: each chunk's (start, stop) within the batch. Copies, like the chunks of numpy
    input: the kernels' sums can depend on where in memory the rows start."""
    return [{f: a[lo:hi].copy() for f, a in fields.items()} for lo, hi in rows]


def _forget(tag: str) -> None:
    """Forget a fit's problem and neighborhood flags (on a worker)."""
    with _PROBLEMS_LOCK:
        _PROBLEMS.pop(tag, None)
    for key in [k for k in _FLAGS if k[0] == tag]:
        del _FLAGS[key]
