"""DevCycle variations of a feature (``.../features/{feature}/variations``).

Writes answer with the whole feature. A variation's values must be of its feature's variables'
types; a variation that a target or the feature (control/static variation) uses cannot be
deleted. Every write bumps the feature's targetingVersion and touches the project.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from control_plane.dialect import Connection, Row
from control_plane.errors import conflict
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import (
    ORG,
    dumps,
    dv_router,
    feature,
    key_taken,
    loads,
    project,
    row_by_id_or_key,
    touch_feature,
    write_project,
)
from control_plane.routes.devcycle.models import CreateVariation, UpdateVariation
from control_plane.routes.devcycle.variables import check_values, feature_variable_types
from control_plane.routes.devcycle.views import feature_view, variation_view
from control_plane.store import new_id

router = dv_router("devcycle-features")


def variations_in_use(db: Connection, feature_id: str) -> dict[str, str]:
    """Variation ids that targets or the feature itself refer to, with where."""
    used: dict[str, str] = {}
    f = db.execute("SELECT static_variation, control_variation FROM features WHERE id = ?", (feature_id,)).fetchone()
    if f["static_variation"]:
        used[f["static_variation"]] = "staticVariation"
    if f["control_variation"]:
        used[f["control_variation"]] = "controlVariation"
    rows = db.execute(
        "SELECT e.key, c.targets FROM feature_configurations c JOIN environments e ON e.id = c.environment_id "
        "WHERE c.feature_id = ?",
        (feature_id,),
    ).fetchall()
    for r in rows:
        for t in loads(r["targets"], []):
            for d in t.get("distribution", []):
                used.setdefault(d["_variation"], f"a target in environment {r['key']!r}")
    return used


@router.route(
    "POST",
    "/v1/projects/{project}/features/{feature}/variations",
    summary="Create a variation; returns the feature",
    body=CreateVariation,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_variation(ctx: Ctx) -> Any:
    body: CreateVariation = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        if w.db.execute("SELECT 1 FROM variations WHERE feature_id = ? AND key = ?", (f["id"], body.key)).fetchone():
            raise conflict(f"a variation with key {body.key!r} already exists in this feature")
        check_values(feature_variable_types(w.db, f["id"]), body.variables or {}, "variables.")
        position = w.db.execute(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM variations WHERE feature_id = ?", (f["id"],)
        ).fetchone()[0]
        w.db.execute(
            "INSERT INTO variations (id, feature_id, position, key, name, variables) VALUES (?, ?, ?, ?, ?, ?)",
            (new_id(), f["id"], position, body.key, body.name, dumps(body.variables or {})),
        )
        touch_feature(w, f["id"])
        approval.served_change(w, access.id, f["id"])
        w.audit(
            "variation.create",
            f"feature:{f['key']}/variation:{body.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id, features={f["id"]})
        return feature_view(w.db, f["id"])

    return ctx.commit(change, status=201)


@router.route(
    "GET", "/v1/projects/{project}/features/{feature}/variations", summary="List a feature's variations", headers=ORG
)
async def list_variations(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        rows = db.execute("SELECT * FROM variations WHERE feature_id = ? ORDER BY position", (f["id"],)).fetchall()
        return [variation_view(r) for r in rows]


def _variation(db: Connection, feature_id: str, ident: str) -> Row:
    return row_by_id_or_key(db, "variations", "feature_id", feature_id, ident, "variation")


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/variations/{key}",
    summary="Get a variation by id or key",
    headers=ORG,
)
async def get_variation(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        return variation_view(_variation(db, f["id"], ctx.path("key")))


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}/variations/{key}",
    summary="Update a variation; returns the feature",
    body=UpdateVariation,
    headers=ORG,
    responses=(409,),
)
async def update_variation(ctx: Ctx) -> Any:
    body: UpdateVariation = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        v = _variation(w.db, f["id"], ctx.path("key"))
        if body.key is not None and key_taken(w.db, "variations", "feature_id", f["id"], body.key, v["id"]):
            raise conflict(f"a variation with key {body.key!r} already exists in this feature")
        if body.variables is not None:
            check_values(feature_variable_types(w.db, f["id"]), body.variables, "variables.")
        w.db.execute(
            "UPDATE variations SET key = ?, name = ?, variables = ? WHERE id = ?",
            (
                body.key or v["key"],
                body.name or v["name"],
                dumps(body.variables) if body.variables is not None else v["variables"],
                v["id"],
            ),
        )
        touch_feature(w, f["id"])
        approval.served_change(w, access.id, f["id"])
        w.audit(
            "variation.update",
            f"feature:{f['key']}/variation:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id, features={f["id"]})
        return feature_view(w.db, f["id"])

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/features/{feature}/variations/{key}",
    summary="Delete a variation that no target uses",
    status=204,
    headers=ORG,
    responses=(409,),
)
async def delete_variation(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        v = _variation(w.db, f["id"], ctx.path("key"))
        used = variations_in_use(w.db, f["id"])
        if v["id"] in used:
            raise conflict(f"variation {v['key']!r} is used by {used[v['id']]}")
        w.db.execute("DELETE FROM variations WHERE id = ?", (v["id"],))
        touch_feature(w, f["id"])
        approval.served_change(w, access.id, f["id"])
        w.audit(
            "variation.delete",
            f"feature:{f['key']}/variation:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id, features={f["id"]})

    ctx.commit(change, status=204)
    return Response(status_code=204)
