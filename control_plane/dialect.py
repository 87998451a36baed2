"""The one place where the control plane's two stores differ: SQLite (embedded, the default) and
PostgreSQL (``--database-url postgresql://…``, for several control-plane replicas).

Everything else is written once, in portable SQL with ``?`` placeholders, against the
:class:`Connection` protocol that both ``sqlite3.Connection`` and :class:`PgConnection` satisfy.
What differs is here:

* placeholders and ``%``: :func:`to_pyformat` turns ``?`` into psycopg's ``%s`` (outside string
  literals, quoted names and comments) and doubles a literal ``%``;
* DDL types in migrations: :func:`postgresql_ddl` maps SQLite's ``INTEGER`` (64-bit) to ``BIGINT``,
  ``INTEGER PRIMARY KEY [AUTOINCREMENT]`` (SQLite's row id) to an identity column, ``REAL`` to
  ``DOUBLE PRECISION`` and ``BLOB`` to ``BYTEA``;
* values: rows answer by index and by (case-insensitive) name like ``sqlite3.Row``; Python
  booleans are stored as the integers 0/1 the schema uses; ``SUM``/``AVG`` (``numeric`` in
  PostgreSQL) come back as ``int`` when whole, else ``float``, as SQLite gives them;
* row locks: :func:`skip_locked` (a cleanup claims rows without waiting for the ones in use);
* errors: :func:`storage_fault` says which exceptions mean "the database cannot take writes now"
  (503 ``storage_unavailable``), :data:`DATABASE_ERRORS` and :data:`INTEGRITY_ERRORS` are the
  exception classes of both drivers.

Statements run through psycopg's client-side binding (``ClientCursor``): parameters become
literals, so PostgreSQL infers their types from the context as SQLite accepts them
(``? IS NULL``, a string compared with a text column) instead of refusing an untyped parameter.
"""

from __future__ import annotations

import errno
import functools
import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import psycopg
import psycopg.errors
from psycopg import ClientCursor
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import NumericLoader


class Row(Protocol):
    """A result row: by index, by column name (case-insensitive), ``keys()``, ``dict(row)``."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> list[str]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...
    @property
    def rowcount(self) -> int: ...


class Connection(Protocol):
    """What the control plane's SQL runs on: ``sqlite3.Connection`` or :class:`PgConnection`."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...
    @property
    def in_transaction(self) -> bool: ...
    def close(self) -> None: ...


DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)
# What a storage fault may be raised as (the driver's errors and the OS's), for ``except``.
STORAGE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError)


def is_postgresql(database: object) -> bool:
    return isinstance(database, str) and database.startswith(("postgresql://", "postgres://"))


# ---- errors ---------------------------------------------------------------------------------

# Primary SQLite result codes and errnos that mean "the disk cannot take this now", by the code
# the API reports. Anything else (a constraint, a syntax error, a busy lock) is not a storage fault.
_SQLITE_FAULTS = {
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_CANTOPEN: "io_error",
    sqlite3.SQLITE_READONLY: "read_only",
}
_OS_FAULTS = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EIO: "io_error", errno.EROFS: "read_only"}
# PostgreSQL SQLSTATEs: the server's disk, a read-only server (a standby), the server going away.
_PG_FAULTS = {
    "53100": "disk_full",
    "53200": "out_of_memory",
    "58030": "io_error",
    "25006": "read_only",
    "57P01": "database_unavailable",
    "57P02": "database_unavailable",
    "57P03": "database_unavailable",
}


def storage_fault(e: BaseException) -> str | None:
    """The code of a storage fault (``disk_full``, ``io_error``, ``read_only``,
    ``database_unavailable``), or None for an error that is the request's own."""
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        return _SQLITE_FAULTS.get(code & 0xFF) if isinstance(code, int) else None
    if isinstance(e, psycopg.Error):
        state = e.sqlstate
        if state is None or state.startswith("08"):
            # No SQLSTATE: the connection broke (server gone, network); class 08: cannot connect.
            return "database_unavailable" if isinstance(e, psycopg.OperationalError) or state else None
        return _PG_FAULTS.get(state)
    if type(e).__name__ == "PoolTimeout":  # psycopg_pool: no connection to the server in time
        return "database_unavailable"
    if isinstance(e, OSError):
        return _OS_FAULTS.get(e.errno or 0)
    return None


def value_too_large(e: BaseException) -> bool:
    """Whether ``e`` says a value of the statement is too large to store or index (PostgreSQL's
    program_limit_exceeded: an index entry holds at most about 2.7 kB, whatever the column's
    type; SQLite's SQLITE_TOOBIG): the request's input is at fault, not the store (a 400)."""
    if isinstance(e, psycopg.Error):
        return e.sqlstate == "54000"
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_TOOBIG
    return False


# ---- SQL text --------------------------------------------------------------------------------

_SKIP = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)


def _outside_literals(sql: str, rewrite: Any) -> str:
    """``sql`` with ``rewrite`` applied to the text outside literals, quoted names and comments."""
    out, pos = [], 0
    for m in _SKIP.finditer(sql):
        out.append(rewrite(sql[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(rewrite(sql[pos:]))
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders → ``%s``; a literal ``%`` (``LIKE 'a%'``, the ``%`` operator) → ``%%``."""
    return _outside_literals(sql, lambda s: s.replace("%", "%%").replace("?", "%s"))


def contains(column: str) -> str:
    """A case-insensitive substring match of ``column`` against the parameter
    :func:`contains_pattern` makes (SQLite's LIKE ignores ASCII case, PostgreSQL's does not: both
    sides are lower-cased, and the pattern's wildcards escaped)."""
    return f"lower({column}) LIKE ? ESCAPE '\\'"


def contains_pattern(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text.lower()) + "%"


def skip_locked(postgresql: bool) -> str:
    """What ends a subquery that claims rows to change: PostgreSQL's ``FOR UPDATE SKIP LOCKED``
    (rows another transaction holds are passed over, never waited for, so a background cleanup
    cannot deadlock with the requests that use those rows), nothing on SQLite (its write
    transactions are serialized whole)."""
    return " FOR UPDATE SKIP LOCKED" if postgresql else ""


_DDL_TYPES = [
    (
        re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.I),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
]


def postgresql_ddl(statement: str) -> str:
    """A migration statement written for both stores, in PostgreSQL's types (see the module doc)."""

    def types(text: str) -> str:
        for pattern, replacement in _DDL_TYPES:
            text = pattern.sub(replacement, text)
        return text

    return _outside_literals(statement, types)


# ---- PostgreSQL connections -------------------------------------------------------------------


class PgRow:
    """A row of a PostgreSQL result that behaves like ``sqlite3.Row``."""

    __slots__ = ("_index", "_names", "_values")

    def __init__(self, values: Sequence[Any], names: list[str], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._names = names
        self._index = index

    def __getitem__(self, key: int | str, /) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key.lower()]]
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PgRow):
            return self._values == other._values and self._names == other._names
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._names, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    names = [d.name for d in description]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name.lower(), i)  # the first of two equal names, as sqlite3.Row does
    return lambda values: PgRow(values, names, index)


class _BoolAsInteger(Dumper):
    """The schema stores booleans as INTEGER 0/1 (SQLite has no boolean type)."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"

    def quote(self, obj: Any) -> bytes:
        return self.dump(obj)


class _NumberLoader(NumericLoader):
    """``numeric`` (what PostgreSQL's SUM and AVG of integers give) as SQLite gives it."""

    def load(self, data: Any) -> Any:
        value = super().load(data)
        return int(value) if value == value.to_integral_value() else float(value)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Set up a new psycopg connection the way :class:`PgConnection` expects it."""
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    conn.adapters.register_loader("numeric", _NumberLoader)
    conn.row_factory = _row_factory


def pg_connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] = psycopg.Connection.connect(
        url, autocommit=True, cursor_factory=ClientCursor, **kwargs
    )
    configure(conn)
    return conn


class PgCursor:
    """A psycopg cursor that, like sqlite3's, fetches nothing (instead of raising) from a
    statement that returns no rows."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall()) if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class PgConnection:
    """A psycopg connection (autocommit, explicit ``BEGIN``/``COMMIT``) behind the
    :class:`Connection` protocol: SQL with ``?`` placeholders, rows like ``sqlite3.Row``."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        # Without parameters psycopg leaves the text alone (a ``%`` stays one ``%``).
        params = tuple(parameters)
        cursor: Any = self.raw.execute(to_pyformat(sql), params) if params else self.raw.execute(sql)
        return PgCursor(cursor)

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        cursor: Any = self.raw.cursor()
        cursor.executemany(to_pyformat(sql), [tuple(p) for p in parameters])
        return PgCursor(cursor)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()
