"""The SQLite source of truth: one connection, WAL with ``synchronous=FULL``, serialized writes.

Opening the store brings its schema to this release's: the numbered migrations in
``control_plane/schema/`` that it lacks are applied (``control_plane/migrations.py``), and a database
this release cannot run on raises ``MigrationError``.

``synchronous=FULL`` fsyncs the WAL on every commit, so an acknowledged write survives kill -9
and power loss; the control plane's write rate is far below what that costs.

A disk that is full or failing (SQLITE_FULL, SQLITE_IOERR, ENOSPC, EIO, ...) is not a bug of the
request that met it: the store records it as :attr:`Store.failure` (the admin API answers 503
``storage_unavailable`` and ``/ready`` 503 naming it) until a transaction commits again or
:meth:`Store.probe` finds the disk writable, so it recovers by itself when space returns.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from control_plane import migrations

log = logging.getLogger("control_plane.store")

# Primary SQLite result codes and errnos that mean "the disk cannot take this now", by the code
# the API reports. Anything else (a constraint, a syntax error, a busy lock) is not a storage fault.
_SQLITE_FAULTS = {
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_CANTOPEN: "io_error",
    sqlite3.SQLITE_READONLY: "read_only",
}
_OS_FAULTS = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EIO: "io_error", errno.EROFS: "read_only"}
# What the readiness probe writes (and fsyncs) next to the database: a few pages of WAL.
_PROBE_BYTES = 64 << 10


def storage_fault(e: BaseException) -> str | None:
    """The code of a storage fault (``disk_full``, ``io_error``, ``read_only``), or None."""
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        return _SQLITE_FAULTS.get(code & 0xFF) if isinstance(code, int) else None
    if isinstance(e, OSError):
        return _OS_FAULTS.get(e.errno or 0)
    return None


@dataclass
class StorageFailure:
    """Why the store cannot write, since when, and how many operations met it."""

    code: str
    reason: str
    since: str = field(default_factory=lambda: now_iso())
    failures: int = 0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return uuid.uuid4().hex[:24]


class Store:
    def __init__(self, path: Path | str, schema: Traversable | Path | None = None) -> None:
        """``schema``: the migrations directory, ``control_plane/schema/`` unless a test gives another."""
        self.path = Path(path)
        self.failure: StorageFailure | None = None
        self._conn = self.connect()
        self._lock = threading.RLock()
        try:
            self._migrate(schema)
        except BaseException:
            self._conn.close()
            raise

    def connect(self) -> sqlite3.Connection:
        """A new connection to the database, set up as the store's own (WAL, ``synchronous=FULL``,
        foreign keys, explicit transactions). The store serializes its own connection; one made
        here is the caller's to serialize (a group-commit writer has its own, so that its fsyncs
        do not hold the store's lock: WAL readers on the store's connection go on meanwhile)."""
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _migrate(self, schema: Traversable | Path | None) -> None:
        dialect = migrations.SQLITE
        wanted = migrations.shipped(dialect.name) if schema is None else migrations.load(schema, dialect.name)
        with self._lock:
            migrations.migrate(self._conn, dialect, wanted)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; everything inside commits together or not at all. A storage
        fault on the way is recorded (:meth:`note_failure`); a commit clears it."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (SQLITE_FULL, SQLITE_IOERR) may or may not have rolled back
                    # already; a transaction left open would refuse every later BEGIN.
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as e:
                self.note_failure(e)
                raise
            self._recovered("a write committed")

    def note_failure(self, e: BaseException) -> StorageFailure | None:
        """Record ``e`` if it is a storage fault (logged loudly once, then counted)."""
        code = storage_fault(e)
        if code is None:
            return None
        reason = f"the database cannot be written ({code}): {type(e).__name__}: {e}"
        with self._lock:
            if self.failure is None:
                self.failure = StorageFailure(code, reason)
                log.error("STORAGE UNAVAILABLE: %s. Writes answer 503 until the disk takes writes again.", reason)
            self.failure.code, self.failure.reason = code, reason
            self.failure.failures += 1
            return self.failure

    def _recovered(self, how: str) -> None:
        if self.failure is not None:
            log.warning("storage works again (%s; failing since %s)", how, self.failure.since)
            self.failure = None

    def probe(self) -> StorageFailure | None:
        """While a failure is recorded: write and fsync a small file beside the database; if the
        disk takes it, the failure is cleared (the next write proves it or records it again)."""
        if self.failure is None:
            return None
        probe = self.path.with_name(f".{self.path.name}.probe")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"\0" * _PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    probe.unlink()
        except OSError as e:
            self.note_failure(e)
            return self.failure
        with self._lock:
            self._recovered("the readiness probe wrote to the disk")
        return None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the store lock across several steps (a commit and the publish that follows it)."""
        with self._lock:
            yield

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()
