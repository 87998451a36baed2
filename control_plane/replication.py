"""Several control-plane replicas on one PostgreSQL: exactly one publishes, in commit order.

Any number of replicas serve the admin API against one PostgreSQL (``--database-url``), each with
its own data dir (its own LMDB) and the same Redis, which edges on every host follow through
``python -m server sync``. Publishing is one replica's job at a time:

* **Leader**: the replica holding the publish lock, in a term with its own epoch (fencing token):
  :mod:`control_plane.leadership`. Every replica tries to take the lock every :data:`POLL`
  seconds. When the holder dies (kill -9, crash, host loss), PostgreSQL ends its session and
  releases the lock. A leader that finds its term over (its session broke, the epoch moved on,
  Redis refused its epoch) steps down at once; a deposed leader that has not noticed yet is
  refused by the fences (leadership's docstring), so it publishes nothing stale.
* **Commit order**: every write that changes what edges serve appends its projects to
  ``publish_outbox`` inside its own transaction (:meth:`Replication.record`), each with the build
  generation the write raised and the features it changed (or none, or the project as a whole:
  ``Write.touch``). Write transactions are serialized across replicas
  (``control_plane.store.WRITE_LOCK``), so ``seq`` grows in commit order.
* **Batches**: one thread of the leader publishes, nothing else does (and at most
  :data:`PUBLISH_SHARE` of the time, so that commits gather into batches). Each *drain* reads, in one
  snapshot of the database (on the lock's session), every outbox row not yet published and the
  current state of the projects they name (each project once, however many rows name it), and
  publishes that state under one new version; ``publish_state`` then records the last ``seq`` and
  that version, and the drained rows go. So a burst of writes costs one publish per drain, not one
  per write, and each committed change reaches the edges in the first version published after its
  commit, in order, from whichever replica committed it.
* **What a drain builds**: the leader keeps, per project, the build it last published (a
  ``control_plane.incremental.Builder`` of its own) and patches it with the features the drained
  rows changed when they raised every build generation since (:meth:`Builder.follow`): a one-flag
  write costs the leader that flag, not the project. A gap (a generation without a row, a row of a
  replica from before rows said what changed: a list of project ids) builds the project whole, and
  so does a new term's republish; the builds are kept once published. The rows' format is a JSON
  object keyed by project id, so a replica that reads them as a list of ids still finds them.
* **Read your writes**: a write answered by the leader is answered once a version holding it is
  published (:meth:`Replication.publish` returns a future the route awaits); a standby answers once
  its write is committed (the leader publishes it within one drain).
* **Takeover**: a new term claims its epoch in Redis (older epochs are refused from then on), then
  republishes every project above every version published before (the newest recorded in
  ``publish_state``, or held by Redis when the term began, or in its own LMDB), as a full state,
  covering every outbox row committed by then; then it drains. Nothing committed is lost between
  the old leader's last publish and its death.
* **Wake-ups**: a write's transaction sends ``NOTIFY`` (delivered at commit); the leader listens
  on its lock's session and drains at once, and every :data:`POLL` seconds anyway.
* **Published releases**: the leader records LMDB's ``releases`` values in ``published_releases``
  with each publish state; a standby, whose own LMDB nobody writes, answers the Airborne release
  route from there (:meth:`Replication.read_release`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Collection, Mapping
from concurrent.futures import Future
from typing import Any

import orjson
import psycopg

from control_plane import build_generations
from control_plane.dialect import Connection
from control_plane.errors import ApiError
from control_plane.incremental import Builder
from control_plane.leadership import CHANNEL, Deposed, Leadership
from control_plane.publisher import Publisher
from control_plane.snapshots import EnvironmentState
from control_plane.store import Store, now_iso

log = logging.getLogger("control_plane.replication")

# How often a standby tries to become the leader, and the leader drains without a wake-up.
POLL = 0.25
# The share of the time a leader under a stream of writes spends publishing (see Replication._run):
# at 0.5 a burst costs about one publish per two to three writes on one replica (bench numbers in
# README), and a lone writer waits no longer (its next write commits after the pause anyway).
PUBLISH_SHARE = 0.5

# A write's wait for the version that holds it: the version, or None when this replica stopped
# publishing first (the write is committed; the next leader publishes it).
Published = Future[int | None]

# Per project, what the drained writes changed, by the build generation each raised (None: a change
# that raised none); features, or None for the project as a whole (``Builder.follow``).
Changes = dict[str, dict[int | None, frozenset[str] | None]]


def outbox_entry(
    db: Connection, project_ids: set[str], features: Mapping[str, Collection[str]], *, raised: bool = True
) -> bytes:
    """An outbox row's ``projects``: per project, the build generation the write raised (read in
    its transaction, after the validation raised it; None when it raised none) and the features it
    changed (None: the project as a whole). A JSON object keyed by project id, so a replica that
    reads a row as a list of project ids (before this format) still finds them."""
    return orjson.dumps(
        {
            project_id: {
                "generation": build_generations.current(db, project_id) if raised else None,
                "features": sorted(features[project_id]) if project_id in features else None,
            }
            for project_id in sorted(project_ids)
        }
    )


def read_changes(rows: list[Any]) -> Changes:
    """What outbox rows (``projects``, oldest first) changed, merged per project and generation.
    A row of the older format, a list of project ids, changed its projects as a whole and says no
    generation: the leader builds them whole."""
    changes: Changes = {}
    for row in rows:
        entry = orjson.loads(row["projects"])
        items = entry.items() if isinstance(entry, dict) else ((p, {"features": None}) for p in entry)
        for project_id, change in items:
            features = change.get("features")
            raised = change.get("generation")
            merged = changes.setdefault(project_id, {})
            changed = None if features is None else frozenset(features)
            if raised in merged:
                before = merged[raised]
                changed = None if before is None or changed is None else before | changed
            merged[raised] = changed
    return changes


class Replication:
    """This replica's part in publishing (see the module docstring); a thread runs it."""

    def __init__(self, store: Store, publisher: Publisher, *, name: str | None = None, poll: float = POLL) -> None:
        assert store.url is not None, "replication needs the PostgreSQL store"
        self.store = store
        self.publisher = publisher
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll = poll
        self.leadership = Leadership(store.url, self.name)
        # The leader's builds of what it published, patched with what the drained writes changed
        # (not compiled: the writes validated them, and the publisher reads the entries only).
        self.builder = Builder(compile=False)
        publisher.fence = self.leadership.check
        self.leader = False
        self.leader_since: float | None = None
        # Counters for /ready and measurements: versions this replica published, outbox rows drained.
        self.publishes = 0
        self.published_rows = 0
        self._fresh_term = False  # the term's first publish (a full republish) is still to come
        self._releases: dict[str, bytes] | None = None  # published_releases as this term wrote it
        self._recorded = threading.local()  # the outbox seq of this thread's latest write
        self._waiting = threading.Lock()
        self._waiters: list[tuple[int, Published]] = []
        self._published_seq = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    # ---- the write path -----------------------------------------------------------------------

    def record(
        self,
        db: Connection,
        project_ids: set[str],
        features: Mapping[str, Collection[str]] | None = None,
        *,
        raised: bool = True,
    ) -> None:
        """In the write's transaction: queue what it changed for the leader and wake it at commit.
        ``features``: the projects of which only these features changed (``Write.features``);
        ``raised``: the write's validation raised the projects' build generations."""
        entry = outbox_entry(db, project_ids, features or {}, raised=raised)
        row = db.execute(
            "INSERT INTO publish_outbox (projects, committed_at) VALUES (?, ?) RETURNING seq",
            (entry.decode(), now_iso()),
        ).fetchone()
        self._recorded.seq = int(row[0])
        db.execute(f"NOTIFY {CHANNEL}")

    def publish(
        self, project_ids: set[str], documents: Mapping[str, EnvironmentState] | None = None
    ) -> Published | None:
        """After the commit of a write that :meth:`record`-ed (on this thread): on the leader, the
        future of the version that will hold it (the route answers once it is published); None on
        a standby, which leaves it to the leader."""
        seq: int | None = getattr(self._recorded, "seq", None)
        self._recorded.seq = None
        if seq is None:
            return None
        with self._waiting:
            if not self.leader or seq <= self._published_seq:
                return None
            waiter: Published = Future()
            self._waiters.append((seq, waiter))
        return waiter

    def enqueue(self, project_ids: set[str], documents: Mapping[str, EnvironmentState] | None = None) -> None:
        """For a change committed without :meth:`record` (the intake consumer's): queue it now. It
        changed the projects' public boards, nothing an environment's build reads."""
        if project_ids:
            with self.store.transaction() as db:
                self.record(db, project_ids, dict.fromkeys(project_ids, ()), raised=False)
            self.publish(project_ids)

    def read_release(self, key: str) -> bytes | None:
        """The published release value of ``organisation/application``: the leader's LMDB holds it;
        a standby's LMDB is never written, so it reads what the leader recorded."""
        if self.leader:
            return self.publisher.writer.get("releases", key)
        row = self.store.one("SELECT value FROM published_releases WHERE release_key = ?", (key,))
        return bytes(row[0]) if row is not None else None

    # ---- the leader ---------------------------------------------------------------------------

    def _drain(self) -> bool:
        """Publish every change committed so far and not yet published under one new version (the
        term's first publish: everything); True if it published. Raises :class:`Deposed` when the
        term is over, the publisher's ApiError (503) when LMDB refuses the write."""
        with self.leadership.snapshot() as db:
            state = db.execute("SELECT seq FROM publish_state WHERE id = 1").fetchone()
            done = int(state[0]) if state is not None else 0
            rows = db.execute("SELECT seq, projects FROM publish_outbox WHERE seq > ? ORDER BY seq", (done,)).fetchall()
            if not rows and not self._fresh_term:
                return False
            seq = int(rows[-1]["seq"]) if rows else done
            before = self.publisher.writer.version()
            try:
                if self._fresh_term:
                    # Every project whole (as if an older replica's row named it): the builds
                    # the next drains patch.
                    ids = {row["id"] for row in db.execute("SELECT id FROM projects")}
                    documents = self._build(db, {project_id: {None: None} for project_id in ids})
                    version = self.publisher.republish_all(db, fresh_term=True, documents=documents)
                else:
                    changes = read_changes(rows)
                    documents = self._build(db, changes)
                    version = self.publisher.publish_projects(set(changes), documents, db=db)
            except ApiError as e:
                self._answer(seq, error=e)  # saved, not served: those writes answer 503 saying so
                raise
        self._fresh_term = False
        # Published: the builds are what the edges hold (else the next drain builds them whole).
        self.builder.committed()
        self._published(seq, version)
        self.publishes += version > before  # none when nothing the edges serve changed
        self.published_rows += len(rows)
        self._answer(seq, version=version)
        return True

    def _build(self, db: Connection, changes: Changes) -> dict[str, EnvironmentState] | None:
        """The changed projects' environments as ``db`` holds them, patched onto what this leader
        published when the drained rows say what changed since (``Builder.follow``); None when
        that fails: the publisher builds them whole from the database, as it did before the
        leader kept builds, rather than publishing stop at a build it cannot make."""
        try:
            return self.builder.follow(db, changes)
        except Exception:
            log.exception("building the drained projects failed; publishing them from whole builds")
            return None

    def _published(self, seq: int, version: int) -> None:
        """Record, in the term's session and only while the term is current, how far publishing got
        and the release values it published."""
        with self.publisher.writer.reading() as txn:
            releases = txn.table("releases")
        with self.leadership.transaction() as db:
            row = db.execute("SELECT epoch FROM publish_terms WHERE id = 1").fetchone()
            if row is None or int(row[0]) != self.leadership.epoch:
                raise Deposed(f"term {self.leadership.epoch} is over: term {row[0] if row else None} publishes")
            db.execute(
                "INSERT INTO publish_state (id, seq, version, publisher, updated_at) VALUES (1, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, version = excluded.version,"
                " publisher = excluded.publisher, updated_at = excluded.updated_at",
                (seq, version, self.name, now_iso()),
            )
            db.execute("DELETE FROM publish_outbox WHERE seq <= ?", (seq,))
            self._record_releases(db, releases, version)
        self._releases = releases

    def _record_releases(self, db: Connection, releases: dict[str, bytes], version: int) -> None:
        known = self._releases
        if known is None:  # the term's first publish: whatever an earlier term recorded goes
            db.execute("DELETE FROM published_releases")
            known = {}
        for key in known.keys() - releases.keys():
            db.execute("DELETE FROM published_releases WHERE release_key = ?", (key,))
        for key, value in releases.items():
            if known.get(key) != value:
                db.execute(
                    "INSERT INTO published_releases (release_key, value, version) VALUES (?, ?, ?)"
                    " ON CONFLICT (release_key) DO UPDATE SET value = excluded.value, version = excluded.version",
                    (key, value, version),
                )

    def _answer(self, seq: int, *, version: int | None = None, error: Exception | None = None) -> None:
        """The writes up to ``seq`` are published in ``version`` (or failed with ``error``)."""
        with self._waiting:
            if error is None:
                self._published_seq = max(self._published_seq, seq)
            keep = []
            for waiter_seq, waiter in self._waiters:
                if waiter_seq > seq:
                    keep.append((waiter_seq, waiter))
                elif error is not None:
                    waiter.set_exception(error)
                else:
                    waiter.set_result(version)
            self._waiters = keep

    def _take_over(self, epoch: int) -> None:
        """Begin term ``epoch``: claim it in Redis, then republish everything above every version
        published before (the drains follow)."""
        redis = self.publisher.redis
        since = None
        if redis is not None:
            try:
                since = redis.begin_term(epoch)
            except Deposed as e:
                if e.epoch is None:
                    raise
                # Redis knows an epoch this database never gave (it was restored or replaced):
                # the lock's holder goes above it, or no replica could ever publish again.
                log.error(
                    "Redis holds leadership epoch %d, above this database's %d; continuing above it", e.epoch, epoch
                )
                epoch = self.leadership.advance(e.epoch)
                since = redis.begin_term(epoch)
        with self.leadership.snapshot() as db:
            state = db.execute("SELECT seq, version FROM publish_state WHERE id = 1").fetchone()
        self.publisher.floor = max(self.publisher.floor, int(state["version"]) if state else 0, since or 0)
        with self._waiting:
            self._published_seq = int(state["seq"]) if state else 0
        self._fresh_term, self._releases = True, None
        with contextlib.suppress(ApiError):  # logged and reported by the publisher; the drains retry it
            self._drain()
        # Leader once the takeover is done: writes answered meanwhile were answered as a standby
        # answers (committed; this term publishes them).
        with self._waiting:
            self.leader, self.leader_since = True, time.monotonic()
        if self._fresh_term:
            return
        log.warning(
            "this replica (%s) publishes now (term %d): version %d holds every change committed so far",
            self.name,
            epoch,
            self.publisher.writer.version(),
        )

    def _step_down(self, why: str, level: int = logging.ERROR) -> None:
        with self._waiting:
            was_leader = self.leader
            self.leader = False
            self.leader_since = None
            # Their writes are committed: the next leader publishes them.
            for _, waiter in self._waiters:
                waiter.set_result(None)
            self._waiters = []
        if was_leader:
            log.log(level, "this replica (%s) stops publishing: %s", self.name, why)

    def catch_up(self) -> int | None:
        """Nothing to do here: the leader's publishing thread catches up with Redis every round."""
        return None

    def status(self) -> dict[str, Any]:
        """For ``/ready``: the leader reports its publisher; a standby that its database works."""
        counts = {
            "epoch": self.leadership.epoch,
            "publishes": self.publishes,
            "publishedRows": self.published_rows,
            # Environments the drains built by patching and whole (a leader's; a standby's last term's).
            "builds": {"patched": self.builder.counts["patched"], "whole": self.builder.counts["whole"]},
        }
        if self.leader:
            return {**self.publisher.status(), "role": "leader", **counts}
        state = self.store.one("SELECT version, publisher, updated_at FROM publish_state WHERE id = 1")
        out: dict[str, Any] = {"ok": True, "role": "standby", **counts}
        if state is not None:
            out.update(version=state["version"], publisher=state["publisher"], publishedAt=state["updated_at"])
        return out

    # ---- the publishing thread --------------------------------------------------------------------

    def start(self) -> None:
        """Try once to become the publisher (a lone replica publishes before it serves), then
        keep trying on a thread."""
        self._step()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self._thread.join(timeout)
        # An orderly stop, not a fault: another replica takes the lock as it would after a crash.
        self._end_term("the control plane stops", logging.INFO)

    def _end_term(self, why: str, level: int = logging.ERROR) -> None:
        self._step_down(why, level)
        self.leadership.drop()

    def _round(self) -> bool:
        """Become the leader if the lock is free; as the leader, publish what is pending. True if
        a publish happened (more may be pending: go again without waiting)."""
        if not self.leader:
            epoch = self.leadership.try_acquire()
            if epoch is None:
                return False
            self._take_over(epoch)
            return True
        redis = self.publisher.redis
        if redis is not None:
            if redis.deposed:
                raise Deposed("Redis refused this replica's epoch: a newer term publishes")
            restart = redis.take_restart()
            if restart is not None:
                # Redis holds versions this term must go above (it was claimed late): all again.
                self.publisher.floor = max(self.publisher.floor, restart)
                self._fresh_term = True
        self.publisher.catch_up()
        return self._drain()

    def _step(self) -> bool:
        """One round, its failures handled: True if it published."""
        try:
            return self._round()
        except Deposed as e:
            self._end_term(str(e))
        except psycopg.Error as e:
            log.warning("publishing: %s: %s; reconnecting", type(e).__name__, e)
            self._end_term("its connection to PostgreSQL broke")
        except ApiError:
            pass  # a publish LMDB refused: logged and reported by /ready; the next round retries
        except Exception:
            log.exception("publishing failed; trying again")
        return False

    def _run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            if self._step():
                # Writes committed meanwhile are the next batch. This replica's commits and its
                # publishes share one interpreter: publishing back to back would leave commits too
                # little of it for a batch to gather, so publishing gets PUBLISH_SHARE of the time.
                busy = time.monotonic() - started
                self._halt.wait(min(self.poll, busy * (1 - PUBLISH_SHARE) / PUBLISH_SHARE))
                continue
            try:
                # Sleep until a write commits (NOTIFY) or the poll interval passes.
                self.leadership.wait(self.poll)
            except psycopg.Error as e:
                log.warning("publishing: %s: %s; reconnecting", type(e).__name__, e)
                self._end_term("its connection to PostgreSQL broke")
                self._halt.wait(self.poll)
