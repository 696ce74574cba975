"""Runtime settings: the tuning values that used to be module constants.

Some of these change results (the size of an imputation block fixes which
quasi-random variates each draw gets; the rows the initialization sees; the
numpy or compiled kernels, which round differently), the others only speed or
patience. They are explicit values of one frozen :class:`Settings`:

* :func:`get_settings` returns the settings in force (those of the innermost
  :func:`settings` block of this thread or task, else the process default);
* :func:`set_settings` changes the process default;
* ``with settings(imputation_block=2048): ...`` changes them for a block of code.

A fit reads the settings once, when it starts, and keeps them in its problem;
every executor (threads, process pool, Dask workers) runs each task under the
problem's settings (:func:`use`), so a worker in another process computes
with the settings of the fit that sent it, not with its own defaults.

The one memory policy of the package is here too: :func:`check_memory`
compares the peak a computation estimates for itself with
:func:`memory_limit` (the physical memory, or ``Settings.memory_limit``).
"""
from __future__ import annotations

import contextvars
import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


def _compiled_default() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:          # pragma: no cover - numba is a dependency
        return False
    return os.environ.get("PYGMMIS_NG_NUMBA", "1") != "0"


@dataclass(frozen=True)
class Settings:
    """The runtime settings (see the module docstring); change them with :func:`settings`.

    Attributes
    ----------
    compiled_kernels : bool
        The compiled (numba) E-step kernels; False: the numpy reference kernels
        (also when numba is missing or ``PYGMMIS_NG_NUMBA=0``). Changes rounding.
    imputation_block : int
        Imputation draws per block of fixed quasi-random variates; a draw's
        variates depend on it, so the fit does.
    imputation_variates : {'sobol', 'pseudo'}
        Scrambled Sobol' points or independent pseudo-random variates per block.
    masked_patterns : int
        More missing-value patterns than this are fitted by one kernel over
        all of them instead of a group per pattern (the same math, other rounding).
    init_sample_rows : int
        The initialization, the data's centre and scales see at most this many
        rows (all of them, or a sample drawn from the fit's ``rng``).
    max_hessian : int
        Most Hessian passes of the Newton polish.
    eval_rows : int
        Rows of the evaluation slice that judges an online fit between passes.
    memory_limit : int or None
        Bytes a fit or a model evaluation may plan to use (None: the physical memory).
    persist_share : float
        A Dask fit keeps the data in the workers' memory if they take at most this
        share of it (else it streams them from the source each E-step).
    stream_batch_bytes : int
        Bytes of the data a streaming Dask E-step reads per task.
    no_worker_timeout : float
        Seconds a Dask fit waits without any worker before :class:`ClusterLost`.
    progress_delay : float
        Seconds before an automatic progress bar appears.
    """

    compiled_kernels: bool = dataclasses.field(default_factory=_compiled_default)
    imputation_block: int = 65536
    imputation_variates: str = "sobol"
    masked_patterns: int = 32
    init_sample_rows: int = 1 << 18
    max_hessian: int = 24
    eval_rows: int = 1 << 16
    memory_limit: int | None = None
    persist_share: float = 0.5
    stream_batch_bytes: int = 64 << 20
    no_worker_timeout: float = 30.0
    progress_delay: float = 3.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_setting(f.name, getattr(self, f.name))


_POSITIVE_INTS = ("imputation_block", "init_sample_rows", "stream_batch_bytes", "eval_rows")


def _check_setting(name: str, value: Any) -> None:
    """A clear error for a setting of the wrong kind or out of range."""
    if name == "compiled_kernels":
        ok = isinstance(value, bool)
    elif name == "imputation_variates":
        ok = value in ("sobol", "pseudo")
    elif name in _POSITIVE_INTS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    elif name in ("max_hessian", "masked_patterns"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif name == "memory_limit":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool)
                               and value > 0)
    elif name == "persist_share":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    if not ok:
        raise ValueError(f"setting {name}={value!r} is not valid (see pygmmis_ng.config.Settings)")


_DEFAULT = Settings()
_CURRENT: contextvars.ContextVar[Settings | None] = contextvars.ContextVar(
    "pygmmis_ng_settings", default=None)


def get_settings() -> Settings:
    """The settings in force here (the innermost :func:`settings` block, else the default)."""
    current = _CURRENT.get()
    return _DEFAULT if current is None else current


def set_settings(**changes: Any) -> Settings:
    """Change the process default (unknown names raise a TypeError); returns the new default."""
    global _DEFAULT
    _DEFAULT = dataclasses.replace(_DEFAULT, **changes)
    return _DEFAULT


@contextmanager
def settings(**changes: Any) -> Iterator[Settings]:
    """``with settings(name=value, ...)``: these settings for the block (this thread/task)."""
    with use(dataclasses.replace(get_settings(), **changes)) as s:
        yield s


@contextmanager
def use(values: Settings | None) -> Iterator[Settings]:
    """Run a block under ``values`` (None: leave the settings in force as they are)."""
    if values is None:
        yield get_settings()
        return
    token = _CURRENT.set(values)
    try:
        yield values
    finally:
        _CURRENT.reset(token)


def physical_memory() -> int:
    """Bytes of physical memory of this machine (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def memory_limit() -> int:
    """Bytes a computation may plan to use: ``memory_limit`` if set, else the physical
    memory (0: unknown, then nothing is refused)."""
    limit = get_settings().memory_limit
    return physical_memory() if limit is None else int(limit)


def check_memory(peak: float, what: str, hint: str = "") -> None:
    """Raise a ValueError if a computation's estimated ``peak`` bytes exceed
    :func:`memory_limit` (the one memory policy of the package)."""
    limit = memory_limit()
    if limit and peak > limit:
        where = "the memory limit" if get_settings().memory_limit is not None else \
            "the machine's memory"
        raise ValueError(f"{what} would need about {peak / 2**30:.3g} GiB of memory, more than "
                         f"{where} ({limit / 2**30:.3g} GiB){hint}")
