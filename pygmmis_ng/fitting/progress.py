"""The per-iteration INFO table of the fit, on the ``pygmmis_ng`` logger (like pyGMMis)."""
from __future__ import annotations

import logging

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
    logger.info("  ".join(f"{c:>10s}" for c in cells))
