"""Releaseo widget config (``/projects/{projectId}/widget-config``): the config behind ``/sdk/config``.

One JSON settings object per project plus a public Releaseo project key (``rp_...``) that the
widget sends from the browser; the key is issued by the first create and kept when the config is
removed. Every widget write bumps the widget's version and touches the project, so the snapshot
pipeline republishes what :mod:`control_plane.widget_snapshot` returns and the edge's
``/sdk/config`` cache for the project and its key is refreshed.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import not_found
from control_plane.http import Ctx, Router, Write
from control_plane.routes.releaseo.common import ORG, encode_bounded, project_access
from control_plane.routes.releaseo.models import RemoveBody, WidgetConfigBody
from control_plane.store import now_iso

router = Router("releaseo")

MAX_SETTINGS_BYTES = 64 * 1024
MAX_SETTINGS_DEPTH = 32
PROJECT_KEY_PREFIX = "rp_"


def new_project_key() -> str:
    """A public Releaseo project key: ``rp_`` and 32 URL-safe random characters (192 bits)."""
    return PROJECT_KEY_PREFIX + secrets.token_urlsafe(24)


def ensure_project_key(db: Connection, project_id: str) -> str:
    """The project's public Releaseo key, issued now if it has none: the board, roadmap and
    identify routes need it even before a widget config exists (a row without settings)."""
    row = _widget_row(db, project_id)
    if row is not None:
        return str(row["project_key"])
    key, now = new_project_key(), now_iso()
    db.execute(
        "INSERT INTO releaseo_widgets (project_id, project_key, settings, version, created_at, updated_at)"
        " VALUES (?, ?, NULL, 0, ?, ?)",
        (project_id, key, now, now),
    )
    return key


def _widget_row(db: Connection, project_id: str) -> Row | None:
    row: Row | None = db.execute("SELECT * FROM releaseo_widgets WHERE project_id = ?", (project_id,)).fetchone()
    return row


def _widget_view(project: authz.ProjectAccess, row: Row) -> dict[str, Any]:
    return {
        "projectId": project.id,
        "project": project.key,
        "projectKey": row["project_key"],
        "settings": orjson.loads(row["settings"]),
        "version": row["version"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


@router.route(
    "GET", "/projects/{projectId}/widget-config", summary="Get the project's Releaseo widget config", headers=ORG
)
async def get_widget_config(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        row = _widget_row(db, project.id)
    if row is None or row["settings"] is None:
        raise not_found("widget config")
    return _widget_view(project, row)


@router.route(
    "PUT",
    "/projects/{projectId}/widget-config",
    summary="Create (201) or replace (200) the widget config; the first create issues the project key",
    body=WidgetConfigBody,
    headers=ORG,
    status=201,
    responses=(200, 413),
)
async def put_widget_config(ctx: Ctx) -> Any:
    body: WidgetConfigBody = ctx.body
    settings = encode_bounded(body.settings, "settings", MAX_SETTINGS_BYTES, MAX_SETTINGS_DEPTH).decode()
    # No await between this read and the commit: within a worker the status matches what commit does.
    with ctx.services.store.read() as db:
        existing = _widget_row(db, project_access(db, ctx, "write").id)
    creating = existing is None or existing["settings"] is None

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _widget_row(w.db, project.id)
        now = now_iso()
        if row is None:
            action = "widget.create"
            w.db.execute(
                "INSERT INTO releaseo_widgets (project_id, project_key, settings, version, created_at, updated_at)"
                " VALUES (?, ?, ?, 1, ?, ?)",
                (project.id, new_project_key(), settings, now, now),
            )
        elif row["settings"] is None:
            action = "widget.create"
            w.db.execute(
                "UPDATE releaseo_widgets SET settings = ?, version = version + 1, created_at = ?, updated_at = ?"
                " WHERE project_id = ?",
                (settings, now, now, project.id),
            )
        else:
            action = "widget.update"
            w.db.execute(
                "UPDATE releaseo_widgets SET settings = ?, version = version + 1, updated_at = ? WHERE project_id = ?",
                (settings, now, project.id),
            )
        row = _widget_row(w.db, project.id)
        assert row is not None
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            action,
            f"widget:{project.key}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"projectKey": row["project_key"], "version": row["version"]},
        )
        return _widget_view(project, row)

    return ctx.commit(change, status=201 if creating else 200)


@router.route(
    "DELETE",
    "/projects/{projectId}/widget-config",
    summary="Remove the widget config (admin); the project key is kept for a later re-create",
    body=RemoveBody,
    headers=ORG,
)
async def delete_widget_config(ctx: Ctx) -> Any:
    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "admin")
        row = _widget_row(w.db, project.id)
        if row is None or row["settings"] is None:
            raise not_found("widget config")
        w.db.execute(
            "UPDATE releaseo_widgets SET settings = NULL, version = version + 1, updated_at = ? WHERE project_id = ?",
            (now_iso(), project.id),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "widget.remove",
            f"widget:{project.key}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"projectKey": row["project_key"], "version": row["version"] + 1},
        )
        return {"projectId": project.id, "project": project.key, "projectKey": row["project_key"], "deleted": True}

    return ctx.commit(change)
