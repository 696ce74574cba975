"""The serial executor: a fit's tasks run in this process, in order."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class SerialExecutor:
    """Runs the tasks in this process, in order."""

    n_jobs = 1

    def __init__(self, problem: Any) -> None:
        self.problem = problem

    def map(self, fn: Callable, tasks: Sequence) -> list:
        return [fn(self.problem, task) for task in tasks]

    def close(self) -> None:
        pass

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
