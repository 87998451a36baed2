"""Airborne application configs (``/organisations/applications/config/create``): numbered per
application; a release starts from the newest one (timeouts, properties) and overrides it.
"""

from __future__ import annotations

from typing import Any

from control_plane.dialect import Connection, Row
from control_plane.http import Ctx, Router, Write
from control_plane.routes.airborne.common import APP, app_access, dumps, next_number
from control_plane.routes.airborne.models import AirborneCreateConfig
from control_plane.routes.airborne.responses import ConfigCreated
from control_plane.store import new_id, now_iso

router = Router("airborne-releases", shape="airborne", required_headers=APP)


def latest_config(db: Connection, project_id: str) -> Row | None:
    row: Row | None = db.execute(
        "SELECT * FROM ab_configs WHERE project_id = ? ORDER BY number DESC LIMIT 1", (project_id,)
    ).fetchone()
    return row


@router.route(
    "POST",
    "/organisations/applications/config/create",
    summary="Create the application's config",
    body=AirborneCreateConfig,
    headers=APP,
    response=ConfigCreated,
)
async def create_config(ctx: Ctx) -> Any:
    body: AirborneCreateConfig = ctx.body

    def change(w: Write) -> dict[str, Any]:
        app = app_access(ctx, w.db, "write")
        number = next_number(w.db, "ab_configs", "number", app.id)
        config_id = new_id()
        w.db.execute(
            "INSERT INTO ab_configs (id, project_id, number, config_version, boot_timeout, package_timeout, properties,"
            " tenant_info, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                config_id,
                app.id,
                number,
                body.config.version,
                body.config.boot_timeout,
                body.config.package_timeout,
                dumps(body.properties or {}),
                dumps(body.tenant_info or {}),
                now_iso(),
            ),
        )
        w.audit(
            "config.create",
            f"config:{config_id}",
            organisation_id=app.organisation_id,
            project_id=app.id,
            details={"version": body.config.version, "number": number},
        )
        return {"success": True, "config_id": config_id, "version": number, "config_version": body.config.version}

    return ctx.commit(change)
