"""Feature-request categories (``/projects/{projectId}/feature-request-categories``...): what
``GET /sdk/feature-requests/categories`` lists and submissions may name. Published with the board.

Roles: reading ``read``, creating and editing ``write``, deleting ``admin`` (its requests become
uncategorised).
"""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.errors import conflict, not_found, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.releaseo.common import ORG, project_access
from control_plane.routes.releaseo.models import CreateCategory, RemoveBody, UpdateCategory
from control_plane.routes.releaseo.widgets import ensure_project_key
from control_plane.store import new_id, now_iso

router = Router("releaseo")

BASE = "/projects/{projectId}/feature-request-categories"


def _view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "position": row["position"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def _category(db: Connection, project_id: str, category_id: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM releaseo_categories WHERE id = ? AND project_id = ?", (category_id, project_id)
    ).fetchone()
    if row is None:
        raise not_found("category")
    return row


def _name_taken(db: Connection, project_id: str, name: str, except_id: str = "") -> None:
    if db.execute(
        "SELECT 1 FROM releaseo_categories WHERE project_id = ? AND name = ? AND id != ?", (project_id, name, except_id)
    ).fetchone():
        raise conflict("a category with this name already exists in the project")


@router.route("GET", BASE, summary="List feature-request categories in board order", headers=ORG)
async def list_categories(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        rows = db.execute(
            "SELECT * FROM releaseo_categories WHERE project_id = ? ORDER BY position, seq", (project.id,)
        ).fetchall()
    return {"items": [_view(r) for r in rows]}


@router.route("POST", BASE, summary="Create a category", body=CreateCategory, headers=ORG, status=201, responses=(409,))
async def create_category(ctx: Ctx) -> Any:
    body: CreateCategory = ctx.body

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        _name_taken(w.db, project.id, body.name)
        ensure_project_key(w.db, project.id)
        category_id, now = new_id(), now_iso()
        w.db.execute(
            "INSERT INTO releaseo_categories (id, project_id, name, description, position, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (category_id, project.id, body.name, body.description, body.position, now, now),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "category.create",
            f"category:{category_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"name": body.name},
        )
        return _view(_category(w.db, project.id, category_id))

    return ctx.commit(change, status=201)


@router.route(
    "PATCH",
    BASE + "/{id}",
    summary="Rename, describe or move a category",
    body=UpdateCategory,
    headers=ORG,
    responses=(409,),
)
async def update_category(ctx: Ctx) -> Any:
    body: UpdateCategory = ctx.body
    fields = body.model_fields_set & {"name", "description", "position"}
    if not fields:
        raise validation("nothing to update: send name, description or position", "body", "empty_update")
    for name in fields:
        if getattr(body, name) is None:
            raise validation(f"{name} cannot be null", name, "null")
    category_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _category(w.db, project.id, category_id)
        if body.name is not None and body.name != row["name"]:
            _name_taken(w.db, project.id, body.name, category_id)
        w.db.execute(
            "UPDATE releaseo_categories SET name = ?, description = ?, position = ?, updated_at = ? WHERE id = ?",
            (
                body.name if body.name is not None else row["name"],
                body.description if body.description is not None else row["description"],
                body.position if body.position is not None else row["position"],
                now_iso(),
                category_id,
            ),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "category.update",
            f"category:{category_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"fields": sorted(fields)},
        )
        return _view(_category(w.db, project.id, category_id))

    return ctx.commit(change)


@router.route(
    "DELETE",
    BASE + "/{id}",
    summary="Delete a category (admin); its requests become uncategorised",
    body=RemoveBody,
    headers=ORG,
)
async def delete_category(ctx: Ctx) -> Any:
    category_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "admin")
        row = _category(w.db, project.id, category_id)
        w.db.execute("DELETE FROM releaseo_categories WHERE id = ?", (category_id,))
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "category.delete",
            f"category:{category_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"name": row["name"]},
        )
        return {"id": category_id, "deleted": True}

    return ctx.commit(change)
