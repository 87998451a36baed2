"""DevCycle audiences (reusable filter trees, referenced by ``audienceMatch``) and custom properties."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

import orjson
from pydantic import Field
from starlette.responses import Response

import evaluator
from control_plane.errors import ApiError, conflict, validation
from control_plane.features_snapshot import audience_refs, config_filters, translate_filter
from control_plane.http import Ctx, Router, Write
from control_plane.models import KEY_PATTERN
from control_plane.routes.devcycle.common import (
    DvBody,
    FilterChecker,
    Json,
    JsonObject,
    ListQuery,
    Strict,
    Tags,
    audience_resolver,
    dumps,
    key_taken,
    list_rows,
    loads,
    project,
    row_by_id_or_key,
    rule_error,
    write_project,
)
from control_plane.routes.devcycle.features import compile_configuration, configurations_using
from control_plane.store import new_id, now_iso

router = Router("devcycle-audiences")
ORG = ("x-organisation",)
PropertyType = Literal["String", "Boolean", "Number"]


class CreateAudience(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str = Field(default="", max_length=1000)
    filters: JsonObject
    tags: Tags | None = None


class UpdateAudience(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    filters: JsonObject | None = None
    tags: Tags | None = None


class AudienceListQuery(ListQuery):
    includeUsage: bool = False


class AllowedValue(Strict):
    label: str = Field(max_length=200)
    value: Json = None


class EnumSchema(Strict):
    allowedValues: list[AllowedValue] = Field(default_factory=list, max_length=1000)
    allowAdditionalValues: bool | None = None


class PropertySchema(Strict):
    schemaType: Literal["enum"] | None = None
    required: bool | None = None
    enumSchema: EnumSchema | None = None


class CreateCustomProperty(DvBody):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN)
    type: PropertyType
    propertyKey: str = Field(min_length=1, max_length=200)
    schema_: PropertySchema | None = Field(default=None, alias="schema")


class UpdateCustomProperty(DvBody):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=KEY_PATTERN)
    type: PropertyType | None = None
    propertyKey: str | None = Field(default=None, min_length=1, max_length=200)
    schema_: PropertySchema | None = Field(default=None, alias="schema")


class PropertyListQuery(ListQuery):
    type: PropertyType | None = None
    includeUsage: bool = False


# ---------------------------------------------------------------------------------------------
# Usage


def _project_trees(db: sqlite3.Connection, project_id: str) -> list[Any]:
    """Every filter tree of the project: audiences and configurations."""
    trees = [
        loads(r["filters"], {}) for r in db.execute("SELECT filters FROM audiences WHERE project_id = ?", (project_id,))
    ]
    rows = db.execute(
        "SELECT c.targets, c.reflag FROM feature_configurations c JOIN features f ON f.id = c.feature_id "
        "WHERE f.project_id = ?",
        (project_id,),
    )
    for r in rows:
        trees += config_filters(loads(r["targets"], []), loads(r["reflag"]))
    return trees


def _used_audiences(db: sqlite3.Connection, project_id: str) -> set[str]:
    return {a for t in _project_trees(db, project_id) for a in audience_refs(t)}


def _audience_parents(db: sqlite3.Connection, project_id: str, audience_id: str) -> list[sqlite3.Row]:
    """Audiences whose filters reference ``audience_id`` directly."""
    rows = db.execute("SELECT * FROM audiences WHERE project_id = ? AND id != ?", (project_id, audience_id)).fetchall()
    return [r for r in rows if audience_id in audience_refs(loads(r["filters"], {}))]


def _custom_data_keys(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "user" and node.get("subType") == "customData" and isinstance(node.get("dataKey"), str):
            out.add(node["dataKey"])
        for child in (node.get("filters"), node.get("filter")):
            if isinstance(child, list):
                for c in child:
                    _custom_data_keys(c, out)
            elif isinstance(child, dict):
                _custom_data_keys(child, out)


def _used_property_keys(db: sqlite3.Connection, project_id: str) -> set[str]:
    keys: set[str] = set()
    for tree in _project_trees(db, project_id):
        _custom_data_keys(tree, keys)
    return keys


# ---------------------------------------------------------------------------------------------
# Audiences


def audience_view(row: sqlite3.Row, used: set[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": row["name"],
        "key": row["key"],
        "description": row["description"],
        "_id": row["id"],
        "_project": row["project_id"],
        "filters": loads(row["filters"], {}),
        "source": "api",
        "_createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "tags": loads(row["tags"], []),
        "readonly": False,
    }
    if used is not None:
        view["hasUsage"] = row["id"] in used
    return view


def _audience(db: sqlite3.Connection, project_id: str, ident: str) -> sqlite3.Row:
    return row_by_id_or_key(db, "audiences", "project_id", project_id, ident, "audience")


def _check_audience_filters(w: Write, project_id: str, audience_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise an audience's filters; reject reference cycles and trees the
    evaluator cannot compile (errors name ``filters...``)."""
    filters: dict[str, Any] = FilterChecker(audience_resolver(w.db, project_id)).check(raw, "filters")
    stored = {
        r["id"]: loads(r["filters"], {})
        for r in w.db.execute("SELECT id, filters FROM audiences WHERE project_id = ?", (project_id,))
    }
    stored[audience_id] = filters
    pending, seen = list(audience_refs(filters)), set()
    while pending:
        ref = pending.pop()
        if ref == audience_id:
            raise validation("the audience references itself through audienceMatch", "filters", "audience_cycle")
        if ref not in seen:
            seen.add(ref)
            pending += audience_refs(stored.get(ref, {}))
    tree = translate_filter(filters, stored, (audience_id,))
    doc = {"features": [{"key": "audience", "targeting": {"version": 0, "rules": [{"filter": tree}]}}]}
    try:
        evaluator.Snapshot(orjson.dumps(doc))
    except evaluator.RuleError as e:
        prefix = "$.features[0].targeting.rules[0].filter"
        field = "filters" + e.path[len(prefix) :] if e.path.startswith(prefix) else e.path
        raise rule_error(e.path, e.reason, field) from None
    return filters


def _reserve_users_of(w: Write, project_id: str, audience_id: str) -> None:
    """The audience changed: every configuration that uses it, directly or through other
    audiences, gets a new targetingVersion and is compiled again (400 on ``filters`` if the
    change would make one of them fail, e.g. by nesting too deeply once inlined)."""
    ids, pending = {audience_id}, [audience_id]
    while pending:
        for parent in _audience_parents(w.db, project_id, pending.pop()):
            if parent["id"] not in ids:
                ids.add(parent["id"])
                pending.append(parent["id"])
    for row in configurations_using(w.db, project_id, ids):
        w.db.execute(
            "UPDATE feature_configurations SET targeting_version = targeting_version + 1, updated_at = ? "
            "WHERE feature_id = ? AND environment_id = ?",
            (now_iso(), row["feature_id"], row["environment_id"]),
        )
        try:
            compile_configuration(w.db, row["feature_id"], row["environment_id"], row["reflag"] is not None, "")
        except ApiError as e:
            reason = e.details[0]["message"] if e.details else e.message
            message = f"feature {row['feature_key']!r} in environment {row['environment_key']!r} would not compile"
            raise ApiError(
                400, f"{message}: {reason}", details=[{"field": "filters", "code": "invalid_rule", "message": reason}]
            ) from None


@router.route(
    "POST",
    "/v1/projects/{project}/audiences",
    summary="Create an audience",
    body=CreateAudience,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_audience(ctx: Ctx) -> Any:
    body: CreateAudience = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        if key_taken(w.db, "audiences", "project_id", access.id, body.key):
            raise conflict(f"an audience with key {body.key!r} already exists in this project")
        audience_id = new_id()
        filters = _check_audience_filters(w, access.id, audience_id, body.filters)
        now = now_iso()
        w.db.execute(
            "INSERT INTO audiences (id, project_id, key, name, description, filters, tags, created_by, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                audience_id,
                access.id,
                body.key,
                body.name,
                body.description,
                dumps(filters),
                dumps(body.tags or []),
                w.principal.user_id,
                now,
                now,
            ),
        )
        w.audit("audience.create", f"audience:{body.key}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id)
        return audience_view(_audience(w.db, access.id, audience_id), set())

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects/{project}/audiences", summary="List audiences", query=AudienceListQuery, headers=ORG)
async def list_audiences(ctx: Ctx) -> Any:
    query: AudienceListQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        rows = list_rows(db, "SELECT a.* FROM audiences a", ["a.project_id = ?"], [access.id], query, alias="a")
        used = _used_audiences(db, access.id) if query.includeUsage else None
        return [audience_view(r, used) for r in rows]


@router.route("GET", "/v1/projects/{project}/audiences/{key}", summary="Get an audience by id or key", headers=ORG)
async def get_audience(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return audience_view(_audience(db, access.id, ctx.path("key")), _used_audiences(db, access.id))


@router.route(
    "PATCH",
    "/v1/projects/{project}/audiences/{key}",
    summary="Update an audience by id or key",
    body=UpdateAudience,
    headers=ORG,
    responses=(409,),
)
async def update_audience(ctx: Ctx) -> Any:
    body: UpdateAudience = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        a = _audience(w.db, access.id, ctx.path("key"))
        if body.key is not None and key_taken(w.db, "audiences", "project_id", access.id, body.key, a["id"]):
            raise conflict(f"an audience with key {body.key!r} already exists in this project")
        filters = loads(a["filters"], {})
        if body.filters is not None:
            filters = _check_audience_filters(w, access.id, a["id"], body.filters)
        w.db.execute(
            "UPDATE audiences SET key = ?, name = ?, description = ?, filters = ?, tags = ?, updated_at = ?"
            " WHERE id = ?",
            (
                body.key or a["key"],
                body.name or a["name"],
                body.description if body.description is not None else a["description"],
                dumps(filters),
                dumps(body.tags) if body.tags is not None else a["tags"],
                now_iso(),
                a["id"],
            ),
        )
        if filters != loads(a["filters"], {}):
            _reserve_users_of(w, access.id, a["id"])
        w.audit(
            "audience.update",
            f"audience:{a['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))},
        )
        w.touch(access.id)
        return audience_view(_audience(w.db, access.id, a["id"]), _used_audiences(w.db, access.id))

    return ctx.commit(change)


def _usages(db: sqlite3.Connection, project_id: str, audience_id: str) -> dict[str, Any]:
    features: dict[str, dict[str, Any]] = {}
    for row in configurations_using(db, project_id, {audience_id}):
        entry = features.setdefault(
            row["feature_id"],
            {"key": row["feature_key"], "name": row["feature_name"], "id": row["feature_id"], "environments": {}},
        )
        entry["environments"][row["environment_key"]] = {
            "status": row["status"],
            "targetingVersion": row["targeting_version"],
        }
    audiences = [
        {"key": r["key"], "name": r["name"], "id": r["id"]} for r in _audience_parents(db, project_id, audience_id)
    ]
    return {"features": list(features.values()), "audiences": audiences}


@router.route(
    "GET",
    "/v1/projects/{project}/audiences/{key}/usages",
    summary="Features (per environment) and audiences that use the audience directly",
    headers=ORG,
)
async def audience_usages(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        a = _audience(db, access.id, ctx.path("key"))
        return _usages(db, access.id, a["id"])


@router.route(
    "DELETE",
    "/v1/projects/{project}/audiences/{key}",
    summary="Delete an audience that nothing uses",
    status=204,
    headers=ORG,
    responses=(409,),
)
async def delete_audience(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        a = _audience(w.db, access.id, ctx.path("key"))
        usages = _usages(w.db, access.id, a["id"])
        if usages["features"] or usages["audiences"]:
            names = [f["key"] for f in usages["features"]] + [x["key"] for x in usages["audiences"]]
            raise conflict(f"audience {a['key']!r} is used by {', '.join(names)}")
        w.db.execute("DELETE FROM audiences WHERE id = ?", (a["id"],))
        w.audit("audience.delete", f"audience:{a['key']}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------
# Custom properties


def property_view(row: sqlite3.Row, used: set[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": row["name"],
        "key": row["key"],
        "_id": row["id"],
        "_project": row["project_id"],
        "_createdBy": row["created_by"],
        "propertyKey": row["property_key"],
        "type": row["type"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    if row["schema"]:
        view["schema"] = loads(row["schema"])
    if used is not None:
        view["hasUsage"] = row["property_key"] in used
    return view


def _property(db: sqlite3.Connection, project_id: str, ident: str) -> sqlite3.Row:
    return row_by_id_or_key(db, "custom_properties", "project_id", project_id, ident, "custom property")


def _property_key_taken(db: sqlite3.Connection, project_id: str, property_key: str, exclude: str = "") -> bool:
    sql = "SELECT 1 FROM custom_properties WHERE project_id = ? AND property_key = ? AND id != ?"
    return db.execute(sql, (project_id, property_key, exclude)).fetchone() is not None


@router.route(
    "POST",
    "/v1/projects/{project}/customProperties",
    summary="Create a custom property",
    body=CreateCustomProperty,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_custom_property(ctx: Ctx) -> Any:
    body: CreateCustomProperty = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        if key_taken(w.db, "custom_properties", "project_id", access.id, body.key):
            raise conflict(f"a custom property with key {body.key!r} already exists in this project")
        if _property_key_taken(w.db, access.id, body.propertyKey):
            raise conflict(f"a custom property with propertyKey {body.propertyKey!r} already exists in this project")
        prop_id = new_id()
        now = now_iso()
        w.db.execute(
            "INSERT INTO custom_properties (id, project_id, key, name, property_key, type, schema, created_by,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                prop_id,
                access.id,
                body.key,
                body.name,
                body.propertyKey,
                body.type,
                dumps(body.schema_.model_dump(exclude_none=True)) if body.schema_ else None,
                w.principal.user_id,
                now,
                now,
            ),
        )
        w.audit(
            "custom_property.create",
            f"custom_property:{body.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        return property_view(_property(w.db, access.id, prop_id), _used_property_keys(w.db, access.id))

    return ctx.commit(change, status=201)


@router.route(
    "GET",
    "/v1/projects/{project}/customProperties",
    summary="List custom properties",
    query=PropertyListQuery,
    headers=ORG,
)
async def list_custom_properties(ctx: Ctx) -> Any:
    query: PropertyListQuery = ctx.query
    where: list[str] = ["c.project_id = ?"]
    params: list[Any] = []
    if query.type:
        where.append("c.type = ?")
        params.append(query.type)
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        rows = list_rows(
            db,
            "SELECT c.* FROM custom_properties c",
            where,
            [access.id, *params],
            query,
            alias="c",
            search_columns=("name", "key", "property_key"),
            sort_columns={"propertyKey": "c.property_key"},
        )
        used = _used_property_keys(db, access.id) if query.includeUsage else None
        return [property_view(r, used) for r in rows]


@router.route(
    "GET", "/v1/projects/{project}/customProperties/{key}", summary="Get a custom property by id or key", headers=ORG
)
async def get_custom_property(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return property_view(_property(db, access.id, ctx.path("key")), _used_property_keys(db, access.id))


@router.route(
    "PATCH",
    "/v1/projects/{project}/customProperties/{key}",
    summary="Update a custom property",
    body=UpdateCustomProperty,
    headers=ORG,
    responses=(409,),
)
async def update_custom_property(ctx: Ctx) -> Any:
    body: UpdateCustomProperty = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        p = _property(w.db, access.id, ctx.path("key"))
        if body.key is not None and key_taken(w.db, "custom_properties", "project_id", access.id, body.key, p["id"]):
            raise conflict(f"a custom property with key {body.key!r} already exists in this project")
        if body.propertyKey is not None and _property_key_taken(w.db, access.id, body.propertyKey, p["id"]):
            raise conflict(f"a custom property with propertyKey {body.propertyKey!r} already exists in this project")
        if body.propertyKey not in (None, p["property_key"]) and p["property_key"] in _used_property_keys(
            w.db, access.id
        ):
            raise conflict(f"propertyKey {p['property_key']!r} is used by audience filters; it cannot change")
        w.db.execute(
            "UPDATE custom_properties SET key = ?, name = ?, property_key = ?, type = ?, schema = ?, updated_at = ?"
            " WHERE id = ?",
            (
                body.key or p["key"],
                body.name or p["name"],
                body.propertyKey or p["property_key"],
                body.type or p["type"],
                dumps(body.schema_.model_dump(exclude_none=True)) if body.schema_ else p["schema"],
                now_iso(),
                p["id"],
            ),
        )
        w.audit(
            "custom_property.update",
            f"custom_property:{p['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, by_alias=True, exclude={"change_reason"}))},
        )
        return property_view(_property(w.db, access.id, p["id"]), _used_property_keys(w.db, access.id))

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/customProperties/{key}",
    summary="Delete a custom property that no filter uses",
    status=204,
    headers=ORG,
    responses=(409,),
)
async def delete_custom_property(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        p = _property(w.db, access.id, ctx.path("key"))
        if p["property_key"] in _used_property_keys(w.db, access.id):
            raise conflict(f"custom property {p['key']!r} is used by audience filters")
        w.db.execute("DELETE FROM custom_properties WHERE id = ?", (p["id"],))
        w.audit(
            "custom_property.delete",
            f"custom_property:{p['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )

    ctx.commit(change, status=204)
    return Response(status_code=204)
