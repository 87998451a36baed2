"""Publishes validated snapshots to the LMDB store after each committed change.

Each publish takes the state of the touched projects while holding the store lock (so publishes
happen in commit order and never from a stale read): built whole from the database, or, for a
write's own publish, as the write's validation built it (``control_plane.incremental``: only the
flags the write changed). It diffs that against what LMDB holds for those projects and writes the
difference in one LMDB transaction under a new global version. Environments are stored flag by
flag (``contract.store``), so the difference of a one-flag change is that flag: what LMDB, Redis
and every edge then handle. On start the control plane republishes everything, which also
repairs a publish lost to a crash between the SQLite commit and the LMDB write.

A publish that LMDB refuses (the map is full, the disk fails) happens after the SQLite commit,
so the change is saved but not served: the write answers 503 ``publish_failed`` saying so, the
error is logged, the control plane's ``/ready`` answers 503 naming the failure, edges keep
serving the last published version, and the projects left behind are published with the next
publish that succeeds (or on restart, e.g. with a larger ``--lmdb-map-size``).

One publisher per data dir: the publisher holds the data dir's lock
(:class:`contract.lifecycle.DataDirLock`) for its whole life; a second one refuses to start. It
still diffs against what LMDB holds, not against its memory alone: its index of LMDB carries the
version it describes, is re-read when LMDB is at another version, and the write transaction
refuses a change computed against another version (then the publish is recomputed).

Versions never go backwards anywhere: before it publishes, the publisher knows the newest version
other hosts may hold that its LMDB does not (a restored data dir's floor, and what Redis announces,
read on start and whenever Redis answers with a newer one). Its next publish goes above that
version and reaches Redis as a full state only (followers hold states this LMDB never had, so a
change set against it would leave them wrong). Until that publish, ``/ready`` answers 503 saying so.

Several control-plane replicas (``control_plane.replication``): the replica that publishes reads
the state through its own database session (``db``), calls :attr:`Publisher.fence` right before
each LMDB write (it raises when this replica's leadership term is over, so a deposed publisher
writes nothing), and its Redis writes carry the term's epoch (``fenced``); a term's first publish
(``fresh_term``) goes above every version seen so far and reaches Redis as a full state.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import orjson
import redis

from contract.framing import CorruptValue, decode
from contract.lifecycle import DataDirLock
from contract.store import (
    DEFAULT_MAP_SIZE,
    TABLES,
    ChangeSet,
    Items,
    SnapshotWriter,
    StoreChanged,
    flag_environment,
    flag_key,
    unstamped,
)
from control_plane.backup import version_floor
from control_plane.board_snapshot import board_snapshot
from control_plane.dialect import Connection
from control_plane.errors import ApiError
from control_plane.redis_publish import DEFAULT_RETENTION, RedisPublisher, RedisRetention
from control_plane.releases_snapshot import release_snapshot
from control_plane.snapshots import EnvironmentState, build_environment_state
from control_plane.store import Store, now_iso
from control_plane.widget_snapshot import widget_snapshot

log = logging.getLogger("control_plane.publisher")


def project_state(
    db: Connection, project_id: str, documents: Mapping[str, EnvironmentState] | None = None
) -> ChangeSet:
    """Everything the edge serves for one project, keyed as in LMDB. ``documents`` are environment
    states already built from this same state (by validation), by environment id; the ``flags``
    of one built incrementally are only those it changed (a removed one maps to None)."""
    state = ChangeSet()
    project = db.execute(
        "SELECT p.key, o.name AS org FROM projects p JOIN organisations o ON o.id = p.organisation_id WHERE p.id = ?",
        (project_id,),
    ).fetchone()
    if project is None:
        return state
    for env in db.execute("SELECT id, key FROM environments WHERE project_id = ?", (project_id,)):
        built = (documents or {}).get(env["id"]) or build_environment_state(db, env["id"])
        state.environments[env["id"]] = {"project": project_id, "environment": env["key"], "document": built.extras}
        for key in built.flags if built.changed is None else built.changed:
            state.flags[flag_key(env["id"], key)] = built.entry(project_id, key) if key in built.flags else None
        for key in db.execute(
            "SELECT key_hash, kind FROM sdk_keys WHERE environment_id = ? AND revoked_at IS NULL", (env["id"],)
        ):
            state.sdk_keys[key["key_hash"]] = {"environment": env["id"], "kind": key["kind"], "project": project_id}
    state.releases[f"{project['org']}/{project['key']}"] = {"project": project_id, **release_snapshot(db, project_id)}
    widget = widget_snapshot(db, project_id)
    if widget is not None:
        state.widgets[widget["projectKey"]] = {"project": project_id, **widget}
    board = board_snapshot(db, project_id)
    if board is not None:
        state.boards[board["projectKey"]] = {"project": project_id, **board}
    return state


def _incremental_environments(documents: Mapping[str, EnvironmentState] | None) -> set[str]:
    """The environments ``documents`` holds as incremental builds (only their changed flags)."""
    return {env_id for env_id, d in (documents or {}).items() if d.changed is not None}


def _digest(table: str, value: dict[str, Any]) -> bytes:
    """What identifies a stored value's content (without its version stamp)."""
    return hashlib.blake2b(orjson.dumps(unstamped(table, value)), digest_size=16).digest()


class _Written:
    """What LMDB holds at ``version``, per table: key → (owning project, digest of the value);
    ``None`` for a value that cannot be read. The publisher is the only writer of its LMDB (the
    data dir lock), so one scan at start normally stays true and a publish need not decode every
    stored snapshot to find what a project owns or whether a value changed; the version lets the
    publisher notice when it is not (then it scans again)."""

    def __init__(self, writer: SnapshotWriter) -> None:
        self.tables: dict[str, dict[str, tuple[str | None, bytes] | None]] = {t: {} for t in TABLES}
        self.version, raw_tables = writer.read_all()  # the version this index describes
        for table, values in raw_tables.items():
            for key, raw in values.items():
                try:
                    value: Any = decode(raw)
                except CorruptValue:
                    self.tables[table][key] = None
                    continue
                owner = value.get("project") if isinstance(value, dict) else None
                self.tables[table][key] = (owner if isinstance(owner, str) else None, _digest(table, value))

    def owned(self, table: str, project_ids: set[str]) -> set[str]:
        """Keys that belong to one of the projects, or cannot be read at all."""
        return {k for k, e in self.tables[table].items() if e is None or e[0] in project_ids}

    def projects(self) -> set[str]:
        return {e[0] for t in self.tables.values() for e in t.values() if e is not None and e[0] is not None}

    def drop_unchanged(self, table: str, items: Items) -> dict[str, bytes]:
        """Remove entries equal to what is stored (or deletions of absent keys); the digests of
        the entries left to write."""
        stored = self.tables[table]
        digests = {}
        for key, value in list(items.items()):
            if value is None:
                if key not in stored:
                    del items[key]
                continue
            digest = _digest(table, value)
            entry = stored.get(key)
            if entry is not None and entry[1] == digest:
                del items[key]
            else:
                digests[key] = digest
        return digests

    def record(self, version: int, change: ChangeSet, digests: dict[str, dict[str, bytes]]) -> None:
        """``change`` was written as ``version``."""
        for table, items in change.tables():
            self._record(table, items, digests[table])
        self.version = version

    def _record(self, table: str, items: Items, digests: dict[str, bytes]) -> None:
        for key, value in items.items():
            if value is None:
                self.tables[table].pop(key, None)
            else:
                owner = value.get("project")
                self.tables[table][key] = (owner if isinstance(owner, str) else None, digests[key])


@dataclass
class PublishFailure:
    """Why the latest publish failed, since when, and the projects still waiting to be published."""

    error: str
    code: str
    since: str = field(default_factory=now_iso)
    projects: set[str] = field(default_factory=set)


class Publisher:
    def __init__(
        self,
        data_dir: Path,
        store: Store,
        redis_url: str | None = None,
        map_size: int = DEFAULT_MAP_SIZE,
        *,
        floor: int = 0,
        redis_retention: RedisRetention = DEFAULT_RETENTION,
        fenced: bool = False,
    ) -> None:
        """``floor``: a version other hosts may hold that this data dir's LMDB does not (a store
        rebuilt after damage, :mod:`contract.store_recovery`); a restore's floor and
        Redis's announced version are read here too. The first publish goes above all of them."""
        # Held until close() (or the process dies): no other process publishes this data dir.
        self.lock = DataDirLock(data_dir)
        try:
            self.writer = SnapshotWriter(data_dir, map_size)
        except BaseException:
            self.lock.release()
            raise
        self.failure: PublishFailure | None = None
        self.written = _Written(self.writer)
        self.store = store
        # Called right before each LMDB write; raises to refuse it (a replica whose term is over).
        self.fence: Callable[[], None] | None = None
        # The newest version other hosts may hold that this LMDB does not descend from.
        self.floor = max(floor, version_floor(data_dir))
        # Other hosts follow Redis (`python -m server sync`); publishing there never blocks a write.
        self.redis = (
            RedisPublisher(redis_url, self.writer, retention=redis_retention, fenced=fenced) if redis_url else None
        )
        if self.redis is not None:
            try:
                self.floor = max(self.floor, self.redis.high_water())
            except (redis.RedisError, OSError) as e:
                # Not fatal: Redis answers every later push with its version, and a newer one
                # raises the floor then (and /ready fails until a publish goes above it).
                log.warning("could not read the version Redis announces (%s); checking again on each push", e)

    def _behind(self) -> int:
        """The version to publish above, if other hosts may hold versions this LMDB does not (else 0)."""
        ahead = self.redis.ahead() if self.redis is not None else 0
        self.floor = max(self.floor, ahead)
        return self.floor if self.floor > self.writer.version() else 0

    def _diff(
        self, db: Connection, project_ids: set[str], documents: Mapping[str, EnvironmentState] | None
    ) -> tuple[ChangeSet, dict[str, dict[str, bytes]]]:
        """The change that makes LMDB (as the index knows it) hold the projects' current state."""
        change = ChangeSet()
        for project_id in project_ids:
            change.update(project_state(db, project_id, documents))
        # Environments built incrementally carry only the flags they changed (removals included):
        # the other flags stored are still theirs, and are not read at all when every touched
        # environment is such a build (a one-flag change costs one flag, not a scan).
        incremental = _incremental_environments(documents)
        scan = self._scanned(db, project_ids, incremental)
        digests = {}
        for table, items in change.tables():
            if table == "flags":
                owned = self.written.owned(table, scan) if scan else set()
                # Flags of an environment built incrementally stay unless it removed them.
                owned = {key for key in owned if flag_environment(key) not in incremental}
            else:
                owned = self.written.owned(table, project_ids)
            for stale in owned - items.keys():
                items[stale] = None
            digests[table] = self.written.drop_unchanged(table, items)
        return change, digests

    def _scanned(self, db: Connection, project_ids: set[str], incremental: set[str]) -> set[str]:
        """The projects whose stored flags must be scanned for what is left over: those with an
        environment built whole, or one that LMDB holds and the database no longer does."""
        out = set()
        for project_id in project_ids:
            envs = {r["id"] for r in db.execute("SELECT id FROM environments WHERE project_id = ?", (project_id,))}
            gone = self.written.owned("environments", {project_id}) - envs
            if not envs or not envs <= incremental or gone:
                out.add(project_id)
        return out

    def publish_projects(
        self,
        project_ids: set[str],
        documents: Mapping[str, EnvironmentState] | None = None,
        *,
        db: Connection | None = None,
        fresh_term: bool = False,
    ) -> int:
        """Publish the projects' current state under a new version; the version. ``db``: read the
        state there (else through the store). ``fresh_term``: go above every version seen (the
        floor, LMDB's) and reach Redis as a full state only."""
        if self.failure is not None:
            project_ids = project_ids | self.failure.projects  # what an earlier failed publish left behind
            # An incremental build holds this write's changes only, not the earlier ones LMDB missed.
            documents = None
        with contextlib.nullcontext(db) if db is not None else self.store.read() as db:
            for _ in range(3):
                if self.written.version != self.writer.version():
                    # Someone else wrote this LMDB (the lock makes that an operator's doing, e.g. a
                    # copied data dir): diff against what it holds now, not against memory.
                    log.warning(
                        "LMDB is at version %d, not %d as last published by this process; re-reading it",
                        self.writer.version(),
                        self.written.version,
                    )
                    self.written = _Written(self.writer)
                    documents = None  # built against a state LMDB may not hold: build whole
                change, digests = self._diff(db, project_ids, documents)
                behind = self._behind()
                if fresh_term:
                    behind = max(behind, self.floor, self.writer.version())
                if change.is_empty() and not behind:
                    # Nothing the edges serve changed (e.g. a restart): no new version, no recompiles.
                    self._recovered(self.writer.version())
                    return self.writer.version()
                if self.fence is not None:
                    self.fence()
                try:
                    version = self.writer.publish(
                        change, version=behind + 1 if behind else None, base=self.written.version
                    )
                except StoreChanged:
                    continue
                except lmdb.Error as e:
                    raise self._failed(project_ids, e) from e
                break
            else:
                raise self._failed(project_ids, lmdb.Error("LMDB kept changing under this publisher"))
            self.written.record(version, change, digests)
            if behind and not fresh_term:
                log.warning(
                    "published version %d above version %d, the newest other hosts may hold (restored or "
                    "replaced data dir); followers get it as a full state",
                    version,
                    behind,
                )
            if self.redis is not None:
                self.redis.publish(version, change, full_only=bool(behind))
        log.info("published snapshot version %d for %d project(s)", version, len(project_ids))
        self._recovered(version)
        return version

    def _failed(self, project_ids: set[str], e: lmdb.Error) -> ApiError:
        if isinstance(e, lmdb.MapFullError):
            code, reason = "lmdb_map_full", "the LMDB snapshot store is full (raise --lmdb-map-size)"
        else:
            code, reason = "lmdb_error", f"LMDB refused the write: {type(e).__name__}: {e}"
        if self.failure is None:
            self.failure = PublishFailure(reason, code)
        self.failure.error, self.failure.code = reason, code
        self.failure.projects |= project_ids
        serving = self.writer.version()
        log.error(
            "PUBLISH FAILED for %d project(s): %s. The change is saved in SQLite; edges keep serving version %d "
            "until a publish succeeds (the next change, or a restart).",
            len(self.failure.projects),
            reason,
            serving,
        )
        return ApiError(
            503,
            f"the change is saved but could not be published: {reason}; edges keep serving version {serving}",
            code="publish_failed",
            details=[{"field": "snapshot", "code": code, "message": reason}],
        )

    def _recovered(self, version: int) -> None:
        if self.failure is not None:
            log.warning(
                "publishing works again (failing since %s); version %d includes every saved change",
                self.failure.since,
                version,
            )
            self.failure = None

    def status(self) -> dict[str, Any]:
        """For the control plane's ``/ready``."""
        version = self.writer.version()
        out: dict[str, Any] = {"ok": self.failure is None, "version": version}
        ahead = self.redis.ahead() if self.redis is not None else 0
        if self.failure is None and max(ahead, self.floor) > version:
            newest = max(ahead, self.floor)
            out.update(
                ok=False,
                code="versions_behind",
                error=f"other hosts may hold version {newest}, newer than this control plane's {version}: "
                "they ignore its versions until it publishes above (the next change does)",
            )
        if self.failure is not None:
            out.update(
                error=self.failure.error,
                code=self.failure.code,
                since=self.failure.since,
                pendingProjects=len(self.failure.projects),
            )
        return out

    def catch_up(self, db: Connection | None = None) -> int | None:
        """Publish above the newest version other hosts may hold, if it is newer than this LMDB's.

        On start the publisher goes above every high-water mark it can read; one it learns later
        (Redis unreachable at start, answering once it is back) would otherwise keep ``/ready``
        503 and other hosts on their old snapshot until the next admin write. Returns the
        version published, or None when nothing was behind."""
        if self.failure is not None or not self._behind():
            return None
        return self.publish_projects(set(), db=db)

    def republish_all(
        self,
        db: Connection | None = None,
        *,
        fresh_term: bool = False,
        documents: Mapping[str, EnvironmentState] | None = None,
    ) -> int:
        """Publish every project (and drop what LMDB holds of projects that are gone); ``documents``:
        environments already built whole from ``db`` (as :meth:`publish_projects` takes them)."""
        with contextlib.nullcontext(db) if db is not None else self.store.read() as conn:
            ids = {row["id"] for row in conn.execute("SELECT id FROM projects")}
        return self.publish_projects(ids | self.written.projects(), documents, db=db, fresh_term=fresh_term)

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
        self.writer.close()
        self.lock.release()
