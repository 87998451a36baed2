"""Telemetry: one event per ``POST /api/v1/telemetry`` (submit key), the most recent first from
``GET /api/v1/telemetry`` (read key). The high-volume route: the body is bounded
(:data:`MAX_BODY`), every field by its model, ``payload`` to :data:`MAX_PAYLOAD` bytes encoded, and
the key API's rate limits (per key, per key and client address) apply before the body is read.

An event is acknowledged (201 with its integer id) once it is committed to the store; nothing
else is written for it (no audit entry, no idempotency record: an event is not a change). Events
are committed in groups (:mod:`control_plane.group_commit`): concurrent requests share a commit
and its fsync.
"""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.http import Ctx, Router
from control_plane.routes.sytwm.common import READ, SUBMIT, decode_cursor, key_org, page, too_large
from control_plane.routes.sytwm.models import TelemetryBody, TelemetryPage
from control_plane.store import now_iso

api = Router("sytwm-api")
CURSOR = "telemetry"
MAX_BODY = 16 << 10
MAX_PAYLOAD = 4 << 10
_COLUMNS = ("event_type", "post_slug", "step_id", "session_id", "path", "referrer")
_INSERT = (
    "INSERT INTO sytwm_telemetry (organisation_id, api_key_id, event_type, post_slug, step_id, session_id,"
    " path, referrer, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)


@api.route(
    "POST",
    "/api/v1/telemetry",
    summary="Record one telemetry event",
    body=TelemetryBody,
    status=201,
    keys=SUBMIT,
    max_body=MAX_BODY,
    responses=(413,),
)
async def record_telemetry(ctx: Ctx) -> Any:
    body: TelemetryBody = ctx.body
    payload = None
    if body.payload is not None:
        payload = orjson.dumps(body.payload).decode()
        if len(payload) > MAX_PAYLOAD:
            raise too_large("payload", MAX_PAYLOAD)
    row = (key_org(ctx), ctx.principal.api_key_id, *(getattr(body, c) for c in _COLUMNS), payload, now_iso())
    return {"id": await ctx.services.group_commits.writer(_INSERT).insert(row)}


@api.route(
    "GET",
    "/api/v1/telemetry",
    summary="The most recent telemetry events (pass next_cursor as cursor for older ones; null at the end)",
    query=TelemetryPage,
    keys=READ,
)
async def list_telemetry(ctx: Ctx) -> Any:
    query: TelemetryPage = ctx.query
    below = decode_cursor(CURSOR, query.cursor)
    rows = ctx.services.store.all(
        "SELECT * FROM sytwm_telemetry WHERE organisation_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (key_org(ctx), below if below is not None else 2**63 - 1, query.limit + 1),
    )
    shown, next_cursor = page(rows, query.limit, CURSOR, "id")
    items = [
        {
            "id": r["id"],
            **{c: r[c] for c in _COLUMNS},
            "payload": orjson.loads(r["payload"]) if r["payload"] is not None else None,
            "received_at": r["received_at"],
        }
        for r in shown
    ]
    return {"items": items, "next_cursor": next_cursor}
