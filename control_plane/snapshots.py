"""Snapshot data of environments: built from the store, compiled by the evaluator to validate.

Every write validates the snapshots it affects before it commits; ``publisher`` then writes
them to LMDB.
"""

from __future__ import annotations

from typing import Any

import orjson

import evaluator
from control_plane.devcycle_config import environment_devcycle
from control_plane.dialect import Connection
from control_plane.errors import ApiError
from control_plane.features_snapshot import environment_features


def build_environment_document(db: Connection, environment_id: str) -> dict[str, Any]:
    """The evaluator document of one environment: ``{"features": [...]}`` in Reflag shape (what
    ``GET /features`` serves) plus the DevCycle section (``control_plane.devcycle_config``):
    ``devcycle`` (DevCycle's server SDK config), ``customDataTypes`` and ``sdkVisibility``."""
    return {"features": environment_features(db, environment_id), **environment_devcycle(db, environment_id)}


def compile_environment(db: Connection, environment_id: str) -> evaluator.Snapshot:
    """Build and compile one environment's snapshot; ApiError 400 naming the bad node if it fails."""
    return _compiled(build_environment_document(db, environment_id))


def _compiled(doc: dict[str, Any]) -> evaluator.Snapshot:
    try:
        return evaluator.Snapshot(orjson.dumps(doc))
    except evaluator.RuleError as e:
        raise ApiError(
            400,
            f"targeting does not compile: {e.reason}",
            details=[{"field": e.path, "code": "invalid_rule", "message": e.reason}],
        ) from None


def validate_projects(db: Connection, project_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Compile every environment of the projects; their documents by environment id, so the
    publish after the commit does not build them a second time."""
    documents = {}
    for project_id in sorted(project_ids):
        for row in db.execute("SELECT id FROM environments WHERE project_id = ? ORDER BY created_at", (project_id,)):
            doc = build_environment_document(db, row["id"])
            _compiled(doc)
            documents[row["id"]] = doc
    return documents
