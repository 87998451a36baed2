"""DevCycle environments of a project (``/v1/projects/{project}/environments``).

Creating an environment also creates its client, server and mobile SDK keys, shown once in the
response (no idempotent replay). Environment writes are admin-only.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from contract.sdk_keys import KINDS
from control_plane import authz
from control_plane.errors import conflict
from control_plane.http import Ctx, Write
from control_plane.key_vault import KeyVault
from control_plane.routes.devcycle.common import (
    ORG,
    ListQuery,
    dumps,
    dv_router,
    environment,
    key_taken,
    list_rows,
    loads,
    merge_settings,
    project,
    write_project,
)
from control_plane.routes.devcycle.models import CreateEnvironment, UpdateEnvironment
from control_plane.routes.devcycle.sdk_keys import PREFIX_LENGTH, add_keys
from control_plane.routes.devcycle.views import environment_view
from control_plane.store import new_id, now_iso


def readable(ctx: Ctx, access: authz.ProjectAccess) -> KeyVault | None:
    """The vault when the caller may read full SDK keys (project admins and owners), else None."""
    return ctx.services.vault if authz.RANK.get(access.role, -1) >= authz.RANK["admin"] else None


router = dv_router("devcycle-projects")


@router.route(
    "POST",
    "/v1/projects/{project}/environments",
    summary="Create an environment; its client, server and mobile SDK keys are returned once",
    body=CreateEnvironment,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_environment(ctx: Ctx) -> Any:
    body: CreateEnvironment = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        if key_taken(w.db, "environments", "project_id", access.id, body.key):
            raise conflict(f"an environment with key {body.key!r} already exists in this project")
        env_id = new_id()
        now = now_iso()
        settings = body.settings.model_dump(exclude_none=True) if body.settings else {}
        w.db.execute(
            "INSERT INTO environments (id, project_id, key, name, type, description, color, settings, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                env_id,
                access.id,
                body.key,
                body.name,
                body.type,
                body.description,
                body.color or "",
                dumps(settings),
                now,
                now,
            ),
        )
        w.db.execute(
            "INSERT INTO dv_environment_meta (environment_id, created_by) VALUES (?, ?)", (env_id, w.principal.user_id)
        )
        created = add_keys(w, ctx.services.vault, env_id, body.type, KINDS)
        w.audit(
            "environment.create",
            f"environment:{body.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"type": body.type, "sdk_keys": [s[:PREFIX_LENGTH] for s in created.values()]},
        )
        w.touch(access.id, features=())  # no feature changed (control_plane.incremental)
        return environment_view(w.db, environment(w.db, access.id, env_id), created, readable(ctx, access))

    # The keys are shown once: a replay must not return them again, so no idempotency cache.
    return ctx.commit(change, status=201, idempotent=False)


@router.route(
    "GET", "/v1/projects/{project}/environments", summary="List a project's environments", query=ListQuery, headers=ORG
)
async def list_environments(ctx: Ctx) -> Any:
    query: ListQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        rows = list_rows(
            db,
            "SELECT e.* FROM environments e LEFT JOIN dv_environment_meta m ON m.environment_id = e.id",
            ["e.project_id = ?"],
            [access.id],
            query,
            alias="e",
            created_by="m.created_by",
        )
        return [environment_view(db, r, readable=readable(ctx, access)) for r in rows]


@router.route(
    "GET", "/v1/projects/{project}/environments/{environment}", summary="Get an environment by id or key", headers=ORG
)
async def get_environment(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return environment_view(db, environment(db, access.id, ctx.path("environment")), readable=readable(ctx, access))


@router.route(
    "PATCH",
    "/v1/projects/{project}/environments/{environment}",
    summary="Update an environment (admin)",
    body=UpdateEnvironment,
    headers=ORG,
    responses=(409,),
)
async def update_environment(ctx: Ctx) -> Any:
    body: UpdateEnvironment = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = environment(w.db, access.id, ctx.path("environment"))
        if body.key is not None and key_taken(w.db, "environments", "project_id", access.id, body.key, row["id"]):
            raise conflict(f"an environment with key {body.key!r} already exists in this project")
        settings = loads(row["settings"], {})
        if body.settings is not None:
            settings = merge_settings(settings, body.settings.model_dump(exclude_none=True))
        w.db.execute(
            "UPDATE environments SET name = ?, key = ?, description = ?, color = ?, type = ?, settings = ?,"
            " updated_at = ? WHERE id = ?",
            (
                body.name if body.name is not None else row["name"],
                body.key if body.key is not None else row["key"],
                body.description if body.description is not None else row["description"],
                body.color if body.color is not None else row["color"],
                body.type if body.type is not None else row["type"],
                dumps(settings),
                now_iso(),
                row["id"],
            ),
        )
        w.audit(
            "environment.update",
            f"environment:{row['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details=body.model_dump(exclude_none=True, exclude={"change_reason"}),
        )
        # Its key is served (the DevCycle section's environment): without this the section kept
        # the old key until the project's next write.
        w.touch(access.id, features=())
        return environment_view(w.db, environment(w.db, access.id, row["id"]), readable=readable(ctx, access))

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/environments/{environment}",
    summary="Delete an environment, its configurations and SDK keys (admin)",
    status=204,
    headers=ORG,
)
async def delete_environment(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "admin")
        row = environment(w.db, access.id, ctx.path("environment"))
        w.db.execute("DELETE FROM environments WHERE id = ?", (row["id"],))
        w.audit(
            "environment.delete",
            f"environment:{row['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id, features=())  # no feature changed (control_plane.incremental)

    ctx.commit(change, status=204)
    return Response(status_code=204)
