"""The E-step of a whole fit: every chunk and imputation block as a task on the executor.

The tasks are fixed (chunks of the observed samples, blocks of imputation
draws), run by any executor of :mod:`pygmmis_ng.execution`, and their
partial sums are added in task order, so every executor gives the same sums.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ...data import observed
from ...kernels.stats import SufficientStats
from ...selection.imputation import BlockTask, block_sizes, block_stats
from ..problem.option_entries import MAX_DRAWS_PER_SAMPLE
from ..problem.problem import Problem, State
from .diagnostics import no_selected_draws


def group_comps(p: Problem, amp: np.ndarray, mean: np.ndarray, covar: np.ndarray,
                used: set | None = None) -> list:
    """The kernels' components of every group of observed samples (None for groups not in
    ``used``); groups of the same pattern, projection and noise share them (online EM lays
    out each minibatch window on its own: many groups, few kinds)."""
    made: dict = {}
    out = []
    for g, grp in enumerate(p.groups):
        if used is not None and g not in used:
            out.append(None)
            continue
        key = (grp.masked,) + tuple(None if a is None else a.tobytes()
                                    for a in (grp.obs, grp.R, grp.S, grp.cens))
        if key not in made:
            made[key] = observed.group_components(grp, amp, mean, covar, p.per_sample,
                                                  p.per_sample_R, p.kernel_family)
        out.append(made[key])
    return out


class ObservedTask(NamedTuple):
    """One chunk of observed samples: its group, rows (``sl``), components, log background
    fraction and the components whose neighborhoods are recomputed. Executors that hold
    the data chunk by chunk (Dask) recognize such tasks by ``sl``; with neighborhoods
    (``redo`` not None) they keep the chunk's flags between passes, and a chunk whose
    flags are not those of pass ``nb_version`` (a worker lost, or a task moved) gets
    ``rebuild``: its flags are made again from ``nb_comps`` first."""

    g: int
    sl: slice
    comps: Any
    log_alpha: float | None
    redo: np.ndarray | None
    nb_version: int = 0
    nb_comps: Any = None
    rebuild: bool = False


class NeighborhoodHistory:
    """What the stored neighborhood flags are a function of: per group, the components as of
    each one's last neighborhood pass, and the number of passes made (``version``).

    The flags of component k are those of its last pass (a redo), so flags made
    at once from these components equal the ones kept pass by pass, bit for bit.
    """

    def __init__(self) -> None:
        self.version = 0
        self.comps: list | None = None

    def update(self, comps: list, redo: np.ndarray) -> None:
        """After a pass with ``comps`` (per group) that redid the components ``redo``."""
        r = redo.astype(bool)
        if self.comps is None or r.all():
            self.comps = list(comps)
        else:
            self.comps = [type(old)(*[_merged(a, b, r) for a, b in zip(old, new)])
                          for old, new in zip(self.comps, comps)]
        self.version += 1


def _merged(old: Any, new: Any, redo: np.ndarray) -> Any:
    """A field of components: per component, the new value where ``redo``; a kernel family
    (a string) is kept only where both agree ('full' serves every component)."""
    if old is None:
        return None
    if isinstance(old, str):
        return old if old == new else "full"
    return np.where(redo.reshape((-1,) + (1,) * (np.ndim(old) - 1)), new, old)


def _observed_task(p: Problem, task: ObservedTask) -> SufficientStats:
    """Statistics of one chunk of observed samples (a task for the executor)."""
    g, sl, comps, log_alpha, redo = task[:5]
    log_bg = None if log_alpha is None else p.log_bg_obs[sl] + log_alpha
    weight = None if p.weight is None else p.weight[sl]
    nbr = None if p.nbr is None else p.nbr[sl]
    if task.rebuild and nbr is not None and task.nb_comps is not None and not redo.all():
        nbr[:] = 0
        observed.chunk_stats(p.groups[g], sl, p.Xc, p.S, p.R, task.nb_comps, weight, log_bg,
                             nbr, np.ones_like(redo))
    return observed.chunk_stats(p.groups[g], sl, p.Xc, p.S, p.R, comps, weight, log_bg, nbr, redo)


def all_chunks(p: Problem) -> list[tuple[int, slice]]:
    """Every chunk of the observed samples as (group, rows), in order."""
    return [(g, sl) for g, grp in enumerate(p.groups) for sl in grp.chunks]


def _tasks(p: Problem, comps: list, bg_amp: float, chunks: list | None,
           redo: np.ndarray | None = None, history: NeighborhoodHistory | None = None) -> list:
    log_alpha = math.log(bg_amp) if bg_amp > 0 else None
    version, hist = (0, None) if history is None else (history.version, history.comps)
    return [ObservedTask(g, sl, comps[g], log_alpha, redo, version,
                         None if hist is None else hist[g])
            for g, sl in (all_chunks(p) if chunks is None else chunks)]


def observed_stats(p: Problem, comps: list, bg_amp: float, ex: Any,
                   redo: np.ndarray | None = None,
                   history: NeighborhoodHistory | None = None,
                   chunks: list | None = None, prefetch: list | None = None
                   ) -> SufficientStats:
    """Statistics of all observed samples: chunk tasks on the executor, summed in order.

    ``comps`` holds the components of each group (:func:`group_comps`). With
    neighborhoods (``p.nbr``), ``redo`` flags the components whose
    neighborhoods are recomputed in this pass, and ``history`` what the
    stored flags are (updated here). ``chunks``: only these (group, rows) of
    :func:`all_chunks` (a minibatch), in this order; ``prefetch``: the (group, rows) of
    the next minibatch, whose rows an executor reading them lazily fetches meanwhile.
    """
    K, D = next(c for c in comps if c is not None).log_amp.size, p.center.size
    stats = SufficientStats.zeros(K, D)
    tasks = _tasks(p, comps, bg_amp, chunks, redo, history)
    parts = ex.map(_observed_task, tasks) if prefetch is None else \
        ex.map(_observed_task, tasks, prefetch=[sl for _, sl in prefetch])
    for part in parts:
        stats += part
    if history is not None and redo is not None:
        history.update(comps, redo)
    return stats


def chunk_logL(p: Problem, comps: list, bg_amp: float, ex: Any, chunks: list
               ) -> tuple[np.ndarray, np.ndarray]:
    """The summed logL and weight of each of the chunks ``chunks`` ((group, rows) each)."""
    parts = ex.map(_observed_task, _tasks(p, comps, bg_amp, chunks))
    return np.array([s.logL for s in parts]), np.array([s.weight for s in parts])


def observed_log_joint(p: Problem, st: State) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample log densities of the members at ``st`` (numpy kernels, all pairs).

    Returns
    -------
    log_joint : ndarray (N, K)
        log(a_k (1 - bg_amp)) + log N(y_i | component k projected and
        convolved with the noise of sample i), in the order of ``p.Xc``.
    log_bg : ndarray (N,) or None
        log(bg_amp) + log background density (None without a background
        or with bg_amp = 0).
    """
    K = st.mean.shape[0]
    comps = group_comps(p, st.amp * (1 - st.bg_amp), st.mean, st.covar)
    out = np.empty((p.Xc.shape[0], K))
    for grp, c in zip(p.groups, comps):
        for sl in grp.chunks:
            out[sl] = observed.chunk_log_joint(grp, sl, p.Xc, p.S, p.R, c)[0]
    log_bg = None
    if p.log_bg_obs is not None and st.bg_amp > 0:
        log_bg = p.log_bg_obs + math.log(st.bg_amp)
    return out, log_bg


def block_tasks(st: State, M: int, fresh: int = -1) -> list[BlockTask]:
    """The blocks of M imputation draws at ``st`` (``fresh``: see :class:`BlockTask`)."""
    return [BlockTask(b, n, st.amp, st.mean, st.covar, st.bg_amp, fresh)
            for b, n in block_sizes(M)]


def draw_count(target: float, weight: float, K: int) -> int:
    """``target`` (oversampling times an estimated original size) imputation draws, rounded
    up, at most MAX_DRAWS_PER_SAMPLE per unit of the observed ``weight`` (+ K), at least 1."""
    return max(1, min(math.ceil(target), int(MAX_DRAWS_PER_SAMPLE * weight) + K))


def held_draws(target: int, M: int | None) -> int:
    """The draws to make: ``M`` again unless ``target`` moved by more than 5% from it (a
    fixed M keeps the imputation a deterministic function of the parameters)."""
    return target if M is None or abs(target - M) > 0.05 * M else M


def selected_fraction(p: Problem, omega_sum: float, M: int) -> tuple[float, float]:
    """Z = sum_j Omega_j / M over M draws (at least 0.5 / M) and the standard deviation of
    log Z (binomial draws).

    Raises
    ------
    RunawayError
        If the selection is 0 on every draw.
    """
    if omega_sum == 0:
        raise no_selected_draws(p, M)
    Z = max(omega_sum / M, 0.5 / M)
    return Z, math.sqrt((1 - min(Z, 1.0)) / (Z * M))


def imputed_stats(p: Problem, st: State, M: int, ex: Any, fresh: int = -1
                  ) -> tuple[SufficientStats, np.ndarray, np.ndarray]:
    """Statistics of M imputation draws (weights 1 - Omega), block by block (``fresh`` >= 0:
    draws of that randomization, :class:`BlockTask`).

    Returns
    -------
    stats : SufficientStats (to be scaled by N0 / M)
    omega : ndarray (K + 1,), sum of Omega over the draws of each member (K: background)
    draws : ndarray (K + 1,), draws of each member
    """
    K, D = st.mean.shape
    stats = SufficientStats.zeros(K, D)
    omega, draws = np.zeros(K + 1), np.zeros(K + 1)
    for part, om, n in ex.map(block_stats, block_tasks(st, M, fresh)):
        stats += part
        omega += om
        draws += n
    return stats, omega, draws
