"""DevCycle features (``/v1/projects/{project}/features``): create (one or several), list, get,
update, delete, and status (``complete`` serves ``staticVariation`` everywhere).

A feature create or update may carry its variations, variables and per-environment
configurations; they are written with the helpers of those resources' modules. Every write
calls ``w.touch(project_id)``: the commit then compiles every environment of the project and
rolls back with a 400 naming the node if one does not compile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from control_plane import authz
from control_plane.errors import ApiError, conflict, validation
from control_plane.http import Ctx, Router, Write
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import (
    ORG,
    bump_feature,
    dumps,
    feature,
    key_taken,
    list_rows,
    loads,
    project,
    variation_id_of,
    write_project,
)
from control_plane.routes.devcycle.configurations import apply_configurations
from control_plane.routes.devcycle.models import (
    CreateFeature,
    CreateFeatures,
    DeleteFeatureQuery,
    FeatureFields,
    FeatureListQuery,
    FeatureStatus,
    UpdateFeature,
)
from control_plane.routes.devcycle.variables import check_feature_values, set_feature_variables
from control_plane.routes.devcycle.variations import variations_in_use
from control_plane.routes.devcycle.views import feature_view
from control_plane.store import new_id, now_iso

router = Router("devcycle-features")


def _write_variations(w: Write, feature_id: str, variations: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """Replace the feature's variations with ``[(id, key, name, variables)]`` in order."""
    keys = [v[1] for v in variations]
    for i, key in enumerate(keys):
        if keys.index(key) != i:
            raise validation("variation keys must be unique within a feature", f"variations[{i}].key", "duplicate")
    w.db.execute("DELETE FROM variations WHERE feature_id = ?", (feature_id,))
    w.db.executemany(
        "INSERT INTO variations (id, feature_id, position, key, name, variables) VALUES (?, ?, ?, ?, ?, ?)",
        [(vid, feature_id, i, key, name, dumps(values)) for i, (vid, key, name, values) in enumerate(variations)],
    )


def _set_control(w: Write, feature_id: str, control: str | None, field: str = "controlVariation") -> None:
    if control is None:
        return
    variation_id = variation_id_of(w.db, feature_id, control) if control else None
    if control and variation_id is None:
        raise validation(f"no variation {control!r} in this feature", field, "unknown_variation")
    w.db.execute("UPDATE features SET control_variation = ? WHERE id = ?", (variation_id, feature_id))


def insert_feature(w: Write, access: authz.ProjectAccess, body: FeatureFields, prefix: str = "") -> str:
    if key_taken(w.db, "features", "project_id", access.id, body.key):
        raise conflict(f"a feature with key {body.key!r} already exists in this project")
    feature_id = new_id()
    now = now_iso()
    w.db.execute(
        "INSERT INTO features (id, project_id, key, name, description, type, tags, settings, sdk_visibility, summary,"
        " created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            feature_id,
            access.id,
            body.key,
            body.name,
            body.description,
            body.type,
            dumps(body.tags or []),
            dumps(body.settings.model_dump(exclude_none=True) if body.settings else {}),
            dumps(body.sdkVisibility.model_dump(exclude_none=True) if body.sdkVisibility else {}),
            dumps(body.summary.model_dump(exclude_none=True) if body.summary else {}),
            w.principal.user_id,
            now,
            now,
        ),
    )
    try:
        if body.variables:
            set_feature_variables(w, access.id, feature_id, body.variables)
        _write_variations(w, feature_id, [(new_id(), v.key, v.name, v.variables or {}) for v in body.variations or []])
        check_feature_values(w.db, feature_id)
        _set_control(w, feature_id, body.controlVariation)
        if body.configurations:
            apply_configurations(w, access.id, feature_id, body.configurations)
    except ApiError as e:
        for d in e.details:
            d["field"] = prefix + d["field"]
        raise
    w.audit("feature.create", f"feature:{body.key}", organisation_id=access.organisation_id, project_id=access.id)
    w.touch(access.id)
    return feature_id


@router.route(
    "POST",
    "/v1/projects/{project}/features",
    summary="Create a feature",
    body=CreateFeature,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_feature(ctx: Ctx) -> Any:
    body: CreateFeature = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        return feature_view(w.db, insert_feature(w, access, body))

    return ctx.commit(change, status=201)


@router.route(
    "POST",
    "/v1/projects/{project}/features/multiple",
    summary="Create several features at once",
    body=CreateFeatures,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_features(ctx: Ctx) -> Any:
    body: CreateFeatures = ctx.body

    def change(w: Write) -> list[dict[str, Any]]:
        access = write_project(w, ctx, "write")
        ids = [insert_feature(w, access, f, f"[{i}].") for i, f in enumerate(body.root)]
        return [feature_view(w.db, i) for i in ids]

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects/{project}/features", summary="List features", query=FeatureListQuery, headers=ORG)
async def list_features(ctx: Ctx) -> Any:
    query: FeatureListQuery = ctx.query
    where: list[str] = ["f.project_id = ?"]
    params: list[Any] = []
    if query.type:
        where.append("f.type = ?")
        params.append(query.type)
    if query.status:
        where.append("f.status = ?")
        params.append(query.status)
    if query.keys:
        keys = [k.strip() for k in query.keys.split(",") if k.strip()][:1000]
        where.append(f"f.key IN ({','.join('?' * len(keys))})" if keys else "0")
        params += keys
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        rows = list_rows(db, "SELECT f.* FROM features f", where, [access.id, *params], query, alias="f")
        return [feature_view(db, r["id"]) for r in rows]


@router.route("GET", "/v1/projects/{project}/features/{feature}", summary="Get a feature by id or key", headers=ORG)
async def get_feature(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return feature_view(db, feature(db, access.id, ctx.path("feature"))["id"])


def _updated_variations(
    w: Write, feature_id: str, updates: list[Any]
) -> tuple[list[tuple[str, str, str, dict[str, Any]]], set[str]]:
    current = {
        r["id"]: r for r in w.db.execute("SELECT * FROM variations WHERE feature_id = ?", (feature_id,)).fetchall()
    }
    by_key = {r["key"]: r for r in current.values()}
    out: list[tuple[str, str, str, dict[str, Any]]] = []
    for i, v in enumerate(updates):
        existing = current.get(v.id) if v.id else by_key.get(v.key) if v.key else None
        if v.id and existing is None:
            raise validation(f"no variation {v.id!r} in this feature", f"variations[{i}]._id", "unknown_variation")
        if existing is None:
            if v.key is None or v.name is None:
                raise validation("a new variation needs a key and a name", f"variations[{i}]", "required")
            out.append((new_id(), v.key, v.name, v.variables or {}))
        else:
            out.append(
                (
                    existing["id"],
                    v.key or existing["key"],
                    v.name or existing["name"],
                    v.variables if v.variables is not None else loads(existing["variables"], {}),
                )
            )
    kept = {vid for vid, *_ in out}
    removed = set(current) - kept
    return out, removed


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}",
    summary="Update a feature by id or key",
    body=UpdateFeature,
    headers=ORG,
    responses=(409,),
)
async def update_feature(ctx: Ctx) -> Any:
    return ctx.commit(
        update_feature_change(ctx.path("project"), ctx.path("feature"), ctx.header("x-organisation"), ctx.body)
    )


def update_feature_change(
    project_ref: str, feature_ref: str, organisation: str | None, body: UpdateFeature
) -> Callable[[Write], dict[str, Any]]:
    """The write of ``PATCH .../features/{feature}``, also run by the apply of a change request."""

    def change(w: Write) -> dict[str, Any]:
        access = authz.project_by_key(w.db, w.principal, project_ref, "write", organisation)
        f = feature(w.db, access.id, feature_ref)
        fid = f["id"]
        if body.key is not None and key_taken(w.db, "features", "project_id", access.id, body.key, fid):
            raise conflict(f"a feature with key {body.key!r} already exists in this project")
        w.db.execute(
            "UPDATE features SET key = ?, name = ?, description = ?, type = ?, tags = ?, settings = ?,"
            " sdk_visibility = ?, summary = ?, updated_at = ? WHERE id = ?",
            (
                body.key or f["key"],
                body.name or f["name"],
                body.description if body.description is not None else f["description"],
                body.type or f["type"],
                dumps(body.tags) if body.tags is not None else f["tags"],
                dumps(body.settings.model_dump(exclude_none=True)) if body.settings else f["settings"],
                dumps(body.sdkVisibility.model_dump(exclude_none=True)) if body.sdkVisibility else f["sdk_visibility"],
                dumps(body.summary.model_dump(exclude_none=True)) if body.summary else f["summary"],
                now_iso(),
                fid,
            ),
        )
        served_changed = body.key is not None and body.key != f["key"]
        if body.variables is not None:
            set_feature_variables(w, access.id, fid, body.variables)
            served_changed = True
        if body.variations is not None:
            variations, removed = _updated_variations(w, fid, body.variations)
            used = variations_in_use(w.db, fid)
            for vid in removed:
                if vid in used:
                    raise conflict(f"a removed variation is still used by {used[vid]}")
            _write_variations(w, fid, variations)
            served_changed = True
        check_feature_values(w.db, fid)
        _set_control(w, fid, body.controlVariation)
        if served_changed:
            # Keys, variations and variable values reach every environment, protected ones too.
            approval.guard_every_environment(w, access.id, fid)
            bump_feature(w, fid)
        if body.configurations:
            apply_configurations(w, access.id, fid, body.configurations)
        w.audit(
            "feature.update",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))},
        )
        w.touch(access.id)
        return feature_view(w.db, fid)

    return change


@router.route(
    "DELETE",
    "/v1/projects/{project}/features/{feature}",
    summary="Delete a feature by id or key",
    query=DeleteFeatureQuery,
    status=204,
    headers=ORG,
)
async def delete_feature(ctx: Ctx) -> Any:
    query: DeleteFeatureQuery = ctx.query

    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        if query.deleteVariables:
            w.db.execute("DELETE FROM variables WHERE feature_id = ?", (f["id"],))
        w.db.execute("DELETE FROM features WHERE id = ?", (f["id"],))
        w.audit(
            "feature.delete",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"deleteVariables": query.deleteVariables},
        )
        w.touch(access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}/status",
    summary="Set a feature's status (complete serves staticVariation everywhere)",
    body=FeatureStatus,
    headers=ORG,
)
async def update_feature_status(ctx: Ctx) -> Any:
    return ctx.commit(
        feature_status_change(ctx.path("project"), ctx.path("feature"), ctx.header("x-organisation"), ctx.body)
    )


def feature_status_change(
    project_ref: str, feature_ref: str, organisation: str | None, body: FeatureStatus
) -> Callable[[Write], dict[str, Any]]:
    """The write of ``PATCH .../features/{feature}/status``, also run by the apply of a change request."""

    def change(w: Write) -> dict[str, Any]:
        access = authz.project_by_key(w.db, w.principal, project_ref, "write", organisation)
        f = feature(w.db, access.id, feature_ref)
        static = None
        if body.status == "complete":
            if not body.staticVariation:
                raise validation("a complete feature needs staticVariation", "staticVariation", "required")
            static = variation_id_of(w.db, f["id"], body.staticVariation)
            if static is None:
                raise validation(
                    f"no variation {body.staticVariation!r} in this feature", "staticVariation", "unknown_variation"
                )
        elif body.staticVariation:
            raise validation("staticVariation is only for complete features", "staticVariation", "invalid")
        w.db.execute(
            "UPDATE features SET status = ?, static_variation = ?, updated_at = ? WHERE id = ?",
            (body.status, static, now_iso(), f["id"]),
        )
        if (body.status, static) != (f["status"], f["static_variation"]):
            approval.guard_every_environment(w, access.id, f["id"])
            bump_feature(w, f["id"])
        w.audit(
            "feature.status",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"from": f["status"], "to": body.status},
        )
        w.touch(access.id)
        return feature_view(w.db, f["id"])

    return change
