"""Roadmap items (``/projects/{projectId}/roadmap``...): what ``GET /sdk/roadmap/snapshot`` and
``/sdk/roadmap/{id}`` serve.

``visibility``: ``public`` (everyone), ``internal_only`` (never published: the edge does not hold
it), ``audience_targeted`` (published with its audience, shown only to identified users the
audience matches; the audience is a saved segment's snapshot or a custom condition,
``audience.py``). Items are ordered by ``position``: ``PUT .../roadmap/order`` puts the ids it is
given first, in that order (all of them: a full reorder; one: move it to the top), the others
after them as they were, and renumbers every item.

Roles: reading ``read``; creating, editing, ordering and deleting ``write``.
"""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.errors import not_found, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.releaseo.audience import audience_view, stored_audience
from control_plane.routes.releaseo.common import ORG, project_access
from control_plane.routes.releaseo.models import CreateRoadmapItem, OrderRoadmap, RemoveBody, UpdateRoadmapItem
from control_plane.routes.releaseo.widgets import ensure_project_key
from control_plane.store import new_id, now_iso

router = Router("releaseo")

BASE = "/projects/{projectId}/roadmap"


def _view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "status": row["status"],
        "visibility": row["visibility"],
        "audience": audience_view(row["audience"]) if row["visibility"] == "audience_targeted" else None,
        "position": row["position"],
        "featureRequestId": row["feature_request_id"],
        "followerCount": row["followers"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


_SELECT = (
    "SELECT i.*, (SELECT COUNT(*) FROM releaseo_roadmap_follows f WHERE f.item_id = i.id AND f.following = 1)"
    " AS followers FROM releaseo_roadmap_items i "
)


def _item(db: Connection, project_id: str, item_id: str) -> Row:
    row: Row | None = db.execute(_SELECT + "WHERE i.id = ? AND i.project_id = ?", (item_id, project_id)).fetchone()
    if row is None:
        raise not_found("roadmap item")
    return row


def _check_request(db: Connection, project_id: str, request_id: str | None) -> None:
    if (
        request_id is not None
        and not db.execute(
            "SELECT 1 FROM releaseo_feature_requests WHERE id = ? AND project_id = ?", (request_id, project_id)
        ).fetchone()
    ):
        raise validation("no such feature request in this project", "featureRequestId", "not_found")


def _audience_for(db: Connection, project_id: str, visibility: str, body: Any, current: str | None) -> str | None:
    """The audience to store: required (and not ``all``) for a targeted item, dropped otherwise."""
    if visibility != "audience_targeted":
        return None
    if body is None:
        if current is None:
            raise validation("audience is required for visibility audience_targeted", "audience", "required")
        return current
    if body.mode == "all":
        raise validation("a targeted item needs a segment or condition audience", "audience.mode", "invalid")
    return stored_audience(db, project_id, body)


@router.route("GET", BASE, summary="List roadmap items in order (every visibility)", headers=ORG)
async def list_roadmap(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        rows = db.execute(_SELECT + "WHERE i.project_id = ? ORDER BY i.position, i.seq", (project.id,)).fetchall()
    return {"items": [_view(r) for r in rows]}


@router.route("POST", BASE, summary="Create a roadmap item", body=CreateRoadmapItem, headers=ORG, status=201)
async def create_roadmap_item(ctx: Ctx) -> Any:
    body: CreateRoadmapItem = ctx.body

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        _check_request(w.db, project.id, body.featureRequestId)
        audience = _audience_for(w.db, project.id, body.visibility, body.audience, None)
        ensure_project_key(w.db, project.id)
        position = body.position
        if position is None:
            last = w.db.execute(
                "SELECT MAX(position) AS p FROM releaseo_roadmap_items WHERE project_id = ?", (project.id,)
            ).fetchone()
            position = 0 if last["p"] is None else last["p"] + 1
        item_id, now = new_id(), now_iso()
        w.db.execute(
            "INSERT INTO releaseo_roadmap_items (id, project_id, title, description, status, visibility, audience,"
            " position, feature_request_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item_id,
                project.id,
                body.title,
                body.description,
                body.status,
                body.visibility,
                audience,
                position,
                body.featureRequestId,
                now,
                now,
            ),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "roadmap.create",
            f"roadmap_item:{item_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"title": body.title, "visibility": body.visibility},
        )
        return _view(_item(w.db, project.id, item_id))

    return ctx.commit(change, status=201)


@router.route(
    "PUT",
    BASE + "/order",
    summary="Order the roadmap: the ids given come first, in that order; the others follow as they were",
    body=OrderRoadmap,
    headers=ORG,
)
async def order_roadmap(ctx: Ctx) -> Any:
    body: OrderRoadmap = ctx.body

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        current = [
            r["id"]
            for r in w.db.execute(
                "SELECT id FROM releaseo_roadmap_items WHERE project_id = ? ORDER BY position, seq", (project.id,)
            )
        ]
        moved = set(body.ids)
        if moved - set(current) or len(moved) != len(body.ids):
            raise validation("ids must name roadmap items of the project, each once", "ids", "invalid_ids")
        order = [*body.ids, *(i for i in current if i not in moved)]
        now = now_iso()
        w.db.executemany(
            "UPDATE releaseo_roadmap_items SET position = ?, updated_at = ? WHERE id = ?",
            [(i, now, item_id) for i, item_id in enumerate(order)],
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "roadmap.order",
            f"roadmap:{project.key}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"moved": len(body.ids), "items": len(order)},
        )
        rows = w.db.execute(_SELECT + "WHERE i.project_id = ? ORDER BY i.position, i.seq", (project.id,)).fetchall()
        return {"items": [_view(r) for r in rows]}

    return ctx.commit(change)


@router.route("GET", BASE + "/{id}", summary="Get a roadmap item", headers=ORG)
async def get_roadmap_item(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        return _view(_item(db, project.id, ctx.path("id")))


@router.route(
    "PATCH",
    BASE + "/{id}",
    summary="Edit a roadmap item: text, status, visibility, audience, position",
    body=UpdateRoadmapItem,
    headers=ORG,
)
async def update_roadmap_item(ctx: Ctx) -> Any:
    body: UpdateRoadmapItem = ctx.body
    names = {"title", "description", "status", "visibility", "audience", "position", "featureRequestId"}
    fields = body.model_fields_set & names
    if not fields:
        raise validation(f"nothing to update: send one of {sorted(names)}", "body", "empty_update")
    for name in fields & {"title", "status", "visibility", "position"}:
        if getattr(body, name) is None:
            raise validation(f"{name} cannot be null", name, "null")
    item_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _item(w.db, project.id, item_id)
        if "featureRequestId" in fields:
            _check_request(w.db, project.id, body.featureRequestId)
        visibility = body.visibility or row["visibility"]
        audience = _audience_for(w.db, project.id, visibility, body.audience, row["audience"])

        def pick(name: str, column: str) -> Any:
            return getattr(body, name) if name in fields else row[column]

        w.db.execute(
            "UPDATE releaseo_roadmap_items SET title = ?, description = ?, status = ?, visibility = ?, audience = ?,"
            " position = ?, feature_request_id = ?, updated_at = ? WHERE id = ?",
            (
                pick("title", "title"),
                pick("description", "description") or "",
                pick("status", "status"),
                visibility,
                audience,
                pick("position", "position"),
                pick("featureRequestId", "feature_request_id"),
                now_iso(),
                item_id,
            ),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "roadmap.update",
            f"roadmap_item:{item_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"fields": sorted(fields), "visibility": visibility},
        )
        return _view(_item(w.db, project.id, item_id))

    return ctx.commit(change)


@router.route("DELETE", BASE + "/{id}", summary="Delete a roadmap item and its follows", body=RemoveBody, headers=ORG)
async def delete_roadmap_item(ctx: Ctx) -> Any:
    item_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _item(w.db, project.id, item_id)
        w.db.execute("DELETE FROM releaseo_roadmap_items WHERE id = ?", (item_id,))
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "roadmap.delete",
            f"roadmap_item:{item_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"title": row["title"]},
        )
        return {"id": item_id, "deleted": True}

    return ctx.commit(change)
