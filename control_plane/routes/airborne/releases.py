"""Airborne releases (``/releases``...).

A release pins a package version (its index and files split into ``important`` and ``lazy``),
extra ``resources``, a config (the application's latest config with the release's overrides) and
a dimension context. It is an experiment with two variants: ``control`` (whatever serves that
context today) and ``experimental`` (this release).

State machine: ``CREATED`` (traffic 0) → ramp → ``INPROGRESS`` (traffic 0..100, up or down) →
conclude with a variant → ``CONCLUDED``. An open release (``CREATED`` or ``INPROGRESS``) can be
discarded → ``DISCARDED``: every device it had goes back to what it gets without it. Lowering the
traffic sends back exactly the devices whose bucket is above the new line (the edge's bucketing is
deterministic). The first release of an application has nothing to compare with and goes live at
once (concluded with experimental). One release per dimension context can be open at a time.

A release whose files are not all verified (a size and a SHA-256 checksum recorded, see
``files.py``) cannot go live: it is created as a draft even when it is the first, and ramping it
above 0% or concluding it with the experimental variant is a 409 naming the files.
"""

from __future__ import annotations

from typing import Any

from control_plane import releases_snapshot as rs
from control_plane.authz import ProjectAccess
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.airborne.common import (
    APP,
    app_access,
    canonical,
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
from control_plane.routes.airborne.configs import latest_config
from control_plane.routes.airborne.dimensions import check_dimension_value
from control_plane.routes.airborne.files import served_file
from control_plane.routes.airborne.models import (
    DEFAULT_TIMEOUT_MS,
    AirborneConclude,
    AirborneCreateRelease,
    AirborneDiscard,
    AirborneRamp,
    AirborneReleaseConfig,
    AirborneReleasePackage,
    ReleaseListQuery,
)
from control_plane.routes.airborne.responses import ExperimentChange, ReleaseDetail, ReleaseList, ReleaseResponse
from control_plane.store import new_id, now_iso

router = Router("airborne-releases", shape="airborne", required_headers=APP)

STATUSES = ("CREATED", "INPROGRESS", "CONCLUDED", "DISCARDED")
OPEN = ("CREATED", "INPROGRESS")


def _release(db: Connection, project_id: str, release_id: str) -> Row:
    row: Row | None = db.execute(
        "SELECT * FROM ab_releases WHERE id = ? AND project_id = ?", (release_id, project_id)
    ).fetchone()
    if row is None:
        raise ApiError(404, f"release {release_id} not found")
    return row


def release_view(row: Row) -> dict[str, Any]:
    config = loads(row["config"])
    return {
        "id": row["id"],
        "created_at": row["created_at"],
        "config": config,
        "package": loads(row["package"]),
        "resources": loads(row["resources"]),
        "dimensions": loads(row["dimensions"]),
        "experiment": {
            "experiment_id": row["id"],
            "package_version": row["package_version"],
            "config_version": config["version"],
            "created_at": row["created_at"],
            "traffic_percentage": row["traffic_percentage"],
            "status": row["status"],
            "variants": rs.variants(row["id"]),
            "chosen_variant": _chosen_id(row),
            "concluded_at": row["concluded_at"],
        },
    }


def _chosen_id(row: Row) -> str | None:
    return f"{row['id']}-{row['chosen_variant']}" if row["chosen_variant"] else None


def release_detail(row: Row, app: ProjectAccess) -> dict[str, Any]:
    """The create/list shape plus the flat fields of the seed's ``GET /releases/{release_id}``."""
    view = release_view(row)
    package = view["package"]
    return {
        **view,
        "experiment_id": row["id"],
        "org_id": app.organisation_name,
        "app_id": app.name,
        "package_version": row["package_version"],
        "config_version": view["config"]["version"],
        "traffic_percentage": row["traffic_percentage"],
        "status": row["status"],
        "variants": rs.variants(row["id"]),
        "configuration": {
            "package": {k: package[k] for k in ("properties", "important", "lazy")},
            "resources": view["resources"],
        },
    }


def _resolve_list(db: Connection, project_id: str, keys: list[str], field: str) -> list[Row]:
    rows: list[Row] = []
    seen: set[str] = set()
    for i, key in enumerate(keys):
        row = find_file(db, project_id, parse_file_key(key, f"{field}[{i}]"))
        if row is None:
            raise validation(f"file {key} not found", f"{field}[{i}]", "not_found")
        if row["file_path"] in seen:
            raise validation(f"file path {row['file_path']} is listed twice", f"{field}[{i}]", "duplicate")
        seen.add(row["file_path"])
        rows.append(row)
    return rows


def _file_row(db: Connection, project_id: str, resolved: str) -> Row:
    key = parse_file_key(resolved, "package")
    row = find_file(db, project_id, key)
    if row is None:  # files are never deleted; a package only holds existing versions
        raise ApiError(500, f"package file {resolved} is missing")
    return row


def _split_package(
    db: Connection, project_id: str, pkg: Row, body: AirborneReleasePackage | None
) -> tuple[list[Row], list[Row]]:
    """``(important, lazy)`` file rows: given lists must be package files; the rest fills the list not given."""
    members = [_file_row(db, project_id, k) for k in loads(pkg["files"])]
    member_ids = {r["id"] for r in members}
    important_keys = body.important if body else None
    lazy_keys = body.lazy if body else None
    chosen: dict[str, list[Row]] = {}
    for name, keys in (("important", important_keys), ("lazy", lazy_keys)):
        if keys is None:
            continue
        rows = _resolve_list(db, project_id, keys, f"package.{name}")
        for i, row in enumerate(rows):
            if row["id"] not in member_ids:
                raise validation(
                    f"{keys[i]} is not a file of package version {pkg['version']}",
                    f"package.{name}[{i}]",
                    "not_in_package",
                )
        chosen[name] = rows
    if "important" in chosen and "lazy" in chosen:
        important_ids = {r["id"] for r in chosen["important"]}
        for i, row in enumerate(chosen["lazy"]):
            if row["id"] in important_ids:
                raise validation(
                    f"{lazy_keys[i] if lazy_keys else ''} is both important and lazy", f"package.lazy[{i}]", "duplicate"
                )
    used = {r["id"] for rows in chosen.values() for r in rows}
    rest = [r for r in members if r["id"] not in used]
    if "important" in chosen and "lazy" in chosen:
        if rest:
            missing = [file_id(r["file_path"], r["version"]) for r in rest]
            raise validation(f"package files {missing} are neither important nor lazy", "package", "incomplete")
        return chosen["important"], chosen["lazy"]
    if "lazy" in chosen:
        return rest, chosen["lazy"]
    return chosen.get("important", rest), rest if "important" in chosen else []


def unverified_files(package: dict[str, Any], resources: list[dict[str, Any]]) -> list[str]:
    """File ids of a release (index, package files, resources) with no size or checksum."""
    files = [package["index"], *package["important"], *package["lazy"], *resources]
    return [f["file_id"] for f in files if not f.get("checksum") or not f.get("size")]


def _must_be_verified(row: Row, action: str) -> None:
    pending = unverified_files(loads(row["package"]), loads(row["resources"]))
    if pending:
        raise conflict(
            f"release {row['id']} cannot be {action}: files {pending} are not verified (no size and checksum);"
            " add their host to the control plane's fetch allow-list and create them again, or send size and checksum"
        )


def _next(db: Connection, column: str, project_id: str) -> int:
    return next_number(db, "ab_releases", column, project_id)


@router.route(
    "POST",
    "/releases",
    summary="Create a release (an experiment; the first release goes live at once)",
    body=AirborneCreateRelease,
    headers=APP,
    responses=(409,),
    response=ReleaseResponse,
)
async def create_release(ctx: Ctx) -> Any:
    body: AirborneCreateRelease = ctx.body
    package_key = parse_package_key(body.package_id, "package_id") if body.package_id else None

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        db = w.db
        if package_key is not None:
            pkg = find_package(db, app.id, *package_key)
            if pkg is None:
                raise validation(f"package {body.package_id} not found", "package_id", "not_found")
        else:
            pkg = db.execute(
                "SELECT * FROM ab_packages WHERE project_id = ? ORDER BY version DESC LIMIT 1", (app.id,)
            ).fetchone()
            if pkg is None:
                raise validation("the application has no package yet", "package_id", "missing")
        index = _file_row(db, app.id, pkg["index_file"])
        important, lazy = _split_package(db, app.id, pkg, body.package)
        resources = _resolve_list(db, app.id, body.resources or [], "resources")
        package_paths = {index["file_path"], *(r["file_path"] for r in important + lazy)}
        for i, row in enumerate(resources):
            if row["file_path"] in package_paths:
                raise validation(
                    f"{row['file_path']} is already a file of package version {pkg['version']}",
                    f"resources[{i}]",
                    "in_package",
                )

        context = body.dimensions or {}
        for name, value in context.items():
            dim = db.execute("SELECT * FROM ab_dimensions WHERE project_id = ? AND name = ?", (app.id, name)).fetchone()
            if dim is None:
                raise validation(f"no dimension named {name}", f"dimensions.{name}", "not_found")
            check_dimension_value(db, dim, value, f"dimensions.{name}")
        context_key = canonical(context)
        open_row = db.execute(
            "SELECT id FROM ab_releases WHERE project_id = ? AND dimensions_key = ?"
            " AND status IN ('CREATED', 'INPROGRESS')",
            (app.id, context_key),
        ).fetchone()
        if open_row is not None:
            raise conflict(f"release {open_row['id']} is still open for these dimensions; conclude or discard it first")

        base = latest_config(db, app.id)
        overrides = body.config or AirborneReleaseConfig()
        config: dict[str, Any] = {
            "version": overrides.version or (base["config_version"] if base else f"v{pkg['version']}"),
            "config_number": base["number"] if base else 0,
            "boot_timeout": overrides.boot_timeout
            if overrides.boot_timeout is not None
            else (base["boot_timeout"] if base else DEFAULT_TIMEOUT_MS),
            "package_timeout": overrides.package_timeout
            if overrides.package_timeout is not None
            else (base["package_timeout"] if base else DEFAULT_TIMEOUT_MS),
            "properties": {**(loads(base["properties"]) if base else {}), **(overrides.properties or {})},
        }
        if overrides.release_config_timeout is not None:
            config["release_config_timeout"] = overrides.release_config_timeout
        package: dict[str, Any] = {
            "version": pkg["version"],
            "tag": pkg["tag"],
            "index": served_file(index),
            "properties": (body.package.properties if body.package else None) or {},
            "important": [served_file(r) for r in important],
            "lazy": [served_file(r) for r in lazy],
        }
        if body.package is not None and body.package.name:
            package["name"] = body.package.name
        served_resources = [served_file(r) for r in resources]
        first = not rs.live_release_ids(db, app.id) and not unverified_files(package, served_resources)
        now = now_iso()
        release_id = new_id()
        db.execute(
            "INSERT INTO ab_releases (id, project_id, package_version, config, package, resources, dimensions,"
            " dimensions_key, status, traffic_percentage, chosen_variant, created_at, updated_at, concluded_at, seq,"
            " concluded_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                release_id,
                app.id,
                pkg["version"],
                dumps(config),
                dumps(package),
                dumps(served_resources),
                dumps(context),
                context_key,
                "CONCLUDED" if first else "CREATED",
                100 if first else 0,
                "experimental" if first else None,
                now,
                now,
                now if first else None,
                _next(db, "seq", app.id),
                _next(db, "concluded_seq", app.id) if first else None,
            ),
        )
        w.audit(
            "release.create",
            f"release:{release_id}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"package_version": pkg["version"], "dimensions": context, "live": first},
        )
        w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)
        return release_view(_release(db, app.id, release_id))

    return ctx.commit(change)


@router.route(
    "GET",
    "/releases/list",
    summary="Releases of the application, newest first",
    query=ReleaseListQuery,
    headers=APP,
    response=ReleaseList,
)
async def list_releases(ctx: Ctx) -> Any:
    q: ReleaseListQuery = ctx.query
    status = q.status.upper() if q.status else None
    if status is not None and status not in STATUSES:
        raise validation(f"status must be one of {list(STATUSES)}", "query.status", "invalid")
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        sql, params = "SELECT * FROM ab_releases WHERE project_id = ?", [app.id]
        if status:
            sql += " AND status = ?"
            params.append(status)
        rows, total, pages = paginate(db, q, sql + " ORDER BY seq DESC", tuple(params))
    return {"data": [release_view(r) for r in rows], "total_items": total, "total_pages": pages}


@router.route(
    "GET",
    "/releases/{release_id}",
    summary="A release with its experiment",
    headers=APP,
    response=ReleaseDetail,
)
async def get_release(ctx: Ctx) -> Any:
    release_id = ctx.path("release_id")
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        return release_detail(_release(db, app.id, release_id), app)


def _open(row: Row, action: str) -> None:
    if row["status"] not in OPEN:
        raise conflict(f"release {row['id']} is {row['status']}; it cannot be {action}")


@router.route(
    "POST",
    "/releases/{release_id}/ramp",
    summary="Set the experimental variant's traffic (0..100, up or down)",
    body=AirborneRamp,
    headers=APP,
    responses=(409,),
    response=ExperimentChange,
)
async def ramp_release(ctx: Ctx) -> Any:
    body: AirborneRamp = ctx.body
    release_id = ctx.path("release_id")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        row = _release(w.db, app.id, release_id)
        _open(row, "ramped")
        if body.traffic_percentage > 0:
            _must_be_verified(row, "ramped")
        # Once ramped, a release stays INPROGRESS even at 0% (it was seen by devices; the audit
        # log and the list show it as running until it is concluded or discarded).
        status = "INPROGRESS" if body.traffic_percentage > 0 else row["status"]
        w.db.execute(
            "UPDATE ab_releases SET traffic_percentage = ?, status = ?, updated_at = ? WHERE id = ?",
            (body.traffic_percentage, status, now_iso(), row["id"]),
        )
        w.audit(
            "release.ramp",
            f"release:{release_id}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"from": row["traffic_percentage"], "to": body.traffic_percentage},
        )
        w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)
        return {
            "success": True,
            "message": f"Release experiment ramped to {body.traffic_percentage}% traffic",
            "experiment_id": release_id,
            "traffic_percentage": body.traffic_percentage,
        }

    return ctx.commit(change)


@router.route(
    "POST",
    "/releases/{release_id}/conclude",
    summary="Conclude the experiment with a winning variant",
    body=AirborneConclude,
    headers=APP,
    responses=(409,),
    response=ExperimentChange,
)
async def conclude_release(ctx: Ctx) -> Any:
    body: AirborneConclude = ctx.body
    release_id = ctx.path("release_id")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        row = _release(w.db, app.id, release_id)
        _open(row, "concluded")
        options = rs.variants(row["id"])
        chosen = next((v for v in options if body.chosen_variant in (v["id"], v["variant_type"])), None)
        if chosen is None:
            raise validation(
                f"variant {body.chosen_variant} is not one of {[v['id'] for v in options]}",
                "chosen_variant",
                "not_found",
            )
        if chosen["variant_type"] == "experimental":
            _must_be_verified(row, "concluded with its experimental variant")
        now = now_iso()
        w.db.execute(
            "UPDATE ab_releases SET status = 'CONCLUDED', chosen_variant = ?, concluded_at = ?, concluded_seq = ?,"
            " updated_at = ? WHERE id = ?",
            (chosen["variant_type"], now, _next(w.db, "concluded_seq", app.id), now, row["id"]),
        )
        w.audit(
            "release.conclude",
            f"release:{release_id}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"chosen_variant": chosen["id"]},
        )
        w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)
        return {
            "success": True,
            "message": f"Release experiment concluded with variant {chosen['id']}",
            "experiment_id": release_id,
            "chosen_variant": chosen["id"],
        }

    return ctx.commit(change)


@router.route(
    "POST",
    "/releases/{release_id}/discard",
    summary="Discard an open release (created or ramped); its devices go back to their live release",
    body=AirborneDiscard,
    headers=APP,
    responses=(409,),
    response=ExperimentChange,
)
async def discard_release(ctx: Ctx) -> Any:
    release_id = ctx.path("release_id")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        row = _release(w.db, app.id, release_id)
        _open(row, "discarded")
        w.db.execute("UPDATE ab_releases SET status = 'DISCARDED', updated_at = ? WHERE id = ?", (now_iso(), row["id"]))
        w.audit(
            "release.discard",
            f"release:{release_id}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"status": row["status"], "traffic_percentage": row["traffic_percentage"]},
        )
        w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)
        return {"success": True, "message": "Release experiment discarded", "experiment_id": release_id}

    return ctx.commit(change)
