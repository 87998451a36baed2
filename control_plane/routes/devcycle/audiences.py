"""DevCycle audiences (``/v1/projects/{project}/audiences``): reusable filter trees, referenced
by ``audienceMatch``.

Filters are validated, reference cycles refused, and the audience is compiled alone; a change
recompiles every configuration that uses it (directly or through other audiences) and bumps
their targetingVersion. An audience that a feature or audience uses cannot be deleted.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import Response

import evaluator
from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError, conflict, validation
from control_plane.features_snapshot import audience_refs, translate_filter
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle.common import (
    ORG,
    FilterChecker,
    audience_resolver,
    dumps,
    dv_router,
    key_taken,
    list_rows,
    loads,
    project,
    project_filter_trees,
    row_by_id_or_key,
    rule_error,
    write_project,
)
from control_plane.routes.devcycle.configurations import compile_configuration, configurations_using
from control_plane.routes.devcycle.models import AudienceListQuery, CreateAudience, UpdateAudience
from control_plane.routes.devcycle.views import audience_view
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-audiences")


def _used_audiences(db: Connection, project_id: str) -> set[str]:
    return {a for t in project_filter_trees(db, project_id) for a in audience_refs(t)}


def _audience_parents(db: Connection, project_id: str, audience_id: str) -> list[Row]:
    """Audiences whose filters reference ``audience_id`` directly."""
    rows = db.execute("SELECT * FROM audiences WHERE project_id = ? AND id != ?", (project_id, audience_id)).fetchall()
    return [r for r in rows if audience_id in audience_refs(loads(r["filters"], {}))]


def audience_row(db: Connection, project_id: str, ident: str) -> Row:
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


def _free_key(db: Connection, project_id: str, name: str | None, audience_id: str) -> str:
    """The key of an audience created without one (the document makes it optional): its name
    made a key, else ``audience``; a taken key gets the new id's first characters appended."""
    base = re.sub(r"[^a-z0-9-_.]+", "-", (name or "").lower()).strip("-")[:80] or "audience"
    if not key_taken(db, "audiences", "project_id", project_id, base):
        return base
    return f"{base}-{audience_id[:12].lower()}"


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
        audience_id = new_id()
        key = body.key or _free_key(w.db, access.id, body.name, audience_id)
        name = body.name or key
        if key_taken(w.db, "audiences", "project_id", access.id, key):
            raise conflict(f"an audience with key {key!r} already exists in this project")
        filters = _check_audience_filters(w, access.id, audience_id, body.filters)
        now = now_iso()
        w.db.execute(
            "INSERT INTO audiences (id, project_id, key, name, description, filters, tags, created_by, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                audience_id,
                access.id,
                key,
                name,
                body.description,
                dumps(filters),
                dumps(body.tags or []),
                w.principal.user_id,
                now,
                now,
            ),
        )
        w.audit("audience.create", f"audience:{key}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id, features=())  # what uses the audience is found by the build
        return audience_view(audience_row(w.db, access.id, audience_id), set())

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
        return audience_view(audience_row(db, access.id, ctx.path("key")), _used_audiences(db, access.id))


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
        return apply_audience_update(w, access, audience_row(w.db, access.id, ctx.path("key")), body)

    return ctx.commit(change)


def apply_audience_update(w: Write, access: authz.ProjectAccess, a: Row, body: UpdateAudience) -> dict[str, Any]:
    """The PATCH of audience ``a`` (also the semantic patch's last step); returns its view."""
    if body.key is not None and key_taken(w.db, "audiences", "project_id", access.id, body.key, a["id"]):
        raise conflict(f"an audience with key {body.key!r} already exists in this project")
    filters = loads(a["filters"], {})
    if body.filters is not None:
        filters = _check_audience_filters(w, access.id, a["id"], body.filters)
    w.db.execute(
        "UPDATE audiences SET key = ?, name = ?, description = ?, filters = ?, tags = ?, updated_at = ? WHERE id = ?",
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
    w.touch(access.id, features=())  # what uses the audience is found by the build
    return audience_view(audience_row(w.db, access.id, a["id"]), _used_audiences(w.db, access.id))


def _usages(db: Connection, project_id: str, audience_id: str) -> dict[str, Any]:
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
    "/v1/projects/{project}/audiences/{key}/usage",
    summary="Features (per environment) and audiences that use the audience directly",
    headers=ORG,
)
async def audience_usage(ctx: Ctx) -> Any:
    return await audience_usages(ctx)


@router.route(
    "GET",
    "/v1/projects/{project}/audiences/{key}/usages",
    summary="Alias of GET .../usage",
    headers=ORG,
)
async def audience_usages(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        a = audience_row(db, access.id, ctx.path("key"))
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
        a = audience_row(w.db, access.id, ctx.path("key"))
        usages = _usages(w.db, access.id, a["id"])
        if usages["features"] or usages["audiences"]:
            names = [f["key"] for f in usages["features"]] + [x["key"] for x in usages["audiences"]]
            raise conflict(f"audience {a['key']!r} is used by {', '.join(names)}")
        w.db.execute("DELETE FROM audiences WHERE id = ?", (a["id"],))
        w.audit("audience.delete", f"audience:{a['key']}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id, features=())  # what uses the audience is found by the build

    ctx.commit(change, status=204)
    return Response(status_code=204)
