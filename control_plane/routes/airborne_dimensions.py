"""Airborne dimensions: standard ones (a JSON schema) and cohort ones (segments of a standard dimension).

A cohort dimension ``depends_on`` a standard dimension and holds checkpoints (``semver_gt/ge``,
``str_gt/ge`` against a value) and groups (explicit member lists with a priority, 0 first). Its
value for a context is the first cohort, in priority order, whose JSON Logic rule is true, else
``otherwise``: groups by priority, then checkpoints from the highest value down (see
:mod:`control_plane.releases_snapshot`). Every cohort write compiles the rules before it commits.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from control_plane import releases_snapshot as rs
from control_plane.authz import ProjectAccess
from control_plane.errors import ApiError, conflict, validation
from control_plane.http import Ctx, Router, Write
from control_plane.models import Body
from control_plane.routes.airborne_common import (
    APP,
    NAME_PATTERN,
    PageQuery,
    app_access,
    check_json_value,
    dumps,
    loads,
    paginate,
)
from control_plane.store import new_id, now_iso

router = Router("airborne-dimensions")
BASE = "/organisations/applications/dimension"
MAX_SCHEMA_BYTES = 32_768
RESERVED = {"create", "list"}  # path segments of the dimension routes
JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
DimensionName = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Member = Annotated[str, Field(min_length=1, max_length=256)]


class AirborneCreateDimension(Body):
    dimension: DimensionName = Field(description="Dimension name")
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON schema of the values (standard dimensions only)"
    )
    description: str = Field(max_length=1000)
    dimension_type: Literal["standard", "cohort"] = "standard"
    depends_on: DimensionName | None = Field(default=None, description="Standard dimension a cohort segments")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        check_json_value(v, MAX_SCHEMA_BYTES)
        types = v.get("type")
        listed = types if isinstance(types, list) else [types] if types is not None else []
        if not all(isinstance(t, str) and t in JSON_TYPES for t in listed) or (isinstance(types, list) and not types):
            raise ValueError(f"type must be one of {sorted(JSON_TYPES)} or a list of them")
        if "enum" in v and (not isinstance(v["enum"], list) or not v["enum"]):
            raise ValueError("enum must be a non-empty list")
        return v


class AirborneUpdateDimension(Body):
    position: int | None = Field(default=None, ge=1, le=10_000, description="New position (1 = first)")
    change_reason: str = Field(min_length=1, max_length=1000)


class AirborneCreateCheckpoint(Body):
    name: DimensionName = Field(description="Cohort name")
    value: str = Field(min_length=1, max_length=256, description="Version or string to compare against")
    comparator: Literal["semver_gt", "semver_ge", "str_gt", "str_ge"]


class AirborneCreateGroup(Body):
    name: DimensionName = Field(description="Cohort name")
    members: list[Member] = Field(min_length=1, max_length=10_000, description="Values of the dimension")


class AirbornePriorityMap(Body):
    priority_map: dict[Annotated[str, Field(max_length=64)], Annotated[int, Field(ge=0, le=10_000)]] = Field(
        max_length=1000, description="Group name to priority (0 = evaluated first)"
    )


# ---------------------------------------------------------------------------------------------


def _dimension(db: sqlite3.Connection, project_id: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM ab_dimensions WHERE project_id = ? AND name = ?", (project_id, name)
    ).fetchone()
    return row


def _require_dimension(db: sqlite3.Connection, project_id: str, name: str) -> sqlite3.Row:
    row = _dimension(db, project_id, name)
    if row is None:
        raise ApiError(404, f"dimension {name} not found")
    return row


def _cohort_dimension(db: sqlite3.Connection, project_id: str, name: str) -> sqlite3.Row:
    row = _require_dimension(db, project_id, name)
    if row["dimension_type"] != "cohort":
        raise validation(f"dimension {name} is not a cohort dimension", "cohort_dimension_name", "not_cohort")
    return row


def dimension_view(db: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
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


def _renumber(db: sqlite3.Connection, order: list[str]) -> None:
    for i, dim_id in enumerate(order, start=1):
        db.execute("UPDATE ab_dimensions SET position = ? WHERE id = ?", (i, dim_id))


def _ordered_ids(db: sqlite3.Connection, project_id: str) -> list[str]:
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


def check_dimension_value(db: sqlite3.Connection, dim: sqlite3.Row, value: Any, field: str) -> None:
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


def _commit_cohort_change(
    w: Write, app: ProjectAccess, dim: sqlite3.Row, action: str, target: str, details: dict[str, Any]
) -> None:
    rs.validate_cohort_dimension(w.db, dim)
    w.db.execute("UPDATE ab_dimensions SET updated_at = ? WHERE id = ?", (now_iso(), dim["id"]))
    w.audit(action, target, organisation_id=app.organisation_id, project_id=app.id, details=details)
    w.touch(app.id)


def _priority_map(db: sqlite3.Connection, dimension_id: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT name, priority FROM ab_cohorts WHERE dimension_id = ? AND kind = 'group' ORDER BY priority, name",
        (dimension_id,),
    )
    return {r["name"]: int(r["priority"]) for r in rows}


# ---------------------------------------------------------------------------------------------
# Dimensions.


@router.route(
    "POST",
    f"{BASE}/create",
    summary="Create a standard or cohort dimension",
    body=AirborneCreateDimension,
    headers=APP,
    responses=(409,),
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
        if _dimension(w.db, app.id, body.dimension) is not None:
            raise conflict(f"dimension {body.dimension} already exists")
        if body.depends_on is not None:
            base = _dimension(w.db, app.id, body.depends_on)
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
        w.touch(app.id)
        view = dimension_view(w.db, row)
        del view["mandatory"]
        return view

    return ctx.commit(change)


@router.route("GET", f"{BASE}/list", summary="Dimensions of the application by position", query=PageQuery, headers=APP)
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
)
async def update_dimension(ctx: Ctx) -> Any:
    body: AirborneUpdateDimension = ctx.body
    name = ctx.path("dimension_name")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        row = _require_dimension(w.db, app.id, name)
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
        w.touch(app.id)
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
        row = _require_dimension(w.db, app.id, name)
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
        w.touch(app.id)
        return {}

    return ctx.commit(change)


# ---------------------------------------------------------------------------------------------
# Cohorts.

COHORT = f"{BASE}/{{cohort_dimension_name}}/cohort"
ALIAS = f"{BASE}/{{cohort_dimension_name}}"


@router.route(
    "GET",
    COHORT,
    summary="Cohorts of a cohort dimension: enum in priority order and JSON Logic definitions",
    headers=APP,
)
async def get_cohorts(ctx: Ctx) -> Any:
    name = ctx.path("cohort_dimension_name")
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        return rs.cohort_view(db, _cohort_dimension(db, app.id, name))


@router.route(
    "POST",
    f"{COHORT}/checkpoint",
    summary="Create a checkpoint cohort (version or string comparison)",
    body=AirborneCreateCheckpoint,
    headers=APP,
    responses=(409,),
)
async def create_checkpoint(ctx: Ctx) -> Any:
    body: AirborneCreateCheckpoint = ctx.body
    name = ctx.path("cohort_dimension_name")
    if body.name == rs.OTHERWISE:
        raise validation(f"{rs.OTHERWISE} is reserved", "name", "reserved")
    if rs.family(body.comparator) == "semver" and not rs.valid_version(body.value):
        raise validation(
            f"{body.value!r} is not a version (MAJOR[.MINOR[.PATCH]] with optional v, prerelease, build)",
            "value",
            "invalid_version",
        )

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        dim = _cohort_dimension(w.db, app.id, name)
        if w.db.execute(
            "SELECT 1 FROM ab_cohorts WHERE dimension_id = ? AND name = ?", (dim["id"], body.name)
        ).fetchone():
            raise conflict(f"cohort {body.name} already exists")
        for cp in w.db.execute("SELECT * FROM ab_cohorts WHERE dimension_id = ? AND kind = 'checkpoint'", (dim["id"],)):
            if rs.family(cp["comparator"]) != rs.family(body.comparator):
                raise validation(
                    f"checkpoints of {name} compare with {rs.family(cp['comparator'])}_* comparators",
                    "comparator",
                    "mixed_comparators",
                )
            if cp["comparator"] == body.comparator and rs.compare_values(body.comparator, cp["value"], body.value) == 0:
                raise conflict(f"checkpoint {cp['name']} already has {body.comparator} {cp['value']}")
        w.db.execute(
            "INSERT INTO ab_cohorts (id, dimension_id, name, kind, comparator, value, created_at)"
            " VALUES (?, ?, ?, 'checkpoint', ?, ?, ?)",
            (new_id(), dim["id"], body.name, body.comparator, body.value, now_iso()),
        )
        _commit_cohort_change(
            w,
            app,
            dim,
            "cohort.checkpoint.create",
            f"dimension:{name}/cohort:{body.name}",
            {"comparator": body.comparator, "value": body.value},
        )
        return {"name": body.name, "value": body.value, "comparator": body.comparator}

    return ctx.commit(change)


@router.route(
    "POST",
    f"{COHORT}/group",
    summary="Create a group cohort (explicit members); it gets priority 0",
    body=AirborneCreateGroup,
    headers=APP,
    responses=(409,),
)
async def create_group(ctx: Ctx) -> Any:
    body: AirborneCreateGroup = ctx.body
    name = ctx.path("cohort_dimension_name")
    if body.name == rs.OTHERWISE:
        raise validation(f"{rs.OTHERWISE} is reserved", "name", "reserved")
    seen: set[str] = set()
    for i, m in enumerate(body.members):
        if m in seen:
            raise validation(f"duplicate member {m!r}", f"members[{i}]", "duplicate")
        seen.add(m)

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        dim = _cohort_dimension(w.db, app.id, name)
        if w.db.execute(
            "SELECT 1 FROM ab_cohorts WHERE dimension_id = ? AND name = ?", (dim["id"], body.name)
        ).fetchone():
            raise conflict(f"cohort {body.name} already exists")
        w.db.execute(
            "UPDATE ab_cohorts SET priority = priority + 1 WHERE dimension_id = ? AND kind = 'group'", (dim["id"],)
        )
        w.db.execute(
            "INSERT INTO ab_cohorts (id, dimension_id, name, kind, members, priority, created_at)"
            " VALUES (?, ?, ?, 'group', ?, 0, ?)",
            (new_id(), dim["id"], body.name, dumps(body.members), now_iso()),
        )
        _commit_cohort_change(
            w, app, dim, "cohort.group.create", f"dimension:{name}/cohort:{body.name}", {"members": len(body.members)}
        )
        return {"name": body.name, "members": body.members}

    return ctx.commit(change)


@router.route("GET", f"{COHORT}/group/priority", summary="Group priorities (0 = evaluated first)", headers=APP)
async def get_priority(ctx: Ctx) -> Any:
    name = ctx.path("cohort_dimension_name")
    with ctx.services.store.read() as db:
        app = app_access(ctx, db, "read")
        dim = _cohort_dimension(db, app.id, name)
        return {"priority_map": _priority_map(db, dim["id"])}


@router.route(
    "PUT",
    f"{COHORT}/group/priority",
    summary="Reorder groups: the listed groups take the given priorities, the others keep their order",
    body=AirbornePriorityMap,
    headers=APP,
)
async def update_priority(ctx: Ctx) -> Any:
    body: AirbornePriorityMap = ctx.body
    name = ctx.path("cohort_dimension_name")

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        dim = _cohort_dimension(w.db, app.id, name)
        current = _priority_map(w.db, dim["id"])
        n = len(current)
        taken: dict[int, str] = {}
        for group, priority in body.priority_map.items():
            field = f"priority_map.{group}"
            if group not in current:
                raise validation(f"{group} is not a group cohort of {name}", field, "not_found")
            if priority > n - 1:
                raise validation(f"priority must be between 0 and {n - 1}", field, "out_of_range")
            if priority in taken:
                raise validation(
                    f"priority {priority} is given to both {taken[priority]} and {group}", field, "duplicate"
                )
            taken[priority] = group
        rest = iter(g for g in current if g not in body.priority_map)
        order = [taken[p] if p in taken else next(rest) for p in range(n)]
        for priority, group in enumerate(order):
            w.db.execute(
                "UPDATE ab_cohorts SET priority = ? WHERE dimension_id = ? AND name = ?", (priority, dim["id"], group)
            )
        result = _priority_map(w.db, dim["id"])
        _commit_cohort_change(
            w, app, dim, "cohort.group.priority", f"dimension:{name}", {"from": current, "to": result}
        )
        return {"priority_map": result}

    return ctx.commit(change)


# The seed's examples call the cohort routes without the "/cohort" segment; both paths work.


@router.route(
    "POST",
    f"{ALIAS}/checkpoint",
    summary="Create a checkpoint cohort (alias of .../cohort/checkpoint)",
    body=AirborneCreateCheckpoint,
    headers=APP,
    responses=(409,),
)
async def create_checkpoint_alias(ctx: Ctx) -> Any:
    return await create_checkpoint(ctx)


@router.route(
    "POST",
    f"{ALIAS}/group",
    summary="Create a group cohort (alias of .../cohort/group)",
    body=AirborneCreateGroup,
    headers=APP,
    responses=(409,),
)
async def create_group_alias(ctx: Ctx) -> Any:
    return await create_group(ctx)


@router.route(
    "GET", f"{ALIAS}/group/priority", summary="Group priorities (alias of .../cohort/group/priority)", headers=APP
)
async def get_priority_alias(ctx: Ctx) -> Any:
    return await get_priority(ctx)


@router.route(
    "PUT",
    f"{ALIAS}/group/priority",
    summary="Reorder groups (alias of .../cohort/group/priority)",
    body=AirbornePriorityMap,
    headers=APP,
)
async def update_priority_alias(ctx: Ctx) -> Any:
    return await update_priority(ctx)
