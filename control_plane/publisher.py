"""Publishes validated snapshots to the LMDB store after each committed change.

Each publish rebuilds the complete state of the touched projects from SQLite while holding the
store lock (so publishes happen in commit order and never from a stale read), diffs it against
what LMDB holds for those projects, and writes the difference in one LMDB transaction under a
new global version. On start the control plane republishes everything, which also repairs a
publish lost to a crash between the SQLite commit and the LMDB write.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from control_plane.redis_publish import RedisPublisher
from control_plane.releases_snapshot import release_snapshot
from control_plane.snapshots import build_environment_document
from control_plane.store import Store
from control_plane.widget_snapshot import widget_snapshot
from server.snapshot_store import CorruptValue, Publish, SnapshotWriter, decode

log = logging.getLogger("control_plane.publisher")


def project_state(db: sqlite3.Connection, project_id: str) -> Publish:
    """Everything the edge serves for one project, keyed as in LMDB."""
    state = Publish()
    project = db.execute(
        "SELECT p.key, o.name AS org FROM projects p JOIN organisations o ON o.id = p.organisation_id WHERE p.id = ?",
        (project_id,),
    ).fetchone()
    if project is None:
        return state
    for env in db.execute("SELECT id, key FROM environments WHERE project_id = ?", (project_id,)):
        state.environments[env["id"]] = {
            "project": project_id,
            "environment": env["key"],
            "document": build_environment_document(db, env["id"]),
        }
        for key in db.execute(
            "SELECT key_hash, kind FROM sdk_keys WHERE environment_id = ? AND revoked_at IS NULL", (env["id"],)
        ):
            state.sdk_keys[key["key_hash"]] = {"environment": env["id"], "kind": key["kind"], "project": project_id}
    state.releases[f"{project['org']}/{project['key']}"] = {"project": project_id, **release_snapshot(db, project_id)}
    widget = widget_snapshot(db, project_id)
    if widget is not None:
        state.widgets[widget["projectKey"]] = {"project": project_id, **widget}
    return state


def _owned(writer: SnapshotWriter, table: bytes, project_ids: set[str]) -> set[str]:
    """Keys in an LMDB table that belong to one of the projects (or cannot be read at all)."""
    owned = set()
    with writer.env.begin() as txn:
        for k, v in txn.cursor(db=writer.db[table]):
            try:
                value: Any = decode(bytes(v))
            except CorruptValue:
                owned.add(bytes(k).decode())
                continue
            if isinstance(value, dict) and value.get("project") in project_ids:
                owned.add(bytes(k).decode())
    return owned


def _drop_unchanged(writer: SnapshotWriter, table: bytes, items: dict[str, dict[str, Any] | None]) -> None:
    """Remove entries whose stored value already equals the new one (or deletions of absent keys)."""
    with writer.env.begin() as txn:
        for key in list(items):
            raw = txn.get(key.encode(), db=writer.db[table])
            if raw is None:
                if items[key] is None:
                    del items[key]
                continue
            try:
                stored = decode(bytes(raw))
            except CorruptValue:
                continue
            if isinstance(stored, dict) and table == b"environments":
                stored = {k: v for k, v in stored.items() if k != "version"}
            if stored == items[key]:
                del items[key]


class Publisher:
    def __init__(self, data_dir: Path, store: Store, redis_url: str | None = None) -> None:
        self.writer = SnapshotWriter(data_dir)
        self.store = store
        # Other hosts follow Redis (`python -m server sync`); publishing there never blocks a write.
        self.redis = RedisPublisher(redis_url, self.writer) if redis_url else None

    def publish_projects(self, project_ids: set[str]) -> int:
        with self.store.read() as db:
            change = Publish()
            for project_id in project_ids:
                state = project_state(db, project_id)
                change.environments.update(state.environments)
                change.sdk_keys.update(state.sdk_keys)
                change.releases.update(state.releases)
                change.widgets.update(state.widgets)
            for table, items in (
                (b"environments", change.environments),
                (b"sdk_keys", change.sdk_keys),
                (b"releases", change.releases),
                (b"widgets", change.widgets),
            ):
                for stale in _owned(self.writer, table, project_ids) - items.keys():
                    items[stale] = None
                _drop_unchanged(self.writer, table, items)
            if change.is_empty():
                # Nothing the edges serve changed (e.g. a restart): no new version, no recompiles.
                return self.writer.version()
            version = self.writer.publish(change)
            if self.redis is not None:
                self.redis.publish(version, change)
        log.info("published snapshot version %d for %d project(s)", version, len(project_ids))
        return version

    def republish_all(self) -> int:
        with self.store.read() as db:
            ids = {row["id"] for row in db.execute("SELECT id FROM projects")}
        with self.writer.env.begin() as txn:
            for table in (b"environments", b"sdk_keys", b"releases", b"widgets"):
                for _, v in txn.cursor(db=self.writer.db[table]):
                    try:
                        value = decode(bytes(v))
                    except CorruptValue:
                        continue
                    if isinstance(value, dict) and isinstance(value.get("project"), str):
                        ids.add(value["project"])
        return self.publish_projects(ids)

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
        self.writer.close()
