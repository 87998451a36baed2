"""DevCycle projects (``/v1/projects``, ``/v1/projects/{project}``).

A project is created in the caller's organisation (``x-organisation``, or the only one the caller
belongs to); changing ``disablePassthroughRollouts`` changes how targets are served, so it bumps
every DevCycle configuration's targetingVersion. Deleting a project deletes everything in it.
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
    ListQuery,
    caller_organisation,
    dumps,
    dv_router,
    list_rows,
    loads,
    merge_settings,
    project,
    write_project,
)
from control_plane.routes.devcycle.models import CreateProject, UpdateProject
from control_plane.routes.devcycle.views import project_view
from control_plane.routes.organisations import create_project
from control_plane.store import now_iso

router = dv_router("devcycle-projects")

PROJECT_SELECT = (
    "SELECT p.*, m.color AS dv_color, m.created_by AS dv_created_by, EXISTS (SELECT 1 FROM dv_jira_issues j"
    " JOIN features f ON f.id = j.feature_id WHERE f.project_id = p.id) AS dv_has_jira FROM projects p "
    "LEFT JOIN dv_project_meta m ON m.project_id = p.id"
)


def project_row(db: Connection, project_id: str) -> Row:
    row: Row = db.execute(PROJECT_SELECT + " WHERE p.id = ?", (project_id,)).fetchone()
    return row


def touch_settings(w: Write, project_id: str, passthrough: bool) -> None:
    """Touch a project whose row (name, key, description, settings) this write changed.

    Flags read one thing of it: ``disablePassthroughRollouts`` (``features_snapshot``), which
    changes every DevCycle flag (and moved their targeting versions): then the project is built
    whole, honestly. The DevCycle section reads the key, the organisation and the settings
    DevCycle's config carries (``devcycle_config._project``), all in the environment's context,
    which ``control_plane.incremental`` compares with the kept one (an environment whose project
    differs is built whole). The rest (name, description, approval workflow, staleness, ...) no
    flag's build reads; what the edge keys by the project (releases, widgets, boards) is built
    again for every touched project (``publisher.project_state``)."""
    w.touch(project_id, features=None if passthrough else ())


@router.route(
    "POST",
    "/v1/projects",
    summary="Create a project in the caller's organisation",
    body=CreateProject,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_dv_project(ctx: Ctx) -> Any:
    body: CreateProject = ctx.body

    def change(w: Write) -> dict[str, Any]:
        org = caller_organisation(w.db, ctx, "admin")
        if w.db.execute("SELECT 1 FROM projects WHERE organisation_id = ? AND key = ?", (org.id, body.key)).fetchone():
            raise conflict(f"a project with key {body.key!r} already exists in this organisation")
        project_id = create_project(w, org.id, body.key, body.name, body.description)
        settings = body.settings.model_dump(exclude_none=True) if body.settings else {}
        w.db.execute("UPDATE projects SET settings = ? WHERE id = ?", (dumps(settings), project_id))
        w.db.execute(
            "INSERT INTO dv_project_meta (project_id, color, created_by) VALUES (?, ?, ?)",
            (project_id, body.color or "", w.principal.user_id),
        )
        w.audit("project.create", f"project:{body.key}", organisation_id=org.id, project_id=project_id)
        return project_view(project_row(w.db, project_id))

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects", summary="List the projects the caller can see", query=ListQuery, headers=ORG)
async def list_dv_projects(ctx: Ctx) -> Any:
    query: ListQuery = ctx.query
    principal = ctx.principal
    where = ["p.organisation_id IN (SELECT organisation_id FROM memberships WHERE user_id = ?)"]
    params: list[Any] = [principal.user_id]
    if principal.api_key_id is not None:
        if principal.effective_role(principal.api_key_org or "", "owner") is None:
            return []
        where.append("p.organisation_id = ?")
        params.append(principal.api_key_org)
    organisation = ctx.header("x-organisation")
    if organisation:
        where.append("p.organisation_id IN (SELECT id FROM organisations WHERE name = ?)")
        params.append(organisation)
    with ctx.services.store.read() as db:
        rows = list_rows(db, PROJECT_SELECT, where, params, query, alias="p", created_by="m.created_by")
    return [project_view(r) for r in rows]


@router.route("GET", "/v1/projects/{project}", summary="Get a project by id or key", headers=ORG)
async def get_dv_project(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return project_view(project_row(db, access.id))


@router.route(
    "PATCH",
    "/v1/projects/{project}",
    summary="Update a project (admin)",
    body=UpdateProject,
    headers=ORG,
    responses=(409,),
)
async def update_dv_project(ctx: Ctx) -> Any:
    body: UpdateProject = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "admin")
        row = project_row(w.db, access.id)
        if body.key is not None and body.key != row["key"]:
            taken = w.db.execute(
                "SELECT 1 FROM projects WHERE organisation_id = ? AND key = ? AND id != ?",
                (access.organisation_id, body.key, access.id),
            ).fetchone()
            if taken:
                raise conflict(f"a project with key {body.key!r} already exists in this organisation")
        settings = loads(row["settings"], {})
        if body.settings is not None:
            approval.check_settings_permission(access.role, body.settings.model_dump(exclude_none=True))
            settings = merge_settings(settings, body.settings.model_dump(exclude_none=True))
        w.db.execute(
            "UPDATE projects SET name = ?, key = ?, description = ?, settings = ?, updated_at = ? WHERE id = ?",
            (
                body.name if body.name is not None else row["name"],
                body.key if body.key is not None else row["key"],
                body.description if body.description is not None else row["description"],
                dumps(settings),
                now_iso(),
                access.id,
            ),
        )
        if body.color is not None:
            w.db.execute(
                "INSERT INTO dv_project_meta (project_id, color) VALUES (?, ?) "
                "ON CONFLICT (project_id) DO UPDATE SET color = excluded.color",
                (access.id, body.color),
            )
        w.audit(
            "project.update",
            f"project:{access.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details=body.model_dump(exclude_none=True, exclude={"change_reason"}),
        )
        # disablePassthroughRollouts changes how DevCycle targets are served.
        before = bool(loads(row["settings"], {}).get("disablePassthroughRollouts"))
        passthrough = bool(settings.get("disablePassthroughRollouts")) != before
        if passthrough:
            w.db.execute(
                "UPDATE feature_configurations SET targeting_version = targeting_version + 1, updated_at = ?"
                " WHERE reflag IS NULL AND feature_id IN (SELECT id FROM features WHERE project_id = ?)",
                (now_iso(), access.id),
            )
        touch_settings(w, access.id, passthrough)
        return project_view(project_row(w.db, access.id))

    return ctx.commit(change)


@router.route(
    "DELETE", "/v1/projects/{project}", summary="Delete a project and everything in it (admin)", status=204, headers=ORG
)
async def delete_dv_project(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "admin")
        w.db.execute("DELETE FROM projects WHERE id = ?", (access.id,))
        w.audit("project.delete", f"project:{access.key}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id, features=())  # nothing is left to build: its snapshots are withdrawn

    ctx.commit(change, status=204)
    return Response(status_code=204)
