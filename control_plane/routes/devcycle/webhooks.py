"""DevCycle webhooks (``/v1/projects/{project}/webhooks``): CRUD, and the delivery history of one
(``GET .../webhooks/{id}/deliveries``, ours: DevCycle shows it in its dashboard only).

Creating a webhook answers its signing ``secret`` once (``X-FlagEdge-Signature`` is the
HMAC-SHA256 of each body with it). Which changes raise which events: ``webhook_events``; how they
are sent, retried and signed: ``webhook_delivery``. Targets are checked for SSRF here too, so a
refused URL is a 400 at once rather than a failed delivery later.
"""

from __future__ import annotations

import secrets
from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, not_found, validation
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle.common import (
    ORG,
    ListQuery,
    dumps,
    dv_router,
    environment,
    feature,
    list_rows,
    loads,
    project,
    write_project,
)
from control_plane.routes.devcycle.flow_models import CreateWebhook, DeliveryListQuery, UpdateWebhook
from control_plane.store import new_id, now_iso
from control_plane.webhook_delivery import url_problem

router = dv_router("devcycle-webhooks")

BASE = "/v1/projects/{project}/webhooks"


def _view(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": row["name"],
        "description": row["description"],
        "_id": row["id"],
        "_project": row["project_id"],
        "_environments": loads(row["environments"], []),
        "url": row["url"],
        "events": loads(row["events"], []),
        "source": row["source"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "outputFormat": loads(row["output_format"], {}),
    }
    if row["feature_id"] is not None:
        out["_feature"] = row["feature_id"]
    return out


def _webhook(db: Connection, project_id: str, ident: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM webhooks WHERE project_id = ? AND id = ?", (project_id, ident)
    ).fetchone()
    if row is None:
        raise not_found("webhook")
    return row


def _check_url(ctx: Ctx, url: str) -> None:
    problem = url_problem(url, ctx.services.settings.webhook_allow_private)
    if problem is not None:
        raise validation(f"url {problem}", "url", "invalid_url")


def _scope(db: Connection, project_id: str, feature_ref: str | None, envs: list[str] | None) -> dict[str, Any]:
    """The ``_feature`` and ``_environments`` columns (ids; 400 for unknown ones)."""
    out: dict[str, Any] = {}
    if feature_ref is not None:
        if feature_ref == "":
            out.update(feature_id=None, feature_key=None)
        else:
            try:
                f = feature(db, project_id, feature_ref)
            except ApiError:
                raise validation(f"no feature {feature_ref!r} in this project", "_feature", "unknown_feature") from None
            out.update(feature_id=f["id"], feature_key=f["key"])
    if envs is not None:
        ids = []
        for i, ref in enumerate(envs):
            try:
                ids.append(environment(db, project_id, ref)["id"])
            except ApiError:
                raise validation(f"no environment {ref!r}", f"_environments[{i}]", "unknown_environment") from None
        out["environments"] = dumps(list(dict.fromkeys(ids)))
    return out


@router.route(
    "POST",
    BASE,
    summary="Create a webhook (answers its signing secret, once)",
    body=CreateWebhook,
    status=201,
    headers=ORG,
)
async def create_webhook(ctx: Ctx) -> Any:
    body: CreateWebhook = ctx.body
    _check_url(ctx, body.url)

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        scope = _scope(w.db, access.id, body.feature, body.environments or [])
        hook_id, now, secret = new_id(), now_iso(), secrets.token_urlsafe(32)
        w.db.execute(
            "INSERT INTO webhooks (id, project_id, name, description, url, events, environments, feature_id,"
            " feature_key, output_format, secret, source, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'api', ?, ?, ?)",
            (
                hook_id,
                access.id,
                body.name,
                body.description,
                body.url,
                dumps(list(dict.fromkeys(body.events))),
                scope["environments"],
                scope.get("feature_id"),
                scope.get("feature_key"),
                dumps(body.outputFormat or {}),
                # Sealed (the deliverer needs it back to sign), bound to this webhook's row.
                ctx.services.vault.seal(secret, hook_id),
                w.principal.user_id,
                now,
                now,
            ),
        )
        w.audit("webhook.create", f"webhook:{hook_id}", organisation_id=access.organisation_id, project_id=access.id)
        return {**_view(_webhook(w.db, access.id, hook_id)), "secret": secret}

    return ctx.commit(change, status=201)


@router.route("GET", BASE, summary="List the project's webhooks", query=ListQuery, headers=ORG)
async def list_webhooks(ctx: Ctx) -> Any:
    query: ListQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "admin")
        rows = list_rows(
            db,
            "SELECT w.* FROM webhooks w",
            ["w.project_id = ?"],
            [access.id],
            query,
            alias="w",
            search_columns=("name", "description"),
            sort_columns={"key": "w.name"},
        )
    return [_view(r) for r in rows]


@router.route("GET", BASE + "/{id}", summary="Get a webhook", headers=ORG)
async def get_webhook(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "admin")
        return _view(_webhook(db, access.id, ctx.path("id")))


@router.route("PATCH", BASE + "/{id}", summary="Update a webhook", body=UpdateWebhook, headers=ORG)
async def update_webhook(ctx: Ctx) -> Any:
    body: UpdateWebhook = ctx.body
    if body.url is not None:
        _check_url(ctx, body.url)

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = _webhook(w.db, access.id, ctx.path("id"))
        columns: dict[str, Any] = _scope(w.db, access.id, body.feature, body.environments)
        for name, value in (("name", body.name), ("description", body.description), ("url", body.url)):
            if value is not None:
                columns[name] = value
        if body.events is not None:
            columns["events"] = dumps(list(dict.fromkeys(body.events)))
        if body.outputFormat is not None:
            columns["output_format"] = dumps(body.outputFormat)
        columns["updated_at"] = now_iso()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        w.db.execute(f"UPDATE webhooks SET {assignments} WHERE id = ?", (*columns.values(), row["id"]))
        w.audit("webhook.update", f"webhook:{row['id']}", organisation_id=access.organisation_id, project_id=access.id)
        return _view(_webhook(w.db, access.id, row["id"]))

    return ctx.commit(change)


@router.route("DELETE", BASE + "/{id}", summary="Delete a webhook (and its pending deliveries)", headers=ORG)
async def delete_webhook(ctx: Ctx) -> Any:
    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = _webhook(w.db, access.id, ctx.path("id"))
        w.db.execute("DELETE FROM webhooks WHERE id = ?", (row["id"],))
        w.audit("webhook.delete", f"webhook:{row['id']}", organisation_id=access.organisation_id, project_id=access.id)
        return _view(row)

    return ctx.commit(change)


@router.route(
    "GET",
    BASE + "/{id}/deliveries",
    summary="A webhook's deliveries, newest first, each with its attempts",
    query=DeliveryListQuery,
    headers=ORG,
)
async def list_deliveries(ctx: Ctx) -> Any:
    query: DeliveryListQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "admin")
        hook = _webhook(db, access.id, ctx.path("id"))
        where, params = ["webhook_id = ?"], [hook["id"]]
        if query.status:
            where.append("status = ?")
            params.append(query.status)
        rows = db.execute(
            f"SELECT * FROM webhook_outbox WHERE {' AND '.join(where)} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            (*params, query.perPage, (query.page - 1) * query.perPage),
        ).fetchall()
        out = []
        for r in rows:
            attempts = db.execute(
                "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts WHERE outbox_id = ?"
                " ORDER BY attempt, at",
                (r["id"],),
            ).fetchall()
            out.append(
                {
                    "eventId": r["id"],
                    "events": r["events"].split(","),
                    "status": r["status"],
                    "attempts": r["attempts"],
                    "nextAttemptAt": r["next_attempt_at"] if r["status"] == "pending" else None,
                    "lastStatusCode": r["last_status"],
                    "lastError": r["last_error"],
                    "createdAt": r["created_at"],
                    "deliveredAt": r["delivered_at"],
                    "payload": loads(r["payload"], {}),
                    "history": [
                        {
                            "attempt": a["attempt"],
                            "at": a["at"],
                            "statusCode": a["status_code"],
                            "error": a["error"],
                            "durationMs": a["duration_ms"],
                        }
                        for a in attempts
                    ],
                }
            )
    return out
