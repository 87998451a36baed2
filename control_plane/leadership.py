"""Which control-plane replica publishes, and the fencing token of its term.

Exactly one replica publishes at a time: the one whose own PostgreSQL session holds the
session-level advisory lock :data:`PUBLISH_LOCK`. Taking the lock begins a *term*: in the same
session the replica raises ``publish_terms.epoch`` by one and publishes under that epoch, a number
no earlier term had (the fencing token).

A replica can lose the lock without knowing it at once: its session ends when PostgreSQL restarts,
an operator terminates it, or the network fails (TCP keepalives, :data:`KEEPALIVES`, notice a
vanished peer within seconds; a paused process notices nothing while paused). So the term is
checked where it matters rather than trusted:

* :meth:`Leadership.check`, called right before each LMDB write, runs a statement on the session
  that holds the lock and compares the epoch: it answers only while that session, and so the lock,
  lives (a session-level lock ends only with its session here), and raises :class:`Deposed`
  otherwise;
* the state a publish reads, and the publish state it records, go through that same session
  (:meth:`snapshot`, :meth:`transaction`), so a replica whose session is gone can neither read a
  state to publish nor record progress;
* Redis, reachable by a replica cut off from PostgreSQL, refuses every write of an epoch below the
  highest it has seen (``contract.redis_protocol``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import psycopg

from control_plane.dialect import Connection, PgConnection, pg_connect
from control_plane.store import now_iso

log = logging.getLogger("control_plane.leadership")

PUBLISH_LOCK = 0x666C_6167_0002
# Woken at commit by each write that queues something to publish (control_plane/replication.py).
CHANNEL = "flagedge_outbox"
# A lock connection whose peer vanished is noticed within about idle + interval * count seconds.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class Deposed(Exception):
    """This replica's publishing term is over (its lock session is gone, or a higher epoch holds:
    ``epoch``, when known)."""

    def __init__(self, message: str, epoch: int | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch


class Leadership:
    """The publish lock's session of one replica, and its current term's epoch (None: no term)."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.epoch: int | None = None
        self._conn: PgConnection | None = None

    @property
    def conn(self) -> PgConnection:
        """The lock's session, opened (and listening for wake-ups) on first use."""
        if self._conn is None:
            self._conn = PgConnection(pg_connect(self.url, **KEEPALIVES))
            self._conn.execute(f"LISTEN {CHANNEL}")
        return self._conn

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the lock's session (None when not connected)."""
        return self._conn.raw.info.backend_pid if self._conn is not None else None

    def try_acquire(self) -> int | None:
        """Take the lock if it is free and begin a term: its epoch, or None if another holds it."""
        row = self.conn.execute("SELECT pg_try_advisory_lock(?)", (PUBLISH_LOCK,)).fetchone()
        if row is None or not row[0]:
            return None
        row = self.conn.execute(
            "INSERT INTO publish_terms (id, epoch, holder, started_at) VALUES (1, 1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET epoch = publish_terms.epoch + 1, holder = excluded.holder,"
            " started_at = excluded.started_at RETURNING epoch",
            (self.name, now_iso()),
        ).fetchone()
        self.epoch = int(row[0])
        log.warning("this replica (%s) holds the publish lock: term %d begins", self.name, self.epoch)
        return self.epoch

    def advance(self, past: int) -> int:
        """Move this term's epoch above ``past``, an epoch Redis holds that this database never
        gave (a restored or replaced database); only the lock's holder can. The new epoch."""
        row = self.conn.execute(
            "UPDATE publish_terms SET epoch = ? WHERE id = 1 AND epoch = ? RETURNING epoch", (past + 1, self.epoch)
        ).fetchone()
        if row is None:
            raise Deposed(f"term {self.epoch} is over")
        self.epoch = int(row[0])
        return self.epoch

    def check(self) -> None:
        """Raise :class:`Deposed` unless this replica's term is still the current one."""
        epoch = self.epoch
        if epoch is None or self._conn is None:
            raise Deposed("this replica holds no publishing term")
        try:
            row = self._conn.execute("SELECT epoch FROM publish_terms WHERE id = 1").fetchone()
        except psycopg.Error as e:
            raise Deposed(f"the publish lock's session failed ({type(e).__name__}: {e})") from e
        if row is None or int(row[0]) != epoch:
            raise Deposed(f"term {epoch} is over: term {row[0] if row else None} publishes")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One consistent, read-only view of the database, on the lock's session: a publish reads
        the state of one moment, and the outbox rows that moment covers."""
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") as conn:
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on the lock's session (the publish state: only the term writes it)."""
        with self._transaction("BEGIN") as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[Connection]:
        conn = self.conn
        conn.execute(begin)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise

    def wait(self, timeout: float) -> None:
        """Until a write commits something to publish (NOTIFY) or ``timeout`` seconds pass."""
        for _ in self.conn.raw.notifies(timeout=timeout, stop_after=1):
            pass

    def drop(self) -> None:
        """End the term and close the session (which releases the lock, if it still held it)."""
        self.epoch = None
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
