"""The adversarial suite again, as an outside red team runs it (issue 31): every case in a process
forked after a warm fit, and the fit cases as two fits at once in threads.

* **Forked.** The parent fits (and runs a multi-threaded KMeans of its own,
  as a user's code would) before it forks a pool; every case of
  ``tests/test_adversarial.py`` -- each hostile argument, bad callback,
  estimator and tool case, and each generated (hypothesis) test with all
  its examples -- then runs in a pool worker. None may hang (a deadline for
  all), raise raw or fail its own checks. The counts of clean errors and
  correct acceptances are written to ``$ADVERSARIAL_FORK_COUNTS_FILE`` (JSON)
  when it is set, for the closing note.
* **Threads.** Each hostile ``fit`` argument runs once alone, then as two
  fits at once in two threads: all three give the same outcome, the same
  message and, when accepted, the same bits.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import threading
import time
import warnings
from functools import partial

import numpy as np
import pytest
import test_adversarial as adv

import pygmmis_ng as ng

pytestmark = pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork here")

#: seconds for the whole forked suite (it takes ~10 s)
DEADLINE = 600


def _cases() -> list:
    """(label, callable) of every case of the adversarial module."""
    out = [(f"fit[{p.id}]", partial(adv.test_bad_fit_argument_gives_a_clean_error, *p.values))
           for p in adv.CASES]
    out += [(f"covar_callback[{i}]", partial(adv.test_bad_covar_callback_gives_a_clean_error, i))
            for i in range(len(adv.BAD_COVAR_CB))]
    out += [(f"sel_callback-noise[{i}]",
             partial(adv.test_bad_sel_callback_under_noise_gives_a_clean_error, i))
            for i in range(len(adv.BAD_FIT["sel_callback"][2:]))]
    out += [(f"estimators[{name}]", partial(adv.test_estimators_and_tools_give_clean_errors, name))
            for name in sorted(adv.EST_CASES)]
    out += [(name, getattr(adv, name)) for name in sorted(dir(adv)) if name.startswith(
        ("test_generated_", "test_accepted_", "test_more_workers"))]
    return out


CASES = _cases()


def _run_case(i: int) -> tuple[str, str, dict]:
    """Case i in this (forked) process: ('passed' | 'failed', what failed, outcome counts)."""
    adv.COUNTS.clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CASES[i][1]()
        return "passed", "", dict(adv.COUNTS)
    except BaseException as exc:               # noqa: BLE001 - reported to the parent
        return "failed", f"{type(exc).__name__}: {exc}"[:500], dict(adv.COUNTS)


def _warm_parent() -> None:
    from sklearn.cluster import KMeans

    ng.fit(ng.GMM(2, 2), adv.X0, rng=0)
    KMeans(8, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(20000, 3)))


def test_every_adversarial_case_in_a_child_forked_after_a_warm_fit():
    _warm_parent()
    results, hung = {}, []
    with mp.get_context("fork").Pool(2) as pool:
        pending = [pool.apply_async(_run_case, (i,)) for i in range(len(CASES))]
        deadline = time.monotonic() + DEADLINE
        for (label, _), job in zip(CASES, pending):
            try:
                results[label] = job.get(timeout=max(deadline - time.monotonic(), 1))
            except mp.TimeoutError:
                hung.append(label)
        pool.terminate()
    counts = {"cases": len(CASES), "hung": len(hung)}
    for state, _, outcomes in results.values():
        counts[state] = counts.get(state, 0) + 1
        for kind, n in outcomes.items():
            counts[f"outcome_{kind}"] = counts.get(f"outcome_{kind}", 0) + n
    if os.environ.get("ADVERSARIAL_FORK_COUNTS_FILE"):
        with open(os.environ["ADVERSARIAL_FORK_COUNTS_FILE"], "w") as fh:
            json.dump(counts, fh)
    failed = {label: why for label, (state, why, _) in results.items() if state != "passed"}
    assert not hung, f"hung in a forked child: {hung}"
    assert not failed, f"failed in a forked child: {failed}"
    assert counts.get("outcome_raw", 0) == 0
    assert counts["outcome_clean"] > 250 and counts["outcome_accepted"] > 10     # really ran


def _fit_outcome(kwargs: dict) -> tuple:
    """A hostile fit's outcome without warnings.catch_warnings (not thread-safe): its kind,
    message and fitted parameters."""
    g = adv.start_gmm()
    kw = dict(kwargs)
    data = kw.pop("data", adv.X0.copy())
    kw.setdefault("maxiter", 15)
    kw.setdefault("rng", 0)
    try:
        res = ng.fit(g, data, **kw)
    except adv.CLEAN as exc:
        return ("clean" if adv.raised_by_us(exc) else "raw", str(exc), None)
    except Exception as exc:                   # noqa: BLE001 - what the test looks for
        return ("raw", f"{type(exc).__name__}: {exc}", None)
    return ("accepted", "", (res.logL, g.amp.tobytes(), g.mean.tobytes(), g.covar.tobytes()))


@pytest.mark.parametrize("key, value", adv.CASES)
def test_two_hostile_fits_at_once_in_threads_equal_one_at_a_time(key, value):
    kwargs = {key: value}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = _fit_outcome(kwargs)
        together: list = [None, None]
        start = threading.Barrier(2)

        def run(j: int) -> None:
            start.wait()
            together[j] = _fit_outcome(kwargs)
        threads = [threading.Thread(target=run, args=(j,)) for j in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not any(t.is_alive() for t in threads), "a fit in a thread hung"
    assert alone[0] != "raw", alone
    assert together[0] == alone and together[1] == alone
