"""Helpers shared by the DevCycle feature, variation and variable route tests."""

from __future__ import annotations

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
