"""Webhook events: which changes are announced, and the outbox rows that announce them.

The events derive from the audit entries a change writes (DevCycle's webhook payload is a list
of audit-log changes), so every write path announces itself without a second bookkeeping call.
:func:`enqueue` runs inside the change's transaction (:meth:`control_plane.http.Ctx.commit`): the
outbox rows commit with the change or not at all, and :mod:`control_plane.webhook_delivery`
sends them afterwards.

One payload per webhook and feature per change (DevCycle groups a change's events:
``{"events": ["modifiedFeature", "addedVariable"], ...}``). A webhook limited to a feature gets
only that feature's changes; one limited to environments gets the environment-specific events
(``modifiedTargeting``) of those environments and every feature-wide event.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from control_plane.dialect import Connection, Row
from control_plane.store import new_id

# DevCycle event name -> the audit action that raises it.
EVENTS: dict[str, str] = {
    "createdFeature": "feature.create",
    "modifiedFeature": "feature.update",
    "deletedFeature": "feature.delete",
    "modifiedFeatureStatus": "feature.status",
    "modifiedTargeting": "configuration.update",
    "addedVariation": "variation.create",
    "modifiedVariation": "variation.update",
    "deletedVariation": "variation.delete",
    "addedVariable": "variable.create",
    "modifiedVariable": "variable.update",
    "deletedVariable": "variable.delete",
}
_BY_ACTION = {action: event for event, action in EVENTS.items()}
PAYLOAD_VERSION = "1"

# An audit entry as Write.audit stores it.
Entry = tuple[Any, ...]


def _target(target: str) -> dict[str, str]:
    """``feature:a/environment:b`` -> {"feature": "a", "environment": "b"}."""
    out = {}
    for part in target.split("/"):
        kind, _, value = part.partition(":")
        out[kind] = value
    return out


def enqueue(db: Connection, user_email: str, entries: list[Entry]) -> int:
    """Write the outbox rows of a change's audit ``entries``; the number written."""
    by_project: dict[str, list[tuple[str, Entry, dict[str, str]]]] = defaultdict(list)
    for entry in entries:
        event = _BY_ACTION.get(entry[4])
        if event is not None and entry[3]:
            by_project[entry[3]].append((event, entry, _target(entry[5])))
    written = 0
    for project_id, items in by_project.items():
        hooks = db.execute("SELECT * FROM webhooks WHERE project_id = ?", (project_id,)).fetchall()
        if not hooks:
            continue
        project = db.execute("SELECT key FROM projects WHERE id = ?", (project_id,)).fetchone()
        groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for event, entry, target in items:
            feature_key = target.get("feature") or _feature_of_variable(db, project_id, target.get("variable"))
            change: dict[str, Any] = {
                "type": event,
                "newContents": {**target, **orjson.loads(entry[7] or "{}")},
                "previousContents": None,
                "metadata": {"at": entry[0], "changeReason": entry[6]},
            }
            env_key = target.get("environment")
            if env_key:
                env = db.execute(
                    "SELECT id FROM environments WHERE project_id = ? AND key = ?", (project_id, env_key)
                ).fetchone()
                change["_environments"] = [env["id"]] if env else []
            groups[feature_key].append(change)
        for feature_key, changes in groups.items():
            feature_id = _feature_id(db, project_id, feature_key)
            for hook in hooks:
                selected = [c for c in changes if _wants(hook, c, feature_id, feature_key)]
                if not selected:
                    continue
                events = sorted({c["type"] for c in selected})
                now = selected[0]["metadata"]["at"]
                payload = {
                    "events": events,
                    "key": feature_key,
                    "projectId": project["key"] if project else project_id,
                    "version": PAYLOAD_VERSION,
                    "changes": selected,
                    "date": now,
                    "user": {"email": user_email},
                    "webhookId": hook["id"],
                }
                event_id = new_id()
                payload["eventId"] = event_id
                db.execute(
                    "INSERT INTO webhook_outbox (id, webhook_id, project_id, events, payload, next_attempt_at,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event_id, hook["id"], project_id, ",".join(events), orjson.dumps(payload).decode(), now, now),
                )
                written += 1
    return written


def _feature_of_variable(db: Connection, project_id: str, variable_key: str | None) -> str | None:
    if not variable_key:
        return None
    row = db.execute(
        "SELECT f.key FROM variables v JOIN features f ON f.id = v.feature_id WHERE v.project_id = ? AND v.key = ?",
        (project_id, variable_key),
    ).fetchone()
    return str(row["key"]) if row else None


def _feature_id(db: Connection, project_id: str, feature_key: str | None) -> str | None:
    if not feature_key:
        return None
    row = db.execute("SELECT id FROM features WHERE project_id = ? AND key = ?", (project_id, feature_key)).fetchone()
    return str(row["id"]) if row else None


def _wants(hook: Row, change: dict[str, Any], feature_id: str | None, feature_key: str | None) -> bool:
    if change["type"] not in orjson.loads(hook["events"]):
        return False
    if hook["feature_id"] is not None and hook["feature_id"] != feature_id and hook["feature_key"] != feature_key:
        return False
    environments = orjson.loads(hook["environments"])
    if environments and "_environments" in change:
        return bool(set(change["_environments"]) & set(environments))
    return True
