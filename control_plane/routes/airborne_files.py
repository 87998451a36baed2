"""Airborne files (versioned records of downloadable files) and packages (an index plus files).

A file is identified by ``path@version:N`` (``N`` counts up per path) or ``path@tag:T``; a tag
names at most one version of a path. The control plane does not download files: a file created
without ``size`` and ``checksum`` stays ``pending`` (size 0, empty checksum).
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from control_plane.errors import ApiError, conflict, validation
from control_plane.http import Ctx, Router, Write
from control_plane.models import Body
from control_plane.routes.airborne_common import (
    APP,
    MAX_FILE_KEY,
    TAG_PATTERN,
    PageQuery,
    app_access,
    check_json_value,
    dumps,
    file_id,
    find_file,
    find_package,
    loads,
    next_number,
    paginate,
    parse_file_key,
    parse_package_key,
)
from control_plane.store import new_id, now_iso

router = Router("airborne-files")
MAX_METADATA_BYTES = 16_384
FileKeyStr = Annotated[str, Field(min_length=1, max_length=MAX_FILE_KEY)]


class AirborneFileFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    file_path: str = Field(min_length=1, max_length=1024, description="File path identifier")
    url: str = Field(min_length=1, max_length=2048, description="URL where the file can be downloaded")
    tag: str = Field(min_length=1, max_length=128, pattern=TAG_PATTERN, description="Tag, e.g. latest or stable")
    metadata: dict[str, Any] | None = Field(default=None, description="Additional metadata")
    size: int | None = Field(default=None, ge=1, le=2**53, description="Size in bytes (with checksum)")
    checksum: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{64}$", description="SHA-256 hex (with size)")

    @field_validator("file_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if v != v.strip() or any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("must not have surrounding whitespace or control characters")
        if "@version:" in v or "@tag:" in v:
            raise ValueError("must not contain @version: or @tag:")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")) or any(c.isspace() for c in v):
            raise ValueError("must be an http(s) URL without whitespace")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            check_json_value(v, MAX_METADATA_BYTES)
        return v

    @model_validator(mode="after")
    def _size_and_checksum(self) -> AirborneFileFields:
        if (self.size is None) != (self.checksum is None):
            raise ValueError("size and checksum must be given together, or neither")
        return self


class AirborneCreateFile(AirborneFileFields, Body):
    pass


class AirborneBulkFiles(Body):
    files: list[AirborneFileFields] = Field(min_length=1, max_length=500)
    skip_duplicates: bool = Field(description="Skip files whose path and tag already exist instead of failing")


class AirborneRetagFile(Body):
    tag: str = Field(min_length=1, max_length=128, pattern=TAG_PATTERN, description="New tag for the file")


class FileQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_key: str = Field(min_length=1, max_length=MAX_FILE_KEY, description="path@version:N or path@tag:T")


class FileListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=1_000_000, description="Page number (default 1)")
    per_page: int = Field(default=50, ge=1, le=1_000_000, description="Items per page (default 50, at most 200)")
    offset: int | None = Field(default=None, ge=0, le=10**9, description="Items to skip (overrides page)")
    limit: int | None = Field(default=None, ge=1, le=1_000_000, description="Items to return (overrides per_page)")
    search: str | None = Field(default=None, max_length=256, description="Substring of the path or URL")


class AirborneCreatePackage(Body):
    index: str = Field(min_length=1, max_length=MAX_FILE_KEY, description="File key of the package index")
    tag: str = Field(min_length=1, max_length=128, pattern=TAG_PATTERN)
    files: list[FileKeyStr] = Field(max_length=1000, description="File keys (path@version:N or path@tag:T)")


class PackageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    package_key: str = Field(min_length=1, max_length=200, description="tag:T or version:N")


class PackageListQuery(PageQuery):
    search: str | None = Field(default=None, max_length=256, description="Substring of the index file path")


def file_view(row: sqlite3.Row) -> dict[str, Any]:
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


def served_file(row: sqlite3.Row) -> dict[str, Any]:
    """The file as releases carry it."""
    return {
        "file_id": file_id(row["file_path"], row["version"]),
        "file_path": row["file_path"],
        "url": row["url"],
        "checksum": row["checksum"],
        "size": row["size"],
    }


def package_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "index": row["index_file"],
        "tag": row["tag"],
        "version": row["version"],
        "files": loads(row["files"]),
        "created_at": row["created_at"],
    }


def _by_path_and_tag(db: sqlite3.Connection, project_id: str, path: str, tag: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM ab_files WHERE project_id = ? AND file_path = ? AND tag = ?", (project_id, path, tag)
    ).fetchone()
    return row


def _same_file(row: sqlite3.Row, f: AirborneFileFields) -> bool:
    return (
        row["url"] == f.url
        and (f.checksum is None or row["checksum"] == f.checksum.lower())
        and (f.size is None or row["size"] == f.size)
    )


def _insert_file(db: sqlite3.Connection, project_id: str, f: AirborneFileFields) -> sqlite3.Row:
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
    row: sqlite3.Row = db.execute("SELECT * FROM ab_files WHERE id = ?", (row_id,)).fetchone()
    return row


@router.route(
    "POST", "/file", summary="Create a file version from a URL", body=AirborneCreateFile, headers=APP, responses=(409,)
)
async def create_file(ctx: Ctx) -> Any:
    body: AirborneCreateFile = ctx.body

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
)
async def bulk_create_files(ctx: Ctx) -> Any:
    body: AirborneBulkFiles = ctx.body

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


@router.route("GET", "/file", summary="A file by key (path@version:N or path@tag:T)", query=FileQuery, headers=APP)
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
)
async def list_files(ctx: Ctx) -> Any:
    q: FileListQuery = ctx.query
    per_page = min(q.limit if q.limit is not None else q.per_page, 200)
    offset = q.offset if q.offset is not None else (q.page - 1) * per_page
    page = offset // per_page + 1
    where, params = "project_id = ?", []
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        params.append(app.id)
        if q.search:
            where += " AND (instr(lower(file_path), lower(?)) > 0 OR instr(lower(url), lower(?)) > 0)"
            params += [q.search, q.search]
        total = int(db.execute(f"SELECT COUNT(*) FROM ab_files WHERE {where}", params).fetchone()[0])
        rows = db.execute(
            f"SELECT * FROM ab_files WHERE {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
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


# ---------------------------------------------------------------------------------------------
# Packages.


@router.route(
    "POST",
    "/packages",
    summary="Create a package (index + files); versions count up per application",
    body=AirborneCreatePackage,
    headers=APP,
)
async def create_package(ctx: Ctx) -> Any:
    body: AirborneCreatePackage = ctx.body
    index_key = parse_file_key(body.index, "index")
    keys = [parse_file_key(k, f"files[{i}]") for i, k in enumerate(body.files)]

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        index = find_file(w.db, app.id, index_key)
        if index is None:
            raise validation(f"index file {body.index} not found", "index", "not_found")
        resolved: list[str] = []
        paths: dict[str, int] = {}
        for i, key in enumerate(keys):
            row = find_file(w.db, app.id, key)
            if row is None:
                raise validation(f"file {body.files[i]} not found", f"files[{i}]", "not_found")
            if row["file_path"] == index["file_path"]:
                raise validation("the index file cannot also be one of the files", f"files[{i}]", "duplicate")
            if row["file_path"] in paths:
                raise validation(
                    f"duplicate file path {row['file_path']} (also files[{paths[row['file_path']]}])",
                    f"files[{i}]",
                    "duplicate",
                )
            paths[row["file_path"]] = i
            resolved.append(file_id(row["file_path"], row["version"]))
        version = next_number(w.db, "ab_packages", "version", app.id)
        row_id = new_id()
        w.db.execute(
            "INSERT INTO ab_packages (id, project_id, version, tag, index_file, files, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row_id,
                app.id,
                version,
                body.tag,
                file_id(index["file_path"], index["version"]),
                dumps(resolved),
                now_iso(),
            ),
        )
        w.audit(
            "package.create",
            f"package:version:{version}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"tag": body.tag},
        )
        return package_view(w.db.execute("SELECT * FROM ab_packages WHERE id = ?", (row_id,)).fetchone())

    return ctx.commit(change)


@router.route(
    "GET",
    "/packages/list",
    summary="Packages of the application, newest version first",
    query=PackageListQuery,
    headers=APP,
)
async def list_packages(ctx: Ctx) -> Any:
    q: PackageListQuery = ctx.query
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        sql, params = "SELECT * FROM ab_packages WHERE project_id = ?", [app.id]
        if q.search:
            sql += " AND instr(lower(index_file), lower(?)) > 0"
            params.append(q.search)
        rows, total, pages = paginate(db, q, sql + " ORDER BY version DESC", tuple(params))
    return {"data": [package_view(r) for r in rows], "total_items": total, "total_pages": pages}


@router.route(
    "GET",
    "/packages",
    summary="A package by key (tag:T = newest with that tag, or version:N)",
    query=PackageQuery,
    headers=APP,
)
async def get_package(ctx: Ctx) -> Any:
    q: PackageQuery = ctx.query
    version, tag = parse_package_key(q.package_key, "query.package_key")
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        row = find_package(db, app.id, version, tag)
    if row is None:
        raise ApiError(404, f"package {q.package_key} not found")
    return package_view(row)
