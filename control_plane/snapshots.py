"""Snapshot data of environments: built from the store, compiled by the evaluator to validate.

Every write validates the snapshots it affects before it commits; ``publisher`` then writes
them to LMDB, each flag apart (``contract.store``: the ``flags`` table), so the edges patch only
the flags that changed. A write builds and compiles only what it changed
(``control_plane.incremental``); this module builds environments whole (catch-up, restore,
republish, and writes that touch a project as a whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

import evaluator
from control_plane.devcycle_config import environment_devcycle
from control_plane.dialect import Connection
from control_plane.errors import ApiError
from control_plane.features_snapshot import environment_flags


@dataclass(frozen=True)
class EnvironmentState:
    """One environment's snapshot as the store keeps it: the document's members beside
    ``features`` (the DevCycle section, ``control_plane.devcycle_config``), and its flags by key,
    each with its order key (``features_snapshot.environment_flags``)."""

    extras: dict[str, Any]
    flags: dict[str, tuple[str, dict[str, Any]]]
    # A build of only what a write changed (``control_plane.incremental``): the flag keys it
    # wrote or removed, the only ones to publish; ``flags`` then holds only those it wrote.
    # None: a whole build, every flag in ``flags``, every flag to publish.
    changed: frozenset[str] | None = None

    def document(self) -> dict[str, Any]:
        """The whole evaluator document (features in order)."""
        ordered = sorted(self.flags.values(), key=lambda item: item[0])
        return {"features": [definition for _, definition in ordered], **self.extras}

    def entry(self, project_id: str, key: str) -> dict[str, Any]:
        """The stored value of flag ``key`` (what the evaluator's ``Snapshot.assemble`` reads)."""
        order, definition = self.flags[key]
        return {"project": project_id, "order": order, "definition": definition}


def build_environment_state(db: Connection, environment_id: str) -> EnvironmentState:
    flags = {definition["key"]: (order, definition) for order, definition in environment_flags(db, environment_id)}
    return EnvironmentState(environment_devcycle(db, environment_id), flags)


def build_environment_document(db: Connection, environment_id: str) -> dict[str, Any]:
    """The evaluator document of one environment: ``{"features": [...]}`` in Reflag shape (what
    ``GET /features`` serves) plus the DevCycle section (``control_plane.devcycle_config``):
    ``devcycle`` (DevCycle's server SDK config), ``customDataTypes`` and ``sdkVisibility``."""
    return build_environment_state(db, environment_id).document()


def compile_environment(db: Connection, environment_id: str) -> evaluator.Snapshot:
    """Build and compile one environment's snapshot; ApiError 400 naming the bad node if it fails."""
    return _compiled(build_environment_document(db, environment_id))


def invalid(e: evaluator.RuleError) -> ApiError:
    """The 400 of a snapshot that does not compile, naming the bad node."""
    return ApiError(
        400,
        f"targeting does not compile: {e.reason}",
        details=[{"field": e.path, "code": "invalid_rule", "message": e.reason}],
    )


def _compiled(doc: dict[str, Any]) -> evaluator.Snapshot:
    try:
        return evaluator.Snapshot(orjson.dumps(doc))
    except evaluator.RuleError as e:
        raise invalid(e) from None
