"""Helpers shared by the DevCycle feature, variation and variable route tests."""

from __future__ import annotations

from typing import Any

from contract.intake import IntakeRecord
from control_plane.store import now_iso
from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import Project, project

FEATURE_FIELDS = {
    "_id",
    "_project",
    "source",
    "status",
    "type",
    "name",
    "key",
    "description",
    "_createdBy",
    "createdAt",
    "updatedAt",
    "variations",
    "controlVariation",
    "staticVariation",
    "variables",
    "tags",
    "readonly",
    "settings",
    "sdkVisibility",
    "configurations",
    "summary",
    "prodTargetingUpdatedAt",
    "ldLink",
    "changeRequests",
    "staleness",
    "latestUpdate",
}


VARIABLE_FIELDS = {
    "_id",
    "_project",
    "_feature",
    "name",
    "description",
    "key",
    "type",
    "status",
    "source",
    "_createdBy",
    "createdAt",
    "updatedAt",
    "persistent",
    "tags",
}


def setup(api: Api) -> Project:
    p = project(api)
    p.environment("production", "production")
    return p


def record(n: int, env: str, kind: str, event: dict[str, Any], key_kind: str = "server") -> IntakeRecord:
    """An intake record as the events consumer stores it (``n`` makes its id)."""
    return {
        "id": f"r{n}",
        "type": kind,
        "environment": env,
        "project": None,
        "keyKind": key_kind,
        "receivedAt": now_iso(),
        "dedupId": None,
        "event": event,
    }
