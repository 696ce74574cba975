"""What a running fit shows: the per-iteration INFO table on the ``pygmmis_ng`` logger (like
pyGMMis) and, in interactive sessions, a progress bar (tqdm).

The table's columns:

ITER
    the iteration (an EM update, or an accepted SQUAREM extrapolation), from 0
SAMPLES
    the observed samples N
IMPUTED, ORIG (with ``sel_callback``)
    the estimated number of samples the selection removed, and the estimated
    original sample size N0 = N + IMPUTED
BG_AMP (with a background whose amplitude is fitted)
    the background's share of the samples
LOG_L
    the mean log-likelihood per observed sample
DELTA
    its change since the previous row. With imputation LOG_L is a Monte-Carlo
    estimate (it depends on the random draws of that iteration), so DELTA can
    be negative near convergence; the fit judges convergence on the noise-free
    limit, not on single DELTAs
STABLE
    how many components' means moved by at most 0.1 sigma (1D-equivalent) in
    the last update; convergence needs all K
ELAPSED
    seconds since the fit started
"""
from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from ...config import get_settings
from .option_table import optional_flag

logger = logging.getLogger("pygmmis_ng")



class Tracker:
    """The clock of a fit (or a scan of fits) and its progress bar, if any."""

    def __init__(self, bar, t0: float | None = None) -> None:
        self.t0 = time.perf_counter() if t0 is None else t0
        self.bar = bar

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


_CURRENT: contextvars.ContextVar[Tracker | None] = contextvars.ContextVar("pygmmis_ng_progress",
                                                                         default=None)


def interactive() -> bool:
    """Whether a person is likely watching: stderr is a terminal, or an IPython kernel runs."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def check_progress(progress: object) -> bool | None:
    """``progress`` as given (None, True or False), or a clear error (the option table's
    rule)."""
    return optional_flag(progress, "progress", "fit")


@contextmanager
def fit_progress(progress: bool | None, desc: str = "EM", unit: str = "it",
                 total: int | None = None, t0: float | None = None) -> Iterator[Tracker]:
    """Run a fit (or a scan of fits) under one clock and, if wanted, one progress bar.

    ``progress``: True shows the bar at once, False never, None in interactive
    sessions after ``progress_delay`` seconds (a runtime setting). Nested calls (the fits of a
    scan, split'n'merge) share the outer bar's silence: only the outermost
    call may draw one. The bar is closed on exit, also after an error. ``t0``: the
    clock's start (``time.perf_counter()``; default now).
    """
    outer = _CURRENT.get()
    bar = None
    if outer is None and (progress or (progress is None and interactive())):
        from tqdm.auto import tqdm

        delay = 0.0 if progress else get_settings().progress_delay
        bar = tqdm(desc=desc, unit=unit, total=total, delay=delay,
                   leave=True, dynamic_ncols=True)
    tracker = Tracker(bar, t0)
    token = _CURRENT.set(tracker)
    try:
        yield tracker
    finally:
        _CURRENT.reset(token)
        if bar is not None:
            bar.close()


def elapsed() -> float:
    """Seconds since the current fit started (0 outside :func:`fit_progress`)."""
    tracker = _CURRENT.get()
    return 0.0 if tracker is None else tracker.elapsed()


def log_header(impute: bool, bg: bool) -> None:
    cols = ["ITER", "SAMPLES"] + (["IMPUTED", "ORIG"] if impute else []) + \
        (["BG_AMP"] if bg else []) + ["LOG_L", "DELTA", "STABLE", "ELAPSED"]
    logger.info("  ".join(f"{c:>10s}" for c in cols))


def log_row(it: int, N: int, imputed: float | None, orig: float | None, bg_amp: float | None,
            logL: float, delta: float | None, stable: int | None) -> None:
    """One row of the table, and one step of the progress bar."""
    tracker = _CURRENT.get()
    if tracker is not None and tracker.bar is not None:
        post = {"logL": f"{logL:.6f}", "delta": "" if delta is None else f"{delta:+.2e}"}
        if imputed is not None:
            post["imputed"] = f"{imputed:.0f}"
        tracker.bar.set_postfix(post, refresh=False)
        tracker.bar.update(1)
    if not logger.isEnabledFor(logging.INFO):
        return
    cells = [f"{it:10d}", f"{N:10d}"]
    if imputed is not None:
        cells += [f"{imputed:10.1f}", f"{orig:10.1f}"]
    if bg_amp is not None:
        cells.append(f"{bg_amp:10.4f}")
    cells += [f"{logL:10.5f}", "" if delta is None else f"{delta:+10.3e}",
              "" if stable is None else f"{stable:10d}", f"{elapsed():10.2f}"]
    logger.info("  ".join(f"{c:>10s}" for c in cells), extra={"iteration": it})


def log_pass_header(bg: bool, impute: bool = False) -> None:
    """The table of an online fit: one row per pass (see :mod:`pygmmis_ng.fitting.online.passes`);
    under a selection with the imputed count N0 - N_w."""
    cols = ["PASS", "BATCHES", "SAMPLES"] + (["IMPUTED"] if impute else []) + \
        (["BG_AMP"] if bg else []) + \
        ["LOG_L", "DELTA", "RATE", "ELAPSED"]
    logger.info("  ".join(f"{c:>10s}" for c in cols))


def log_pass_row(n: int, batches: int, N: float, bg_amp: float | None, logL: float,
                 delta: float | None, rate: float | None, imputed: float | None = None) -> None:
    """One pass of an online fit: minibatch updates so far, the evaluation slice's mean logL,
    its change and the learning rate reached; one step of the progress bar."""
    tracker = _CURRENT.get()
    if tracker is not None and tracker.bar is not None and n > 0:
        tracker.bar.set_postfix({"logL": f"{logL:.6f}", "batches": batches}, refresh=False)
        tracker.bar.update(1)
    if not logger.isEnabledFor(logging.INFO):
        return
    cells = [f"{n:10d}", f"{batches:10d}", f"{N:10.0f}"]
    if imputed is not None:
        cells.append(f"{imputed:10.0f}")
    if bg_amp is not None:
        cells.append(f"{bg_amp:10.4f}")
    cells += [f"{logL:10.5f}", "" if delta is None else f"{delta:+10.3e}",
              "" if rate is None else f"{rate:10.3g}", f"{elapsed():10.2f}"]
    logger.info("  ".join(f"{c:>10s}" for c in cells), extra={"iteration": n})


class _RowFilter(logging.Filter):
    """Keep the messages of a fit, and of the table rows every ``interval``-th (verbose >= 2)."""

    def __init__(self, verbose: int, interval: int) -> None:
        super().__init__()
        self.verbose, self.interval = verbose, interval

    def filter(self, record: logging.LogRecord) -> bool:
        it = getattr(record, "iteration", None)
        return it is None or (self.verbose >= 2 and it % self.interval == 0)


@contextmanager
def verbose_output(verbose: int, interval: int = 10, stream: TextIO | None = None) -> Iterator[None]:
    """Show the fit's INFO messages on ``stream`` (default: the current ``sys.stdout``).

    scikit-learn's ``verbose``: 0 nothing, 1 the messages of the fit (starts,
    convergence), 2 also every ``interval``-th row of the iteration table.
    The logger's level and handlers are restored on exit, also after an error.
    """
    if verbose <= 0:
        yield
        return
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setLevel(logging.INFO)
    handler.addFilter(_RowFilter(verbose, max(int(interval), 1)))
    level = logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
