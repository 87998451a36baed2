"""Airborne cohorts of a cohort dimension (``.../dimension/{cohort_dimension_name}/cohort``...).

A cohort dimension ``depends_on`` a standard dimension and holds checkpoints (``semver_gt/ge``,
``str_gt/ge`` against a value) and groups (explicit member lists with a priority, 0 first). Its
value for a context is the first cohort, in priority order, whose JSON Logic rule is true, else
``otherwise``: groups by priority, then checkpoints from the highest value down (see
:mod:`control_plane.releases_snapshot`). Every cohort write compiles the rules before it commits.
"""

from __future__ import annotations

from typing import Any

from control_plane import releases_snapshot as rs
from control_plane.authz import ProjectAccess
from control_plane.dialect import Connection, Row
from control_plane.errors import conflict, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.airborne.common import APP, app_access, dumps
from control_plane.routes.airborne.dimensions import BASE, require_dimension
from control_plane.routes.airborne.models import AirborneCreateCheckpoint, AirborneCreateGroup, AirbornePriorityMap
from control_plane.routes.airborne.responses import CheckpointResponse, CohortsResponse, GroupResponse, PriorityMap
from control_plane.store import new_id, now_iso

router = Router("airborne-dimensions", shape="airborne", required_headers=APP)


def _cohort_dimension(db: Connection, project_id: str, name: str) -> Row:
    row = require_dimension(db, project_id, name)
    if row["dimension_type"] != "cohort":
        raise validation(f"dimension {name} is not a cohort dimension", "cohort_dimension_name", "not_cohort")
    return row


def _commit_cohort_change(
    w: Write, app: ProjectAccess, dim: Row, action: str, target: str, details: dict[str, Any]
) -> None:
    rs.validate_cohort_dimension(w.db, dim)
    w.db.execute("UPDATE ab_dimensions SET updated_at = ? WHERE id = ?", (now_iso(), dim["id"]))
    w.audit(action, target, organisation_id=app.organisation_id, project_id=app.id, details=details)
    w.touch(app.id, features=())  # no flag reads Airborne's tables (control_plane.incremental)


def _priority_map(db: Connection, dimension_id: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT name, priority FROM ab_cohorts WHERE dimension_id = ? AND kind = 'group' ORDER BY priority, name",
        (dimension_id,),
    )
    return {r["name"]: int(r["priority"]) for r in rows}


COHORT = f"{BASE}/{{cohort_dimension_name}}/cohort"
ALIAS = f"{BASE}/{{cohort_dimension_name}}"


@router.route(
    "GET",
    COHORT,
    summary="Cohorts of a cohort dimension: enum in priority order and JSON Logic definitions",
    headers=APP,
    response=CohortsResponse,
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
    response=CheckpointResponse,
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
    response=GroupResponse,
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


@router.route(
    "GET",
    f"{COHORT}/group/priority",
    summary="Group priorities (0 = evaluated first)",
    headers=APP,
    response=PriorityMap,
)
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
    response=PriorityMap,
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
    response=CheckpointResponse,
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
    response=GroupResponse,
)
async def create_group_alias(ctx: Ctx) -> Any:
    return await create_group(ctx)


@router.route(
    "GET",
    f"{ALIAS}/group/priority",
    summary="Group priorities (alias of .../cohort/group/priority)",
    headers=APP,
    response=PriorityMap,
)
async def get_priority_alias(ctx: Ctx) -> Any:
    return await get_priority(ctx)


@router.route(
    "PUT",
    f"{ALIAS}/group/priority",
    summary="Reorder groups (alias of .../cohort/group/priority)",
    body=AirbornePriorityMap,
    headers=APP,
    response=PriorityMap,
)
async def update_priority_alias(ctx: Ctx) -> Any:
    return await update_priority(ctx)
