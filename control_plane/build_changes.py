"""What each build generation's write changed (migration 0016), for the replicas that did not see it.

A write raises its projects' build generations (``control_plane.build_generations``) and, in the
same transaction, records here what it changed per project: the features, or None for the project
as a whole (:func:`record`). A replica whose kept build is at generation ``k`` and whose write
raises the project to ``g > k + 1`` (other replicas wrote ``k + 1 … g - 1`` on the same PostgreSQL)
reads those rows in its write's transaction (:func:`between`; writes are serialized, so every one
of them is committed and visible) and patches its kept build with their union and its own features
(``incremental.Builder._project``). A missing row (pruned, or raised by a release that did not
write them) or a whole one makes it build whole, as it did before this table.

Rows are only useful while some replica keeps a build older than them. A row older than
:data:`RETAIN` seconds serves only a replica that has not written the project since before it; it
builds whole instead, once, which is cheap beside that long idle. So each replica deletes rows
older than that, at most :data:`PRUNE_BATCH` at a time every :data:`PRUNE_EVERY`
seconds after one of its writes committed (:func:`pruner`). On SQLite the one process's kept build
is always the previous generation's, so the rows are written (one small insert per project per
write) and pruned but never read.
"""

from __future__ import annotations

import time
from collections.abc import Collection

import orjson

from control_plane.dialect import Connection, skip_locked
from control_plane.shared_limits import BatchPruner
from control_plane.store import Store

# How long a row is kept (seconds), how often a replica prunes, and at most how many rows at once.
RETAIN = 600.0
PRUNE_EVERY = 60.0
PRUNE_BATCH = 1000
# A replica further behind than this builds whole rather than read that many rows in a write.
MAX_BEHIND = 10_000


def record(db: Connection, project_id: str, generation: int, features: Collection[str] | None) -> None:
    """In the write's transaction that raised ``project_id`` to ``generation``: what it changed."""
    db.execute(
        "INSERT INTO build_changes (project_id, generation, features, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (project_id, generation) DO UPDATE SET features = excluded.features, at = excluded.at",
        (
            project_id,
            generation,
            None if features is None else orjson.dumps(sorted(features)).decode(),
            time.time(),
        ),
    )


def between(db: Connection, project_id: str, after: int, upto: int) -> dict[int | None, frozenset[str] | None]:
    """What the writes that raised ``project_id`` to ``after + 1 … upto`` changed, by generation
    (features, None: the project as a whole); a generation without a row is missing."""
    if upto <= after or upto - after > MAX_BEHIND:
        return {}
    rows = db.execute(
        "SELECT generation, features FROM build_changes WHERE project_id = ? AND generation > ? AND generation <= ?",
        (project_id, after, upto),
    ).fetchall()
    return {
        int(row["generation"]): None if row["features"] is None else frozenset(orjson.loads(row["features"]))
        for row in rows
    }


def prune(store: Store, now: float, batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` rows older than :data:`RETAIN`; the number deleted. A write reading
    a row being deleted finds it or not: without it, it builds whole."""
    with store.transaction(serialized=False) as db:
        cursor = db.execute(
            "DELETE FROM build_changes WHERE (project_id, generation) IN (SELECT project_id, generation"
            f" FROM build_changes WHERE at < ? LIMIT ?{skip_locked(store.postgresql)})",
            (now - RETAIN, batch),
        )
        return max(0, cursor.rowcount)


def pruner(store: Store) -> BatchPruner:
    """Prunes ``store``'s rows when due (``when_due(time.time())`` after a write commits)."""
    return BatchPruner(lambda now: prune(store, now), "build_changes", PRUNE_EVERY, PRUNE_BATCH)
