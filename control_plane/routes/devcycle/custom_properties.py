"""DevCycle custom properties (``/v1/projects/{project}/customProperties``): the ``customData``
keys that filters may use, with a type and an optional enum schema.

``propertyKey`` is unique in a project; while a filter uses it, it cannot change and the
property cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from control_plane.dialect import Connection, Row
from control_plane.errors import conflict
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle.common import (
    ORG,
    dumps,
    dv_router,
    key_taken,
    list_rows,
    project,
    project_filter_trees,
    row_by_id_or_key,
    write_project,
)
from control_plane.routes.devcycle.models import CreateCustomProperty, PropertyListQuery, UpdateCustomProperty
from control_plane.routes.devcycle.views import property_view
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-audiences")


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


def _used_property_keys(db: Connection, project_id: str) -> set[str]:
    keys: set[str] = set()
    for tree in project_filter_trees(db, project_id):
        _custom_data_keys(tree, keys)
    return keys


def _property(db: Connection, project_id: str, ident: str) -> Row:
    return row_by_id_or_key(db, "custom_properties", "project_id", project_id, ident, "custom property")


def _property_key_taken(db: Connection, project_id: str, property_key: str, exclude: str = "") -> bool:
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
        w.touch(access.id, features=())  # declared types are served (the snapshot's customDataTypes)
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
        w.touch(access.id, features=())  # declared types are served (the snapshot's customDataTypes)
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
        w.touch(access.id, features=())  # declared types are served (the snapshot's customDataTypes)

    ctx.commit(change, status=204)
    return Response(status_code=204)
