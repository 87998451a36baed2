"""Airborne packages (``/packages``...): an index file plus files, resolved to exact file versions
when the package is created; package versions count up per application, and ``tag:T`` finds the
newest package with that tag.
"""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Row, contains, contains_pattern
from control_plane.errors import ApiError, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.airborne.common import (
    APP,
    app_access,
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
from control_plane.routes.airborne.models import AirborneCreatePackage, PackageListQuery, PackageQuery
from control_plane.routes.airborne.responses import PackageList, PackageResponse
from control_plane.store import new_id, now_iso

router = Router("airborne-files", shape="airborne", required_headers=APP)


def package_view(row: Row) -> dict[str, Any]:
    return {
        "index": row["index_file"],
        "tag": row["tag"],
        "version": row["version"],
        "files": loads(row["files"]),
        "created_at": row["created_at"],
    }


@router.route(
    "POST",
    "/packages",
    summary="Create a package (index + files); versions count up per application",
    body=AirborneCreatePackage,
    headers=APP,
    response=PackageResponse,
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
    response=PackageList,
)
async def list_packages(ctx: Ctx) -> Any:
    q: PackageListQuery = ctx.query
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        sql, params = "SELECT * FROM ab_packages WHERE project_id = ?", [app.id]
        if q.search:
            sql += f" AND {contains('index_file')}"
            params.append(contains_pattern(q.search))
        rows, total, pages = paginate(db, q, sql + " ORDER BY version DESC", tuple(params))
    return {"data": [package_view(r) for r in rows], "total_items": total, "total_pages": pages}


@router.route(
    "GET",
    "/packages",
    summary="A package by key (tag:T = newest with that tag, or version:N)",
    query=PackageQuery,
    headers=APP,
    response=PackageResponse,
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
