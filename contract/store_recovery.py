"""Rebuilding a damaged LMDB snapshot store when its writer starts.

LMDB is derived data. On the control plane's host, SQLite (or PostgreSQL) is the source of truth
and the publisher republishes everything on start; on an edge host fed from Redis, ``python -m
server sync`` applies Redis's full state to an empty store. So when the store cannot be read, its
writer (the control plane or sync) moves it aside (``snapshots.damaged-<UTC timestamp>``, kept
for inspection), logs that loudly, and rebuilds it. Contracts:

* Only damage moves a store aside: a file that is truncated or not LMDB's
  (:class:`contract.store.StoreDamaged`), LMDB reporting corrupt or missing pages, or the read
  dying on a signal (SIGBUS, or LMDB's assertions aborting on a page it cannot parse). A store
  that is locked, busy, out of readers or from another LMDB build is not damaged: the error
  surfaces as before and nothing is moved.
* The full read runs in a child process, so a file that crashes whoever reads it crashes the
  child, not the control plane.
* Versions never go backwards: :func:`recover_damaged_store` returns the highest version the old
  store can be shown to have reached (its ``meta/version`` if readable, else its last LMDB
  transaction id, which no publish of this control plane's store can exceed: each publish is
  one transaction). The publisher starts above it (``Publisher(floor=...)``, which also reads
  the version Redis announces), and edges refuse a store
  older than what they serve in the meantime.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb

from contract.store import SnapshotReader, StoreDamaged, data_file, data_file_meta, snapshot_dir

log = logging.getLogger("contract.store_recovery")

#: LMDB errors that mean the file's content is wrong (not that it is busy or misconfigured).
DAMAGE_ERRORS: tuple[type[lmdb.Error], ...] = (
    StoreDamaged,
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.InvalidError,
    lmdb.BadTxnError,
)
# Exit codes of the checking child.
_READABLE, _DAMAGED = 0, 3


def check_store(data_dir: Path) -> tuple[int, str | None]:
    """Read the whole store once, in this process: ``(version, None)`` when it is readable,
    ``(version, why)`` when it is damaged (``version`` 0 when even that could not be read).
    Errors that are not damage propagate."""
    version = 0
    try:
        reader = SnapshotReader(data_dir)
    except DAMAGE_ERRORS as e:
        return 0, f"{type(e).__name__}: {e}"
    try:
        version = reader.version()
        reader.read_all()
    except DAMAGE_ERRORS as e:
        return version, f"{type(e).__name__}: {e}"
    finally:
        reader.close()
    return version, None


def _check_in_child(data_dir: Path) -> tuple[int, str | None]:
    """:func:`check_store` in a child process: a read that faults kills the child only."""
    # No timeout: LMDB readers take no locks that could block, so the child ends; and a timed
    # wait breaks under a skewed clock (libfaketime makes subprocess's sleep fail with EINVAL).
    out = subprocess.run([sys.executable, "-m", __name__, str(data_dir)], capture_output=True, text=True, check=False)
    lines = out.stdout.splitlines()
    version = int(lines[0]) if lines and lines[0].isdigit() else 0
    if out.returncode == _READABLE:
        return version, None
    if out.returncode == _DAMAGED:
        return version, lines[1] if len(lines) > 1 else "damaged"
    if out.returncode < 0 and -out.returncode in (signal.SIGBUS, signal.SIGSEGV, signal.SIGABRT):
        return version, f"reading it killed the process with {signal.Signals(-out.returncode).name}"
    raise RuntimeError(f"could not check the snapshot store {snapshot_dir(data_dir)}: {out.stderr.strip()[-2000:]}")


def recover_damaged_store(data_dir: Path) -> int:
    """Move a damaged store aside; the version the rebuilt store must stay above (0 when the
    store is readable or absent, and nothing was moved)."""
    if not data_file(data_dir).exists():
        return 0
    version, why = _check_in_child(data_dir)
    if why is None:
        return 0
    try:
        txnid = data_file_meta(data_dir).txnid
    except StoreDamaged:
        txnid = 0
    floor = max(version, txnid)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = snapshot_dir(data_dir).with_name(f"snapshots.damaged-{stamp}-{os.getpid()}")
    os.rename(snapshot_dir(data_dir), aside)
    log.error(
        "SNAPSHOT STORE DAMAGED (%s): moved %s aside to %s; rebuilding it from the source of truth, "
        "with versions above %d. Edges keep serving what they have until the rebuild is written.",
        why,
        snapshot_dir(data_dir),
        aside,
        floor,
    )
    return floor


def _main(argv: list[str]) -> int:
    version, why = check_store(Path(argv[0]))
    print(version)
    if why is None:
        return _READABLE
    print(why)
    return _DAMAGED


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
