"""DevCycle per-environment feature configurations (``.../features/{feature}/configurations``):
DevCycle ``targets``, or Reflag ``targeting`` (+ ``config``).

A configuration write is normalised (audience references resolved, dates in UTC, distributions
adding up to 1) and compiled on its own first, so that an error names the field of the request
(``targets[0].audience.filters.filters[1].comparator``, ``targeting.rules[0].filter.operator``);
the commit then compiles every environment of the project. A change bumps targetingVersion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import orjson

import evaluator
from control_plane import authz
from control_plane.dialect import Connection, Row
from control_plane.errors import validation
from control_plane.features_snapshot import Built, audience_refs, config_filters, feature_definition
from control_plane.http import Ctx, Write
from control_plane.routes.devcycle import approval
from control_plane.routes.devcycle.common import (
    ORG,
    FilterChecker,
    audience_resolver,
    dumps,
    dv_router,
    environment,
    feature,
    iso_date,
    loads,
    project,
    rule_error,
    touch_feature,
    variation_id_of,
)
from control_plane.routes.devcycle.models import ConfigurationFields, EnvironmentQuery, Target, UpdateConfiguration
from control_plane.routes.devcycle.views import configuration_view, feature_configurations
from control_plane.store import new_id, now_iso

router = dv_router("devcycle-features")

DISTRIBUTION_TOLERANCE = 1e-6
_RULE_PATH = re.compile(r"^\$\.features\[0\]\.(.*)$")
_TARGET_PATH = re.compile(r"^(?:targeting\.rules|config\.variants)\[(\d+)\](?:\.filter\.filters\[0\](.*))?")


def _map_path(path: str, built: Built, reflag: bool, prefix: str) -> str:
    """The request field of an evaluator error path in a one-feature snapshot."""
    m = _RULE_PATH.match(path)
    if m is None:
        return prefix + ("targeting" if reflag else "targets")
    rest = m.group(1)
    if reflag:
        return prefix + rest
    t = _TARGET_PATH.match(rest)
    if t is None:
        return prefix + rest
    index = int(t.group(1))
    if rest.startswith("config."):
        index = built.variant_targets[index] if index < len(built.variant_targets) else index
    if t.group(2) is not None:
        return f"{prefix}targets[{index}].audience.filters{t.group(2)}"
    return f"{prefix}targets[{index}]"


def compile_configuration(db: Connection, feature_id: str, env_id: str, reflag: bool, prefix: str) -> None:
    """Compile one feature's definition in one environment alone; 400 naming the request field."""
    built = feature_definition(db, feature_id, env_id)
    if built is None:
        return
    try:
        evaluator.Snapshot(orjson.dumps({"features": [built.definition]}))
    except evaluator.RuleError as e:
        raise rule_error(e.path, e.reason, _map_path(e.path, built, reflag, prefix)) from None


def _normalise_rollout(target: Target, path: str) -> dict[str, Any] | None:
    rollout = target.rollout
    if rollout is None:
        return None
    out: dict[str, Any] = {"type": rollout.type, "startDate": iso_date(rollout.startDate, f"{path}.startDate")}
    if rollout.type != "schedule":
        if rollout.startPercentage is None:
            raise validation(f"a {rollout.type} rollout needs startPercentage", f"{path}.startPercentage", "required")
        out["startPercentage"] = rollout.startPercentage
    elif rollout.startPercentage is not None:
        out["startPercentage"] = rollout.startPercentage
    if rollout.stages:
        out["stages"] = [
            {"type": s.type, "date": iso_date(s.date, f"{path}.stages[{i}].date"), "percentage": s.percentage}
            for i, s in enumerate(rollout.stages)
        ]
    return out


def _normalise_targets(
    db: Connection, checker: FilterChecker, feature_id: str, targets: list[Target], prefix: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    for i, t in enumerate(targets):
        path = f"{prefix}targets[{i}]"
        target_id = t.id or new_id()
        if target_id in seen_ids:
            raise validation("target ids must be unique", f"{path}._id", "duplicate")
        seen_ids.add(target_id)
        distribution: list[dict[str, Any]] = []
        seen: set[str] = set()
        for j, d in enumerate(t.distribution):
            variation_id = variation_id_of(db, feature_id, d.variation)
            if variation_id is None:
                raise validation(
                    f"no variation {d.variation!r} in this feature",
                    f"{path}.distribution[{j}]._variation",
                    "unknown_variation",
                )
            if variation_id in seen:
                raise validation(
                    "a variation appears twice in the distribution", f"{path}.distribution[{j}]._variation", "duplicate"
                )
            seen.add(variation_id)
            distribution.append({"_variation": variation_id, "percentage": d.percentage})
        total = math.fsum(float(d["percentage"]) for d in distribution)
        if abs(total - 1.0) > DISTRIBUTION_TOLERANCE:
            raise validation(
                f"distribution percentages add up to {total:g}, not 1", f"{path}.distribution", "invalid_distribution"
            )
        audience: dict[str, Any] = {"filters": checker.check(t.audience.filters, f"{path}.audience.filters")}
        if t.audience.name is not None:
            audience = {"name": t.audience.name, **audience}
        target: dict[str, Any] = {"_id": target_id}
        if t.name is not None:
            target["name"] = t.name
        target["audience"] = audience
        rollout = _normalise_rollout(t, f"{path}.rollout")
        if rollout is not None:
            target["rollout"] = rollout
        target["distribution"] = distribution
        if t.bucketingKey is not None:
            target["bucketingKey"] = t.bucketingKey
        out.append(target)
    return out


def apply_configuration(
    w: Write, project_id: str, feature_id: str, env: Row, body: ConfigurationFields, prefix: str = ""
) -> None:
    """Write one environment's configuration; targetingVersion goes up by one if it changed."""
    if body.targets is not None and (body.targeting is not None or body.config is not None):
        raise validation(
            "send either DevCycle targets or Reflag targeting/config, not both",
            f"{prefix}targets",
            "conflicting_fields",
        )
    row = w.db.execute(
        "SELECT * FROM feature_configurations WHERE feature_id = ? AND environment_id = ?", (feature_id, env["id"])
    ).fetchone()
    status = row["status"] if row else "inactive"
    targets = loads(row["targets"], []) if row else []
    reflag = loads(row["reflag"]) if row else None
    version = int(row["targeting_version"]) if row else 0
    checker = FilterChecker(audience_resolver(w.db, project_id))
    new_status = body.status or status
    new_targets, new_reflag = targets, reflag
    if body.targets is not None:
        new_targets = _normalise_targets(w.db, checker, feature_id, body.targets, prefix)
        new_reflag = None
    elif body.targeting is not None or body.config is not None:
        if body.targeting is None and reflag is None:
            raise validation("config needs Reflag targeting: send targeting too", f"{prefix}config", "required")
        if body.targeting is not None:
            targeting: dict[str, Any] = {
                "rules": [
                    {"filter": checker.check(r.filter, f"{prefix}targeting.rules[{i}].filter")}
                    for i, r in enumerate(body.targeting.rules)
                ]
            }
        else:
            targeting = (reflag or {})["targeting"]
        new_reflag = {"targeting": targeting}
        if body.config is not None:
            variants = []
            for i, v in enumerate(body.config.variants):
                variant: dict[str, Any] = {"key": v.key, "payload": v.payload}
                if v.filter is not None:
                    variant["filter"] = checker.check(v.filter, f"{prefix}config.variants[{i}].filter")
                variants.append(variant)
            new_reflag["config"] = {"variants": variants}
        elif reflag is not None and "config" in reflag:
            new_reflag["config"] = reflag["config"]
        new_targets = []
    changed = (new_status, new_targets, new_reflag) != (status, targets, reflag)
    if row is not None and not changed:
        return
    approval.guard(w, project_id, env, feature_id)
    now = now_iso()
    started = (row["started_at"] if row else None) or (now if new_status == "active" else None)
    w.db.execute(
        "INSERT INTO feature_configurations (feature_id, environment_id, status, targets, reflag, targeting_version,"
        " started_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (feature_id, environment_id) DO UPDATE SET status = excluded.status, targets = excluded.targets,"
        " reflag = excluded.reflag, targeting_version = excluded.targeting_version, started_at = excluded.started_at,"
        " updated_at = excluded.updated_at",
        (
            feature_id,
            env["id"],
            new_status,
            dumps(new_targets),
            dumps(new_reflag) if new_reflag is not None else None,
            version + 1 if changed else version,
            started,
            w.principal.user_id,
            now,
        ),
    )
    compile_configuration(w.db, feature_id, env["id"], new_reflag is not None, prefix)


def apply_configurations(
    w: Write, project_id: str, feature_id: str, configurations: dict[str, ConfigurationFields]
) -> None:
    for ident, body in configurations.items():
        env = w.db.execute(
            "SELECT * FROM environments WHERE project_id = ? AND (id = ? OR key = ?) ORDER BY id = ? DESC LIMIT 1",
            (project_id, ident, ident, ident),
        ).fetchone()
        if env is None:
            raise validation(
                f"no environment {ident!r} in this project", f"configurations.{ident}", "unknown_environment"
            )
        apply_configuration(w, project_id, feature_id, env, body, f"configurations.{ident}.")


def configurations_using(db: Connection, project_id: str, audience_ids: set[str]) -> list[Row]:
    """Configuration rows of the project whose filters reference any of ``audience_ids`` directly."""
    rows = db.execute(
        "SELECT c.*, f.key AS feature_key, f.name AS feature_name, e.key AS environment_key "
        "FROM feature_configurations c JOIN features f ON f.id = c.feature_id "
        "JOIN environments e ON e.id = c.environment_id WHERE f.project_id = ?",
        (project_id,),
    ).fetchall()
    out = []
    for r in rows:
        trees = config_filters(loads(r["targets"], []), loads(r["reflag"]))
        if any(set(audience_refs(t)) & audience_ids for t in trees):
            out.append(r)
    return out


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/configurations",
    summary="A feature's configurations, in every environment or in ?environment=",
    query=EnvironmentQuery,
    headers=ORG,
)
async def list_configurations(ctx: Ctx) -> Any:
    query: EnvironmentQuery = ctx.query
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = feature(db, access.id, ctx.path("feature"))
        env_id = environment(db, access.id, query.environment)["id"] if query.environment else None
        return feature_configurations(db, f, env_id)


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}/configurations",
    summary="Update a feature's configuration in ?environment= (DevCycle targets or Reflag targeting)",
    query=EnvironmentQuery,
    body=UpdateConfiguration,
    headers=ORG,
)
async def update_configuration(ctx: Ctx) -> Any:
    body: UpdateConfiguration = ctx.body
    query: EnvironmentQuery = ctx.query
    if not query.environment:
        raise validation("the environment query parameter is required", "query.environment", "required")
    change = configuration_change(
        ctx.path("project"), ctx.path("feature"), query.environment, ctx.header("x-organisation"), body
    )
    return ctx.commit(change)


def audited_state(db: Connection, feature_id: str, env_id: str) -> dict[str, Any]:
    """What a configuration's audit entry records before and after a change (the dashboard shows
    the two as a diff): its status and targets, or its Reflag targeting."""
    row = db.execute(
        "SELECT status, targets, reflag FROM feature_configurations WHERE feature_id = ? AND environment_id = ?",
        (feature_id, env_id),
    ).fetchone()
    if row is None:
        return {"status": "inactive", "targets": []}
    state: dict[str, Any] = {"status": row["status"], "targets": loads(row["targets"], [])}
    reflag = loads(row["reflag"])
    if reflag is not None:
        state["reflag"] = reflag
    return state


def configuration_change(
    project_ref: str, feature_ref: str, environment_ref: str, organisation: str | None, body: UpdateConfiguration
) -> Callable[[Write], dict[str, Any]]:
    """The write of ``PATCH .../features/{feature}/configurations?environment=``, also run by the
    apply of a change request that carries it."""

    def change(w: Write) -> dict[str, Any]:
        access = authz.project_by_key(w.db, w.principal, project_ref, "write", organisation)
        f = feature(w.db, access.id, feature_ref)
        env = environment(w.db, access.id, environment_ref)
        before = audited_state(w.db, f["id"], env["id"])
        apply_configuration(w, access.id, f["id"], env, body)
        touch_feature(w, f["id"])
        details: dict[str, Any] = {"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))}
        after = audited_state(w.db, f["id"], env["id"])
        if after != before:
            details.update(before=before, after=after)
        w.audit(
            "configuration.update",
            f"feature:{f['key']}/environment:{env['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details=details,
        )
        w.touch(access.id, features={f["id"]})
        row = w.db.execute(
            "SELECT * FROM feature_configurations WHERE feature_id = ? AND environment_id = ?", (f["id"], env["id"])
        ).fetchone()
        return configuration_view(feature(w.db, access.id, f["id"]), env, row)

    return change
