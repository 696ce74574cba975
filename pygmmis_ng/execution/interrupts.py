"""Holding Ctrl-C back while something must not be interrupted halfway.

Python runs a signal handler between two bytecodes of the main thread, so a
Ctrl-C can raise KeyboardInterrupt anywhere -- also inside code that must
run to the end: the at-fork handlers of ``os.fork`` (an exception there is
printed as "Exception ignored in: <function _releaseLock ...>" and the
Ctrl-C is lost), or between creating a shared-memory segment and recording
that it exists (it would be leaked). :func:`sigint_deferred` holds SIGINT
back and raises the KeyboardInterrupt when the block ends, at a point the
caller chose.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Recorder:
    """A SIGINT handler that only notes the signal (installed while Ctrl-C is held back)."""

    def __init__(self) -> None:
        self.frame: Any = None
        self.seen = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.seen, self.frame = True, frame


def _deliver(handler: Any, frame: Any) -> None:
    """Do what the SIGINT handler ``handler`` does (default: raise KeyboardInterrupt)."""
    if callable(handler):
        handler(signal.SIGINT, frame)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)
    # SIG_IGN, or None (a handler not installed from Python): nothing to do


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold SIGINT (Ctrl-C) back for the ``with`` block; deliver it on exit.

    Two layers, because the kernel hands a SIGINT sent to the process to any
    thread that does not block it (numpy's BLAS threads, numba's), and the
    main thread then runs the Python handler at its next bytecode:

    * ``pthread_sigmask`` blocks SIGINT in this thread, so the kernel keeps
      it pending, and processes forked in the block start with it blocked;
    * in the main thread the Python handler is replaced by one that only
      notes the signal, so no KeyboardInterrupt is raised inside the block
      (not even from an at-fork handler, where it would be lost).

    On exit the handler and the mask are restored, and a SIGINT that came
    meanwhile is delivered to the original handler: its KeyboardInterrupt
    is raised from the exit of the block (also when the block raised; the
    interrupt then wins, with the block's exception as its context). Nested
    blocks deliver at the end of the outermost one. Without
    ``pthread_sigmask`` (Windows) only the handler is replaced.
    """
    masking = hasattr(signal, "pthread_sigmask")
    # every call below may run a pending handler first (raising KeyboardInterrupt): each
    # change is made inside the try that undoes it
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ()) if masking else None
    recorder, previous_handler = None, None
    try:
        if masking:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        # (a handler installed outside Python, None here, could not be restored: left alone)
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is not None:
            installed = _Recorder()
            previous_handler = signal.signal(signal.SIGINT, installed)
            recorder = installed
        yield
    finally:
        try:
            if recorder is not None:
                if masking:   # runs a handler whose signal another thread took: the recorder
                    signal.pthread_sigmask(signal.SIG_BLOCK, ())
                signal.signal(signal.SIGINT, previous_handler)
        finally:
            if masking:
                # unblocking delivers a pending SIGINT: pthread_sigmask runs the restored handler
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        if recorder is not None and recorder.seen:   # also when the block raised: Ctrl-C wins
            _deliver(previous_handler, recorder.frame)
