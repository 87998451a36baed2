"""Changelog entries (``/projects/{projectId}/changelog``...): published ones are served with the
roadmap snapshot (``GET /sdk/roadmap/snapshot``, ``changelog``), each to its audience.

Audience modes (``audience.py``): all users, a saved segment (its published snapshot is copied
when the audience is set, so an entry's readers do not change when the segment is edited,
republished or deleted later), or a custom condition. Drafts are never published;
``status: published`` stamps ``publishedAt`` once.

Roles: reading ``read``; creating, editing and deleting ``write``.
"""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.errors import not_found, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.releaseo.audience import audience_view, stored_audience
from control_plane.routes.releaseo.common import ORG, decode_cursor, encode_cursor, project_access
from control_plane.routes.releaseo.models import CreateChangelogEntry, ListQuery, RemoveBody, UpdateChangelogEntry
from control_plane.routes.releaseo.widgets import ensure_project_key
from control_plane.store import new_id, now_iso

router = Router("releaseo")

BASE = "/projects/{projectId}/changelog"


def _view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "body": row["body"],
        "status": row["status"],
        "audience": audience_view(row["audience"]),
        "publishedAt": row["published_at"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def _entry(db: Connection, project_id: str, entry_id: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM releaseo_changelog_entries WHERE id = ? AND project_id = ?", (entry_id, project_id)
    ).fetchone()
    if row is None:
        raise not_found("changelog entry")
    return row


@router.route(
    "GET", BASE, summary="List changelog entries, newest first (cursor pagination)", query=ListQuery, headers=ORG
)
async def list_changelog(ctx: Ctx) -> Any:
    query: ListQuery = ctx.query
    before = decode_cursor("cl", query.cursor) if query.cursor else None
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        rows = db.execute(
            "SELECT * FROM releaseo_changelog_entries WHERE project_id = ?"
            + (" AND seq < ?" if before is not None else "")
            + " ORDER BY seq DESC LIMIT ?",
            (project.id, *([before] if before is not None else []), query.limit + 1),
        ).fetchall()
    page = rows[: query.limit]
    next_cursor = encode_cursor("cl", page[-1]["seq"]) if len(rows) > query.limit else None
    return {"items": [_view(r) for r in page], "next_cursor": next_cursor}


@router.route(
    "POST",
    BASE,
    summary="Create a changelog entry (draft unless status published)",
    body=CreateChangelogEntry,
    headers=ORG,
    status=201,
)
async def create_changelog_entry(ctx: Ctx) -> Any:
    body: CreateChangelogEntry = ctx.body

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        audience = stored_audience(w.db, project.id, body.audience) if body.audience is not None else None
        ensure_project_key(w.db, project.id)
        entry_id, now = new_id(), now_iso()
        w.db.execute(
            "INSERT INTO releaseo_changelog_entries (id, project_id, title, body, status, audience, published_at,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry_id,
                project.id,
                body.title,
                body.body,
                body.status,
                audience,
                now if body.status == "published" else None,
                now,
                now,
            ),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "changelog.create",
            f"changelog_entry:{entry_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"title": body.title, "status": body.status, "audience": audience_view(audience)["mode"]},
        )
        return _view(_entry(w.db, project.id, entry_id))

    return ctx.commit(change, status=201)


@router.route("GET", BASE + "/{id}", summary="Get a changelog entry with its stored audience", headers=ORG)
async def get_changelog_entry(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        return _view(_entry(db, project.id, ctx.path("id")))


@router.route(
    "PATCH",
    BASE + "/{id}",
    summary="Edit, publish or retarget a changelog entry",
    body=UpdateChangelogEntry,
    headers=ORG,
)
async def update_changelog_entry(ctx: Ctx) -> Any:
    body: UpdateChangelogEntry = ctx.body
    fields = body.model_fields_set & {"title", "body", "status", "audience"}
    if not fields:
        raise validation("nothing to update: send title, body, status or audience", "body", "empty_update")
    for name in fields & {"title", "status"}:
        if getattr(body, name) is None:
            raise validation(f"{name} cannot be null", name, "null")
    entry_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _entry(w.db, project.id, entry_id)
        audience = row["audience"]
        if "audience" in fields:
            audience = stored_audience(w.db, project.id, body.audience) if body.audience is not None else None
        status = body.status or row["status"]
        published_at = row["published_at"] if status == "published" else None
        w.db.execute(
            "UPDATE releaseo_changelog_entries SET title = ?, body = ?, status = ?, audience = ?, published_at = ?,"
            " updated_at = ? WHERE id = ?",
            (
                body.title or row["title"],
                body.body if body.body is not None else row["body"],
                status,
                audience,
                published_at or (now_iso() if status == "published" else None),
                now_iso(),
                entry_id,
            ),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "changelog.update",
            f"changelog_entry:{entry_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"fields": sorted(fields), "status": status},
        )
        return _view(_entry(w.db, project.id, entry_id))

    return ctx.commit(change)


@router.route("DELETE", BASE + "/{id}", summary="Delete a changelog entry", body=RemoveBody, headers=ORG)
async def delete_changelog_entry(ctx: Ctx) -> Any:
    entry_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _entry(w.db, project.id, entry_id)
        w.db.execute("DELETE FROM releaseo_changelog_entries WHERE id = ?", (entry_id,))
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "changelog.delete",
            f"changelog_entry:{entry_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"title": row["title"]},
        )
        return {"id": entry_id, "deleted": True}

    return ctx.commit(change)
