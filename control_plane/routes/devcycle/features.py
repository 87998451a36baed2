"""DevCycle features (``/v1/projects/{project}/features``): create (one or several), list, get,
update, delete, and status (``complete`` serves ``staticVariation`` everywhere).

A feature create or update may carry its variations, variables and per-environment
configurations; they are written with the helpers of those resources' modules. Every write
calls ``w.touch(project_id, features={feature_id})`` (all it changes belongs to that feature):
the commit then rebuilds and compiles that feature in every environment of the project
(``control_plane.incremental``) and rolls back with a 400 naming the node if it does not compile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, validation
from control_plane.http import JSON, Ctx, Write
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import (
    ORG,
    bump_feature,
    dumps,
    dv_router,
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
from control_plane.routes.devcycle.staleness import staleness
from control_plane.routes.devcycle.variables import check_feature_values, set_feature_variables
from control_plane.routes.devcycle.variations import variations_in_use
from control_plane.routes.devcycle.views import feature_view
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-features")


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
    w.touch(access.id, features={feature_id})
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


def _keys(ctx: Ctx) -> list[str]:
    keys = [k.strip() for raw in ctx.request.query_params.getlist("keys") for k in raw.split(",") if k.strip()]
    if len(keys) > 1000:
        raise validation("at most 1000 keys", "query.keys", "too_many")
    return keys


def _staleness_matches(db: Connection, f: Row, wanted: str) -> bool:
    entity = staleness(db, f)
    if wanted == "notStale":
        return not entity["stale"]
    if wanted == "all":
        return bool(entity["stale"])
    return bool(entity["stale"]) and entity.get("reason") == wanted


@router.route("GET", "/v1/projects/{project}/features", summary="List features", query=FeatureListQuery, headers=ORG)
async def list_features(ctx: Ctx) -> Any:
    """v1 and v2 lists: the document's filters, ``keys`` repeated or comma-separated, and the
    computed ``staleness`` (every match is assessed, then the page is taken)."""
    query: FeatureListQuery = ctx.query
    where: list[str] = ["f.project_id = ?"]
    params: list[Any] = []
    for column, value in (("type", query.type), ("status", query.status), ("status", query.customStatus)):
        # Custom statuses are not modelled: customStatus matches the built-in ones only.
        if value:
            where.append(f"f.{column} = ?")
            params.append(value)
    keys = _keys(ctx)
    if keys:
        where.append(f"f.key IN ({','.join('?' * len(keys))})")
        params += keys
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        everything = query.model_copy(update={"page": 1, "perPage": 1 << 31})
        matches = list_rows(db, "SELECT f.* FROM features f", where, [access.id, *params], everything, alias="f")
        if query.staleness is not None:
            matches = [r for r in matches if _staleness_matches(db, r, query.staleness)]
        rows = matches[(query.page - 1) * query.perPage : query.page * query.perPage]
        views = [feature_view(db, r["id"], include_latest=query.includeLatestUpdate) for r in rows]
    # DevCycle's total in the "count" header: its CLI pages through lists by it.
    return JSON(views, headers={"count": str(len(matches))})


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
    """The write of ``PATCH .../features/{feature}`` (v1 and v2), also run by the apply of a change request."""
    return lambda w: feature_view(w.db, apply_update(w, project_ref, feature_ref, organisation, body))


def apply_update(w: Write, project_ref: str, feature_ref: str, organisation: str | None, body: UpdateFeature) -> str:
    """The PATCH of a feature; returns its id."""
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
    w.touch(access.id, features={fid})
    return str(fid)


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
        w.touch(access.id, features={f["id"]})

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
    """The write of ``PATCH .../features/{feature}/status`` (v1 and v2), also run by the apply of a change request."""
    return lambda w: feature_view(w.db, apply_status(w, project_ref, feature_ref, organisation, body))


def apply_status(w: Write, project_ref: str, feature_ref: str, organisation: str | None, body: FeatureStatus) -> str:
    """The status change of a feature; returns its id."""
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
    w.touch(access.id, features={f["id"]})
    return str(f["id"])
