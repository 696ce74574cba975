"""Split'n'merge (SMEM, Ueda et al. 2000): escape local optima of EM.

EM often converges with two components sharing one cluster while a single
component spans two clusters. SMEM merges the pair (i, j) whose
responsibilities overlap most and splits the component k that describes its
samples worst, runs a partial EM on the three changed components with all
others frozen, then a full EM, and keeps the result if the likelihood rose.
This is the procedure of pyGMMis and extreme deconvolution (Bovy et al. 2011).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..problem.problem import Problem, Run, State
from .em_loop import run_em
from .estep import observed_log_joint
from .mstep import constrain

logger = logging.getLogger("pygmmis_ng")


def candidates(log_joint: np.ndarray, log_bg: np.ndarray | None, weight: np.ndarray | None,
               amp: np.ndarray, bg_amp: float = 0.0, frozen: np.ndarray | None = None,
               limit: int | None = None) -> list[tuple[int, int, int]]:
    """Ueda's ranked split'n'merge candidates (i, j, k): merge i < j, split k.

    Parameters
    ----------
    log_joint : ndarray (N, K)
        log(amp_k (1 - bg_amp)) + log p_k(x_n) (see :func:`.estep.observed_log_joint`).
    log_bg : ndarray (N,) or None
        Log density of the background member (it takes its share of the
        responsibilities).
    weight : ndarray (N,) or None
        Sample weights (1 if None).
    amp : ndarray (K,)
        Component amplitudes (of the GMM, summing to 1).
    bg_amp : float
        Background fraction, to recover p_k from ``log_joint``.
    frozen : bool ndarray (K,) or None
        Components with any frozen parameter; they take no role.
    limit : int or None
        Return at most this many triples (the first ones of the ranking).

    Returns
    -------
    list of (i, j, k)
        Merge pairs by decreasing J_merge(i, j) = sum_n w_n q_ni q_nj, for each
        the split candidates by decreasing local KL divergence
        J_split(k) = sum_n f_k(x_n) log(f_k(x_n) / p_k(x_n)) with
        f_k(x_n) = w_n q_nk / sum_n w_n q_nk. Empty when fewer than three
        components are free.
    """
    N, K = log_joint.shape
    free = np.ones(K, dtype=bool) if frozen is None else ~np.asarray(frozen, dtype=bool)
    idx = np.flatnonzero(free)
    if idx.size < 3:
        return []
    log_tot = logsumexp(log_joint, axis=1)
    if log_bg is not None:
        log_tot = np.logaddexp(log_tot, log_bg)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.exp(log_joint - log_tot[:, None])
        q = np.where(np.isfinite(q), q, 0.0)
        wq = q if weight is None else q * np.asarray(weight, dtype=float)[:, None]
        J_merge = wq.T @ q
        A = wq.sum(axis=0)
        f = wq / np.where(A > 0, A, 1.0)
        log_p = log_joint - np.log(np.asarray(amp, dtype=float) * (1 - bg_amp))
        terms = np.where(f > 0, f * (np.log(f) - log_p), 0.0)
    J_split = np.where(A > 0, terms.sum(axis=0), -np.inf)
    pairs = [(int(i), int(j)) for n, i in enumerate(idx) for j in idx[n + 1:]]
    pairs.sort(key=lambda ij: -J_merge[ij])          # stable: ties keep index order
    splits = sorted((int(k) for k in idx), key=lambda k: -J_split[k])
    out = []
    for i, j in pairs:
        for k in splits:
            if k != i and k != j:
                out.append((i, j, k))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def apply(state: State, triple: tuple[int, int, int]) -> State:
    """The state with components i, j merged into slot i and k split into slots k and j.

    The merge matches the moments of the sub-mixture a_i N_i + a_j N_j. The
    split moves the means of the halves to m_k +- delta e along the principal
    eigenvector e (eigenvalue lambda) of V_k, with delta = sqrt(2 lambda / pi)
    (the mean of a half-Gaussian), and gives both V_k - delta^2 e e^T and
    amplitude a_k / 2: the pair has the mean and covariance of component k.
    Deterministic; bg_amp and N0 are kept, the input is not modified.
    """
    i, j, k = triple
    if len({i, j, k}) != 3:
        raise ValueError(f"split'n'merge needs three distinct components, got {triple}")
    amp, mean, covar = state.amp.copy(), state.mean.copy(), state.covar.copy()
    a = amp[i] + amp[j]
    wi, wj = (amp[i] / a, amp[j] / a) if a > 0 else (0.5, 0.5)
    m = wi * mean[i] + wj * mean[j]
    di, dj = mean[i] - m, mean[j] - m
    V = wi * (covar[i] + np.outer(di, di)) + wj * (covar[j] + np.outer(dj, dj))
    amp[i], mean[i], covar[i] = a, m, 0.5 * (V + V.T)
    val, vec = np.linalg.eigh(state.covar[k])
    e = vec[:, -1]
    delta = math.sqrt(2 / math.pi * max(val[-1], 0.0))
    Vs = state.covar[k] - delta**2 * np.outer(e, e)
    Vs = 0.5 * (Vs + Vs.T)
    amp[k] = amp[j] = 0.5 * state.amp[k]
    mean[k], mean[j] = state.mean[k] + delta * e, state.mean[k] - delta * e
    covar[k], covar[j] = Vs, Vs.copy()
    return State(amp, mean, covar, state.bg_amp, state.N0)


def _ranked(p: Problem, st: State, limit: int) -> list[tuple[int, int, int]]:
    log_joint, log_bg = observed_log_joint(p, st)
    frozen = p.em.masks["amp"] | p.em.masks["mean"] | p.em.masks["covar"]
    return candidates(log_joint, log_bg, p.weight, st.amp, st.bg_amp, frozen, limit)


def split_and_merge(p: Problem, run: Run, attempts: int, miniter: int, maxiter: int,
                    gen: np.random.Generator, ex: Any) -> tuple[Run, int]:
    """Try up to ``attempts`` split'n'merge candidates from the converged ``run``.

    Each candidate is applied (:func:`apply`), refined by a partial EM in
    which only its three components are free, then by a full EM. It is
    accepted if the final logL exceeds the best so far by more than
    ``p.em.tol`` (per sample); the candidates are then ranked anew from the
    accepted state. Rejected candidates still count as attempts.

    Returns
    -------
    run : Run
        The best run (the input one if no candidate was accepted), with
        ``n_eval`` summed over the input run and all attempts.
    accepted : int
        Number of accepted candidates.
    """
    best = run
    n_eval = run.n_eval
    accepted = used = 0
    ranked = _ranked(p, best.state, attempts)
    if attempts > 0 and not ranked:
        logger.warning("split'n'merge skipped: it needs 3 components none of whose parameters "
                       "is frozen")
    pos = 0
    while used < attempts and pos < len(ranked):
        i, j, k = triple = ranked[pos]
        pos += 1
        used += 1
        st = apply(best.state, triple)
        st = st._replace(covar=constrain(st.covar, st.amp, p.em.covariance_type))
        free = np.zeros(len(st.amp), dtype=bool)
        free[list(triple)] = True
        partial = p._replace(em=dataclasses.replace(
            p.em, masks={key: mask | ~free for key, mask in p.em.masks.items()}))
        first = run_em(partial, st, miniter, maxiter, gen, ex)
        cand = run_em(p, first.state, miniter, maxiter, gen, ex)
        n_eval += first.n_eval + cand.n_eval
        ok = cand.logL - best.logL > p.em.tol
        logger.info("split'n'merge attempt %d/%d: merge %d+%d, split %d: logL %.6f -> %.6f, %s",
                    used, attempts, i, j, k, best.logL, cand.logL,
                    "accepted" if ok else "rejected")
        if ok:
            best = cand
            accepted += 1
            ranked, pos = _ranked(p, best.state, attempts - used), 0
    return best._replace(n_eval=n_eval), accepted
