"""Numbered schema migrations for the control plane's store, applied at start and recorded in it.

Rules:

* A migration is a file ``NNNN_description.sql`` in ``control_plane/schema/`` (four digits, then
  lower-case letters, digits and ``_``). Versions run 0001, 0002, … without gaps and are applied in
  that order. A migration that one dialect needs written differently is ``NNNN_description.<dialect>.sql``
  (``sqlite`` or ``postgresql``) beside the shared file: that dialect applies it instead.
* Each migration runs in its own write transaction together with its row in ``schema_migrations``
  (version, name, SHA-256 checksum of the file, applied_at): it is applied entirely or not at all.
* A shipped migration is never edited or renamed. At start, the store refuses to open (a
  ``MigrationError`` naming the file) when an applied migration's file changed, when the database
  records a version this release does not know (a newer release upgraded it), or when a missing
  migration is numbered below one already applied. Applied migrations are never re-run.
* The write lock is taken before reading what is applied, so concurrent starts on one database
  apply every migration once.
* 0001-0005 are the baseline: the schema of the last release without migrations, every statement
  ``IF NOT EXISTS``. A database made by that release (its tables, no ``schema_migrations``) is adopted
  by applying them (no-ops there) and recording them. What follows the baseline is plain DDL
  (``ALTER TABLE … ADD COLUMN``, ``CREATE TABLE``, ``CREATE INDEX``) and must work on such a database.

The runner is written against ``Dialect``; everything specific to one database (transactions and the
write lock, running a script, placeholders) lives in its dialect class: ``SQLiteDialect`` and
``PostgreSQLDialect``. A shared migration is written in SQLite's portable subset (``TEXT``,
``INTEGER``, ``REAL``, ``BLOB``, ``INTEGER PRIMARY KEY``); PostgreSQL runs it with its own types
(``control_plane.dialect.postgresql_ddl``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from control_plane.dialect import DATABASE_ERRORS, Connection, postgresql_ddl

log = logging.getLogger("control_plane.migrations")

SCHEMA_PACKAGE = "control_plane.schema"
FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<description>[a-z0-9_]+)(?:\.(?P<dialect>[a-z0-9]+))?\.sql$")

# Portable DDL: the same statement creates the table in SQLite and PostgreSQL.
CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


class MigrationError(RuntimeError):
    """The store cannot be brought to this release's schema; the control plane must not start."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # "0001_core": the file name without the dialect and ".sql"
    filename: str  # the file this dialect applies: "0001_core.sql" or "0001_core.sqlite.sql"
    sql: str
    checksum: str


def checksum(text: str) -> str:
    """SHA-256 of the file's text, line endings normalised (a checkout with CRLF is the same file)."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()


def load(directory: Traversable | Path, dialect: str) -> list[Migration]:
    """The migrations in ``directory`` that ``dialect`` applies, in order."""
    chosen: dict[int, tuple[Migration, bool]] = {}
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        match = FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: a migration file is named NNNN_description.sql")
        if match["dialect"] is not None and match["dialect"] != dialect:
            continue
        version = int(match["version"])
        text = entry.read_text(encoding="utf-8")
        migration = Migration(version, f"{match['version']}_{match['description']}", entry.name, text, checksum(text))
        specific = match["dialect"] is not None
        if version in chosen:
            other, other_specific = chosen[version]
            if other.name != migration.name or other_specific == specific:
                raise MigrationError(f"{other.filename} and {entry.name} both claim version {match['version']}")
            if other_specific:
                continue
        chosen[version] = (migration, specific)
    versions = sorted(chosen)
    for expected, version in enumerate(versions, start=1):
        if version != expected:
            raise MigrationError(f"no migration {expected:04d} for {dialect}: versions run 0001, 0002, … without gaps")
    return [chosen[v][0] for v in versions]


def shipped(dialect: str) -> list[Migration]:
    """This release's migrations (``control_plane/schema/``)."""
    return load(resources.files(SCHEMA_PACKAGE), dialect)


ConnT = TypeVar("ConnT", contravariant=True)
C = TypeVar("C")


class Dialect(Protocol[ConnT]):
    """What the runner needs from one database. ``name`` picks ``NNNN_x.<name>.sql`` variants."""

    name: str
    param: str  # the parameter placeholder

    def session(self, conn: ConnT) -> AbstractContextManager[None]:
        """Around the whole run: connection settings migrations need, restored afterwards."""
        ...

    def write_transaction(self, conn: ConnT) -> AbstractContextManager[None]:
        """One transaction holding the database's write lock from its first statement (so two
        starts cannot both see a migration as missing); commits on exit, rolls back on an error."""
        ...

    def run_script(self, conn: ConnT, migration: Migration) -> None:
        """Run the migration's statements inside the current transaction (never committing)."""
        ...

    def execute(self, conn: ConnT, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _pending(applied: list[tuple[Any, ...]], migrations: Sequence[Migration]) -> list[Migration]:
    """What is left to apply; raises if the database and this release's files disagree."""
    known = {m.version: m for m in migrations}
    for version, name, recorded in applied:
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"the database has migration {name} applied, which this release does not know: a newer release"
                " upgraded it. Run that release, or restore a backup taken before the upgrade"
            )
        if m.name != name or m.checksum != recorded:
            raise MigrationError(
                f"{m.filename} differs from the migration applied to this database as version {version:04d}"
                f" ({name}, checksum {recorded[:12]}…, file {m.checksum[:12]}…): a shipped migration is never"
                " edited; put the change in a new numbered file"
            )
    done = {row[0] for row in applied}
    missing = [m for m in migrations if m.version not in done]
    if missing and done and missing[0].version < max(done):
        later = known[max(done)]
        raise MigrationError(
            f"{missing[0].filename} is not applied but the later {later.filename} is: a new migration"
            " takes the next number after the last one shipped"
        )
    return missing


def migrate(conn: C, dialect: Dialect[C], migrations: Sequence[Migration]) -> list[Migration]:
    """Create ``schema_migrations`` if missing and apply the missing migrations in order, each in its
    own transaction with its record. Returns the ones this call applied."""
    p = dialect.param
    applied_now: list[Migration] = []
    with dialect.session(conn):
        while True:
            with dialect.write_transaction(conn):
                dialect.execute(conn, CREATE_TABLE)
                rows = dialect.execute(conn, "SELECT version, name, checksum FROM schema_migrations ORDER BY version")
                pending = _pending(rows, migrations)
                if not pending:
                    break
                m = pending[0]
                dialect.run_script(conn, m)
                dialect.execute(
                    conn,
                    f"INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ({p}, {p}, {p}, {p})",
                    (m.version, m.name, m.checksum, _now()),
                )
            log.info("applied migration %s", m.filename)
            applied_now.append(m)
    return applied_now


def statements(script: str) -> Iterator[str]:
    """The complete statements of an SQLite script, in order (``sqlite3.complete_statement`` knows
    string literals, comments and trigger bodies, so a ``;`` inside them does not split)."""
    start = 0
    end = script.find(";")
    while end != -1:
        chunk = script[start : end + 1]
        if sqlite3.complete_statement(chunk):
            yield chunk.strip()
            start = end + 1
        end = script.find(";", end + 1)
    if script[start:].strip():
        yield script[start:].strip()


class SQLiteDialect:
    """SQLite on a connection opened with ``isolation_level=None`` (explicit transactions).

    ``executescript`` would commit before and during the script, so statements run one at a time.
    Foreign keys are off while migrating (SQLite ignores that pragma inside a transaction), so a
    migration can rebuild a table others reference (SQLite's create-copy-drop-rename ALTER);
    ``PRAGMA foreign_key_check`` before each commit refuses one that leaves dangling references.
    """

    name = "sqlite"
    param = "?"

    @contextmanager
    def session(self, conn: sqlite3.Connection) -> Iterator[None]:
        if conn.isolation_level is not None or conn.in_transaction:
            raise MigrationError("migrations need an SQLite connection in autocommit mode, outside a transaction")
        (foreign_keys,) = conn.execute("PRAGMA foreign_keys").fetchone()
        conn.execute("PRAGMA foreign_keys=OFF")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")

    @contextmanager
    def write_transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def run_script(self, conn: sqlite3.Connection, migration: Migration) -> None:
        for statement in statements(migration.sql):
            try:
                conn.execute(statement)
            except sqlite3.Error as e:
                raise MigrationError(f"{migration.filename} failed: {e} in: {_first_line(statement)}") from e
            if not conn.in_transaction:
                raise MigrationError(f"{migration.filename} ended the transaction: migrations must not BEGIN or COMMIT")
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            table, rowid, parent, _ = dangling[0]
            raise MigrationError(
                f"{migration.filename} leaves {len(dangling)} row(s) referencing missing rows"
                f" (first: {table} rowid {rowid} -> {parent})"
            )

    def execute(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def _first_line(statement: str) -> str:
    code = [line for line in statement.splitlines() if line.strip() and not line.lstrip().startswith("--")]
    return code[0].strip() if code else statement


SQLITE = SQLiteDialect()

# Taken (for the transaction) by every migration run on a PostgreSQL database: replicas starting
# together apply each migration once.
MIGRATION_LOCK = 0x666C_6167_0000


class PostgreSQLDialect:
    """PostgreSQL through :class:`control_plane.dialect.PgConnection` (``?`` placeholders).

    DDL is transactional in PostgreSQL, so a migration and its record commit together as in SQLite;
    foreign keys are checked by each statement (a migration cannot leave dangling references)."""

    name = "postgresql"
    param = "?"

    @contextmanager
    def session(self, conn: Connection) -> Iterator[None]:
        if conn.in_transaction:
            raise MigrationError("migrations need a PostgreSQL connection in autocommit mode, outside a transaction")
        yield

    @contextmanager
    def write_transaction(self, conn: Connection) -> Iterator[None]:
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def run_script(self, conn: Connection, migration: Migration) -> None:
        for statement in statements(migration.sql):
            try:
                conn.execute(postgresql_ddl(statement))
            except DATABASE_ERRORS as e:
                raise MigrationError(f"{migration.filename} failed: {e} in: {_first_line(statement)}") from e
            if not conn.in_transaction:
                raise MigrationError(f"{migration.filename} ended the transaction: migrations must not BEGIN or COMMIT")

    def execute(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


POSTGRESQL = PostgreSQLDialect()
