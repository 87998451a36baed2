"""The audience of a changelog entry or a targeted roadmap item, as stored (seed 000: "changelog
audience modes include all users, saved segment, and custom condition"; "saved segment targeting
stores a snapshot so public post visibility remains stable").

* ``all``: stored as NULL.
* ``segment``: the segment's published version (the latest, or the ``segmentVersion`` asked
  for) is copied: ``{"mode", "segmentId", "segmentVersion", "segmentName", "definition"}``.
  Editing, republishing or deleting the segment later changes nothing here; setting the
  audience again takes the then-latest version.
* ``condition``: a Reflag filter tree compiled by the evaluator (400 naming the bad node),
  stored as ``{"mode", "definition"}``.

The edge evaluates ``definition`` with the evaluator the flags use (``control_plane/board_snapshot.py``).
"""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.dialect import Connection
from control_plane.errors import validation
from control_plane.routes.releaseo.models import Audience
from control_plane.routes.releaseo.segments import compile_definition


def stored_audience(db: Connection, project_id: str, audience: Audience) -> str | None:
    """The JSON to store for ``audience`` (None for everyone); 400 naming the bad field."""
    if audience.mode == "all":
        return None
    if audience.mode == "condition":
        if audience.filter is None:
            raise validation("audience.filter is required for mode condition", "audience.filter", "required")
        definition = compile_definition(audience.filter)
        return orjson.dumps({"mode": "condition", "definition": orjson.loads(definition)}).decode()
    if audience.segmentId is None:
        raise validation("audience.segmentId is required for mode segment", "audience.segmentId", "required")
    sql = "SELECT * FROM releaseo_segment_versions WHERE project_id = ? AND segment_id = ?"
    params: tuple[Any, ...] = (project_id, audience.segmentId)
    if audience.segmentVersion is not None:
        row = db.execute(sql + " AND version = ?", (*params, audience.segmentVersion)).fetchone()
    else:
        row = db.execute(sql + " ORDER BY version DESC LIMIT 1", params).fetchone()
    if row is None:
        raise validation(
            "the segment has no such published version (publish the segment first)",
            "audience.segmentVersion" if audience.segmentVersion is not None else "audience.segmentId",
            "not_published",
        )
    return orjson.dumps(
        {
            "mode": "segment",
            "segmentId": row["segment_id"],
            "segmentVersion": row["version"],
            "segmentName": row["name"],
            "definition": orjson.loads(row["definition"]),
        }
    ).decode()


def audience_view(stored: str | None) -> dict[str, Any]:
    """The audience as the dashboard API shows it."""
    if not stored:
        return {"mode": "all"}
    value: dict[str, Any] = orjson.loads(stored)
    return value
