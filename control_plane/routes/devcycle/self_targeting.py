"""DevCycle self-targeting: a dashboard user's DevCycle identity and their overrides.

* ``GET/PATCH /v1/projects/{project}/userProfile/current``: the calling user's profile in the
  project, ``{_id, _project, a0_user, dvcUserId, createdAt, updatedAt}``. ``dvcUserId`` is the
  SDK user id (``user_id`` the SDKs send) the user's overrides apply to; ``null`` clears it. One
  SDK user id belongs to one dashboard user per project (409 otherwise). GET of a user who has
  none yet answers a profile with ``dvcUserId: null`` (nothing is stored until a PATCH).
* ``PUT /v1/projects/{project}/features/{feature}/overrides/current`` ``{environment,
  variation}``: serve the caller (as their ``dvcUserId``) that variation of the feature in that
  environment, whatever the targeting says. ``GET`` (optional ``environment``): the caller's
  overrides of the feature, ``{"overrides": [{_environment, _variation}]}`` (what the DevCycle
  CLI's ``dvc overrides get`` reads: it looks the environment's ``_id`` up in that list);
  ``DELETE`` (``environment`` required): the caller's overrides of the feature there.
* ``GET /v1/projects/{project}/features/{feature}/overrides`` (optional ``environment``,
  ``addMetadata``): the feature's overrides of every team member, by environment key, and how
  many members have one. ``addMetadata`` is accepted; the document's answer has no field it adds.
* ``GET/DELETE /v1/projects/{project}/overrides/current``: the caller's overrides across the
  project (list with names), or all of them removed.

Overrides reach the edge in the environment snapshot (``control_plane.devcycle_overrides``), so
every change touches the project. Overrides need read access to the project (self-targeting is
a QA tool for every member, as in DevCycle), not write access: they change only what the caller
is served.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import Response

from control_plane.dialect import Connection, Row
from control_plane.errors import conflict, validation
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle.common import (
    ID_PATTERN,
    ORG,
    DvBody,
    dv_router,
    environment,
    feature,
    project,
    variation_id_of,
    write_project,
)
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-self-targeting")


class UpdateUserProfile(DvBody):
    dvcUserId: str | None = Field(min_length=1, max_length=200)


class UpdateOverride(DvBody):
    environment: str = Field(pattern=ID_PATTERN)
    variation: str = Field(pattern=ID_PATTERN)


def _profile_view(row: Row | None, project_id: str, user_id: str) -> dict[str, Any]:
    if row is None:
        now = now_iso()
        return {
            "_id": "",
            "_project": project_id,
            "a0_user": user_id,
            "dvcUserId": None,
            "createdAt": now,
            "updatedAt": now,
        }
    return {
        "_id": row["id"],
        "_project": row["project_id"],
        "a0_user": row["user_id"],
        "dvcUserId": row["dvc_user_id"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def _profile(db: Connection, project_id: str, user_id: str) -> Row | None:
    row: Row | None = db.execute(
        "SELECT * FROM user_profiles WHERE project_id = ? AND user_id = ?", (project_id, user_id)
    ).fetchone()
    return row


@router.route("GET", "/v1/projects/{project}/userProfile/current", summary="The caller's user profile", headers=ORG)
async def get_user_profile(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        user_id = ctx.principal.user_id
        return _profile_view(_profile(db, access.id, user_id), access.id, user_id)


@router.route(
    "PATCH",
    "/v1/projects/{project}/userProfile/current",
    summary="Create or update the caller's user profile (dvcUserId for overrides)",
    body=UpdateUserProfile,
    headers=ORG,
    responses=(409,),
)
async def update_user_profile(ctx: Ctx) -> Any:
    body: UpdateUserProfile = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "read")
        user_id = w.principal.user_id
        if body.dvcUserId is not None:
            taken = w.db.execute(
                "SELECT 1 FROM user_profiles WHERE project_id = ? AND dvc_user_id = ? AND user_id != ?",
                (access.id, body.dvcUserId, user_id),
            ).fetchone()
            if taken:
                raise conflict("another team member's profile already uses this dvcUserId")
        now = now_iso()
        w.db.execute(
            "INSERT INTO user_profiles (id, project_id, user_id, dvc_user_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, user_id)"
            " DO UPDATE SET dvc_user_id = excluded.dvc_user_id, updated_at = excluded.updated_at",
            (new_id(), access.id, user_id, body.dvcUserId, now, now),
        )
        w.audit(
            "user_profile.update",
            f"user:{user_id}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"dvcUserId": body.dvcUserId},
        )
        w.touch(access.id, features=())  # the user's overrides now apply to another SDK user id
        return _profile_view(_profile(w.db, access.id, user_id), access.id, user_id)

    return ctx.commit(change)


def _override_view(row: Row) -> dict[str, Any]:
    return {
        "_project": row["project_id"],
        "_environment": row["environment_id"],
        "_feature": row["feature_id"],
        "_variation": row["variation_id"],
        "dvcUserId": row["dvc_user_id"] or "",
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "a0_user": row["user_id"],
    }


_OVERRIDES = (
    "SELECT o.*, p.dvc_user_id, e.key AS environment_key, e.name AS environment_name, f.name AS feature_name,"
    " v.name AS variation_name FROM feature_overrides o"
    " JOIN environments e ON e.id = o.environment_id JOIN features f ON f.id = o.feature_id"
    " JOIN variations v ON v.id = o.variation_id"
    " LEFT JOIN user_profiles p ON p.project_id = o.project_id AND p.user_id = o.user_id"
)


@router.route(
    "PUT",
    "/v1/projects/{project}/features/{feature}/overrides/current",
    summary="Override the feature's variation for the caller in one environment",
    body=UpdateOverride,
    headers=ORG,
)
async def put_override(ctx: Ctx) -> Any:
    body: UpdateOverride = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "read")
        f = feature(w.db, access.id, ctx.path("feature"))
        env = environment(w.db, access.id, body.environment)
        variation = variation_id_of(w.db, f["id"], body.variation)
        if variation is None:
            raise validation(f"feature {f['key']!r} has no variation {body.variation!r}", "variation", "not_found")
        user_id = w.principal.user_id
        now = now_iso()
        w.db.execute(
            "INSERT INTO feature_overrides (project_id, user_id, environment_id, feature_id, variation_id,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, environment_id, feature_id)"
            " DO UPDATE SET variation_id = excluded.variation_id, updated_at = excluded.updated_at",
            (access.id, user_id, env["id"], f["id"], variation, now, now),
        )
        w.audit(
            "override.update",
            f"feature:{f['key']}/environment:{env['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"variation": variation, "user": user_id},
        )
        w.touch(access.id, features=())  # overrides only: no feature changed
        row = w.db.execute(
            f"{_OVERRIDES} WHERE o.user_id = ? AND o.environment_id = ? AND o.feature_id = ?",
            (user_id, env["id"], f["id"]),
        ).fetchone()
        return _override_view(row)

    return ctx.commit(change)


class FeatureOverridesQuery(BaseModel):
    environment: str | None = Field(default=None, pattern=ID_PATTERN)


class TeamOverridesQuery(FeatureOverridesQuery):
    addMetadata: bool = False


def _feature_overrides(db: Connection, ctx: Ctx, only_caller: bool) -> list[Row]:
    """The feature's overrides (the caller's alone, or every member's), in ``environment`` if given."""
    access = project(db, ctx, "read")
    f = feature(db, access.id, ctx.path("feature"))
    sql, args = f"{_OVERRIDES} WHERE o.feature_id = ?", [f["id"]]
    if only_caller:
        sql += " AND o.user_id = ?"
        args.append(ctx.principal.user_id)
    if ctx.query.environment is not None:
        sql += " AND o.environment_id = ?"
        args.append(environment(db, access.id, ctx.query.environment)["id"])
    return list(db.execute(sql + " ORDER BY e.key, o.created_at", args).fetchall())


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/overrides/current",
    summary="The caller's overrides of the feature",
    query=FeatureOverridesQuery,
    headers=ORG,
)
async def get_own_feature_overrides(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        rows = _feature_overrides(db, ctx, only_caller=True)
        return {"overrides": [{"_environment": r["environment_id"], "_variation": r["variation_id"]} for r in rows]}


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/overrides",
    summary="The feature's overrides of every team member, by environment key",
    query=TeamOverridesQuery,
    headers=ORG,
)
async def get_feature_overrides(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        rows = _feature_overrides(db, ctx, only_caller=False)
        overrides: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            overrides.setdefault(r["environment_key"], []).append(_override_view(r))
        return {"overrides": overrides, "uniqueTeamMembers": len({r["user_id"] for r in rows})}


@router.route(
    "DELETE",
    "/v1/projects/{project}/features/{feature}/overrides/current",
    summary="Remove the caller's override of the feature in one environment",
    status=204,
    headers=ORG,
)
async def delete_feature_overrides(ctx: Ctx) -> Any:
    wanted = ctx.request.query_params.get("environment")
    if not wanted:
        raise validation("environment is required", "query.environment", "missing")

    def change(w: Write) -> None:
        access = write_project(w, ctx, "read")
        f = feature(w.db, access.id, ctx.path("feature"))
        env = environment(w.db, access.id, wanted)
        w.db.execute(
            "DELETE FROM feature_overrides WHERE user_id = ? AND environment_id = ? AND feature_id = ?",
            (w.principal.user_id, env["id"], f["id"]),
        )
        w.audit(
            "override.delete",
            f"feature:{f['key']}/environment:{env['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id, features=())  # overrides only: no feature changed

    ctx.commit(change, status=204)
    return Response(status_code=204)


@router.route(
    "GET", "/v1/projects/{project}/overrides/current", summary="The caller's overrides in the project", headers=ORG
)
async def get_project_overrides(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        rows = db.execute(
            f"{_OVERRIDES} WHERE o.project_id = ? AND o.user_id = ? ORDER BY o.created_at, f.key, e.key",
            (access.id, ctx.principal.user_id),
        ).fetchall()
        return [
            {
                "_feature": r["feature_id"],
                "featureName": r["feature_name"],
                "_environment": r["environment_id"],
                "environmentName": r["environment_name"],
                "_variation": r["variation_id"],
                "variationName": r["variation_name"],
            }
            for r in rows
        ]


@router.route(
    "DELETE",
    "/v1/projects/{project}/overrides/current",
    summary="Remove all of the caller's overrides in the project",
    status=204,
    headers=ORG,
)
async def delete_project_overrides(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "read")
        w.db.execute(
            "DELETE FROM feature_overrides WHERE project_id = ? AND user_id = ?", (access.id, w.principal.user_id)
        )
        w.audit(
            "override.delete_all",
            f"user:{w.principal.user_id}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id, features=())  # overrides only: no feature changed

    ctx.commit(change, status=204)
    return Response(status_code=204)
