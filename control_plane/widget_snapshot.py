"""What the edge serves at ``GET /sdk/config``: a project's Releaseo widget settings.

The snapshot pipeline calls :func:`widget_snapshot` for every project a write touched and writes
the result under the project key (``projectKey -> widget config`` in LMDB). When it returns
``None`` (no widget, or the widget was removed) the pipeline deletes the entry of
:func:`widget_project_key`, so loaded widgets stop receiving the removed settings.
"""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.dialect import Connection


def widget_snapshot(db: Connection, project_id: str) -> dict[str, Any] | None:
    """``{"projectKey", "settings", "version", "updatedAt"}`` of the project's widget, or ``None``."""
    row = db.execute(
        "SELECT project_key, settings, version, updated_at FROM releaseo_widgets WHERE project_id = ?", (project_id,)
    ).fetchone()
    if row is None or row["settings"] is None:
        return None
    return {
        "projectKey": row["project_key"],
        "settings": orjson.loads(row["settings"]),
        "version": row["version"],
        "updatedAt": row["updated_at"],
    }


def widget_project_key(db: Connection, project_id: str) -> str | None:
    """The project's public Releaseo key (``rp_...``), also after its widget was removed."""
    row = db.execute("SELECT project_key FROM releaseo_widgets WHERE project_id = ?", (project_id,)).fetchone()
    return None if row is None else str(row["project_key"])
