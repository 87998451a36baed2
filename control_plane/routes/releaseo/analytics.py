"""SDK users and their properties (``/analytics/{projectId}/...``), fed by ``POST /sdk/identify``
(properties, merged) and ``POST /e`` (product events) through the intake
(``control_plane/releaseo_intake.py``). Read-only; ``read`` role.

Property look-ups are computed from the users' stored properties: the keys seen, the JSON types
each key had and in how many users, and per key its most frequent values with their counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from pydantic import BaseModel, Field

from contract.intake import RELEASEO_EVENT, releaseo_scope
from control_plane.dialect import Connection, Row
from control_plane.errors import not_found
from control_plane.http import Ctx, Router
from control_plane.routes.releaseo.common import ORG, decode_cursor, encode_cursor, project_access

router = Router("releaseo")

BASE = "/analytics/{projectId}"
RECENT_EVENTS = 50
TOP_VALUES = 100
# A stored property value's JSON type, by the names SQLite's json_each gives them (booleans and
# null have their own), and the JSON Schema name the API answers with.
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


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _properties(db: Connection, project_id: str) -> Iterator[dict[str, Any]]:
    """Every SDK user's properties of the project (decoded here: JSON functions are not portable SQL)."""
    for row in db.execute("SELECT properties FROM releaseo_sdk_users WHERE project_id = ?", (project_id,)):
        properties = orjson.loads(row["properties"])
        if isinstance(properties, dict):
            yield properties


class UsersQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=200, description="Opaque next_cursor of the previous page")
    search: str | None = Field(default=None, min_length=1, max_length=256, description="User id prefix")


def _user_view(row: Row) -> dict[str, Any]:
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
    # Per (key, type): the users that have it and the distinct values it took (null is no value).
    users: dict[tuple[str, str], int] = {}
    distinct: dict[tuple[str, str], set[bytes]] = {}
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        for properties in _properties(db, project.id):
            for key, value in properties.items():
                group = (key, _type_of(value))
                users[group] = users.get(group, 0) + 1
                values = distinct.setdefault(group, set())
                if value is not None:
                    values.add(orjson.dumps(value))
    keys: dict[str, dict[str, Any]] = {}
    for key, kind in sorted(users):
        entry = keys.setdefault(key, {"key": key, "types": {}, "userCount": 0, "valueCount": 0})
        name = _TYPES[kind]
        count = users[(key, kind)]
        entry["types"][name] = entry["types"].get(name, 0) + count
        entry["userCount"] += count
        entry["valueCount"] += len(distinct[(key, kind)])
    return {"items": list(keys.values())}


@router.route(
    "GET",
    BASE + "/lookups/user-properties/{key}",
    summary="One property: its types and most frequent values",
    headers=ORG,
)
async def property_values(ctx: Ctx) -> Any:
    key = ctx.path("key")
    # Per (type, the value's JSON text): the users that have it.
    counts: dict[tuple[str, str], int] = {}
    decoded: dict[tuple[str, str], Any] = {}
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        for properties in _properties(db, project.id):
            if key not in properties:
                continue
            value = properties[key]
            group = (_type_of(value), orjson.dumps(value).decode())
            counts[group] = counts.get(group, 0) + 1
            decoded[group] = value
    if not counts:
        raise not_found("user property")
    top = sorted(counts, key=lambda g: (-counts[g], g[1]))[:TOP_VALUES]
    types: dict[str, int] = {}
    for kind, text in top:
        types[_TYPES[kind]] = types.get(_TYPES[kind], 0) + counts[(kind, text)]
    values = [{"value": decoded[g], "type": _TYPES[g[0]], "count": counts[g]} for g in top]
    return {"key": key, "types": types, "values": values}
