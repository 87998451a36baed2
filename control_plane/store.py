"""The source of truth: SQLite (the default: one connection, WAL with ``synchronous=FULL``,
serialized writes) or PostgreSQL (``--database-url``: a small connection pool, writes serialized
across every replica by an advisory lock). Dialect differences live in ``control_plane/dialect.py``.

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
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from control_plane import migrations
from control_plane.dialect import (
    DATABASE_ERRORS,
    STORAGE_ERRORS,
    Connection,
    PgConnection,
    Row,
    configure,
    is_postgresql,
    pg_connect,
)
from control_plane.dialect import storage_fault as storage_fault

log = logging.getLogger("control_plane.store")

# What the readiness probe writes (and fsyncs) next to the database: a few pages of WAL.
_PROBE_BYTES = 64 << 10
# PostgreSQL: every write transaction takes this transaction-level advisory lock first, so writes
# are serialized across all replicas as SQLite's BEGIN IMMEDIATE serializes them in one process:
# a read-check-write inside a transaction stays correct, and commit order is the order in which
# the lock was granted (the publish outbox relies on it, control_plane/replication.py).
WRITE_LOCK = 0x666C_6167_0001
# How long a replica waits for a pooled connection to PostgreSQL before the request fails (503).
POOL_TIMEOUT = 10.0


@dataclass
class StorageFailure:
    """Why the store cannot write, since when, and how many operations met it."""

    code: str
    reason: str
    since: str = field(default_factory=lambda: now_iso())
    failures: int = 0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_ids = threading.Lock()
_last_id = [0, 0]  # the milliseconds and the counter of the newest id this process made


def new_id() -> str:
    """24 hex digits that sort in creation order within a process: milliseconds since the epoch
    (11 digits), a counter within the millisecond (3), 40 random bits (10) that keep ids of several
    replicas apart. Lists order rows by ``created_at, id``: rows written in one millisecond (one
    transaction's variables) keep the order they were made in, on either store (PostgreSQL has no
    SQLite ``rowid``)."""
    ms = time.time_ns() // 1_000_000
    with _ids:
        last_ms, counter = _last_id
        if ms <= last_ms:
            ms, counter = last_ms, counter + 1
            if counter > 0xFFF:
                ms, counter = last_ms + 1, 0
        else:
            counter = 0
        _last_id[:] = [ms, counter]
    return f"{ms:011x}{counter:03x}{secrets.token_hex(5)}"


class Store:
    def __init__(self, path: Path | str, schema: Traversable | Path | None = None) -> None:
        """``path``: the SQLite file, or a ``postgresql://`` URL (then the store is PostgreSQL, shared
        by every replica). ``schema``: the migrations directory, ``control_plane/schema/`` unless a
        test gives another."""
        self.url = str(path) if is_postgresql(path) else None
        self.path = Path("postgresql") if self.url else Path(path)
        self.failure: StorageFailure | None = None
        self._lock = threading.RLock()
        self._pool: ConnectionPool[Any] | None = None
        self._conn: Connection | None = None
        if self.url is not None:
            self._pool = ConnectionPool(
                self.url,
                min_size=1,
                max_size=4,
                kwargs={"autocommit": True, "cursor_factory": psycopg.ClientCursor},
                configure=configure,
                check=ConnectionPool.check_connection,
                timeout=POOL_TIMEOUT,
                name="flagedge-store",
                open=False,
            )
            self._pool.open(wait=True, timeout=POOL_TIMEOUT)
        else:
            self._conn = self.connect()
        try:
            self._migrate(schema)
        except BaseException:
            self.close()
            raise

    @property
    def postgresql(self) -> bool:
        return self.url is not None

    def connect(self) -> Connection:
        """A new connection to the database, set up as the store's own (SQLite: WAL,
        ``synchronous=FULL``, foreign keys, explicit transactions; PostgreSQL: autocommit, explicit
        transactions). The store serializes its own connection; one made here is the caller's to
        serialize (a group-commit writer has its own, so that its fsyncs do not hold the store's
        lock: readers on the store's connection go on meanwhile)."""
        if self.url is not None:
            return PgConnection(pg_connect(self.url))
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _migrate(self, schema: Traversable | Path | None) -> None:
        dialect: migrations.Dialect[Any] = migrations.POSTGRESQL if self.postgresql else migrations.SQLITE
        wanted = migrations.shipped(dialect.name) if schema is None else migrations.load(schema, dialect.name)
        with self.read() as conn:
            migrations.migrate(conn, dialect, wanted)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """The connection to use while the store lock is held (PostgreSQL: one from the pool,
        which replaces a connection broken by a server restart)."""
        if self._pool is None:
            assert self._conn is not None
            yield self._conn
            return
        with self._pool.connection() as raw:
            yield PgConnection(raw)

    @contextmanager
    def write_transaction(self, conn: Connection, *, serialized: bool = True) -> Iterator[None]:
        """A write transaction on ``conn`` holding the database's write lock from its start
        (PostgreSQL, ``serialized=False``: only the row locks its statements take, for state that
        is not the source of truth's, e.g. rate limits)."""
        if self.postgresql:
            conn.execute("BEGIN")
            if serialized:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
        else:
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (SQLITE_FULL, SQLITE_IOERR) may or may not have rolled back
            # already; a transaction left open would refuse every later BEGIN.
            if conn.in_transaction:
                with contextlib.suppress(*DATABASE_ERRORS):
                    conn.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self, *, serialized: bool = True) -> Iterator[Connection]:
        """A write transaction; everything inside commits together or not at all. A storage
        fault on the way is recorded (:meth:`note_failure`); a commit clears it."""
        with self._lock:
            try:
                with self._connection() as conn, self.write_transaction(conn, serialized=serialized):
                    yield conn
            except STORAGE_ERRORS as e:
                self.note_failure(e)
                raise
            except Exception as e:
                self.note_failure(e)  # psycopg_pool's PoolTimeout: the server cannot be reached
                raise
            self._recovered("a write committed")

    def note_failure(self, e: BaseException) -> StorageFailure | None:
        """Record ``e`` if it is a storage fault (logged loudly once, then counted)."""
        code = storage_fault(e)
        if code is None:
            return None
        what = "reached" if code == "database_unavailable" else "written"
        reason = f"the database cannot be {what} ({code}): {type(e).__name__}: {e}"
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
        """While a failure is recorded: SQLite: write and fsync a small file beside the database;
        PostgreSQL: run a statement on the server. If that works, the failure is cleared (the next
        write proves it or records it again)."""
        if self.failure is None:
            return None
        if self.postgresql:
            try:
                self.one("SELECT 1")
            except Exception as e:
                self.note_failure(e)
                return self.failure
            with self._lock:
                self._recovered("the readiness probe reached the database")
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
    def snapshot(self) -> Iterator[Connection]:
        """One consistent read-only view of the database on a connection of its own, without the
        store lock (a long read beside the writes: ``control_plane.warm_builds``). SQLite's WAL
        fixes a deferred transaction's view at its first read; PostgreSQL's repeatable read at
        its first statement."""
        conn = self.connect()
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" if self.postgresql else "BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    with contextlib.suppress(*DATABASE_ERRORS):
                        conn.execute("ROLLBACK")
        finally:
            conn.close()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the store lock across several steps (a commit and the publish that follows it)."""
        with self._lock:
            yield

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._lock, self._connection() as conn:
            yield conn

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        with self.read() as conn:
            row: Row | None = conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        with self.read() as conn:
            return list(conn.execute(sql, params).fetchall())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            if self._pool is not None:
                self._pool.close()
