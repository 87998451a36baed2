"""DevCycle project settings routes: ``PATCH /v1/projects/{key}/settings`` (publisher settings) and
``PATCH /v1/projects/{key}/settings/protected`` (``featureApprovalWorkflow`` and ``staleness``,
owners only). Both merge into the stored settings key by key, like ``PATCH /v1/projects/{key}``
(which refuses protected settings to non-owners too: ``approval.check_settings_permission``)."""

from __future__ import annotations

from typing import Any

from control_plane.http import Ctx, Write
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import ORG, dumps, dv_router, loads, merge_settings, write_project
from control_plane.routes.devcycle.flow_models import UpdateProjectSettings, UpdateProtectedSettings
from control_plane.routes.devcycle.projects import project_row, touch_settings
from control_plane.routes.devcycle.views import project_view
from control_plane.store import now_iso

router = dv_router("devcycle-projects")


def _settings_change(ctx: Ctx, settings: dict[str, Any], needed: str, action: str) -> Any:
    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, needed)
        row = w.db.execute("SELECT settings FROM projects WHERE id = ?", (access.id,)).fetchone()
        before = loads(row["settings"], {})
        merged = merge_settings(before, settings)
        w.db.execute(
            "UPDATE projects SET settings = ?, updated_at = ? WHERE id = ?", (dumps(merged), now_iso(), access.id)
        )
        passthrough = bool(merged.get("disablePassthroughRollouts")) != bool(before.get("disablePassthroughRollouts"))
        if passthrough:
            # Changes how DevCycle targets are served (as PATCH /v1/projects/{key} does).
            w.db.execute(
                "UPDATE feature_configurations SET targeting_version = targeting_version + 1, updated_at = ?"
                " WHERE reflag IS NULL AND feature_id IN (SELECT id FROM features WHERE project_id = ?)",
                (now_iso(), access.id),
            )
        w.audit(
            action,
            f"project:{access.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"settings": sorted(settings)},
        )
        touch_settings(w, access.id, passthrough)
        return project_view(project_row(w.db, access.id))

    return ctx.commit(change)


@router.route(
    "PATCH",
    "/v1/projects/{project}/settings",
    summary="Update a project's publisher settings (publisher)",
    body=UpdateProjectSettings,
    headers=ORG,
    responses=(409,),
)
async def update_project_settings(ctx: Ctx) -> Any:
    body: UpdateProjectSettings = ctx.body
    return _settings_change(ctx, body.settings.model_dump(exclude_none=True), "admin", "project.settings")


@router.route(
    "PATCH",
    "/v1/projects/{project}/settings/protected",
    summary="Update a project's protected settings: approval workflow and staleness (owner)",
    body=UpdateProtectedSettings,
    headers=ORG,
    responses=(409,),
)
async def update_protected_settings(ctx: Ctx) -> Any:
    body: UpdateProtectedSettings = ctx.body
    return _settings_change(
        ctx, body.settings.model_dump(exclude_none=True), approval.PROTECTED_SETTINGS_ROLE, "project.settings_protected"
    )
