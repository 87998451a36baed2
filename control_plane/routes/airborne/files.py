"""Airborne files (``/file``...): versioned records of downloadable files.

A file is identified by ``path@version:N`` (``N`` counts up per path) or ``path@tag:T``; a tag
names at most one version of a path. Size and checksum (SHA-256 hex, Airborne's format): when the
URL's host is on the fetch allow-list the control plane downloads the file before saving it
(``bundle_fetch``) and records what it measured; a download that fails is a 400 naming why, and a
``size``/``checksum`` sent with the file must match the bytes. Off the allow-list, a size and
checksum the uploader sends are recorded as Airborne records them (its CLI computes them from the
bytes it uploads); without them the file stays ``pending`` (size 0, empty checksum), and a release
holding a pending file cannot go live. Creating a file that exists with the same URL/checksum
returns it; with a different one it is a 409.
"""

from __future__ import annotations

from typing import Any

from control_plane.bundle_fetch import FetchError, fetch_digest
from control_plane.dialect import Connection, Row, contains, contains_pattern
from control_plane.errors import ApiError, conflict, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.airborne.common import APP, app_access, dumps, file_id, find_file, loads, parse_file_key
from control_plane.routes.airborne.models import (
    AirborneBulkFiles,
    AirborneCreateFile,
    AirborneFileFields,
    AirborneRetagFile,
    FileListQuery,
    FileQuery,
)
from control_plane.routes.airborne.responses import BulkFiles, FileList, FileResponse
from control_plane.store import new_id, now_iso

router = Router("airborne-files", shape="airborne", required_headers=APP)


def file_view(row: Row) -> dict[str, Any]:
    return {
        "id": file_id(row["file_path"], row["version"]),
        "file_path": row["file_path"],
        "url": row["url"],
        "version": row["version"],
        "tag": row["tag"],
        "size": row["size"],
        "checksum": row["checksum"],
        "metadata": loads(row["metadata"]),
        "status": "ready" if row["size"] > 0 else "pending",
        "created_at": row["created_at"],
    }


def served_file(row: Row) -> dict[str, Any]:
    """The file as releases carry it."""
    return {
        "file_id": file_id(row["file_path"], row["version"]),
        "file_path": row["file_path"],
        "url": row["url"],
        "checksum": row["checksum"],
        "size": row["size"],
    }


def _by_path_and_tag(db: Connection, project_id: str, path: str, tag: str) -> Row | None:
    row: Row | None = db.execute(
        "SELECT * FROM ab_files WHERE project_id = ? AND file_path = ? AND tag = ?", (project_id, path, tag)
    ).fetchone()
    return row


def _same_file(row: Row, f: AirborneFileFields) -> bool:
    return (
        row["url"] == f.url
        and (f.checksum is None or row["checksum"] == f.checksum.lower())
        and (f.size is None or row["size"] == f.size)
    )


def _insert_file(db: Connection, project_id: str, f: AirborneFileFields) -> Row:
    latest = db.execute(
        "SELECT COALESCE(MAX(version), 0) FROM ab_files WHERE project_id = ? AND file_path = ?",
        (project_id, f.file_path),
    ).fetchone()[0]
    row_id = new_id()
    db.execute(
        "INSERT INTO ab_files (id, project_id, file_path, version, url, tag, size, checksum, metadata, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row_id,
            project_id,
            f.file_path,
            int(latest) + 1,
            f.url,
            f.tag,
            f.size or 0,
            (f.checksum or "").lower(),
            dumps(f.metadata or {}),
            now_iso(),
        ),
    )
    row: Row = db.execute("SELECT * FROM ab_files WHERE id = ?", (row_id,)).fetchone()
    return row


async def _measured(ctx: Ctx, files: list[AirborneFileFields], field: str) -> list[AirborneFileFields]:
    """``files`` with the size and checksum measured from their URLs where the allow-list permits.

    The caller's write access is checked first, so nobody without it makes the control plane
    download anything."""
    with ctx.services.store.read() as db:
        app_access(ctx, db, "write")
    policy = ctx.services.settings.fetch_policy
    out: list[AirborneFileFields] = []
    for i, f in enumerate(files):
        where = field.format(i=i)
        if not policy.allows(f.url):
            out.append(f)
            continue
        try:
            digest = await fetch_digest(f.url, policy)
        except FetchError as e:
            raise validation(f"{f.url} cannot be verified: {e}", f"{where}url", "fetch_failed") from None
        if f.checksum is not None and (f.checksum.lower(), f.size) != (digest.checksum, digest.size):
            raise validation(
                f"{f.url} has size {digest.size} and checksum {digest.checksum}, not the ones sent",
                f"{where}checksum",
                "checksum_mismatch",
            )
        out.append(f.model_copy(update={"size": digest.size, "checksum": digest.checksum}))
    return out


@router.route(
    "POST",
    "/file",
    summary="Create a file version from a URL",
    body=AirborneCreateFile,
    headers=APP,
    responses=(409,),
    response=FileResponse,
)
async def create_file(ctx: Ctx) -> Any:
    body = (await _measured(ctx, [ctx.body], ""))[0]

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        existing = _by_path_and_tag(w.db, app.id, body.file_path, body.tag)
        if existing is not None:
            if not _same_file(existing, body):
                raise conflict(
                    f"{body.file_path}@tag:{body.tag} already exists as version {existing['version']} "
                    "with a different URL or checksum"
                )
            row = existing
        else:
            row = _insert_file(w.db, app.id, body)
        w.audit(
            "file.create",
            f"file:{file_id(row['file_path'], row['version'])}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"tag": body.tag, "existing": existing is not None},
        )
        return file_view(row)

    return ctx.commit(change)


@router.route(
    "POST",
    "/file/bulk",
    summary="Create several file versions at once",
    body=AirborneBulkFiles,
    headers=APP,
    responses=(409,),
    response=BulkFiles,
)
async def bulk_create_files(ctx: Ctx) -> Any:
    sent: AirborneBulkFiles = ctx.body
    body = sent.model_copy(update={"files": await _measured(ctx, sent.files, "files[{i}].")})

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        created: list[dict[str, Any]] = []
        skipped: list[str] = []
        for i, f in enumerate(body.files):
            if _by_path_and_tag(w.db, app.id, f.file_path, f.tag) is not None:
                if body.skip_duplicates:
                    skipped.append(f.file_path)
                    continue
                raise ApiError(
                    409,
                    f"{f.file_path}@tag:{f.tag} already exists",
                    details=[{"field": f"files[{i}]", "code": "duplicate", "message": "path and tag already exist"}],
                )
            created.append(file_view(_insert_file(w.db, app.id, f)))
        w.audit(
            "file.bulk_create",
            f"application:{app.key}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"created": [c["id"] for c in created], "skipped": skipped},
        )
        return {
            "created_files": created,
            "skipped_files": skipped,
            "total_created": len(created),
            "total_skipped": len(skipped),
        }

    return ctx.commit(change)


@router.route(
    "GET",
    "/file",
    summary="A file by key (path@version:N or path@tag:T)",
    query=FileQuery,
    headers=APP,
    response=FileResponse,
)
async def get_file(ctx: Ctx) -> Any:
    q: FileQuery = ctx.query
    key = parse_file_key(q.file_key, "query.file_key")
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        row = find_file(db, app.id, key)
    if row is None:
        raise ApiError(404, f"file {q.file_key} not found")
    return file_view(row)


@router.route(
    "GET",
    "/file/list",
    summary="Files of the application, newest first, with search and pagination",
    query=FileListQuery,
    headers=APP,
    response=FileList,
)
async def list_files(ctx: Ctx) -> Any:
    q: FileListQuery = ctx.query
    per_page, offset = q.size, q.skip
    page = offset // per_page + 1
    where, params = "project_id = ?", []
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        params.append(app.id)
        if q.search:
            where += f" AND ({contains('file_path')} OR {contains('url')})"
            params += [contains_pattern(q.search)] * 2
        total = int(db.execute(f"SELECT COUNT(*) FROM ab_files WHERE {where}", params).fetchone()[0])
        rows = db.execute(
            f"SELECT * FROM ab_files WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (*params, per_page, offset),
        ).fetchall()
    return {"files": [file_view(r) for r in rows], "total": total, "page": page, "per_page": per_page}


@router.route(
    "PATCH",
    "/file/{file_key:path}",
    summary="Move a file version to another tag",
    body=AirborneRetagFile,
    headers=APP,
    responses=(409,),
    response=FileResponse,
)
async def update_file(ctx: Ctx) -> Any:
    body: AirborneRetagFile = ctx.body
    raw_key = ctx.path("file_key")
    key = parse_file_key(raw_key, "file_key")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        row = find_file(w.db, app.id, key)
        if row is None:
            raise ApiError(404, f"file {raw_key} not found")
        holder = _by_path_and_tag(w.db, app.id, row["file_path"], body.tag)
        if holder is not None and holder["id"] != row["id"]:
            raise conflict(f"tag {body.tag} is already on {file_id(holder['file_path'], holder['version'])}")
        w.db.execute("UPDATE ab_files SET tag = ? WHERE id = ?", (body.tag, row["id"]))
        w.audit(
            "file.retag",
            f"file:{file_id(row['file_path'], row['version'])}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"from": row["tag"], "to": body.tag},
        )
        return file_view(w.db.execute("SELECT * FROM ab_files WHERE id = ?", (row["id"],)).fetchone())

    return ctx.commit(change)
