"""DevCycle variables of a project (``/v1/projects/{project}/variables``), and the checks that
variation values have their variable's type.

A variable belongs to at most one feature. Renaming or retyping it rewrites and rechecks that
feature's variations; deleting it removes its values from them; archived variables are not
served. Writes that change what a feature serves bump its targetingVersion.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import Response

from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, validation
from control_plane.http import JSON, Ctx, Write
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import (
    ORG,
    dumps,
    dv_router,
    key_taken,
    list_rows,
    loads,
    project,
    row_by_id_or_key,
    write_project,
)
from control_plane.routes.devcycle.models import (
    CreateVariable,
    UpdateVariable,
    VariableFields,
    VariableListQuery,
    VariableStatus,
)
from control_plane.routes.devcycle.views import variable_view
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-features")


def value_ok(kind: str, value: Any) -> bool:
    if kind == "String":
        return isinstance(value, str)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "Number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, dict)


def feature_variable_types(db: Connection, feature_id: str) -> dict[str, str]:
    rows = db.execute("SELECT key, type FROM variables WHERE feature_id = ?", (feature_id,)).fetchall()
    return {r["key"]: r["type"] for r in rows}


def check_values(types: dict[str, str], values: dict[str, Any], prefix: str) -> None:
    """Variation values: only the feature's variables, each of its variable's type."""
    for key, value in values.items():
        kind = types.get(key)
        if kind is None:
            raise validation(f"{key!r} is not a variable of this feature", f"{prefix}{key}", "unknown_variable")
        if not value_ok(kind, value):
            raise validation(
                f"{key!r} is a {kind} variable",
                f"{prefix}{key}",
                "type_mismatch",
                f"expected a {kind} value" + (" (a JSON object)" if kind == "JSON" else ""),
            )


def check_feature_values(db: Connection, feature_id: str, field: str | None = None) -> None:
    """Every variation of the feature against its variables; errors name ``field`` when given."""
    types = feature_variable_types(db, feature_id)
    rows = db.execute("SELECT key, variables FROM variations WHERE feature_id = ? ORDER BY position", (feature_id,))
    for i, r in enumerate(rows.fetchall()):
        try:
            check_values(types, loads(r["variables"], {}), f"variations[{i}].variables.")
        except ApiError as e:
            if field is not None:
                e.details[0]["field"] = field
                e.message = f"variation {r['key']!r}: {e.message}"
            raise


def insert_variable(w: Write, project_id: str, feature_id: str | None, v: VariableFields) -> str:
    now = now_iso()
    var_id = new_id()
    w.db.execute(
        "INSERT INTO variables (id, project_id, feature_id, key, name, description, type, validation_schema,"
        " persistent, tags, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            var_id,
            project_id,
            feature_id,
            v.key,
            v.name or v.key,
            v.description or "",
            v.type,
            dumps(v.validationSchema.model_dump(exclude_none=True)) if v.validationSchema else None,
            int(bool(v.persistent)),
            dumps(v.tags or []),
            w.principal.user_id,
            now,
            now,
        ),
    )
    return var_id


def set_feature_variables(w: Write, project_id: str, feature_id: str, variables: list[VariableFields]) -> None:
    """Make ``variables`` the feature's variable set: create, attach or update each; detach the rest."""
    seen: set[str] = set()
    for i, v in enumerate(variables):
        if v.key in seen:
            raise validation("variable keys must be unique", f"variables[{i}].key", "duplicate")
        seen.add(v.key)
        row = w.db.execute("SELECT * FROM variables WHERE project_id = ? AND key = ?", (project_id, v.key)).fetchone()
        if row is None:
            insert_variable(w, project_id, feature_id, v)
            continue
        if row["feature_id"] not in (None, feature_id):
            raise conflict(f"variable {v.key!r} belongs to another feature")
        w.db.execute(
            "UPDATE variables SET feature_id = ?, name = ?, description = ?, type = ?, validation_schema = ?,"
            " persistent = ?, tags = ?, updated_at = ? WHERE id = ?",
            (
                feature_id,
                v.name or row["name"],
                v.description if v.description is not None else row["description"],
                v.type,
                dumps(v.validationSchema.model_dump(exclude_none=True))
                if v.validationSchema
                else row["validation_schema"],
                int(v.persistent) if v.persistent is not None else row["persistent"],
                dumps(v.tags) if v.tags is not None else row["tags"],
                now_iso(),
                row["id"],
            ),
        )
    for row in w.db.execute("SELECT id, key FROM variables WHERE feature_id = ?", (feature_id,)).fetchall():
        if row["key"] not in seen:
            w.db.execute("UPDATE variables SET feature_id = NULL, updated_at = ? WHERE id = ?", (now_iso(), row["id"]))
            strip_variable(w, feature_id, row["key"])


def strip_variable(w: Write, feature_id: str, key: str) -> None:
    """Remove a variable's values from the feature's variations."""
    for r in w.db.execute("SELECT id, variables FROM variations WHERE feature_id = ?", (feature_id,)).fetchall():
        values = loads(r["variables"], {})
        if key in values:
            del values[key]
            w.db.execute("UPDATE variations SET variables = ? WHERE id = ?", (dumps(values), r["id"]))


def owner(feature_id: str | None) -> tuple[str, ...]:
    """The features a write of one variable changes the build of, for ``Write.touch``: its own
    feature, or none. A feature's flag and DevCycle part read only its own variables (by
    ``feature_id``) and its own variations' values for them, so a variable of no feature is read
    by no build. None of these routes moves a variable to another feature: a feature's update
    attaches and detaches variables (``set_feature_variables``) and touches that feature."""
    return (feature_id,) if feature_id else ()


def _variable(db: Connection, project_id: str, ident: str) -> Row:
    return row_by_id_or_key(db, "variables", "project_id", project_id, ident, "variable")


@router.route(
    "POST",
    "/v1/projects/{project}/variables",
    summary="Create a variable",
    body=CreateVariable,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_variable(ctx: Ctx) -> Any:
    body: CreateVariable = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        if key_taken(w.db, "variables", "project_id", access.id, body.key):
            raise conflict(f"a variable with key {body.key!r} already exists in this project")
        feature_id = None
        if body.feature:
            row = w.db.execute(
                "SELECT id FROM features WHERE project_id = ? AND (id = ? OR key = ?) ORDER BY id = ? DESC LIMIT 1",
                (access.id, body.feature, body.feature, body.feature),
            ).fetchone()
            if row is None:
                raise validation(f"no feature {body.feature!r} in this project", "_feature", "unknown_feature")
            feature_id = row["id"]
        var_id = insert_variable(w, access.id, feature_id, body)
        w.audit("variable.create", f"variable:{body.key}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id, features=owner(feature_id))
        return variable_view(_variable(w.db, access.id, var_id))

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects/{project}/variables", summary="List variables", query=VariableListQuery, headers=ORG)
async def list_variables(ctx: Ctx) -> Any:
    query: VariableListQuery = ctx.query
    where: list[str] = ["v.project_id = ?"]
    params: list[Any] = []
    if query.type:
        where.append("v.type = ?")
        params.append(query.type)
    if query.status:
        where.append("v.status = ?")
        params.append(query.status)
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        if query.feature:
            where.append("v.feature_id IN (SELECT id FROM features WHERE project_id = ? AND (id = ? OR key = ?))")
            params += [access.id, query.feature, query.feature]
        everything = query.model_copy(update={"page": 1, "perPage": 1 << 31})
        matches = list_rows(db, "SELECT v.* FROM variables v", where, [access.id, *params], everything, alias="v")
        rows = matches[(query.page - 1) * query.perPage : query.page * query.perPage]
        # DevCycle's total in the "count" header: its CLI pages through lists by it.
        return JSON([variable_view(r) for r in rows], headers={"count": str(len(matches))})


@router.route("GET", "/v1/projects/{project}/variables/{key}", summary="Get a variable by id or key", headers=ORG)
async def get_variable(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return variable_view(_variable(db, access.id, ctx.path("key")))


@router.route(
    "PATCH",
    "/v1/projects/{project}/variables/{key}",
    summary="Update a variable by id or key",
    body=UpdateVariable,
    headers=ORG,
    responses=(409,),
)
async def update_variable(ctx: Ctx) -> Any:
    body: UpdateVariable = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        v = _variable(w.db, access.id, ctx.path("key"))
        new_key = body.key or v["key"]
        if new_key != v["key"] and key_taken(w.db, "variables", "project_id", access.id, new_key, v["id"]):
            raise conflict(f"a variable with key {new_key!r} already exists in this project")
        w.db.execute(
            "UPDATE variables SET key = ?, name = ?, description = ?, type = ?, validation_schema = ?, persistent = ?,"
            " tags = ?, updated_at = ? WHERE id = ?",
            (
                new_key,
                body.name or v["name"],
                body.description if body.description is not None else v["description"],
                body.type or v["type"],
                dumps(body.validationSchema.model_dump(exclude_none=True))
                if body.validationSchema
                else v["validation_schema"],
                int(body.persistent) if body.persistent is not None else v["persistent"],
                dumps(body.tags) if body.tags is not None else v["tags"],
                now_iso(),
                v["id"],
            ),
        )
        if v["feature_id"] and (new_key != v["key"] or (body.type or v["type"]) != v["type"]):
            if new_key != v["key"]:
                for r in w.db.execute(
                    "SELECT id, variables FROM variations WHERE feature_id = ?", (v["feature_id"],)
                ).fetchall():
                    values = loads(r["variables"], {})
                    if v["key"] in values:
                        values = {new_key if k == v["key"] else k: x for k, x in values.items()}
                        w.db.execute("UPDATE variations SET variables = ? WHERE id = ?", (dumps(values), r["id"]))
            check_feature_values(w.db, v["feature_id"], "type")
            approval.served_change(w, access.id, v["feature_id"])
        w.audit(
            "variable.update",
            f"variable:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))},
        )
        w.touch(access.id, features=owner(v["feature_id"]))
        return variable_view(_variable(w.db, access.id, v["id"]))

    return ctx.commit(change)


@router.route(
    "PATCH",
    "/v1/projects/{project}/variables/{key}/status",
    summary="Archive or re-activate a variable (archived variables are not served)",
    body=VariableStatus,
    headers=ORG,
)
async def update_variable_status(ctx: Ctx) -> Any:
    body: VariableStatus = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        v = _variable(w.db, access.id, ctx.path("key"))
        w.db.execute("UPDATE variables SET status = ?, updated_at = ? WHERE id = ?", (body.status, now_iso(), v["id"]))
        if v["feature_id"] and body.status != v["status"]:
            approval.served_change(w, access.id, v["feature_id"])
        w.audit(
            "variable.status",
            f"variable:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"from": v["status"], "to": body.status},
        )
        w.touch(access.id, features=owner(v["feature_id"]))
        return variable_view(_variable(w.db, access.id, v["id"]))

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/variables/{key}",
    summary="Delete a variable (its values are removed from its feature's variations)",
    status=204,
    headers=ORG,
)
async def delete_variable(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        v = _variable(w.db, access.id, ctx.path("key"))
        if v["feature_id"]:
            strip_variable(w, v["feature_id"], v["key"])
            approval.served_change(w, access.id, v["feature_id"])
        w.db.execute("DELETE FROM variables WHERE id = ?", (v["id"],))
        w.audit("variable.delete", f"variable:{v['key']}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id, features=owner(v["feature_id"]))

    ctx.commit(change, status=204)
    return Response(status_code=204)
