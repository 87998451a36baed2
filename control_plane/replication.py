"""Several control-plane replicas on one PostgreSQL: exactly one publishes, in commit order.

Any number of replicas serve the admin API against one PostgreSQL (``--database-url``), each with
its own data dir (its own LMDB) and the same Redis, which edges on every host follow through
``python -m server sync``. Publishing is one replica's job at a time:

* **Leader**: the replica holding a session-level advisory lock (:data:`PUBLISH_LOCK`) on a
  dedicated connection. Every replica tries to take it every :data:`POLL` seconds. When the holder
  dies (kill -9, crash, host loss), PostgreSQL ends its session and releases the lock: the
  connection's socket closes at once when the process dies; a host that vanishes is noticed by
  TCP keepalives (:data:`KEEPALIVES`). A leader whose lock connection breaks stops publishing at
  once (it may no longer hold the lock).
* **Commit order**: every write that changes what edges serve appends its projects to
  ``publish_outbox`` inside its own transaction (:meth:`Replication.record`). Write transactions
  are serialized across replicas (``control_plane.store.WRITE_LOCK``), so ``seq`` grows in commit
  order. The leader drains the outbox in ``seq`` order: one publish rebuilds the drained projects
  from the current state (which contains every drained change) and writes it under one new
  version; ``publish_state`` then records the last ``seq`` and that version, and the drained rows
  go. Each committed change thus reaches the edges once, in order, in the first version published
  after its commit, from whichever replica committed it.
* **Takeover**: a new leader first republishes every project above the newest version any
  publisher recorded or Redis announces (a full state, so followers of the old leader's
  versions converge), covering every outbox row up to the moment it started; then it drains.
  Nothing committed is lost between the old leader's last publish and its death.
* **Wake-ups**: a write's transaction sends ``NOTIFY`` (delivered at commit); the leader listens
  on its lock connection and drains at once, and every :data:`POLL` seconds anyway.

A replica that is not the leader answers writes once they are committed (durable: the leader
publishes them within one drain); the leader publishes its own writes before it answers, as a
single process does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
import psycopg

from control_plane.dialect import Connection, PgConnection, pg_connect
from control_plane.errors import ApiError
from control_plane.publisher import Publisher
from control_plane.snapshots import EnvironmentState
from control_plane.store import Store, now_iso

log = logging.getLogger("control_plane.replication")

PUBLISH_LOCK = 0x666C_6167_0002
CHANNEL = "flagedge_outbox"
# How often a standby tries to become the leader, and the leader drains without a wake-up.
POLL = 0.25
# A lock connection whose peer vanished is noticed within about idle + interval * count seconds.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class Replication:
    """This replica's part in publishing (see the module docstring); a thread runs the election."""

    def __init__(self, store: Store, publisher: Publisher, *, name: str | None = None, poll: float = POLL) -> None:
        assert store.url is not None, "replication needs the PostgreSQL store"
        self.store = store
        self.publisher = publisher
        self.url = store.url
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll = poll
        self.leader = False
        self.leader_since: float | None = None
        self._conn: PgConnection | None = None
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publish-election", daemon=True)

    # ---- the write path -----------------------------------------------------------------------

    def record(self, db: Connection, project_ids: set[str]) -> None:
        """In the write's transaction: queue its projects for the leader and wake it at commit."""
        db.execute(
            "INSERT INTO publish_outbox (projects, committed_at) VALUES (?, ?)",
            (orjson.dumps(sorted(project_ids)).decode(), now_iso()),
        )
        db.execute(f"NOTIFY {CHANNEL}")

    def publish(self, project_ids: set[str], documents: Mapping[str, EnvironmentState] | None = None) -> int | None:
        """After a commit that :meth:`record`-ed ``project_ids``: the leader publishes now (its own
        writes are served before it answers); a standby leaves it to the leader."""
        if not self.leader:
            return None
        return self.drain()

    def enqueue(self, project_ids: set[str], documents: Mapping[str, EnvironmentState] | None = None) -> int | None:
        """For a change committed without :meth:`record` (the intake consumer's): queue it now."""
        if not project_ids:
            return None
        with self.store.transaction() as db:
            self.record(db, project_ids)
        return self.publish(project_ids)

    # ---- the leader -----------------------------------------------------------------------------

    def drain(self) -> int | None:
        """Publish every queued change, in order, under one version; the version, or None if
        nothing was queued. Raises the publisher's ApiError (503) if LMDB refuses the write."""
        with self.store.exclusive():
            if not self.leader:
                return None
            rows = self.store.all(
                "SELECT seq, projects FROM publish_outbox WHERE seq > COALESCE((SELECT seq FROM publish_state"
                " WHERE id = 1), 0) ORDER BY seq"
            )
            if not rows:
                return None
            projects: set[str] = set()
            for row in rows:
                projects.update(orjson.loads(row["projects"]))
            version = self.publisher.publish_projects(projects)
            self._published(int(rows[-1]["seq"]), version)
            return version

    def _published(self, seq: int, version: int) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO publish_state (id, seq, version, publisher, updated_at) VALUES (1, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, version = excluded.version,"
                " publisher = excluded.publisher, updated_at = excluded.updated_at",
                (seq, version, self.name, now_iso()),
            )
            db.execute("DELETE FROM publish_outbox WHERE seq <= ?", (seq,))

    def _take_over(self) -> None:
        """Republish everything above every version published before (the drains follow)."""
        with self.store.exclusive():
            state = self.store.one("SELECT seq, version FROM publish_state WHERE id = 1")
            # What is committed by now is in the state this republish reads.
            newest = self.store.one("SELECT MAX(seq) FROM publish_outbox")
            seq = max(int(newest[0] or 0) if newest else 0, int(state["seq"]) if state else 0)
            self.publisher.floor = max(self.publisher.floor, int(state["version"]) if state else 0)
            version = self.publisher.republish_all()
            self._published(seq, version)
        log.warning(
            "this replica (%s) publishes now: version %d holds every change committed so far", self.name, version
        )

    def catch_up(self) -> int | None:
        """The publisher's catch-up with Redis's high-water mark, on the leader only."""
        return self.publisher.catch_up() if self.leader else None

    def status(self) -> dict[str, Any]:
        """For ``/ready``: the leader reports its publisher; a standby that its database works."""
        if self.leader:
            return {**self.publisher.status(), "role": "leader"}
        state = self.store.one("SELECT version, publisher, updated_at FROM publish_state WHERE id = 1")
        out: dict[str, Any] = {"ok": True, "role": "standby"}
        if state is not None:
            out.update(version=state["version"], publisher=state["publisher"], publishedAt=state["updated_at"])
        return out

    # ---- the election thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Try once to become the publisher (a lone replica publishes before it serves), then
        keep trying on a thread."""
        try:
            self._elect()
        except psycopg.Error as e:
            log.warning("publish election: %s: %s; trying again", type(e).__name__, e)
            self._drop_connection()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self._thread.join(timeout)
        self._drop_connection("the control plane stops")

    def _connect(self) -> PgConnection:
        if self._conn is None:
            self._conn = PgConnection(pg_connect(self.url, **KEEPALIVES))
            self._conn.execute(f"LISTEN {CHANNEL}")
        return self._conn

    def _drop_connection(self, why: str = "its connection to PostgreSQL broke") -> None:
        self._step_down(why)
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _step_down(self, why: str) -> None:
        if self.leader:
            self.leader = False
            self.leader_since = None
            log.error("this replica (%s) stops publishing: %s", self.name, why)

    def _elect(self) -> None:
        """One round: take the lock if free (then take over), or check it is still held; drain."""
        conn = self._connect()
        if not self.leader:
            row = conn.execute("SELECT pg_try_advisory_lock(?)", (PUBLISH_LOCK,)).fetchone()
            if row is not None and row[0]:
                # A publish LMDB refuses is logged by the publisher and reported by /ready; the
                # drains retry it. Leader (the write path publishes) once the takeover is done.
                with contextlib.suppress(ApiError):
                    self._take_over()
                self.leader, self.leader_since = True, time.monotonic()
        else:
            conn.execute("SELECT 1")  # still connected: still holding the lock
        if self.leader:
            with contextlib.suppress(ApiError):  # logged and reported; retried on the next wake-up
                self.drain()

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self._elect()
                # Sleep until a write commits (NOTIFY) or the poll interval passes.
                for _ in self._connect().raw.notifies(timeout=self.poll, stop_after=1):
                    pass
            except psycopg.Error as e:
                log.warning("publish election: %s: %s; reconnecting", type(e).__name__, e)
                self._drop_connection()
                self._halt.wait(self.poll)
            except Exception:
                log.exception("publish election failed; trying again")
                self._halt.wait(self.poll)
