"""Interruption: Ctrl-C and SIGTERM stop a command promptly and leave nothing half-written.

The CLI installs :func:`install_handlers`. A signal then

1. is recorded in :data:`RECEIVED_SIGNALS` and raised as ``KeyboardInterrupt`` in the
   main thread, which unwinds through the ``atomic_*`` context managers of
   :mod:`bayescale.posterior`: they remove their temporary files and directories;
2. starts a watchdog. A library can delay or swallow that ``KeyboardInterrupt`` (numba
   compiling a kernel holds the main thread for seconds; an exception raised inside a
   C callback is printed as "ignored" and dropped; a sampler's foreign threads can keep
   the interpreter from shutting down). If the process is still alive ``grace_seconds``
   after the signal, or when a second signal arrives, the watchdog removes every
   registered temporary path, terminates child processes and exits with status 130.

Final renames happen under :data:`COMMIT_LOCK` and only if no signal was received, so
the watchdog never removes a path while it is being renamed into place, and nothing is
renamed into place after a signal.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Exit status of an interrupted command (128 + SIGINT, the shell's convention).
EXIT_INTERRUPTED = 130

#: Printed on stderr when a command is interrupted.
INTERRUPTED_MESSAGE = "bayescale: interrupted; nothing was written"

#: Seconds between the first signal and the watchdog's forced exit.
GRACE_SECONDS = 15.0

#: Signals received by the CLI (SIGINT, SIGTERM), in order. Long-running loops and the
#: final rename of every output check it, because a signal handler's KeyboardInterrupt
#: can be swallowed by the library that was running when the signal arrived.
RECEIVED_SIGNALS: list[int] = []

#: Held around every final rename of an output and by the watchdog's clean-up.
COMMIT_LOCK = threading.RLock()

_PENDING: set[Path] = set()


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if the CLI has received SIGINT or SIGTERM."""
    if RECEIVED_SIGNALS:
        raise KeyboardInterrupt(f"signal {RECEIVED_SIGNALS[0]}")


@contextmanager
def pending_path(path: Path) -> Iterator[Path]:
    """Register a temporary file or directory for removal by a forced exit.

    Parameters
    ----------
    path : Path
        A temporary path that the caller renames into place or removes itself.
    """
    with COMMIT_LOCK:
        _PENDING.add(path)
    try:
        yield path
    finally:
        with COMMIT_LOCK:
            _PENDING.discard(path)


def install_handlers(grace_seconds: float = GRACE_SECONDS) -> None:
    """Handle SIGINT and SIGTERM in this process as described in the module docstring.

    Parameters
    ----------
    grace_seconds : float
        Seconds the main thread gets to unwind after the first signal before the
        watchdog exits the process.
    """
    def on_signal(signum, _frame):
        RECEIVED_SIGNALS.append(signum)
        if len(RECEIVED_SIGNALS) > 1:
            force_exit()
        watchdog = threading.Timer(grace_seconds, force_exit)
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def force_exit() -> None:
    """Remove the registered temporary paths, stop child processes, exit with status 130."""
    with COMMIT_LOCK:
        for path in list(_PENDING):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for child in multiprocessing.active_children():
            child.terminate()
        exit_interrupted(announce=True)


def exit_interrupted(*, announce: bool) -> None:
    """End the process at once with status 130.

    ``os._exit`` skips the interpreter's shutdown, which can wait forever on threads a
    sampler started; every output has been cleaned up by then.

    Parameters
    ----------
    announce : bool
        Print :data:`INTERRUPTED_MESSAGE` on stderr first.
    """
    sys.stdout.flush()
    if announce:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
