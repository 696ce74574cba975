"""Ctrl-C is always honoured, and nothing is left behind: real processes, real signals.

A fit runs in a child process, SIGINT arrives at a random moment -- while the
worker pool starts, while it runs, during imputation with n_jobs=1, during
n_init restarts, while a user callback sleeps in the main process or in a
worker -- and the child must end in KeyboardInterrupt within LATENCY seconds,
with no process of its process group and no shared-memory segment of its
left, and without "Exception ignored" (a KeyboardInterrupt lost in an at-fork
handler). Workers that die (SIGKILL, os._exit or sys.exit in a callback)
raise WorkerDied with an explanation that fits.

Starting a fresh interpreter costs seconds here (importing scikit-learn), so
the children are forked from one "zygote" process that imported pygmmis_ng and
ran each scenario briefly (numba compilation) -- each child is a real
process in its own process group, and leaves by ``os._exit`` right after
printing its traceback (no interpreter teardown, no atexit clean-up that could
hide a leak: the resource tracker belongs to the zygote). The zygote is this
file run as a script.
"""
from __future__ import annotations

import collections
import glob
import logging
import multiprocessing
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import traceback

import numpy as np
import pytest

import pygmmis_ng as ng
from pygmmis_ng.execution import pool
from pygmmis_ng.execution.interrupts import sigint_deferred
from pygmmis_ng.tools import datasets

#: seconds from SIGINT to KeyboardInterrupt at the top of the child, and to its exit
LATENCY = 1.0
#: seconds after which a child that got SIGINT counts as stuck (and is killed)
STUCK = 10.0
#: the random moments: seed from the environment, else a fresh one (shown on failure)
SEED = int(os.environ.get("PYGMMIS_NG_INTERRUPT_SEED", random.randrange(2**32)))


# ---------------------------------------------------------------------------
# what runs in the zygote and its children
# ---------------------------------------------------------------------------

def say(*words: object) -> None:
    """One line to the test (stdout, a pipe shared by zygote, children and workers)."""
    os.write(1, (" ".join(map(str, words)) + "\n").encode())


class _PoolMarker(logging.Handler):
    """Says "mark pool" when the executor logs that its workers are about to start."""

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("starting") and "worker processes" in str(record.msg):
            say("mark pool", time.monotonic())


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]])
    return centres[rng.integers(0, 4, 20000)] + rng.normal(size=(20000, 3))


def _box(seed: int):
    return datasets.paper_2d(N=2000, selection="box", sigma=0.0, rng=seed)


def run_pool(seed: int, short: bool = False) -> None:
    say("mark fit", time.monotonic())
    ng.fit(ng.GMM(4, 3), _blobs(seed), tol=0, maxiter=2 if short else 10**6, rng=seed, n_jobs=2)


def run_impute(seed: int, short: bool = False) -> None:
    ds = _box(seed)
    say("mark fit", time.monotonic())
    ng.fit(ng.GMM(3, 2), ds.data, sel_callback=ds.sel_callback, tol=0,
           maxiter=2 if short else 10**6, rng=seed, n_jobs=1)


def run_n_init(seed: int, short: bool = False, n_jobs: int = 1) -> None:
    # short restarts, many of them: the signal lands in the initialization or EM of one
    ds = _box(seed)
    say("mark fit", time.monotonic())
    ng.fit(ng.GMM(3, 2), ds.data, sel_callback=ds.sel_callback, tol=0, maxiter=2 if short else 15,
           n_init=2 if short else 10**4, rng=seed, n_jobs=n_jobs)


def run_sleepy(seed: int, short: bool = False, n_jobs: int = 1) -> None:
    """A sel_callback that sleeps for 30 s on the imputation draws (in a worker with n_jobs=2)."""
    ds = _box(seed)
    n_obs = len(ds.data)

    def sel_callback(coords):
        if len(coords) != n_obs and not short:
            say("mark sleeping", time.monotonic())
            time.sleep(30)
        return ds.sel_callback(coords)

    ng.fit(ng.GMM(3, 2), ds.data, sel_callback=sel_callback, tol=0, maxiter=2, rng=seed,
           n_jobs=n_jobs)


SCENARIOS = {
    "pool": run_pool,
    "impute": run_impute,
    "n_init_serial": lambda seed, short=False: run_n_init(seed, short, n_jobs=1),
    "n_init_pool": lambda seed, short=False: run_n_init(seed, short, n_jobs=2),
    "sleepy_serial": lambda seed, short=False: run_sleepy(seed, short, n_jobs=1),
    "sleepy_pool": lambda seed, short=False: run_sleepy(seed, short, n_jobs=2),
}


def _child(name: str, seed: int, err_path: str) -> None:
    """A forked child: own process group, stderr to a file, the scenario, then os._exit."""
    os.setpgid(0, 0)
    say("child", os.getpid())             # before any other line of this child
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    os.close(fd)
    code = 1
    try:
        logging.getLogger("pygmmis_ng").addHandler(_PoolMarker())
        SCENARIOS[name](seed)
        code = 0
    except KeyboardInterrupt:
        say("ki", time.monotonic())
        traceback.print_exc()
        code = 130
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def zygote() -> None:
    """Warm up every scenario, then fork one child per command "<scenario> <seed> <stderr>"."""
    logger = logging.getLogger("pygmmis_ng")
    logger.setLevel(logging.DEBUG)
    with np.errstate(all="ignore"):
        for scenario in SCENARIOS.values():
            scenario(0, short=True)
    say("ready")
    while line := sys.stdin.readline():
        name, seed, err_path = line.split()
        pid = os.fork()
        if pid == 0:
            _child(name, int(seed), err_path)
        _, status = os.waitpid(pid, 0)
        say("exit", pid, os.waitstatus_to_exitcode(status), time.monotonic())


# ---------------------------------------------------------------------------
# the test's side
# ---------------------------------------------------------------------------

def our_segments(pid: int | None = None) -> list[str]:
    pattern = f"{pool.SEGMENT_PREFIX}{'' if pid is None else f'{pid}_'}*"
    return glob.glob(os.path.join("/dev/shm", pattern))


def group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies do not count), by /proc."""
    members = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as fh:
                text = fh.read()
        except OSError:                   # gone meanwhile
            continue
        fields = text[text.rfind(")") + 2:].split()      # after "pid (comm) "
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(text.split(None, 1)[0]))
    return members


class Zygote:
    """The zygote process, and one child run at a time."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        # GNU OpenMP's thread pool does not survive fork(): with it, a child of the zygote
        # would hang in its first k-means (scikit-learn); one OpenMP thread has no pool
        env = dict(os.environ, OMP_NUM_THREADS="1")
        with open(tmp_path / "zygote.err", "w") as err:
            self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, env=env,
                                         start_new_session=True)
        self.buffer = b""
        self.expect("ready", timeout=120)

    def line(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"no line from the zygote within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the zygote ended; see zygote.err: "
                               + (self.tmp_path / "zygote.err").read_text()[-2000:])
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().split()

    def expect(self, word: str, timeout: float) -> list[str]:
        """Lines up to the next one that starts with ``word`` (which is returned)."""
        deadline = time.monotonic() + timeout
        while True:
            words = self.line(max(deadline - time.monotonic(), 0.001))
            if words and words[0] == word:
                return words

    def interrupt(self, scenario: str, seed: int, mark: str, delay: float,
                  group: bool = True) -> dict:
        """Run ``scenario`` in a child, SIGINT it ``delay`` s after the child says ``mark``.

        ``group``: to its whole process group (as a terminal's Ctrl-C), else to the child only.
        Returns what happened; the child is SIGKILLed if it does not end within STUCK s
        (a lost SIGINT: ``code`` None).
        """
        err = self.tmp_path / f"{scenario}-{seed}.err"
        self.proc.stdin.write(f"{scenario} {seed} {err}\n".encode())
        self.proc.stdin.flush()
        pid = int(self.expect("child", timeout=10)[1])
        ki, t_sig = None, None
        try:
            while (words := self.line(timeout=30))[:2] != ["mark", mark]:
                pass
            time.sleep(delay)
            t_sig = time.monotonic()
            (os.killpg if group else os.kill)(pid, signal.SIGINT)
            while (words := self.line(timeout=STUCK))[0] != "exit":
                if words[0] == "ki":
                    ki = float(words[1]) - t_sig
        except BaseException as exc:
            os.killpg(pid, signal.SIGKILL)     # never leave a runaway child behind
            self.expect("exit", timeout=10)
            if t_sig is None or not isinstance(exc, TimeoutError):
                raise
            words = ["exit", pid, None, "inf"]  # the SIGINT was lost: still running
        return {"pid": pid, "code": words[2] and int(words[2]), "ki": ki,
                "exit": float(words[3]) - t_sig, "left": group_members(pid),
                "segments": our_segments(pid), "stderr": err.read_text()}

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def zygote_proc(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("interrupts"))
    yield z
    z.close()


def assert_interrupted(out: dict, what: str) -> None:
    where = f"{what} (PYGMMIS_NG_INTERRUPT_SEED={SEED})"
    assert "Exception ignored" not in out["stderr"], f"{where}: {out['stderr'][-3000:]}"
    assert out["code"] is not None, \
        f"{where}: SIGINT lost, the child still ran {STUCK} s later: {out['stderr'][-3000:]}"
    assert out["code"] == 130 and out["ki"] is not None, \
        f"{where}: exit code {out['code']}, stderr: {out['stderr'][-3000:]}"
    assert out["stderr"].rstrip().endswith("KeyboardInterrupt"), where
    assert out["ki"] <= LATENCY and out["exit"] <= LATENCY, \
        f"{where}: KeyboardInterrupt after {out['ki']:.3f} s, exit after {out['exit']:.3f} s"
    assert out["left"] == [], f"{where}: processes left in the child's group: {out['left']}"
    assert out["segments"] == [], f"{where}: segments left: {out['segments']}"
    assert "leaked" not in out["stderr"], where


# 20 runs: (scenario, marker to wait for, range of the random delay after it, whole group?)
PLAN = (
    [("pool", "pool", (0.0, 0.03), i % 2 == 0) for i in range(8)]       # while the pool starts
    + [("pool", "pool", (0.05, 0.8), i % 2 == 0) for i in range(4)]     # while it runs
    + [("impute", "fit", (0.0, 1.0), i % 2 == 0) for i in range(4)]     # n_jobs=1, imputation
    + [("n_init_serial", "fit", (0.0, 1.0), True), ("n_init_serial", "fit", (0.0, 1.0), False),
       ("n_init_pool", "fit", (0.0, 1.0), True), ("n_init_pool", "fit", (0.0, 1.0), False)]
)
LATENCIES: dict[str, tuple[float, float]] = {}


@pytest.mark.parametrize("run", range(len(PLAN)))
def test_ctrl_c_at_a_random_moment(zygote_proc, run):
    scenario, mark, (lo, hi), group = PLAN[run]
    delay = random.Random(SEED + run).uniform(lo, hi)
    out = zygote_proc.interrupt(scenario, run, mark, delay, group)
    assert_interrupted(out, f"run {run}: {scenario}, SIGINT {delay:.3f} s after '{mark}' "
                            f"to the {'group' if group else 'child'}")
    LATENCIES[f"{run}:{scenario}"] = (out["ki"], out["exit"])
    print(f"run {run} {scenario} delay {delay:.3f}: KeyboardInterrupt after {out['ki']:.3f} s, "
          f"exit after {out['exit']:.3f} s")


@pytest.mark.parametrize("scenario", ["sleepy_serial", "sleepy_pool"])
def test_ctrl_c_while_a_callback_sleeps(zygote_proc, scenario):
    # to the child alone: with n_jobs=2 the sleeping worker never sees the signal, the parent
    # must stop it
    out = zygote_proc.interrupt(scenario, 1, "sleeping", 0.2, group=False)
    assert_interrupted(out, scenario)
    print(f"{scenario}: KeyboardInterrupt after {out['ki']:.3f} s, exit after {out['exit']:.3f} s")


# ---------------------------------------------------------------------------
# dying workers (in this process: the autouse fixture checks for leftovers)
# ---------------------------------------------------------------------------

@pytest.fixture
def nothing_left_behind():
    # this process's segments only: other test runs on the machine have their own
    before = set(our_segments(os.getpid()))
    yield
    assert multiprocessing.active_children() == []
    assert set(our_segments(os.getpid())) <= before


def _dies(how: str):
    def die():
        if how == "SIGKILL":
            os.kill(os.getpid(), signal.SIGKILL)     # as the out-of-memory killer does
        elif how == "os._exit":
            os._exit(3)
        elif how == "sys.exit":
            sys.exit(4)
        raise KeyboardInterrupt                      # a callback's own KeyboardInterrupt
    return die


@pytest.mark.parametrize("how, message", [
    ("SIGKILL", r"killed by signal 9 \(SIGKILL\), most likely by the system's out-of-memory"),
    ("os._exit", r"exited by itself with exit code 3: a user callback .* os\._exit\(\)"),
    ("sys.exit", r"exited by itself with exit code 4: .*sys\.exit\(\)"),
    # a worker ignores Ctrl-C: a KeyboardInterrupt there is the callback's own error
    ("raise KeyboardInterrupt", r"sel_callback raised KeyboardInterrupt .* where Ctrl-C does "
                                r"not arrive \(a worker process or a thread\)"),
])
def test_a_worker_that_dies_is_explained(settings, monkeypatch, nothing_left_behind, how, message):
    settings(imputation_block=2048)
    ds = _box(2)
    n_obs, die = len(ds.data), _dies(how)

    def sel_callback(coords):
        if len(coords) != n_obs:             # in a worker, on imputation draws
            die()
        return ds.sel_callback(coords)

    gmm = ng.GMM(3, 2)
    before = gmm.copy()
    expected = pytest.raises(ng.CallbackError if how == "raise KeyboardInterrupt" else
                             ng.WorkerDied, match=message)
    with expected:
        ng.fit(gmm, ds.data, sel_callback=sel_callback, init_method="kmeans", rng=0, n_jobs=2)
    np.testing.assert_array_equal(gmm.mean, before.mean)


# ---------------------------------------------------------------------------
# the pieces, in this process
# ---------------------------------------------------------------------------

def ctrl_c_here() -> None:
    """SIGINT to this (main) thread: sent to the process, another thread may take it and the
    main thread see it a moment later, after the block under test has ended."""
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


def test_sigint_deferred_holds_ctrl_c_back_until_the_block_ends():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            with sigint_deferred():                        # nested: delivered by the outer one
                ctrl_c_here()
                time.sleep(0.05)                           # a handler would have run by now
                reached.append("inner")
            reached.append("outer")
    assert reached == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ())


def test_sigint_deferred_ctrl_c_wins_over_the_blocks_exception():
    with pytest.raises(KeyboardInterrupt) as info:
        with sigint_deferred():
            ctrl_c_here()
            raise OSError("fork failed")
    assert isinstance(info.value.__context__, OSError)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ())


Toy = collections.namedtuple("Toy", pool.SHARED_FIELDS + pool.PARENT_ONLY_FIELDS,
                             defaults=[None] * len(pool.SHARED_FIELDS + pool.PARENT_ONLY_FIELDS))


def _toy_task(problem, task):
    kind, value = task
    if kind == "fail":
        raise ValueError("bad task")
    if kind == "slow":
        time.sleep(0.3)
    return value + problem.Xc.sum()


def test_a_map_that_raised_leaves_no_results_for_the_next(nothing_left_behind):
    # the fit catches some errors of a step (LinAlgError of an extrapolation) and goes on:
    # the other tasks of that step must not turn up in the next one
    with pool.PoolExecutor(Toy(Xc=np.ones((4, 2))), 2) as ex:
        with pytest.raises(ValueError, match="bad task") as info:
            ex.map(_toy_task, [("slow", 100.0), ("fail", 0.0)])
        assert "bad task" in str(info.value.__cause__)     # the worker's traceback
        assert ex.map(_toy_task, [("fast", 1.0), ("fast", 2.0), ("fast", 3.0)]) == [9.0, 10.0, 11.0]
        assert ex.map(_toy_task, [("slow", 1.0), ("fast", 2.0)]) == [9.0, 10.0]


if __name__ == "__main__":
    zygote()
