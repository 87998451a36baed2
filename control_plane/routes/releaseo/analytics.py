"""SDK users and their properties (``/analytics/{projectId}/...``), fed by ``POST /sdk/identify``
(properties, merged) and ``POST /e`` (product events) through the intake
(``control_plane/releaseo_intake.py``). Read-only; ``read`` role.

Property look-ups are computed from the users' stored properties: the keys seen, the JSON types
each key had and in how many users, and per key its most frequent values with their counts.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
from pydantic import BaseModel, Field

from contract.intake import RELEASEO_EVENT, releaseo_scope
from control_plane.errors import not_found
from control_plane.http import Ctx, Router
from control_plane.routes.releaseo.common import ORG, decode_cursor, encode_cursor, project_access

router = Router("releaseo")

BASE = "/analytics/{projectId}"
RECENT_EVENTS = 50
TOP_VALUES = 100
# SQLite's json_each types → JSON's.
_TYPES = {
    "text": "string",
    "integer": "number",
    "real": "number",
    "true": "boolean",
    "false": "boolean",
    "null": "null",
    "array": "array",
    "object": "object",
}


class UsersQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=200, description="Opaque next_cursor of the previous page")
    search: str | None = Field(default=None, min_length=1, max_length=256, description="User id prefix")


def _user_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "userId": row["user_id"],
        "properties": orjson.loads(row["properties"]),
        "firstSeenAt": row["first_seen_at"],
        "lastSeenAt": row["last_seen_at"],
        "identifyCount": row["identify_count"],
        "eventCount": row["event_count"],
    }


@router.route("GET", BASE + "/users", summary="SDK users, most recently seen first", query=UsersQuery, headers=ORG)
async def list_users(ctx: Ctx) -> Any:
    query: UsersQuery = ctx.query
    offset = decode_cursor("us", query.cursor) if query.cursor else 0
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        sql = "SELECT * FROM releaseo_sdk_users WHERE project_id = ?"
        params: list[Any] = [project.id]
        if query.search:
            # Prefix match without LIKE's wildcards: a range on the id.
            sql += " AND user_id >= ? AND user_id < ?"
            params += [query.search, query.search + "\U0010ffff"]
        rows = db.execute(
            sql + " ORDER BY last_seen_at DESC, user_id LIMIT ? OFFSET ?", (*params, query.limit + 1, offset)
        ).fetchall()
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return {
        "items": [_user_view(r) for r in page],
        "next_cursor": encode_cursor("us", offset + query.limit) if more else None,
    }


@router.route("GET", BASE + "/users/{userId}", summary="One SDK user with their latest product events", headers=ORG)
async def get_user(ctx: Ctx) -> Any:
    user_id = ctx.path("userId")
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        row = db.execute(
            "SELECT * FROM releaseo_sdk_users WHERE project_id = ? AND user_id = ?", (project.id, user_id)
        ).fetchone()
        if row is None:
            raise not_found("user")
        events = db.execute(
            "SELECT name, payload, received_at FROM events WHERE environment_id = ? AND type = ? AND user_id = ?"
            " ORDER BY received_at DESC LIMIT ?",
            (releaseo_scope(project.id), RELEASEO_EVENT, user_id, RECENT_EVENTS),
        ).fetchall()
    recent = []
    for e in events:
        payload = orjson.loads(e["payload"])
        recent.append(
            {
                "event": e["name"],
                "properties": payload.get("properties", {}),
                "timestamp": payload.get("timestamp"),
                "receivedAt": e["received_at"],
            }
        )
    return {**_user_view(row), "recentEvents": recent}


@router.route(
    "GET",
    BASE + "/lookups/user-properties",
    summary="Property keys seen on SDK users, their types and counts",
    headers=ORG,
)
async def property_keys(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        rows = db.execute(
            "SELECT j.key AS key, j.type AS type, COUNT(*) AS users, COUNT(DISTINCT j.value) AS distinct_values"
            " FROM releaseo_sdk_users u, json_each(u.properties) j WHERE u.project_id = ?"
            " GROUP BY j.key, j.type ORDER BY j.key",
            (project.id,),
        ).fetchall()
    keys: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = keys.setdefault(r["key"], {"key": r["key"], "types": {}, "userCount": 0, "valueCount": 0})
        kind = _TYPES.get(r["type"], r["type"])
        entry["types"][kind] = entry["types"].get(kind, 0) + r["users"]
        entry["userCount"] += r["users"]
        entry["valueCount"] += r["distinct_values"]
    return {"items": list(keys.values())}


@router.route(
    "GET",
    BASE + "/lookups/user-properties/{key}",
    summary="One property: its types and most frequent values",
    headers=ORG,
)
async def property_values(ctx: Ctx) -> Any:
    key = ctx.path("key")
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        rows = db.execute(
            "SELECT j.type AS type, CASE WHEN j.type IN ('array', 'object') THEN j.value ELSE json_quote(j.value) END"
            " AS value, COUNT(*) AS users FROM releaseo_sdk_users u, json_each(u.properties) j"
            " WHERE u.project_id = ? AND j.key = ? GROUP BY j.type, value ORDER BY users DESC, value LIMIT ?",
            (project.id, key, TOP_VALUES),
        ).fetchall()
    if not rows:
        raise not_found("user property")
    types: dict[str, int] = {}
    values = []
    for r in rows:
        kind = _TYPES.get(r["type"], r["type"])
        types[kind] = types.get(kind, 0) + r["users"]
        if r["type"] in ("true", "false"):
            value: Any = r["type"] == "true"  # json_each gives booleans as 1/0
        else:
            value = orjson.loads(r["value"]) if r["value"] is not None else None
        values.append({"value": value, "type": kind, "count": r["users"]})
    return {"key": key, "types": types, "values": values}
