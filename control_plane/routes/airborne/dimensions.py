"""Airborne dimensions (``/organisations/applications/dimension``...): standard ones (a JSON
schema of their values) and cohort ones (which segment a standard dimension, see
:mod:`control_plane.routes.airborne.cohorts`).

Dimensions have positions 1..n; moving or deleting one renumbers the rest. A dimension that a
cohort dimension depends on, or that an open or live release targets, cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from control_plane import releases_snapshot as rs
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.airborne.common import APP, PageQuery, app_access, dumps, loads, paginate
from control_plane.routes.airborne.models import AirborneCreateDimension, AirborneUpdateDimension
from control_plane.routes.airborne.responses import DimensionList, DimensionResponse
from control_plane.store import new_id, now_iso

router = Router("airborne-dimensions", shape="airborne", required_headers=APP)

BASE = "/organisations/applications/dimension"
RESERVED = {"create", "list"}  # path segments of the dimension routes


def find_dimension(db: Connection, project_id: str, name: str) -> Row | None:
    row: Row | None = db.execute(
        "SELECT * FROM ab_dimensions WHERE project_id = ? AND name = ?", (project_id, name)
    ).fetchone()
    return row


def require_dimension(db: Connection, project_id: str, name: str) -> Row:
    row = find_dimension(db, project_id, name)
    if row is None:
        raise ApiError(404, f"dimension {name} not found")
    return row


def dimension_view(db: Connection, row: Row) -> dict[str, Any]:
    cohort = row["dimension_type"] == "cohort"
    return {
        "dimension": row["name"],
        "position": row["position"],
        "schema": rs.cohort_view(db, row) if cohort else loads(row["schema"]),
        "description": row["description"],
        "change_reason": row["change_reason"],
        "mandatory": bool(row["mandatory"]),
        "dimension_type": row["dimension_type"],
        "depends_on": row["depends_on"],
    }


def _renumber(db: Connection, order: list[str]) -> None:
    for i, dim_id in enumerate(order, start=1):
        db.execute("UPDATE ab_dimensions SET position = ? WHERE id = ?", (i, dim_id))


def _ordered_ids(db: Connection, project_id: str) -> list[str]:
    return [
        r["id"]
        for r in db.execute(
            "SELECT id FROM ab_dimensions WHERE project_id = ? ORDER BY position, created_at", (project_id,)
        )
    ]


def _json_type_ok(value: Any, t: str) -> bool:
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "null":
        return value is None
    return False  # object/array values are not dimension values


def check_dimension_value(db: Connection, dim: Row, value: Any, field: str) -> None:
    """A release context value must fit its dimension: a cohort name, or the standard schema's type/enum."""
    if dim["dimension_type"] == "cohort":
        names = rs.cohort_view(db, dim)["enum"]
        if value not in names:
            raise validation(f"{dim['name']} must be one of its cohorts {names}", field, "invalid_value")
        return
    schema = loads(dim["schema"])
    types = schema.get("type")
    listed = types if isinstance(types, list) else [types] if isinstance(types, str) else []
    if listed and not any(_json_type_ok(value, t) for t in listed):
        raise validation(f"{dim['name']} must be of type {types}", field, "invalid_type")
    if isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        raise validation(f"{dim['name']} must be one of {schema['enum']}", field, "invalid_value")


@router.route(
    "POST",
    f"{BASE}/create",
    summary="Create a standard or cohort dimension",
    body=AirborneCreateDimension,
    headers=APP,
    responses=(409,),
    response=DimensionResponse,
)
async def create_dimension(ctx: Ctx) -> Any:
    body: AirborneCreateDimension = ctx.body
    if body.dimension in RESERVED:
        raise validation(f"{body.dimension} is reserved", "dimension", "reserved")
    if body.dimension_type == "standard":
        if body.schema_ is None:
            raise validation("standard dimensions need a schema", "schema", "missing")
        if body.depends_on is not None:
            raise validation("only cohort dimensions depend on another dimension", "depends_on", "not_allowed")
    else:
        if body.depends_on is None:
            raise validation("cohort dimensions need depends_on", "depends_on", "missing")
        if body.schema_ is not None:
            raise validation("cohort dimensions get a generated schema", "schema", "not_allowed")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        if find_dimension(w.db, app.id, body.dimension) is not None:
            raise conflict(f"dimension {body.dimension} already exists")
        if body.depends_on is not None:
            base = find_dimension(w.db, app.id, body.depends_on)
            if base is None or base["dimension_type"] != "standard":
                raise validation(f"no standard dimension named {body.depends_on}", "depends_on", "not_found")
        position = (
            int(w.db.execute("SELECT COUNT(*) FROM ab_dimensions WHERE project_id = ?", (app.id,)).fetchone()[0]) + 1
        )
        now = now_iso()
        dim_id = new_id()
        w.db.execute(
            "INSERT INTO ab_dimensions (id, project_id, name, description, position, dimension_type, schema,"
            " depends_on, change_reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                dim_id,
                app.id,
                body.dimension,
                body.description,
                position,
                body.dimension_type,
                dumps(body.schema_ or {}),
                body.depends_on,
                w.change_reason or "",
                now,
                now,
            ),
        )
        row = w.db.execute("SELECT * FROM ab_dimensions WHERE id = ?", (dim_id,)).fetchone()
        if row["dimension_type"] == "cohort":
            rs.validate_cohort_dimension(w.db, row)
        w.audit(
            "dimension.create",
            f"dimension:{body.dimension}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"dimension_type": body.dimension_type, "depends_on": body.depends_on},
        )
        w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)
        view = dimension_view(w.db, row)
        del view["mandatory"]
        return view

    return ctx.commit(change)


@router.route(
    "GET",
    f"{BASE}/list",
    summary="Dimensions of the application by position",
    query=PageQuery,
    headers=APP,
    response=DimensionList,
)
async def list_dimensions(ctx: Ctx) -> Any:
    q: PageQuery = ctx.query
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        rows, total, pages = paginate(
            db, q, "SELECT * FROM ab_dimensions WHERE project_id = ? ORDER BY position", (app.id,)
        )
        data = [dimension_view(db, r) for r in rows]
    return {"total_pages": pages, "total_items": total, "data": data}


@router.route(
    "PUT",
    f"{BASE}/{{dimension_name}}",
    summary="Move a dimension to another position",
    body=AirborneUpdateDimension,
    headers=APP,
    response=DimensionResponse,
)
async def update_dimension(ctx: Ctx) -> Any:
    body: AirborneUpdateDimension = ctx.body
    name = ctx.path("dimension_name")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        row = require_dimension(w.db, app.id, name)
        before = row["position"]
        if body.position is not None:
            order = _ordered_ids(w.db, app.id)
            if body.position > len(order):
                raise validation(f"position must be between 1 and {len(order)}", "position", "out_of_range")
            order.remove(row["id"])
            order.insert(body.position - 1, row["id"])
            _renumber(w.db, order)
        w.db.execute(
            "UPDATE ab_dimensions SET change_reason = ?, updated_at = ? WHERE id = ?",
            (body.change_reason, now_iso(), row["id"]),
        )
        w.audit(
            "dimension.update",
            f"dimension:{name}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"position": {"from": before, "to": body.position or before}},
        )
        w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)
        return dimension_view(w.db, w.db.execute("SELECT * FROM ab_dimensions WHERE id = ?", (row["id"],)).fetchone())

    return ctx.commit(change)


@router.route(
    "DELETE",
    f"{BASE}/{{dimension_name}}",
    summary="Delete a dimension (not while cohorts or releases use it)",
    headers=APP,
    responses=(409,),
)
async def delete_dimension(ctx: Ctx) -> Any:
    name = ctx.path("dimension_name")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        row = require_dimension(w.db, app.id, name)
        dependents = [
            r["name"]
            for r in w.db.execute(
                "SELECT name FROM ab_dimensions WHERE project_id = ? AND depends_on = ? ORDER BY name", (app.id, name)
            )
        ]
        if dependents:
            raise conflict(f"cohort dimensions {dependents} depend on {name}")
        live = rs.live_release_ids(w.db, app.id)
        for rel in w.db.execute("SELECT id, status, dimensions FROM ab_releases WHERE project_id = ?", (app.id,)):
            in_use = rel["status"] in ("CREATED", "INPROGRESS") or rel["id"] in live
            if in_use and name in loads(rel["dimensions"]):
                raise conflict(f"release {rel['id']} targets dimension {name}")
        w.db.execute("DELETE FROM ab_dimensions WHERE id = ?", (row["id"],))
        _renumber(w.db, _ordered_ids(w.db, app.id))
        w.audit("dimension.delete", f"dimension:{name}", organisation_id=app.organisation_id, project_id=app.id)
        w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)
        return {}

    return ctx.commit(change)
