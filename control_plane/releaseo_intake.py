"""Applies Releaseo's public writes (intake records, ``contract/intake.py``) to the store.

The events consumer stores every intake record once by its id (``INSERT … ON CONFLICT DO NOTHING`` into
``events``) and calls :func:`apply` only for a record it newly stored, in the same transaction:
a record delivered twice (a retried request with the same ``Idempotency-Key``, a spooled and a
streamed copy, a replay after a crash) is applied once.

Each write is also idempotent in itself, so a client that retries without a key does no harm:

* submissions and comments carry the id the edge minted (``INSERT … ON CONFLICT DO NOTHING`` on it);
* votes and follows *set* a state (``voted``/``following`` true or false), never toggle it: a
  user has at most one vote per request and takes it back by setting false. Each row keeps the
  time the edge received the write that set it, and an older write arriving later (another edge
  worker's spool drained after a newer one) does not override it;
* identify merges properties; product events count.

A record that no longer applies (its project, request or item was deleted meanwhile, a comment on
a request no longer approved) is dropped with a log line: intake must never stall on one record.
:func:`apply` returns the project whose public board changed (to republish), or None.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from contract import intake
from contract.intake import IntakeRecord
from control_plane.dialect import INTEGRITY_ERRORS, Connection
from control_plane.store import now_iso

log = logging.getLogger("control_plane.releaseo")


def _text(event: dict[str, Any], name: str) -> str | None:
    value = event.get(name)
    return value if isinstance(value, str) else None


def _seen(db: Connection, project_id: str, user_id: str, at: str, *, identify: int = 0, events: int = 0) -> None:
    """Create or refresh the end user's row (first/last seen, counts)."""
    db.execute(
        "INSERT INTO releaseo_sdk_users (project_id, user_id, first_seen_at, last_seen_at, identify_count, event_count)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, user_id) DO UPDATE SET"
        " first_seen_at = CASE WHEN excluded.first_seen_at < releaseo_sdk_users.first_seen_at"
        " THEN excluded.first_seen_at ELSE releaseo_sdk_users.first_seen_at END,"
        " last_seen_at = CASE WHEN excluded.last_seen_at > releaseo_sdk_users.last_seen_at"
        " THEN excluded.last_seen_at ELSE releaseo_sdk_users.last_seen_at END,"
        " identify_count = releaseo_sdk_users.identify_count + excluded.identify_count,"
        " event_count = releaseo_sdk_users.event_count + excluded.event_count",
        (project_id, user_id, at, at, identify, events),
    )


def _identify(db: Connection, project_id: str, event: dict[str, Any], at: str) -> None:
    user_id = _text(event, "userId")
    if user_id is None:
        return
    _seen(db, project_id, user_id, at, identify=1)
    properties = event.get("properties")
    if isinstance(properties, dict) and properties:
        row = db.execute(
            "SELECT properties FROM releaseo_sdk_users WHERE project_id = ? AND user_id = ?", (project_id, user_id)
        ).fetchone()
        merged = {**orjson.loads(row["properties"]), **properties}
        db.execute(
            "UPDATE releaseo_sdk_users SET properties = ? WHERE project_id = ? AND user_id = ?",
            (orjson.dumps(merged).decode(), project_id, user_id),
        )


def _submit(db: Connection, project_id: str, event: dict[str, Any], at: str) -> None:
    category = _text(event, "categoryId")
    if (
        category is not None
        and not db.execute(
            "SELECT 1 FROM releaseo_categories WHERE id = ? AND project_id = ?", (category, project_id)
        ).fetchone()
    ):
        category = None  # deleted since the edge checked it: keep the submission, uncategorised
    user_id = _text(event, "userId")
    db.execute(
        "INSERT INTO releaseo_feature_requests (id, project_id, kind, review_status, status, title,"
        " description, category_id, author_user_id, author_name, source, created_at, updated_at)"
        " VALUES (?, ?, 'feature_request', 'pending', 'open', ?, ?, ?, ?, ?, 'sdk', ?, ?) ON CONFLICT (id) DO NOTHING",
        (
            event["id"],
            project_id,
            event["title"],
            _text(event, "description") or "",
            category,
            user_id,
            _text(event, "authorName"),
            at,
            at,
        ),
    )
    if user_id is not None:
        _seen(db, project_id, user_id, at)


def _public_request(db: Connection, project_id: str, request_id: str) -> bool:
    return bool(
        db.execute(
            "SELECT 1 FROM releaseo_feature_requests WHERE id = ? AND project_id = ? AND kind = 'feature_request'"
            " AND review_status = 'approved'",
            (request_id, project_id),
        ).fetchone()
    )


def _comment(db: Connection, project_id: str, event: dict[str, Any], at: str) -> bool:
    request_id = str(event["requestId"])
    if not _public_request(db, project_id, request_id):
        log.info("dropping a comment on request %s: it is not public any more", request_id)
        return False
    inserted = db.execute(
        "INSERT INTO releaseo_comments (id, request_id, user_id, author_name, body, source, created_at)"
        " VALUES (?, ?, ?, ?, ?, 'sdk', ?) ON CONFLICT (id) DO NOTHING",
        (event["id"], request_id, _text(event, "userId"), _text(event, "authorName"), event["body"], at),
    ).rowcount
    if inserted:
        db.execute("UPDATE releaseo_feature_requests SET comment_count = comment_count + 1 WHERE id = ?", (request_id,))
    return bool(inserted)


def _set_state(db: Connection, table: str, key: str, column: str, values: tuple[str, str, bool, str]) -> bool:
    """Set ``(key, user_id) → column`` unless a newer write set it; True if the state changed."""
    target, user_id, on, at = values
    row = db.execute(f"SELECT {column}, at FROM {table} WHERE {key} = ? AND user_id = ?", (target, user_id)).fetchone()
    if row is not None and row["at"] > at:
        return False  # a newer write already decided (even if it set the same state)
    db.execute(
        f"INSERT INTO {table} ({key}, user_id, {column}, at) VALUES (?, ?, ?, ?)"
        f" ON CONFLICT ({key}, user_id) DO UPDATE SET {column} = excluded.{column}, at = excluded.at",
        (target, user_id, int(on), at),
    )
    return bool(row[column]) != on if row is not None else on


def _vote(db: Connection, project_id: str, event: dict[str, Any], at: str) -> bool:
    request_id = str(event["requestId"])
    if not _public_request(db, project_id, request_id):
        log.info("dropping a vote on request %s: it is not public any more", request_id)
        return False
    values = (request_id, str(event["userId"]), bool(event["voted"]), at)
    if not _set_state(db, "releaseo_votes", "request_id", "voted", values):
        return False
    db.execute(
        "UPDATE releaseo_feature_requests SET vote_count ="
        " (SELECT COUNT(*) FROM releaseo_votes WHERE request_id = ? AND voted = 1) WHERE id = ?",
        (request_id, request_id),
    )
    return True


def _follow(db: Connection, project_id: str, event: dict[str, Any], at: str) -> bool:
    item_id = str(event["itemId"])
    if not db.execute(
        "SELECT 1 FROM releaseo_roadmap_items WHERE id = ? AND project_id = ? AND visibility != 'internal_only'",
        (item_id, project_id),
    ).fetchone():
        log.info("dropping a follow of roadmap item %s: it is not public any more", item_id)
        return False
    return _set_state(
        db,
        "releaseo_roadmap_follows",
        "item_id",
        "following",
        (item_id, str(event["userId"]), bool(event["following"]), at),
    )


def _product_event(db: Connection, project_id: str, event: dict[str, Any], at: str) -> None:
    user_id = _text(event, "userId")
    if user_id is not None:
        _seen(db, project_id, user_id, at, events=1)


# What makes one record not apply (a constraint: an id already used by another project).
_NOT_APPLICABLE: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError, *INTEGRITY_ERRORS)


def apply(db: Connection, record: IntakeRecord) -> str | None:
    """Apply one newly stored Releaseo record; the project to republish, if its board changed."""
    project_id = record["project"]
    if project_id is None or not db.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone():
        log.info("dropping a %s record of a project that no longer exists", record["type"])
        return None
    event, at, kind = record["event"], record["receivedAt"] or now_iso(), record["type"]
    db.execute("SAVEPOINT releaseo_apply")
    try:
        changed = False
        if kind == intake.RELEASEO_IDENTIFY:
            _identify(db, project_id, event, at)
        elif kind == intake.RELEASEO_SUBMIT:
            _submit(db, project_id, event, at)  # pending: hidden until reviewed, nothing to publish
        elif kind == intake.RELEASEO_COMMENT:
            changed = _comment(db, project_id, event, at)
        elif kind == intake.RELEASEO_VOTE:
            changed = _vote(db, project_id, event, at)
        elif kind == intake.RELEASEO_FOLLOW:
            changed = _follow(db, project_id, event, at)
        elif kind == intake.RELEASEO_EVENT:
            _product_event(db, project_id, event, at)
    except _NOT_APPLICABLE as e:
        # A record the edge validated cannot normally fail here; if one does, it alone is dropped.
        db.execute("ROLLBACK TO releaseo_apply")
        db.execute("RELEASE releaseo_apply")
        log.warning("dropping a %s record %s that does not apply: %s", kind, record["id"], e)
        return None
    db.execute("RELEASE releaseo_apply")
    return project_id if changed else None
