"""Censored values: which values of the data are upper or lower limits, checked.

A fit (or a density evaluation) takes ``censored`` (N, D) beside the data: 0 where a
value is a measurement, -1 where it is an upper limit of the noisy value, +1 a lower
limit. The E-step of such samples is :mod:`pygmmis_ng.kernels.censored`; the groups
they form, :mod:`.layout`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.censored import MAX_CENSORED


def check_censored(censored: Any, X: np.ndarray, R: Any = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """The censoring flags of data X (N, D) before its values are checked, and X itself
    (``R``: the projections given with X, which limits cannot go with).

    ``censored`` (N, D) holds 0 (a measurement), -1 (X is an upper limit of the noisy
    value) or +1 (a lower limit). A limit of +inf (upper) or -inf (lower) says nothing:
    it becomes a missing value (NaN, flag 0) in a copy of X. Returns X and the flags as
    int8, or None when no value is censored (the fit is then the uncensored one).
    """
    if censored is None:
        return X, None
    if R is not None:
        raise ValueError("censored with R (projections) is not supported: a limit applies to "
                         "one observed value; pass the values in D columns (NaN for the "
                         "unmeasured ones) without R")
    C = np.asarray(censored)
    if C.dtype == bool or C.dtype.kind not in "iuf":
        raise ValueError("censored must hold integers -1 (upper limit), 0 (measured) or +1 "
                         f"(lower limit), got an array of dtype {C.dtype}")
    if C.shape != X.shape:
        raise ValueError(f"censored must have the shape of the data {X.shape}, got {C.shape}")
    bad = ~np.isin(C, (-1, 0, 1))
    if bad.any():
        i, d = np.argwhere(bad)[0]
        raise ValueError(f"censored must hold -1 (upper limit), 0 (measured) or +1 (lower "
                         f"limit); censored[{i}, {d}] = {C[i, d].item()!r}")
    C = C.astype(np.int8)
    for what, where in (("NaN (a limit must be a number)", np.isnan(X) & (C != 0)),
                        ("an upper limit of -inf (no value lies below it)",
                         (X == -np.inf) & (C == -1)),
                        ("a lower limit of +inf (no value lies above it)",
                         (X == np.inf) & (C == 1))):
        if where.any():
            i, d = np.argwhere(where)[0]
            raise ValueError(f"data[{i}, {d}] is censored but {what}")
    void = np.isinf(X) & (C != 0)          # +inf upper / -inf lower limits: no information
    if void.any():
        X = X.copy()
        X[void] = np.nan
        C[void] = 0
    many = np.count_nonzero(C, axis=1) > MAX_CENSORED
    if many.any():
        i = int(np.flatnonzero(many)[0])
        raise ValueError(f"at most {MAX_CENSORED} values of a sample can be censored (the "
                         f"orthant integrals are written for up to three); row {i} has "
                         f"{np.count_nonzero(C[i])}")
    return X, (C if C.any() else None)
