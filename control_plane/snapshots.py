"""Snapshot data of environments: built from the store, compiled by the evaluator to validate.

Every write validates the snapshots it affects before it commits; ``publisher`` then writes
them to LMDB, each flag apart (``contract.store``: the ``flags`` table), so the edges patch only
the flags that changed. Validation does the same: :class:`Compiler` keeps the snapshot it last
compiled per environment and patches it with the flags whose definitions changed.
"""

from __future__ import annotations

import threading
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


def _invalid(e: evaluator.RuleError) -> ApiError:
    return ApiError(
        400,
        f"targeting does not compile: {e.reason}",
        details=[{"field": e.path, "code": "invalid_rule", "message": e.reason}],
    )


def _compiled(doc: dict[str, Any]) -> evaluator.Snapshot:
    try:
        return evaluator.Snapshot(orjson.dumps(doc))
    except evaluator.RuleError as e:
        raise _invalid(e) from None


@dataclass(frozen=True)
class _Compiled:
    extras: bytes
    # Flag key → its entry as the evaluator reads it (JSON).
    entries: dict[str, bytes]
    snapshot: evaluator.Snapshot


class Compiler:
    """Validates environments as a write would publish them, compiling only what changed.

    It keeps, per environment, the last snapshot it compiled and the flag entries it compiled it
    from; the next validation patches that snapshot with the entries that differ (and drops the
    flags that are gone). A change to the document-wide members (the DevCycle section) compiles
    the environment anew. What it keeps is only a starting point: whether or not the write that
    validated it committed, a patch from it compiles exactly the state asked about."""

    def __init__(self) -> None:
        self._last: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def compile(self, environment_id: str, state: EnvironmentState) -> evaluator.Snapshot:
        """``state`` compiled; ApiError 400 naming the bad node if it does not compile."""
        extras = orjson.dumps(state.extras)
        entries = {key: orjson.dumps({"order": o, "definition": d}) for key, (o, d) in state.flags.items()}
        with self._lock:
            last = self._last.get(environment_id)
        try:
            if last is not None and last.extras == extras:
                upserts = [entry for key, entry in entries.items() if last.entries.get(key) != entry]
                removed = [key for key in last.entries if key not in entries]
                snapshot = last.snapshot.patch(upserts, removed) if upserts or removed else last.snapshot
            else:
                snapshot = evaluator.Snapshot.assemble(extras, list(entries.values()))
        except evaluator.RuleError as e:
            raise _invalid(e) from None
        with self._lock:
            self._last[environment_id] = _Compiled(extras, entries, snapshot)
        return snapshot

    def validate_projects(self, db: Connection, project_ids: set[str]) -> dict[str, EnvironmentState]:
        """Compile every environment of the projects; their states by environment id, so the
        publish after the commit does not build them a second time."""
        states = {}
        for project_id in sorted(project_ids):
            for row in db.execute(
                "SELECT id FROM environments WHERE project_id = ? ORDER BY created_at", (project_id,)
            ):
                state = build_environment_state(db, row["id"])
                self.compile(row["id"], state)
                states[row["id"]] = state
        return states


def validate_projects(db: Connection, project_ids: set[str]) -> dict[str, EnvironmentState]:
    """:meth:`Compiler.validate_projects` without a kept state (every environment compiled whole)."""
    return Compiler().validate_projects(db, project_ids)
