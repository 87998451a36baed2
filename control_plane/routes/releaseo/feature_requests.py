"""Feature-request moderation (``/projects/{projectId}/feature-requests``...).

Public submissions arrive through the edge as ``pending`` (``control_plane/releaseo_intake.py``)
and stay off the public board until a moderator approves them here (``PATCH`` with
``reviewStatus``); only ``kind = feature_request`` and ``approved`` ones are published. The
dashboard may also create requests itself (approved unless it says otherwise). Every change that
can alter the public board touches the project, so the board is republished with the change.

Roles: reading needs ``read``; creating, moderating and deleting requests or comments ``write``.
"""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.errors import not_found, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.releaseo.common import ORG, decode_cursor, encode_cursor, project_access
from control_plane.routes.releaseo.models import (
    CreateFeatureRequest,
    FeatureRequestQuery,
    RemoveBody,
    UpdateFeatureRequest,
)
from control_plane.routes.releaseo.widgets import ensure_project_key
from control_plane.store import new_id, now_iso

router = Router("releaseo")

BASE = "/projects/{projectId}/feature-requests"
_UPDATABLE = {
    "reviewStatus": "review_status",
    "status": "status",
    "kind": "kind",
    "title": "title",
    "description": "description",
    "categoryId": "category_id",
}


def request_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "projectId": row["project_id"],
        "kind": row["kind"],
        "reviewStatus": row["review_status"],
        "status": row["status"],
        "title": row["title"],
        "description": row["description"],
        "categoryId": row["category_id"],
        "authorUserId": row["author_user_id"],
        "authorName": row["author_name"],
        "source": row["source"],
        "voteCount": row["vote_count"],
        "commentCount": row["comment_count"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "reviewedAt": row["reviewed_at"],
        "reviewedBy": row["reviewed_by"],
    }


def _request(db: Connection, project_id: str, request_id: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM releaseo_feature_requests WHERE id = ? AND project_id = ?", (request_id, project_id)
    ).fetchone()
    if row is None:
        raise not_found("feature request")
    return row


def check_category(db: Connection, project_id: str, category_id: str | None) -> None:
    if (
        category_id is not None
        and not db.execute(
            "SELECT 1 FROM releaseo_categories WHERE id = ? AND project_id = ?", (category_id, project_id)
        ).fetchone()
    ):
        raise validation("no such category in this project", "categoryId", "not_found")


@router.route(
    "GET",
    BASE,
    summary="List feature requests, newest first, any review status",
    query=FeatureRequestQuery,
    headers=ORG,
)
async def list_feature_requests(ctx: Ctx) -> Any:
    query: FeatureRequestQuery = ctx.query
    sql = "SELECT * FROM releaseo_feature_requests WHERE project_id = ?"
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        params: list[Any] = [project.id]
        for column, value in (
            ("review_status", query.reviewStatus),
            ("status", query.status),
            ("kind", query.kind),
            ("category_id", query.categoryId),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if query.cursor:
            sql += " AND seq < ?"
            params.append(decode_cursor("fr", query.cursor))
        rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, query.limit + 1)).fetchall()
    page = rows[: query.limit]
    next_cursor = encode_cursor("fr", page[-1]["seq"]) if len(rows) > query.limit else None
    return {"items": [request_view(r) for r in page], "next_cursor": next_cursor}


@router.route(
    "POST",
    BASE,
    summary="Create a feature request from the dashboard",
    body=CreateFeatureRequest,
    headers=ORG,
    status=201,
)
async def create_feature_request(ctx: Ctx) -> Any:
    body: CreateFeatureRequest = ctx.body

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        check_category(w.db, project.id, body.categoryId)
        ensure_project_key(w.db, project.id)
        request_id, now = new_id(), now_iso()
        reviewed = (now, w.principal.id) if body.reviewStatus != "pending" else (None, None)
        w.db.execute(
            "INSERT INTO releaseo_feature_requests (id, project_id, kind, review_status, status, title, description,"
            " category_id, source, created_at, updated_at, reviewed_at, reviewed_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'dashboard', ?, ?, ?, ?)",
            (
                request_id,
                project.id,
                body.kind,
                body.reviewStatus,
                body.status,
                body.title,
                body.description,
                body.categoryId,
                now,
                now,
                *reviewed,
            ),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "feature_request.create",
            f"feature_request:{request_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"title": body.title, "reviewStatus": body.reviewStatus},
        )
        return request_view(_request(w.db, project.id, request_id))

    return ctx.commit(change, status=201)


@router.route("GET", BASE + "/{id}", summary="Get a feature request (any review status)", headers=ORG)
async def get_feature_request(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        return request_view(_request(db, project.id, ctx.path("id")))


@router.route(
    "PATCH",
    BASE + "/{id}",
    summary="Moderate a feature request: approve or reject (reviewStatus), status, edits, category",
    body=UpdateFeatureRequest,
    headers=ORG,
)
async def update_feature_request(ctx: Ctx) -> Any:
    body: UpdateFeatureRequest = ctx.body
    fields = body.model_fields_set & set(_UPDATABLE)
    if not fields:
        raise validation(f"nothing to update: send one of {sorted(_UPDATABLE)}", "body", "empty_update")
    for name in fields - {"categoryId", "description"}:
        if getattr(body, name) is None:
            raise validation(f"{name} cannot be null", name, "null")
    request_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _request(w.db, project.id, request_id)
        if "categoryId" in fields:
            check_category(w.db, project.id, body.categoryId)
        now = now_iso()
        values = {_UPDATABLE[f]: getattr(body, f) for f in fields}
        if "description" in values and values["description"] is None:
            values["description"] = ""
        if "review_status" in values and values["review_status"] != row["review_status"]:
            values |= {"reviewed_at": now, "reviewed_by": w.principal.id}
        values["updated_at"] = now
        w.db.execute(
            "UPDATE releaseo_feature_requests SET " + ", ".join(f"{c} = ?" for c in values) + " WHERE id = ?",
            (*values.values(), request_id),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "feature_request.update",
            f"feature_request:{request_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"fields": sorted(fields), "reviewStatus": values.get("review_status", row["review_status"])},
        )
        return request_view(_request(w.db, project.id, request_id))

    return ctx.commit(change)


@router.route(
    "DELETE",
    BASE + "/{id}",
    summary="Delete a feature request with its votes and comments",
    body=RemoveBody,
    headers=ORG,
)
async def delete_feature_request(ctx: Ctx) -> Any:
    request_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _request(w.db, project.id, request_id)
        w.db.execute("DELETE FROM releaseo_feature_requests WHERE id = ?", (request_id,))
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "feature_request.delete",
            f"feature_request:{request_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"title": row["title"]},
        )
        return {"id": request_id, "deleted": True}

    return ctx.commit(change)


def _comment_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "requestId": row["request_id"],
        "userId": row["user_id"],
        "authorName": row["author_name"],
        "body": row["body"],
        "source": row["source"],
        "createdAt": row["created_at"],
    }


@router.route("GET", BASE + "/{id}/comments", summary="List a feature request's comments, oldest first", headers=ORG)
async def list_comments(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        _request(db, project.id, ctx.path("id"))
        rows = db.execute(
            "SELECT * FROM releaseo_comments WHERE request_id = ? ORDER BY seq", (ctx.path("id"),)
        ).fetchall()
    return {"items": [_comment_view(r) for r in rows]}


@router.route(
    "DELETE",
    BASE + "/{id}/comments/{commentId}",
    summary="Delete a comment (moderation)",
    body=RemoveBody,
    headers=ORG,
)
async def delete_comment(ctx: Ctx) -> Any:
    request_id, comment_id = ctx.path("id"), ctx.path("commentId")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        _request(w.db, project.id, request_id)
        deleted = w.db.execute(
            "DELETE FROM releaseo_comments WHERE id = ? AND request_id = ?", (comment_id, request_id)
        ).rowcount
        if not deleted:
            raise not_found("comment")
        w.db.execute(
            "UPDATE releaseo_feature_requests"
            " SET comment_count = CASE WHEN comment_count > 0 THEN comment_count - 1 ELSE 0 END WHERE id = ?",
            (request_id,),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "feature_request.comment.delete",
            f"comment:{comment_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"requestId": request_id},
        )
        return {"id": comment_id, "requestId": request_id, "deleted": True}

    return ctx.commit(change)
