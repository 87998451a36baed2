"""DevCycle features v2 (``/v2/projects/{project}/features``) and the feature routes both
versions share: static configuration (v1 and v2 paths), staleness (per feature, and the project's
stale list), summary.

v2 runs the same changes as v1 (:mod:`features`) and answers with the same Feature
(:func:`views.feature_view`); its list takes ``keys`` repeated as well as comma-separated, and
filters by computed staleness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError
from control_plane.http import Ctx, Write, parse_model
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import (
    ORG,
    DvBody,
    JsonObject,
    ListQuery,
    Tags,
    bump_feature,
    dumps,
    dv_router,
    feature,
    iso_date,
    list_rows,
    loads,
    project,
    write_project,
)
from control_plane.routes.devcycle.configurations import apply_configurations
from control_plane.routes.devcycle.features import (
    apply_update,
    feature_status_change,
    insert_feature,
    list_features,
    update_feature_change,
)
from control_plane.routes.devcycle.models import (
    ConfigurationFields,
    CreateFeature,
    FeatureListQuery,
    FeatureSettings,
    FeatureStatus,
    FeatureType,
    SdkVisibility,
    Summary,
    UpdateFeature,
)
from control_plane.routes.devcycle.staleness import assess, staleness
from control_plane.routes.devcycle.variables import check_feature_values
from control_plane.routes.devcycle.views import feature_view
from control_plane.store import now_iso

router = dv_router("devcycle-features")

FEATURE = "/v2/projects/{project}/features/{feature}"


class UpdateStaleness(DvBody):
    snoozedUntil: str | None = Field(default=None, max_length=40)
    disabled: bool | None = None
    metaData: JsonObject | None = None


class UpdateSummary(Summary, DvBody):
    pass


class EnvironmentStatus(DvBody):
    status: Literal["active", "inactive"]


class UpdateStaticConfiguration(DvBody):
    key: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[a-z0-9-_.]+$")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    type: FeatureType | None = None
    tags: Tags | None = None
    controlVariation: str | None = Field(default=None, max_length=100)
    settings: FeatureSettings | None = None
    sdkVisibility: SdkVisibility | None = None
    staleness: JsonObject | None = None
    summary: Summary | None = None
    variables: JsonObject | None = Field(default=None, description="The static value of each variable")
    environments: dict[str, EnvironmentStatus] | None = Field(
        default=None, max_length=100, description="The configuration status in each environment (key or id)"
    )


@router.route(
    "POST",
    "/v2/projects/{project}/features",
    summary="Create a feature",
    body=CreateFeature,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_feature_v2(ctx: Ctx) -> Any:
    body: CreateFeature = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        return feature_view(w.db, insert_feature(w, access, body))

    return ctx.commit(change, status=201)


@router.route("GET", "/v2/projects/{project}/features", summary="List features", query=FeatureListQuery, headers=ORG)
async def list_features_v2(ctx: Ctx) -> Any:
    return await list_features(ctx)


@router.route("GET", FEATURE, summary="Get a feature by id or key", headers=ORG)
async def get_feature_v2(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return feature_view(db, feature(db, access.id, ctx.path("feature"))["id"])


@router.route(
    "PATCH", FEATURE, summary="Update a feature by id or key", body=UpdateFeature, headers=ORG, responses=(409,)
)
async def update_feature_v2(ctx: Ctx) -> Any:
    return ctx.commit(
        update_feature_change(ctx.path("project"), ctx.path("feature"), ctx.header("x-organisation"), ctx.body)
    )


@router.route("PATCH", FEATURE + "/status", summary="Set a feature's status", body=FeatureStatus, headers=ORG)
async def update_feature_status_v2(ctx: Ctx) -> Any:
    return ctx.commit(
        feature_status_change(ctx.path("project"), ctx.path("feature"), ctx.header("x-organisation"), ctx.body)
    )


# ---------------------------------------------------------------------------------------------
# Static configuration (v1 and v2 paths)


def _not_complete(key: str) -> ApiError:
    return ApiError(412, f"feature {key!r} is not complete: only a complete feature has a static configuration")


def static_view(db: Connection, f: Row) -> dict[str, Any]:
    variation = db.execute("SELECT variables FROM variations WHERE id = ?", (f["static_variation"],)).fetchone()
    configs = {
        r["environment_id"]: r["status"]
        for r in db.execute(
            "SELECT environment_id, status FROM feature_configurations WHERE feature_id = ?", (f["id"],)
        )
    }
    envs = db.execute(
        "SELECT id, key FROM environments WHERE project_id = ? ORDER BY created_at, key", (f["project_id"],)
    )
    full = feature_view(db, f["id"])
    return {
        "key": f["key"],
        "name": f["name"],
        "description": f["description"],
        "variables": loads(variation["variables"], {}) if variation else {},
        "environments": {e["key"]: {"status": configs.get(e["id"], "inactive")} for e in envs},
        "readonly": False,
        "type": f["type"],
        "tags": full["tags"],
        "controlVariation": full["controlVariation"],
        "settings": full["settings"],
        "sdkVisibility": full["sdkVisibility"],
        "staleness": staleness(db, f),
        "summary": full["summary"],
    }


async def _get_static(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        if f["status"] != "complete":
            raise _not_complete(f["key"])
        return static_view(db, f)


def static_configuration_change(
    project_ref: str, feature_ref: str, organisation: str | None, body: UpdateStaticConfiguration
) -> Callable[[Write], dict[str, Any]]:
    """The write of ``PATCH .../static-configuration`` (v1 and v2), also run by the apply of a change request."""

    def change(w: Write) -> dict[str, Any]:
        access = authz.project_by_key(w.db, w.principal, project_ref, "write", organisation)
        f = feature(w.db, access.id, feature_ref)
        if f["status"] != "complete":
            raise _not_complete(f["key"])
        fields = body.model_dump(
            exclude_unset=True, exclude={"variables", "environments", "staleness", "change_reason", "client_dedup_id"}
        )
        if fields:
            apply_update(
                w,
                project_ref,
                feature_ref,
                organisation,
                parse_model(UpdateFeature, fields),
            )
        if body.variables is not None:
            row = w.db.execute("SELECT variables FROM variations WHERE id = ?", (f["static_variation"],)).fetchone()
            values = {**loads(row["variables"], {}), **body.variables}
            w.db.execute("UPDATE variations SET variables = ? WHERE id = ?", (dumps(values), f["static_variation"]))
            check_feature_values(w.db, f["id"], "variables")
            approval.guard_every_environment(w, access.id, f["id"])
            bump_feature(w, f["id"])
        if body.environments:
            configs = {env: ConfigurationFields(status=s.status) for env, s in body.environments.items()}
            apply_configurations(w, access.id, f["id"], configs)
        w.audit(
            "feature.static_configuration",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))},
        )
        w.touch(access.id, features={f["id"]})
        return static_view(w.db, feature(w.db, access.id, f["id"]))

    return change


@router.route(
    "GET",
    FEATURE + "/static-configuration",
    summary="Get a complete feature's static configuration",
    headers=ORG,
    responses=(412,),
)
async def get_static_configuration_v2(ctx: Ctx) -> Any:
    return await _get_static(ctx)


@router.route(
    "PATCH",
    FEATURE + "/static-configuration",
    summary="Update a complete feature's static configuration",
    body=UpdateStaticConfiguration,
    headers=ORG,
    responses=(412,),
)
async def update_static_configuration_v2(ctx: Ctx) -> Any:
    return ctx.commit(
        static_configuration_change(ctx.path("project"), ctx.path("feature"), ctx.header("x-organisation"), ctx.body)
    )


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/static-configuration",
    summary="Get a complete feature's static configuration",
    headers=ORG,
    responses=(412,),
)
async def get_static_configuration(ctx: Ctx) -> Any:
    return await _get_static(ctx)


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}/static-configuration",
    summary="Update a complete feature's static configuration",
    body=UpdateStaticConfiguration,
    headers=ORG,
    responses=(412,),
)
async def update_static_configuration(ctx: Ctx) -> Any:
    return ctx.commit(
        static_configuration_change(ctx.path("project"), ctx.path("feature"), ctx.header("x-organisation"), ctx.body)
    )


# ---------------------------------------------------------------------------------------------
# Staleness and summary


@router.route("GET", FEATURE + "/staleness", summary="Get a feature's staleness", headers=ORG)
async def get_feature_staleness(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return staleness(db, feature(db, access.id, ctx.path("feature")))


@router.route(
    "PATCH",
    FEATURE + "/staleness",
    summary="Snooze, disable or annotate a feature's staleness",
    body=UpdateStaleness,
    headers=ORG,
)
async def update_feature_staleness(ctx: Ctx) -> Any:
    body: UpdateStaleness = ctx.body
    snoozed = iso_date(body.snoozedUntil, "snoozedUntil") if body.snoozedUntil else None

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        own = w.db.execute("SELECT * FROM dv_feature_staleness WHERE feature_id = ?", (f["id"],)).fetchone()
        sent = body.model_fields_set
        disabled = int(body.disabled) if body.disabled is not None else (own["disabled"] if own else 0)
        until = snoozed if "snoozedUntil" in sent else (own["snoozed_until"] if own else None)
        meta = dumps(body.metaData) if body.metaData is not None else (own["meta_data"] if own else "{}")
        w.db.execute(
            "INSERT INTO dv_feature_staleness (feature_id, disabled, snoozed_until, meta_data, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (feature_id) DO UPDATE SET disabled = excluded.disabled,"
            " snoozed_until = excluded.snoozed_until, meta_data = excluded.meta_data, updated_at = excluded.updated_at",
            (f["id"], disabled, until, meta, now_iso()),
        )
        w.audit(
            "feature.staleness",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"disabled": bool(disabled), "snoozedUntil": until},
        )
        return staleness(w.db, f)

    return ctx.commit(change)


@router.route("PATCH", FEATURE + "/summary", summary="Update a feature's summary", body=UpdateSummary, headers=ORG)
async def update_feature_summary(ctx: Ctx) -> Any:
    body: UpdateSummary = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = feature(w.db, access.id, ctx.path("feature"))
        summary = {
            **loads(f["summary"], {}),
            **Summary.model_validate(body.model_dump(include=set(Summary.model_fields), exclude_unset=True)).model_dump(
                exclude_none=True
            ),
        }
        w.db.execute(
            "UPDATE features SET summary = ?, updated_at = ? WHERE id = ?", (dumps(summary), now_iso(), f["id"])
        )
        w.audit("feature.summary", f"feature:{f['key']}", organisation_id=access.organisation_id, project_id=access.id)
        return summary

    return ctx.commit(change)


class StaleListQuery(ListQuery):
    includeSilenced: bool = False


@router.route(
    "GET", "/v1/projects/{key}/staleness", summary="List a project's stale features", query=StaleListQuery, headers=ORG
)
async def project_staleness(ctx: Ctx) -> Any:
    query: StaleListQuery = ctx.query
    with ctx.services.store.read() as db:
        # This route names its project parameter {key}, as DevCycle's does.
        access = authz.project_by_key(db, ctx.principal, ctx.path("key"), "read", ctx.header("x-organisation"))
        everything = query.model_copy(update={"page": 1, "perPage": 1 << 31})
        rows = list_rows(db, "SELECT f.* FROM features f", ["f.project_id = ?"], [access.id], everything, alias="f")
        out = []
        for r in rows:
            entity, silenced = assess(db, r)
            if entity["stale"] or (query.includeSilenced and silenced):
                out.append(entity)
        start = (query.page - 1) * query.perPage
        return out[start : start + query.perPage]
