"""Releaseo saved segments (``/projects/{projectId}/segments``...).

A segment is a reusable Reflag filter tree, validated by compiling it with the evaluator. It is
edited as a draft; publishing freezes an immutable numbered snapshot of the draft, so whatever
stores a published version keeps seeing the same definition (seed 000, "saved segment targeting
stores a snapshot"): changelog entries and targeted roadmap items copy the version they target
(``audience.py``). Every published version stays readable (``/versions``), also after the
segment is deleted (the versions are kept; what targeted them must stay explainable). Publishing
a draft equal to the latest version mints no new version. Lists page with an opaque cursor.
"""

from __future__ import annotations

from typing import Any

import orjson

import evaluator
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, not_found, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.releaseo import common
from control_plane.routes.releaseo.common import ORG, encode_bounded, project_access
from control_plane.routes.releaseo.models import CreateSegment, ListQuery, PublishSegment, RemoveBody, UpdateSegment
from control_plane.store import new_id, now_iso

router = Router("releaseo")

MAX_DEFINITION_BYTES = 64 * 1024
MAX_DEFINITION_DEPTH = 64
_FILTER_PATH = "$.features[0].targeting.rules[0].filter"


def definition_field(path: str) -> str:
    """``definition`` plus the part of an evaluator error path after the rule's ``.filter``."""
    return "definition" + path[len(_FILTER_PATH) :] if path.startswith(_FILTER_PATH) else "definition"


def compile_definition(definition: dict[str, Any]) -> str:
    """The definition as stored JSON, after the evaluator compiled it; 400 naming the bad node."""
    encoded = encode_bounded(definition, "definition", MAX_DEFINITION_BYTES, MAX_DEFINITION_DEPTH)
    doc = b'{"features":[{"key":"segment","targeting":{"version":1,"rules":[{"filter":' + encoded + b"}]}}]}"
    try:
        evaluator.Snapshot(doc)
    except evaluator.RuleError as e:
        raise ApiError(
            400,
            f"definition does not compile: {e.reason}",
            details=[{"field": definition_field(e.path), "code": "invalid_rule", "message": e.reason}],
        ) from None
    except evaluator.EvaluatorError as e:
        raise validation(f"definition does not compile: {e}", "definition", "invalid_rule") from None
    return encoded.decode()


_SEGMENT_SQL = (
    "SELECT s.*, v.version AS pub_version, v.name AS pub_name, v.description AS pub_description,"
    " v.definition AS pub_definition, v.published_at AS pub_at FROM releaseo_segments s"
    " LEFT JOIN releaseo_segment_versions v ON v.segment_id = s.id"
    " AND v.version = (SELECT MAX(version) FROM releaseo_segment_versions WHERE segment_id = s.id) "
)


def _segment_view(row: Row) -> dict[str, Any]:
    published = None
    changed = True
    if row["pub_version"] is not None:
        published = {
            "version": row["pub_version"],
            "name": row["pub_name"],
            "description": row["pub_description"],
            "definition": orjson.loads(row["pub_definition"]),
            "publishedAt": row["pub_at"],
        }
        changed = (row["name"], row["description"], row["definition"]) != (
            row["pub_name"],
            row["pub_description"],
            row["pub_definition"],
        )
    return {
        "id": row["id"],
        "projectId": row["project_id"],
        "name": row["name"],
        "description": row["description"],
        "definition": orjson.loads(row["definition"]),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "published": published,
        "hasUnpublishedChanges": changed,
    }


def _segment(db: Connection, project_id: str, segment_id: str) -> Row:
    row: Row | None = db.execute(
        _SEGMENT_SQL + "WHERE s.id = ? AND s.project_id = ?", (segment_id, project_id)
    ).fetchone()
    if row is None:
        raise not_found("segment")
    return row


def _name_taken(db: Connection, project_id: str, name: str, except_id: str = "") -> None:
    if db.execute(
        "SELECT 1 FROM releaseo_segments WHERE project_id = ? AND name = ? AND id != ?", (project_id, name, except_id)
    ).fetchone():
        raise conflict("a segment with this name already exists in the project")


def encode_cursor(seq: int) -> str:
    return common.encode_cursor("seg", seq)


def decode_cursor(cursor: str) -> int:
    return common.decode_cursor("seg", cursor)


@router.route(
    "POST",
    "/projects/{projectId}/segments",
    summary="Create a segment (draft)",
    body=CreateSegment,
    headers=ORG,
    status=201,
    responses=(409, 413),
)
async def create_segment(ctx: Ctx) -> Any:
    body: CreateSegment = ctx.body
    definition = compile_definition(body.definition)

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        _name_taken(w.db, project.id, body.name)
        segment_id, now = new_id(), now_iso()
        w.db.execute(
            "INSERT INTO releaseo_segments (id, project_id, name, description, definition, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (segment_id, project.id, body.name, body.description, definition, now, now),
        )
        w.audit(
            "segment.create",
            f"segment:{segment_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"name": body.name},
        )
        return _segment_view(_segment(w.db, project.id, segment_id))

    return ctx.commit(change, status=201)


@router.route(
    "GET",
    "/projects/{projectId}/segments",
    summary="List segments, newest first (cursor pagination)",
    query=ListQuery,
    headers=ORG,
)
async def list_segments(ctx: Ctx) -> Any:
    query: ListQuery = ctx.query
    before = decode_cursor(query.cursor) if query.cursor else None
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        rows = db.execute(
            _SEGMENT_SQL
            + "WHERE s.project_id = ?"
            + (" AND s.seq < ?" if before is not None else "")
            + " ORDER BY s.seq DESC LIMIT ?",
            (project.id, *([before] if before is not None else []), query.limit + 1),
        ).fetchall()
    page = rows[: query.limit]
    next_cursor = encode_cursor(page[-1]["seq"]) if len(rows) > query.limit else None
    return {"items": [_segment_view(r) for r in page], "next_cursor": next_cursor}


@router.route(
    "GET",
    "/projects/{projectId}/segments/{id}",
    summary="Get a segment: its draft and its latest published version",
    headers=ORG,
)
async def get_segment(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        return _segment_view(_segment(db, project.id, ctx.path("id")))


@router.route(
    "PATCH",
    "/projects/{projectId}/segments/{id}",
    summary="Update a segment's draft (published versions do not change)",
    body=UpdateSegment,
    headers=ORG,
    responses=(409, 413),
)
async def update_segment(ctx: Ctx) -> Any:
    body: UpdateSegment = ctx.body
    fields = body.model_fields_set & {"name", "description", "definition"}
    if not fields:
        raise validation("nothing to update: send name, description or definition", "body", "empty_update")
    for name in ("name", "definition"):
        if name in fields and getattr(body, name) is None:
            raise validation(f"{name} cannot be null", name, "null")
    definition = compile_definition(body.definition) if body.definition is not None else None
    segment_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _segment(w.db, project.id, segment_id)
        name = body.name if body.name is not None else row["name"]
        if name != row["name"]:
            _name_taken(w.db, project.id, name, segment_id)
        description = row["description"] if "description" not in fields else body.description or ""
        w.db.execute(
            "UPDATE releaseo_segments SET name = ?, description = ?, definition = ?, updated_at = ? WHERE id = ?",
            (name, description, definition if definition is not None else row["definition"], now_iso(), segment_id),
        )
        w.audit(
            "segment.update",
            f"segment:{segment_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"fields": sorted(fields)},
        )
        return _segment_view(_segment(w.db, project.id, segment_id))

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/projects/{projectId}/segments/{id}",
    summary="Delete a segment's draft (admin); its published versions stay readable",
    body=RemoveBody,
    headers=ORG,
)
async def delete_segment(ctx: Ctx) -> Any:
    segment_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "admin")
        row = _segment(w.db, project.id, segment_id)
        w.db.execute("DELETE FROM releaseo_segments WHERE id = ?", (segment_id,))
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "segment.delete",
            f"segment:{segment_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"name": row["name"], "publishedVersion": row["pub_version"]},
        )
        return {"id": segment_id, "deleted": True}

    return ctx.commit(change)


@router.route(
    "POST",
    "/projects/{projectId}/segments/{id}/publish",
    summary="Publish the draft as a new immutable version (previous + 1); an unchanged draft mints none",
    body=PublishSegment,
    headers=ORG,
)
async def publish_segment(ctx: Ctx) -> Any:
    segment_id = ctx.path("id")

    def change(w: Write) -> dict[str, Any]:
        project = project_access(w.db, ctx, "write")
        row = _segment(w.db, project.id, segment_id)
        current = _segment_view(row)
        if not current["hasUnpublishedChanges"]:
            # The draft is the latest version already: a repeated publish is not a new version.
            return {**current, "unchanged": True}
        version = (row["pub_version"] or 0) + 1
        w.db.execute(
            "INSERT INTO releaseo_segment_versions"
            " (project_id, segment_id, version, name, description, definition, published_at, published_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                project.id,
                segment_id,
                version,
                row["name"],
                row["description"],
                row["definition"],
                now_iso(),
                w.principal.id,
            ),
        )
        w.touch(project.id, features=())  # no flag reads Releaseo's tables (control_plane.incremental)
        w.audit(
            "segment.publish",
            f"segment:{segment_id}",
            organisation_id=project.organisation_id,
            project_id=project.id,
            details={"version": version},
        )
        return {**_segment_view(_segment(w.db, project.id, segment_id)), "unchanged": False}

    return ctx.commit(change)


def _version_view(row: Row) -> dict[str, Any]:
    return {
        "segmentId": row["segment_id"],
        "version": row["version"],
        "name": row["name"],
        "description": row["description"],
        "definition": orjson.loads(row["definition"]),
        "publishedAt": row["published_at"],
        "publishedBy": row["published_by"],
    }


@router.route(
    "GET",
    "/projects/{projectId}/segments/{id}/versions",
    summary="Every published version of a segment, newest first (also after the segment was deleted)",
    headers=ORG,
)
async def list_segment_versions(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        rows = db.execute(
            "SELECT * FROM releaseo_segment_versions WHERE project_id = ? AND segment_id = ? ORDER BY version DESC",
            (project.id, ctx.path("id")),
        ).fetchall()
        exists = db.execute(
            "SELECT 1 FROM releaseo_segments WHERE id = ? AND project_id = ?", (ctx.path("id"), project.id)
        ).fetchone()
    if not rows and not exists:
        raise not_found("segment")
    return {"items": [_version_view(r) for r in rows], "segmentDeleted": exists is None}


@router.route(
    "GET",
    "/projects/{projectId}/segments/{id}/versions/{version}",
    summary="One published version of a segment (also after the segment was deleted)",
    headers=ORG,
)
async def get_segment_version(ctx: Ctx) -> Any:
    raw = ctx.path("version")
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise validation("version must be a positive integer", "version", "invalid")
    with ctx.services.store.read() as db:
        project = project_access(db, ctx, "read")
        row = db.execute(
            "SELECT * FROM releaseo_segment_versions WHERE project_id = ? AND segment_id = ? AND version = ?",
            (project.id, ctx.path("id"), int(raw)),
        ).fetchone()
    if row is None:
        raise not_found("segment version")
    return _version_view(row)
