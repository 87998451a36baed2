"""The SQLite source of truth: one connection, WAL with ``synchronous=FULL``, serialized writes.

Opening the store brings its schema to this release's: the numbered migrations in
``control_plane/schema/`` that it lacks are applied (``control_plane/migrations.py``), and a database
this release cannot run on raises ``MigrationError``.

``synchronous=FULL`` fsyncs the WAL on every commit, so an acknowledged write survives kill -9
and power loss; the control plane's write rate is far below what that costs.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from control_plane import migrations


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return uuid.uuid4().hex[:24]


class Store:
    def __init__(self, path: Path | str, schema: Traversable | Path | None = None) -> None:
        """``schema``: the migrations directory, ``control_plane/schema/`` unless a test gives another."""
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            self._conn.execute(f"PRAGMA {pragma}")
        try:
            self._migrate(schema)
        except BaseException:
            self._conn.close()
            raise

    def _migrate(self, schema: Traversable | Path | None) -> None:
        dialect = migrations.SQLITE
        wanted = migrations.shipped(dialect.name) if schema is None else migrations.load(schema, dialect.name)
        with self._lock:
            migrations.migrate(self._conn, dialect, wanted)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; everything inside commits together or not at all."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

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
