"""Online (stepwise) EM: its step sizes, and the minibatches of each pass.

Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009) keeps running
sufficient statistics s per unit of sample weight. The t-th minibatch b moves
them towards the minibatch's own average statistics at the current
parameters, and the M-step follows at once::

    s <- (1 - rho_t) s + rho_t s_b(theta),    theta <- M(s)
    rho_t = (learning_offset + t) ** -learning_decay        (t = 1, 2, ...)

the learning rate of scikit-learn's online ``LatentDirichletAllocation``
(``learning_decay`` in (0.5, 1] for convergence). A minibatch shorter than
``batch_size`` (the last of a group of rows) moves s in proportion to its rows.

The minibatches are made of whole *units* of consecutive rows: the chunks of
the data (at most ``batch_size`` rows each) for numpy input, the row blocks
of a dask array (its storage chunks, e.g. of a zarr store: read once per
pass). Each pass visits the units in a random order drawn from the fit's
``rng`` (``shuffle``) and cuts that sequence into minibatches of about
``batch_size`` rows, so the batches depend on the data's layout and the seed,
never on ``n_jobs`` or the Dask cluster.
"""
from __future__ import annotations

import numpy as np

from ..problem.options import OnlineOptions


def learning_rate(t: int, opts: OnlineOptions, weight: float = 0.0, nominal: float = 0.0
                  ) -> float:
    """The step of the t-th update (t >= 1) for a minibatch of summed sample weight
    ``weight``: rho_t times the minibatch's share of a full one (``nominal``, the weight of
    ``batch_size`` average rows), at most 1 (``nominal`` 0: rho_t itself). So every row
    moves the statistics by its weight, whatever the size of its minibatch."""
    rho = (opts.learning_offset + t) ** -opts.learning_decay
    if nominal > 0:
        rho *= weight / nominal
    return min(rho, 1.0)


def unit_bounds(chunks: list[slice], blocks: tuple) -> list[list[int]]:
    """The units (lists of chunk indices, in order): the chunks within each block of rows
    (``blocks``: row counts, e.g. the minibatch windows, or a dask array's row chunks, within
    which every chunk lies). ``chunks`` must be sorted by row."""
    ends = np.cumsum(blocks)
    units: list[list[int]] = [[] for _ in blocks]
    for i, sl in enumerate(chunks):
        units[int(np.searchsorted(ends, sl.start, side="right"))].append(i)
    return [u for u in units if u]


def windows(N: int, size: int) -> tuple:
    """Row counts of consecutive windows of ``size`` rows (the last one shorter)."""
    return tuple(min(size, N - lo) for lo in range(0, N, size))


def split_units(units: list[list[int]], chunk_rows: np.ndarray, batch_size: int
                ) -> list[list[int]]:
    """The units, those larger than ``batch_size`` rows cut into consecutive pieces of at most
    ``batch_size`` rows of their chunks (each then shuffled into the pass on its own)."""
    out: list[list[int]] = []
    for unit in units:
        if chunk_rows[unit].sum() <= batch_size:
            out.append(unit)
            continue
        piece: list[int] = []
        for i in unit:
            if piece and chunk_rows[piece].sum() + chunk_rows[i] > batch_size:
                out.append(piece)
                piece = []
            piece.append(i)
        out.append(piece)
    return out


def pass_batches(units: list[list[int]], chunk_rows: np.ndarray, batch_size: int,
                 gen: np.random.Generator | None) -> list[list[int]]:
    """The minibatches (lists of chunk indices) of one pass.

    The units (those larger than ``batch_size`` rows cut by :func:`split_units`) come in a
    random order (``gen``; None: in order) and are gathered whole into minibatches of at
    most ``batch_size`` rows: a unit is never split across two minibatches, so a storage
    chunk of at most ``batch_size`` rows is read once per pass.
    """
    pieces = split_units(units, chunk_rows, batch_size)
    order = range(len(pieces)) if gen is None else gen.permutation(len(pieces))
    batches: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for u in order:
        n = int(chunk_rows[pieces[u]].sum())
        if current and rows + n > batch_size:
            batches.append(current)
            current, rows = [], 0
        current, rows = current + pieces[u], rows + n
    if current:
        batches.append(current)
    return batches


def eval_units(unit_rows: np.ndarray, eval_rows: int, gen: np.random.Generator) -> np.ndarray:
    """Units (sorted) of the evaluation slice: drawn at random until they hold ``eval_rows``
    rows (all units if the data have fewer)."""
    order = gen.permutation(len(unit_rows))
    enough = np.searchsorted(np.cumsum(unit_rows[order]), eval_rows) + 1
    return np.sort(order[:enough])
