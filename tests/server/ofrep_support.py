"""Shared by the OFREP tests: one environment of known flags and its SDK keys in LMDB.

Values have the shapes ``control_plane.publisher.project_state`` writes: environments are
``{"project", "environment", "document": {"features": [...]}}``, SDK keys (by SHA-256 hex)
``{"environment", "kind", "project"}``.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

from contract.store import ChangeSet, SnapshotWriter

PROJECT = "proj-ofrep"
ENV_ID = "env-ofrep-production"
SERVER_KEY = "srv_ofrep_0123456789abcdef"
CLIENT_KEY = "pk_ofrep_0123456789abcdef"
MOBILE_KEY = "mob_ofrep_0123456789abcdef"
# A valid key of an environment whose snapshot the store does not hold.
ORPHAN_KEY = "srv_ofrep_orphan_0123456789"


def rollout(attribute: str, threshold: int) -> dict[str, Any]:
    return {"type": "rolloutPercentage", "partialRolloutAttribute": attribute, "partialRolloutThreshold": threshold}


def context_is(field: str, value: str) -> dict[str, Any]:
    return {"type": "context", "field": field, "operator": "IS", "values": [value]}


def flag(key: str, version: int, *filters: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    feature: dict[str, Any] = {"key": key, "targeting": {"version": version, "rules": [{"filter": f} for f in filters]}}
    if config is not None:
        feature["config"] = config
    return feature


FEATURES: list[dict[str, Any]] = [
    flag("new-checkout", 7, {"type": "constant", "value": True}),
    flag("legacy-banner", 2),
    flag("kill-switch", 1, {"type": "constant", "value": False}),
    flag("pro-dashboard", 3, context_is("company.plan", "pro")),
    flag("vip-lounge", 1, context_is("user.id", "u-vip")),
    flag("gradual-rollout", 4, rollout("user.id", 100000)),
    flag("half-rollout", 1, rollout("user.id", 50000)),
    flag(
        "seat-limits",
        5,
        {"type": "constant", "value": True},
        config={
            "version": 2,
            "variants": [
                {"key": "gold", "filter": context_is("user.tier", "gold"), "payload": {"seats": 10, "label": "Gold"}},
                {"key": "basic", "payload": "basic"},
            ],
        },
    ),
    flag(
        "mixed-rules",
        1,
        context_is("company.plan", "enterprise"),
        {
            "type": "group",
            "operator": "and",
            "filters": [context_is("user.tier", "gold"), {"type": "negation", "filter": rollout("company.id", 0)}],
        },
    ),
    flag("devcycle-everyone", 1, {"type": "all"}),
    flag("email-logic", 1, {"type": "jsonLogic", "rule": {"==": [{"var": "user.email"}, "ada@example.com"]}}),
    flag("company-rollout", 1, rollout("company.id", 100000)),
]


def document(features: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"features": copy.deepcopy(FEATURES if features is None else features)}


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def sdk_keys() -> dict[str, dict[str, Any] | None]:
    def entry(kind: str, environment: str = ENV_ID) -> dict[str, Any]:
        return {"environment": environment, "kind": kind, "project": PROJECT}

    return {
        key_hash(SERVER_KEY): entry("server"),
        key_hash(CLIENT_KEY): entry("client"),
        key_hash(MOBILE_KEY): entry("mobile"),
        key_hash(ORPHAN_KEY): entry("server", "env-ofrep-not-published"),
    }


def initial_publish(features: list[dict[str, Any]] | None = None) -> ChangeSet:
    environment = {"project": PROJECT, "environment": "production", "document": document(features)}
    return ChangeSet(environments={ENV_ID: environment}, sdk_keys=sdk_keys())


def features_publish(features: list[dict[str, Any]]) -> ChangeSet:
    """A publish that replaces the environment's flags (its version moves)."""
    return ChangeSet(
        environments={ENV_ID: {"project": PROJECT, "environment": "production", "document": document(features)}}
    )


def prepare_store(data_dir: Path, features: list[dict[str, Any]] | None = None) -> int:
    """Write the initial store and close it (for an edge in another process); the version."""
    writer = SnapshotWriter(data_dir)
    try:
        return writer.publish(initial_publish(features))
    finally:
        writer.close()
