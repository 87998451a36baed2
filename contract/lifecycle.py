"""How the server processes that share a data dir start, hold it, and die.

* **One publisher per data dir.** :class:`DataDirLock` is an exclusive ``flock`` on
  ``<data-dir>/publisher.lock``, held for the whole life of the process that publishes the data
  dir's snapshots (the control plane's worker, or ``python -m server sync`` on an edge host). A
  second process that wants it waits a few seconds (a predecessor killed a moment ago may still be exiting), then gets
  :class:`DataDirLocked`, whose message names the holder's pid; it must refuse to start. The
  kernel drops the lock with the process that holds it, SIGKILL included, so a restart after a
  crash never finds a stale lock. The master of ``serve`` only *checks* the lock (see
  :func:`check_free`) to refuse early with a clear message; the worker takes it for real.
* **Workers die with their master.** granian forks its workers from the master process; a
  master killed with SIGKILL used to leave them serving (old code, the old data dir) and sharing
  the port (``SO_REUSEPORT``) with the next start. :func:`mark_master` records the master's pid
  in the environment before the workers are forked, and :func:`die_with_master`, called by each
  worker's app factory, asks Linux (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill the worker
  when its parent dies. A worker whose master died before that call took effect finds another
  parent pid and kills itself. Elsewhere than Linux it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger("contract.lifecycle")

LOCK_NAME = "publisher.lock"
#: The environment variable through which a ``serve`` master tells its workers its pid.
MASTER_PID_ENV = "FLAGEDGE_MASTER_PID"
#: How long a start waits for the lock before refusing: long enough for a killed predecessor's
#: worker to finish dying, short enough to fail fast beside a live one.
DEFAULT_WAIT = 5.0

_PR_SET_PDEATHSIG = 1


class DataDirLocked(RuntimeError):
    """Another live process publishes for this data dir."""


class DataDirLock:
    """The exclusive publisher lock of ``data_dir``, taken on construction (see module doc)."""

    def __init__(self, data_dir: Path, *, wait: float = DEFAULT_WAIT) -> None:
        self.path = data_dir / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise DataDirLocked(
                        f"data dir {data_dir} is already published by another running process "
                        f"(pid {holder}, lock {self.path}: a control plane or a sync); stop it first: two "
                        "publishers on one data dir overwrite each other's snapshots"
                    ) from None
                time.sleep(0.05)
        # The holder's pid, for the message a refused start prints (the lock itself is the flock).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def check_free(data_dir: Path, *, wait: float = DEFAULT_WAIT) -> None:
    """Raise :class:`DataDirLocked` if another process holds ``data_dir``'s lock (after waiting
    up to ``wait`` seconds). For a ``serve`` master, before it forks the worker that takes it."""
    if data_dir.is_dir():
        DataDirLock(data_dir, wait=wait).release()


def mark_master() -> None:
    """In a ``serve`` master, before granian forks the workers: they die with this process."""
    os.environ[MASTER_PID_ENV] = str(os.getpid())


def die_with_master() -> None:
    """In a worker (its app factory): be killed when the master recorded by :func:`mark_master`
    dies. A no-op when no master was recorded (the app runs in-process, e.g. in tests)."""
    raw = os.environ.get(MASTER_PID_ENV)
    if raw is None or not sys.platform.startswith("linux") or os.getpid() == int(raw):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): this worker may outlive its master", ctypes.get_errno())
        return
    # The master may have died between the fork and the prctl: then the signal never comes.
    if os.getppid() != int(raw):
        log.error("master process %s is gone; worker %d exits", raw, os.getpid())
        with contextlib.suppress(ProcessLookupError):
            os.kill(os.getpid(), signal.SIGKILL)
