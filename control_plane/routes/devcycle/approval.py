"""The approval workflow's rules (DevCycle's ``featureApprovalWorkflow`` project setting): which
changes need an approved change request, who may review, and what "the feature changed since"
means. No route is declared here.

* A **protected environment** is one of type ``production`` (DevCycle's protected type: its SDK
  keys and its type are publisher-only too). With the workflow enabled, a change of a feature's
  targeting or status in a protected environment, or of what it serves everywhere (variations,
  their values, variables: feature PATCH, static configuration, the variation and variable
  routes), is refused with 412 unless it is the apply of an approved change request;
  ``allowPublisherBypass`` lets publishers write directly.
* DevCycle roles map onto ours as Reader = ``read``, Writer = ``write``, Publisher = ``admin``,
  Owner = ``owner``. Publishers and owners review; the author of a change request reviews their
  own only when ``allowPublisherBypass`` is on (they could then have written directly anyway).
* Protected project settings (``featureApprovalWorkflow``, ``staleness``) are owner-only; the
  other settings need a publisher.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import ApiError
from control_plane.http import Write
from control_plane.routes.devcycle.common import bump_feature, loads

PROTECTED_TYPES = frozenset({"production"})
PROTECTED_SETTINGS = frozenset({"featureApprovalWorkflow", "staleness"})
REVIEWER_ROLE = "admin"
PROTECTED_SETTINGS_ROLE = "owner"


def workflow(db: Connection, project_id: str) -> dict[str, Any]:
    """The project's ``featureApprovalWorkflow`` settings ({} when never set)."""
    row = db.execute("SELECT settings FROM projects WHERE id = ?", (project_id,)).fetchone()
    settings = loads(row["settings"], {}) if row else {}
    value = settings.get("featureApprovalWorkflow")
    return value if isinstance(value, dict) else {}


def enabled(db: Connection, project_id: str) -> bool:
    return bool(workflow(db, project_id).get("enabled"))


def is_protected(env: Row) -> bool:
    return str(env["type"]) in PROTECTED_TYPES


def role_in(db: Connection, principal: authz.Principal, project_id: str) -> str:
    """The caller's role in the project (by id: no organisation ambiguity)."""
    return authz.project_by_key(db, principal, project_id, "read").role


def may_bypass(db: Connection, project_id: str, role: str) -> bool:
    return bool(workflow(db, project_id).get("allowPublisherBypass")) and authz.RANK[role] >= authz.RANK[REVIEWER_ROLE]


def guard(w: Write, project_id: str, env: Row, feature_id: str) -> None:
    """412 unless a change of the feature in ``env`` may be written directly (no workflow, an
    unprotected environment, a publisher bypass, or the apply of an approved change request)."""
    if w.change_request is not None or not is_protected(env) or not enabled(w.db, project_id):
        return
    if may_bypass(w.db, project_id, role_in(w.db, w.principal, project_id)):
        return
    row = w.db.execute("SELECT key FROM features WHERE id = ?", (feature_id,)).fetchone()
    feature_key = row["key"] if row else feature_id
    raise ApiError(
        412,
        f"environment {env['key']!r} is protected by the project's approval workflow: propose this change with "
        f"POST /v2/projects/{{project}}/features/{feature_key}/change-requests and apply it once approved",
        code="approval_required",
        details=[{"field": "environment", "code": "approval_required", "message": f"{env['key']} is protected"}],
    )


def guard_every_environment(w: Write, project_id: str, feature_id: str) -> None:
    """:func:`guard` for a change that reaches every environment (a feature's status)."""
    for env in w.db.execute("SELECT * FROM environments WHERE project_id = ? ORDER BY key", (project_id,)):
        guard(w, project_id, env, feature_id)


def served_change(w: Write, project_id: str, feature_id: str) -> None:
    """What the feature serves changed in every environment (its variations' values, keys or
    variables): :func:`guard_every_environment`, then the configurations' targetingVersion bump."""
    guard_every_environment(w, project_id, feature_id)
    bump_feature(w, feature_id)


def check_reviewer(db: Connection, principal: authz.Principal, project_id: str, author: str) -> None:
    """403 unless the caller may approve or reject a change request written by ``author``."""
    role = role_in(db, principal, project_id)
    authz.require(role, REVIEWER_ROLE)
    if principal.user_id == author and not may_bypass(db, project_id, role):
        raise ApiError(403, "the author of a change request cannot review it (allowPublisherBypass is off)")


def reviewers_allowed(db: Connection, organisation_id: str, user_ids: list[str]) -> list[str]:
    """The ids of ``user_ids`` that cannot review in the organisation (not members, or below publisher)."""
    rows = db.execute("SELECT user_id, role FROM memberships WHERE organisation_id = ?", (organisation_id,)).fetchall()
    roles = {r["user_id"]: r["role"] for r in rows}
    return [u for u in user_ids if authz.RANK.get(roles.get(u, ""), -1) < authz.RANK[REVIEWER_ROLE]]


def check_settings_permission(role: str, settings: dict[str, Any]) -> None:
    """403 when ``settings`` touches protected settings and the caller is not an owner."""
    touched = sorted(PROTECTED_SETTINGS & settings.keys())
    if touched and authz.RANK[role] < authz.RANK[PROTECTED_SETTINGS_ROLE]:
        raise ApiError(
            403,
            f"{', '.join(touched)} are protected settings: change them with PATCH .../settings/protected (owner)",
        )


def feature_digest(db: Connection, feature_id: str) -> str:
    """What identifies the feature's current definition (row, variations, variables,
    configurations): a change request created against one digest applies only to it."""
    parts: list[Any] = []
    for sql in (
        "SELECT * FROM features WHERE id = ?",
        "SELECT * FROM variations WHERE feature_id = ? ORDER BY position, id",
        "SELECT * FROM variables WHERE feature_id = ? ORDER BY id",
        "SELECT * FROM feature_configurations WHERE feature_id = ? ORDER BY environment_id",
    ):
        parts.append([dict(r) for r in db.execute(sql, (feature_id,)).fetchall()])
    return hashlib.blake2b(orjson.dumps(parts), digest_size=12).hexdigest()
