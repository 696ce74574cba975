"""The per-iteration INFO table of the fit, on the ``pygmmis_ng`` logger (like pyGMMis)."""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

logger = logging.getLogger("pygmmis_ng")


def log_header(impute: bool, bg: bool) -> None:
    cols = ["ITER", "SAMPLES"] + (["IMPUTED", "ORIG"] if impute else []) + \
        (["BG_AMP"] if bg else []) + ["LOG_L", "DELTA", "STABLE"]
    logger.info("  ".join(f"{c:>10s}" for c in cols))


def log_row(it: int, N: int, imputed: float | None, orig: float | None, bg_amp: float | None,
             logL: float, delta: float | None, stable: int | None) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    cells = [f"{it:10d}", f"{N:10d}"]
    if imputed is not None:
        cells += [f"{imputed:10.1f}", f"{orig:10.1f}"]
    if bg_amp is not None:
        cells.append(f"{bg_amp:10.4f}")
    cells += [f"{logL:10.5f}", "" if delta is None else f"{delta:+10.3e}",
              "" if stable is None else f"{stable:10d}"]
    logger.info("  ".join(f"{c:>10s}" for c in cells), extra={"iteration": it})


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
