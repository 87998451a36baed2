"""DevCycle features, variations, variables, feature status and per-environment configurations.

Every write here changes what some environment serves, so it calls ``w.touch(project_id)``: the
commit then compiles every environment of the project and rolls back with a 400 naming the node
if one does not compile. Configuration writes are also compiled on their own first, so that the
error names the field of the request (``targets[0].audience.filters.filters[1].comparator``,
``targeting.rules[0].filter.operator``).
"""

from __future__ import annotations

import math
import re
import sqlite3
from typing import Any

import orjson
from starlette.responses import Response

import evaluator
from control_plane import authz
from control_plane.errors import ApiError, conflict, validation
from control_plane.features_snapshot import Built, audience_refs, config_filters, feature_definition
from control_plane.http import Ctx, Router, Write
from control_plane.routes.devcycle.common import (
    FilterChecker,
    audience_resolver,
    dumps,
    environment,
    iso_date,
    key_taken,
    list_rows,
    loads,
    project,
    row_by_id_or_key,
    rule_error,
    write_project,
)
from control_plane.routes.devcycle.models import (
    ConfigurationFields,
    CreateFeature,
    CreateFeatures,
    CreateVariable,
    CreateVariation,
    DeleteFeatureQuery,
    EnvironmentQuery,
    FeatureFields,
    FeatureListQuery,
    FeatureStatus,
    Target,
    UpdateConfiguration,
    UpdateFeature,
    UpdateVariable,
    UpdateVariation,
    VariableFields,
    VariableListQuery,
    VariableStatus,
)
from control_plane.store import new_id, now_iso

router = Router("devcycle-features")
ORG = ("x-organisation",)
DISTRIBUTION_TOLERANCE = 1e-6


# ---------------------------------------------------------------------------------------------
# Views


def variable_view(row: sqlite3.Row) -> dict[str, Any]:
    view: dict[str, Any] = {
        "_id": row["id"],
        "_project": row["project_id"],
        "_feature": row["feature_id"],
        "name": row["name"] or row["key"],
        "description": row["description"],
        "key": row["key"],
        "type": row["type"],
        "status": row["status"],
        "source": "api",
        "_createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "persistent": bool(row["persistent"]),
        "tags": loads(row["tags"], []),
    }
    if row["validation_schema"]:
        view["validationSchema"] = loads(row["validation_schema"])
    return view


def variation_view(row: sqlite3.Row) -> dict[str, Any]:
    return {"_id": row["id"], "key": row["key"], "name": row["name"], "variables": loads(row["variables"], {})}


def configuration_view(feature: sqlite3.Row, env: sqlite3.Row, row: sqlite3.Row | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "_feature": feature["id"],
        "_environment": env["id"],
        "_createdBy": row["created_by"] if row else "",
        "status": row["status"] if row else "inactive",
        "startedAt": row["started_at"] if row else None,
        "updatedAt": row["updated_at"] if row else feature["created_at"],
        "targets": loads(row["targets"], []) if row else [],
        "targetingVersion": row["targeting_version"] if row else 0,
        "readonly": False,
        "hasStaticConfig": feature["status"] == "complete",
    }
    reflag = loads(row["reflag"]) if row else None
    if reflag is not None:
        view["targeting"] = {"version": view["targetingVersion"], **reflag["targeting"]}
        if "config" in reflag:
            view["config"] = {"version": view["targetingVersion"], **reflag["config"]}
    return view


def _configurations(db: sqlite3.Connection, feature: sqlite3.Row, env_id: str | None = None) -> list[dict[str, Any]]:
    envs = db.execute(
        "SELECT * FROM environments WHERE project_id = ?"
        + (" AND id = ?" if env_id else "")
        + " ORDER BY created_at, rowid",
        (feature["project_id"], env_id) if env_id else (feature["project_id"],),
    ).fetchall()
    rows = {
        r["environment_id"]: r
        for r in db.execute("SELECT * FROM feature_configurations WHERE feature_id = ?", (feature["id"],))
    }
    return [configuration_view(feature, e, rows.get(e["id"])) for e in envs]


def feature_view(db: sqlite3.Connection, feature_id: str) -> dict[str, Any]:
    f = db.execute("SELECT * FROM features WHERE id = ?", (feature_id,)).fetchone()
    variations = db.execute("SELECT * FROM variations WHERE feature_id = ? ORDER BY position", (feature_id,)).fetchall()
    keys = {v["id"]: v["key"] for v in variations}
    variables = db.execute(
        "SELECT * FROM variables WHERE feature_id = ? ORDER BY created_at, rowid", (feature_id,)
    ).fetchall()
    return {
        "_id": f["id"],
        "_project": f["project_id"],
        "source": "api",
        "status": f["status"],
        "type": f["type"],
        "name": f["name"],
        "key": f["key"],
        "description": f["description"],
        "_createdBy": f["created_by"],
        "createdAt": f["created_at"],
        "updatedAt": f["updated_at"],
        "variations": [variation_view(v) for v in variations],
        "controlVariation": keys.get(f["control_variation"]),
        "staticVariation": keys.get(f["static_variation"]),
        "variables": [variable_view(v) for v in variables],
        "tags": loads(f["tags"], []),
        "readonly": False,
        "settings": loads(f["settings"], {}),
        "sdkVisibility": {"mobile": True, "client": True, "server": True, **loads(f["sdk_visibility"], {})},
        "configurations": _configurations(db, f),
        "summary": loads(f["summary"], {}),
    }


# ---------------------------------------------------------------------------------------------
# Checks


def value_ok(kind: str, value: Any) -> bool:
    if kind == "String":
        return isinstance(value, str)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "Number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, dict)


def feature_variable_types(db: sqlite3.Connection, feature_id: str) -> dict[str, str]:
    rows = db.execute("SELECT key, type FROM variables WHERE feature_id = ?", (feature_id,)).fetchall()
    return {r["key"]: r["type"] for r in rows}


def check_values(types: dict[str, str], values: dict[str, Any], prefix: str) -> None:
    """Variation values: only the feature's variables, each of its variable's type."""
    for key, value in values.items():
        kind = types.get(key)
        if kind is None:
            raise validation(f"{key!r} is not a variable of this feature", f"{prefix}{key}", "unknown_variable")
        if not value_ok(kind, value):
            raise validation(
                f"{key!r} is a {kind} variable",
                f"{prefix}{key}",
                "type_mismatch",
                f"expected a {kind} value" + (" (a JSON object)" if kind == "JSON" else ""),
            )


def check_feature_values(db: sqlite3.Connection, feature_id: str, field: str | None = None) -> None:
    """Every variation of the feature against its variables; errors name ``field`` when given."""
    types = feature_variable_types(db, feature_id)
    rows = db.execute("SELECT key, variables FROM variations WHERE feature_id = ? ORDER BY position", (feature_id,))
    for i, r in enumerate(rows.fetchall()):
        try:
            check_values(types, loads(r["variables"], {}), f"variations[{i}].variables.")
        except ApiError as e:
            if field is not None:
                e.details[0]["field"] = field
                e.message = f"variation {r['key']!r}: {e.message}"
            raise


def bump_feature(w: Write, feature_id: str) -> None:
    """What the feature serves changed: every configuration's targetingVersion goes up by one."""
    w.db.execute(
        "UPDATE feature_configurations SET targeting_version = targeting_version + 1, updated_at = ? "
        "WHERE feature_id = ?",
        (now_iso(), feature_id),
    )


def _touch_feature(w: Write, feature_id: str) -> None:
    w.db.execute("UPDATE features SET updated_at = ? WHERE id = ?", (now_iso(), feature_id))


def variations_in_use(db: sqlite3.Connection, feature_id: str) -> dict[str, str]:
    """Variation ids that targets or the feature itself refer to, with where."""
    used: dict[str, str] = {}
    f = db.execute("SELECT static_variation, control_variation FROM features WHERE id = ?", (feature_id,)).fetchone()
    if f["static_variation"]:
        used[f["static_variation"]] = "staticVariation"
    if f["control_variation"]:
        used[f["control_variation"]] = "controlVariation"
    rows = db.execute(
        "SELECT e.key, c.targets FROM feature_configurations c JOIN environments e ON e.id = c.environment_id "
        "WHERE c.feature_id = ?",
        (feature_id,),
    ).fetchall()
    for r in rows:
        for t in loads(r["targets"], []):
            for d in t.get("distribution", []):
                used.setdefault(d["_variation"], f"a target in environment {r['key']!r}")
    return used


def _variation_id(db: sqlite3.Connection, feature_id: str, ident: str) -> str | None:
    row = db.execute(
        "SELECT id FROM variations WHERE feature_id = ? AND (id = ? OR key = ?) ORDER BY id = ? DESC LIMIT 1",
        (feature_id, ident, ident, ident),
    ).fetchone()
    return str(row["id"]) if row else None


# ---------------------------------------------------------------------------------------------
# Configurations


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


def compile_configuration(db: sqlite3.Connection, feature_id: str, env_id: str, reflag: bool, prefix: str) -> None:
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
    db: sqlite3.Connection, checker: FilterChecker, feature_id: str, targets: list[Target], prefix: str
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
            variation_id = _variation_id(db, feature_id, d.variation)
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
    w: Write, project_id: str, feature_id: str, env: sqlite3.Row, body: ConfigurationFields, prefix: str = ""
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


# ---------------------------------------------------------------------------------------------
# Features: create, update


def _insert_variable(w: Write, project_id: str, feature_id: str | None, v: VariableFields) -> str:
    now = now_iso()
    var_id = new_id()
    w.db.execute(
        "INSERT INTO variables (id, project_id, feature_id, key, name, description, type, validation_schema,"
        " persistent, tags, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            var_id,
            project_id,
            feature_id,
            v.key,
            v.name or v.key,
            v.description or "",
            v.type,
            dumps(v.validationSchema.model_dump(exclude_none=True)) if v.validationSchema else None,
            int(bool(v.persistent)),
            dumps(v.tags or []),
            w.principal.user_id,
            now,
            now,
        ),
    )
    return var_id


def _set_feature_variables(w: Write, project_id: str, feature_id: str, variables: list[VariableFields]) -> None:
    """Make ``variables`` the feature's variable set: create, attach or update each; detach the rest."""
    seen: set[str] = set()
    for i, v in enumerate(variables):
        if v.key in seen:
            raise validation("variable keys must be unique", f"variables[{i}].key", "duplicate")
        seen.add(v.key)
        row = w.db.execute("SELECT * FROM variables WHERE project_id = ? AND key = ?", (project_id, v.key)).fetchone()
        if row is None:
            _insert_variable(w, project_id, feature_id, v)
            continue
        if row["feature_id"] not in (None, feature_id):
            raise conflict(f"variable {v.key!r} belongs to another feature")
        w.db.execute(
            "UPDATE variables SET feature_id = ?, name = ?, description = ?, type = ?, validation_schema = ?,"
            " persistent = ?, tags = ?, updated_at = ? WHERE id = ?",
            (
                feature_id,
                v.name or row["name"],
                v.description if v.description is not None else row["description"],
                v.type,
                dumps(v.validationSchema.model_dump(exclude_none=True))
                if v.validationSchema
                else row["validation_schema"],
                int(v.persistent) if v.persistent is not None else row["persistent"],
                dumps(v.tags) if v.tags is not None else row["tags"],
                now_iso(),
                row["id"],
            ),
        )
    for row in w.db.execute("SELECT id, key FROM variables WHERE feature_id = ?", (feature_id,)).fetchall():
        if row["key"] not in seen:
            w.db.execute("UPDATE variables SET feature_id = NULL, updated_at = ? WHERE id = ?", (now_iso(), row["id"]))
            _strip_variable(w, feature_id, row["key"])


def _strip_variable(w: Write, feature_id: str, key: str) -> None:
    """Remove a variable's values from the feature's variations."""
    for r in w.db.execute("SELECT id, variables FROM variations WHERE feature_id = ?", (feature_id,)).fetchall():
        values = loads(r["variables"], {})
        if key in values:
            del values[key]
            w.db.execute("UPDATE variations SET variables = ? WHERE id = ?", (dumps(values), r["id"]))


def _write_variations(w: Write, feature_id: str, variations: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """Replace the feature's variations with ``[(id, key, name, variables)]`` in order."""
    keys = [v[1] for v in variations]
    for i, key in enumerate(keys):
        if keys.index(key) != i:
            raise validation("variation keys must be unique within a feature", f"variations[{i}].key", "duplicate")
    w.db.execute("DELETE FROM variations WHERE feature_id = ?", (feature_id,))
    w.db.executemany(
        "INSERT INTO variations (id, feature_id, position, key, name, variables) VALUES (?, ?, ?, ?, ?, ?)",
        [(vid, feature_id, i, key, name, dumps(values)) for i, (vid, key, name, values) in enumerate(variations)],
    )


def _set_control(w: Write, feature_id: str, control: str | None, field: str = "controlVariation") -> None:
    if control is None:
        return
    variation_id = _variation_id(w.db, feature_id, control) if control else None
    if control and variation_id is None:
        raise validation(f"no variation {control!r} in this feature", field, "unknown_variation")
    w.db.execute("UPDATE features SET control_variation = ? WHERE id = ?", (variation_id, feature_id))


def insert_feature(w: Write, access: authz.ProjectAccess, body: FeatureFields, prefix: str = "") -> str:
    if key_taken(w.db, "features", "project_id", access.id, body.key):
        raise conflict(f"a feature with key {body.key!r} already exists in this project")
    feature_id = new_id()
    now = now_iso()
    w.db.execute(
        "INSERT INTO features (id, project_id, key, name, description, type, tags, settings, sdk_visibility, summary,"
        " created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            feature_id,
            access.id,
            body.key,
            body.name,
            body.description,
            body.type,
            dumps(body.tags or []),
            dumps(body.settings.model_dump(exclude_none=True) if body.settings else {}),
            dumps(body.sdkVisibility.model_dump(exclude_none=True) if body.sdkVisibility else {}),
            dumps(body.summary.model_dump(exclude_none=True) if body.summary else {}),
            w.principal.user_id,
            now,
            now,
        ),
    )
    try:
        if body.variables:
            _set_feature_variables(w, access.id, feature_id, body.variables)
        _write_variations(w, feature_id, [(new_id(), v.key, v.name, v.variables or {}) for v in body.variations or []])
        check_feature_values(w.db, feature_id)
        _set_control(w, feature_id, body.controlVariation)
        if body.configurations:
            apply_configurations(w, access.id, feature_id, body.configurations)
    except ApiError as e:
        for d in e.details:
            d["field"] = prefix + d["field"]
        raise
    w.audit("feature.create", f"feature:{body.key}", organisation_id=access.organisation_id, project_id=access.id)
    w.touch(access.id)
    return feature_id


def _feature(db: sqlite3.Connection, project_id: str, ident: str) -> sqlite3.Row:
    return row_by_id_or_key(db, "features", "project_id", project_id, ident, "feature")


@router.route(
    "POST",
    "/v1/projects/{project}/features",
    summary="Create a feature",
    body=CreateFeature,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_feature(ctx: Ctx) -> Any:
    body: CreateFeature = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        return feature_view(w.db, insert_feature(w, access, body))

    return ctx.commit(change, status=201)


@router.route(
    "POST",
    "/v1/projects/{project}/features/multiple",
    summary="Create several features at once",
    body=CreateFeatures,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_features(ctx: Ctx) -> Any:
    body: CreateFeatures = ctx.body

    def change(w: Write) -> list[dict[str, Any]]:
        access = write_project(w, ctx, "write")
        ids = [insert_feature(w, access, f, f"[{i}].") for i, f in enumerate(body.root)]
        return [feature_view(w.db, i) for i in ids]

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects/{project}/features", summary="List features", query=FeatureListQuery, headers=ORG)
async def list_features(ctx: Ctx) -> Any:
    query: FeatureListQuery = ctx.query
    where: list[str] = ["f.project_id = ?"]
    params: list[Any] = []
    if query.type:
        where.append("f.type = ?")
        params.append(query.type)
    if query.status:
        where.append("f.status = ?")
        params.append(query.status)
    if query.keys:
        keys = [k.strip() for k in query.keys.split(",") if k.strip()][:1000]
        where.append(f"f.key IN ({','.join('?' * len(keys))})" if keys else "0")
        params += keys
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        rows = list_rows(db, "SELECT f.* FROM features f", where, [access.id, *params], query, alias="f")
        return [feature_view(db, r["id"]) for r in rows]


@router.route("GET", "/v1/projects/{project}/features/{feature}", summary="Get a feature by id or key", headers=ORG)
async def get_feature(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return feature_view(db, _feature(db, access.id, ctx.path("feature"))["id"])


def _updated_variations(
    w: Write, feature_id: str, updates: list[Any]
) -> tuple[list[tuple[str, str, str, dict[str, Any]]], set[str]]:
    current = {
        r["id"]: r for r in w.db.execute("SELECT * FROM variations WHERE feature_id = ?", (feature_id,)).fetchall()
    }
    by_key = {r["key"]: r for r in current.values()}
    out: list[tuple[str, str, str, dict[str, Any]]] = []
    for i, v in enumerate(updates):
        existing = current.get(v.id) if v.id else by_key.get(v.key) if v.key else None
        if v.id and existing is None:
            raise validation(f"no variation {v.id!r} in this feature", f"variations[{i}]._id", "unknown_variation")
        if existing is None:
            if v.key is None or v.name is None:
                raise validation("a new variation needs a key and a name", f"variations[{i}]", "required")
            out.append((new_id(), v.key, v.name, v.variables or {}))
        else:
            out.append(
                (
                    existing["id"],
                    v.key or existing["key"],
                    v.name or existing["name"],
                    v.variables if v.variables is not None else loads(existing["variables"], {}),
                )
            )
    kept = {vid for vid, *_ in out}
    removed = set(current) - kept
    return out, removed


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}",
    summary="Update a feature by id or key",
    body=UpdateFeature,
    headers=ORG,
    responses=(409,),
)
async def update_feature(ctx: Ctx) -> Any:
    body: UpdateFeature = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = _feature(w.db, access.id, ctx.path("feature"))
        fid = f["id"]
        if body.key is not None and key_taken(w.db, "features", "project_id", access.id, body.key, fid):
            raise conflict(f"a feature with key {body.key!r} already exists in this project")
        w.db.execute(
            "UPDATE features SET key = ?, name = ?, description = ?, type = ?, tags = ?, settings = ?,"
            " sdk_visibility = ?, summary = ?, updated_at = ? WHERE id = ?",
            (
                body.key or f["key"],
                body.name or f["name"],
                body.description if body.description is not None else f["description"],
                body.type or f["type"],
                dumps(body.tags) if body.tags is not None else f["tags"],
                dumps(body.settings.model_dump(exclude_none=True)) if body.settings else f["settings"],
                dumps(body.sdkVisibility.model_dump(exclude_none=True)) if body.sdkVisibility else f["sdk_visibility"],
                dumps(body.summary.model_dump(exclude_none=True)) if body.summary else f["summary"],
                now_iso(),
                fid,
            ),
        )
        served_changed = body.key is not None and body.key != f["key"]
        if body.variables is not None:
            _set_feature_variables(w, access.id, fid, body.variables)
            served_changed = True
        if body.variations is not None:
            variations, removed = _updated_variations(w, fid, body.variations)
            used = variations_in_use(w.db, fid)
            for vid in removed:
                if vid in used:
                    raise conflict(f"a removed variation is still used by {used[vid]}")
            _write_variations(w, fid, variations)
            served_changed = True
        check_feature_values(w.db, fid)
        _set_control(w, fid, body.controlVariation)
        if served_changed:
            bump_feature(w, fid)
        if body.configurations:
            apply_configurations(w, access.id, fid, body.configurations)
        w.audit(
            "feature.update",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))},
        )
        w.touch(access.id)
        return feature_view(w.db, fid)

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/features/{feature}",
    summary="Delete a feature by id or key",
    query=DeleteFeatureQuery,
    status=204,
    headers=ORG,
)
async def delete_feature(ctx: Ctx) -> Any:
    query: DeleteFeatureQuery = ctx.query

    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        f = _feature(w.db, access.id, ctx.path("feature"))
        if query.deleteVariables:
            w.db.execute("DELETE FROM variables WHERE feature_id = ?", (f["id"],))
        w.db.execute("DELETE FROM features WHERE id = ?", (f["id"],))
        w.audit(
            "feature.delete",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"deleteVariables": query.deleteVariables},
        )
        w.touch(access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}/status",
    summary="Set a feature's status (complete serves staticVariation everywhere)",
    body=FeatureStatus,
    headers=ORG,
)
async def update_feature_status(ctx: Ctx) -> Any:
    body: FeatureStatus = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = _feature(w.db, access.id, ctx.path("feature"))
        static = None
        if body.status == "complete":
            if not body.staticVariation:
                raise validation("a complete feature needs staticVariation", "staticVariation", "required")
            static = _variation_id(w.db, f["id"], body.staticVariation)
            if static is None:
                raise validation(
                    f"no variation {body.staticVariation!r} in this feature", "staticVariation", "unknown_variation"
                )
        elif body.staticVariation:
            raise validation("staticVariation is only for complete features", "staticVariation", "invalid")
        w.db.execute(
            "UPDATE features SET status = ?, static_variation = ?, updated_at = ? WHERE id = ?",
            (body.status, static, now_iso(), f["id"]),
        )
        if (body.status, static) != (f["status"], f["static_variation"]):
            bump_feature(w, f["id"])
        w.audit(
            "feature.status",
            f"feature:{f['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"from": f["status"], "to": body.status},
        )
        w.touch(access.id)
        return feature_view(w.db, f["id"])

    return ctx.commit(change)


# ---------------------------------------------------------------------------------------------
# Variations


@router.route(
    "POST",
    "/v1/projects/{project}/features/{feature}/variations",
    summary="Create a variation; returns the feature",
    body=CreateVariation,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_variation(ctx: Ctx) -> Any:
    body: CreateVariation = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = _feature(w.db, access.id, ctx.path("feature"))
        if w.db.execute("SELECT 1 FROM variations WHERE feature_id = ? AND key = ?", (f["id"], body.key)).fetchone():
            raise conflict(f"a variation with key {body.key!r} already exists in this feature")
        check_values(feature_variable_types(w.db, f["id"]), body.variables or {}, "variables.")
        position = w.db.execute(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM variations WHERE feature_id = ?", (f["id"],)
        ).fetchone()[0]
        w.db.execute(
            "INSERT INTO variations (id, feature_id, position, key, name, variables) VALUES (?, ?, ?, ?, ?, ?)",
            (new_id(), f["id"], position, body.key, body.name, dumps(body.variables or {})),
        )
        _touch_feature(w, f["id"])
        bump_feature(w, f["id"])
        w.audit(
            "variation.create",
            f"feature:{f['key']}/variation:{body.key}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id)
        return feature_view(w.db, f["id"])

    return ctx.commit(change, status=201)


@router.route(
    "GET", "/v1/projects/{project}/features/{feature}/variations", summary="List a feature's variations", headers=ORG
)
async def list_variations(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = _feature(db, access.id, ctx.path("feature"))
        rows = db.execute("SELECT * FROM variations WHERE feature_id = ? ORDER BY position", (f["id"],)).fetchall()
        return [variation_view(r) for r in rows]


def _variation(db: sqlite3.Connection, feature_id: str, ident: str) -> sqlite3.Row:
    return row_by_id_or_key(db, "variations", "feature_id", feature_id, ident, "variation")


@router.route(
    "GET",
    "/v1/projects/{project}/features/{feature}/variations/{key}",
    summary="Get a variation by id or key",
    headers=ORG,
)
async def get_variation(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        f = _feature(db, access.id, ctx.path("feature"))
        return variation_view(_variation(db, f["id"], ctx.path("key")))


@router.route(
    "PATCH",
    "/v1/projects/{project}/features/{feature}/variations/{key}",
    summary="Update a variation; returns the feature",
    body=UpdateVariation,
    headers=ORG,
    responses=(409,),
)
async def update_variation(ctx: Ctx) -> Any:
    body: UpdateVariation = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = _feature(w.db, access.id, ctx.path("feature"))
        v = _variation(w.db, f["id"], ctx.path("key"))
        if body.key is not None and key_taken(w.db, "variations", "feature_id", f["id"], body.key, v["id"]):
            raise conflict(f"a variation with key {body.key!r} already exists in this feature")
        if body.variables is not None:
            check_values(feature_variable_types(w.db, f["id"]), body.variables, "variables.")
        w.db.execute(
            "UPDATE variations SET key = ?, name = ?, variables = ? WHERE id = ?",
            (
                body.key or v["key"],
                body.name or v["name"],
                dumps(body.variables) if body.variables is not None else v["variables"],
                v["id"],
            ),
        )
        _touch_feature(w, f["id"])
        bump_feature(w, f["id"])
        w.audit(
            "variation.update",
            f"feature:{f['key']}/variation:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id)
        return feature_view(w.db, f["id"])

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/features/{feature}/variations/{key}",
    summary="Delete a variation that no target uses",
    status=204,
    headers=ORG,
    responses=(409,),
)
async def delete_variation(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        f = _feature(w.db, access.id, ctx.path("feature"))
        v = _variation(w.db, f["id"], ctx.path("key"))
        used = variations_in_use(w.db, f["id"])
        if v["id"] in used:
            raise conflict(f"variation {v['key']!r} is used by {used[v['id']]}")
        w.db.execute("DELETE FROM variations WHERE id = ?", (v["id"],))
        _touch_feature(w, f["id"])
        bump_feature(w, f["id"])
        w.audit(
            "variation.delete",
            f"feature:{f['key']}/variation:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
        )
        w.touch(access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------
# Variables


def _variable(db: sqlite3.Connection, project_id: str, ident: str) -> sqlite3.Row:
    return row_by_id_or_key(db, "variables", "project_id", project_id, ident, "variable")


@router.route(
    "POST",
    "/v1/projects/{project}/variables",
    summary="Create a variable",
    body=CreateVariable,
    status=201,
    headers=ORG,
    responses=(409,),
)
async def create_variable(ctx: Ctx) -> Any:
    body: CreateVariable = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        if key_taken(w.db, "variables", "project_id", access.id, body.key):
            raise conflict(f"a variable with key {body.key!r} already exists in this project")
        feature_id = None
        if body.feature:
            row = w.db.execute(
                "SELECT id FROM features WHERE project_id = ? AND (id = ? OR key = ?) ORDER BY id = ? DESC LIMIT 1",
                (access.id, body.feature, body.feature, body.feature),
            ).fetchone()
            if row is None:
                raise validation(f"no feature {body.feature!r} in this project", "_feature", "unknown_feature")
            feature_id = row["id"]
        var_id = _insert_variable(w, access.id, feature_id, body)
        w.audit("variable.create", f"variable:{body.key}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id)
        return variable_view(_variable(w.db, access.id, var_id))

    return ctx.commit(change, status=201)


@router.route("GET", "/v1/projects/{project}/variables", summary="List variables", query=VariableListQuery, headers=ORG)
async def list_variables(ctx: Ctx) -> Any:
    query: VariableListQuery = ctx.query
    where: list[str] = ["v.project_id = ?"]
    params: list[Any] = []
    if query.type:
        where.append("v.type = ?")
        params.append(query.type)
    if query.status:
        where.append("v.status = ?")
        params.append(query.status)
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        if query.feature:
            where.append("v.feature_id IN (SELECT id FROM features WHERE project_id = ? AND (id = ? OR key = ?))")
            params += [access.id, query.feature, query.feature]
        rows = list_rows(db, "SELECT v.* FROM variables v", where, [access.id, *params], query, alias="v")
        return [variable_view(r) for r in rows]


@router.route("GET", "/v1/projects/{project}/variables/{key}", summary="Get a variable by id or key", headers=ORG)
async def get_variable(ctx: Ctx) -> Any:
    with ctx.services.store.read() as db:
        access = project(db, ctx, "read")
        return variable_view(_variable(db, access.id, ctx.path("key")))


@router.route(
    "PATCH",
    "/v1/projects/{project}/variables/{key}",
    summary="Update a variable by id or key",
    body=UpdateVariable,
    headers=ORG,
    responses=(409,),
)
async def update_variable(ctx: Ctx) -> Any:
    body: UpdateVariable = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        v = _variable(w.db, access.id, ctx.path("key"))
        new_key = body.key or v["key"]
        if new_key != v["key"] and key_taken(w.db, "variables", "project_id", access.id, new_key, v["id"]):
            raise conflict(f"a variable with key {new_key!r} already exists in this project")
        w.db.execute(
            "UPDATE variables SET key = ?, name = ?, description = ?, type = ?, validation_schema = ?, persistent = ?,"
            " tags = ?, updated_at = ? WHERE id = ?",
            (
                new_key,
                body.name or v["name"],
                body.description if body.description is not None else v["description"],
                body.type or v["type"],
                dumps(body.validationSchema.model_dump(exclude_none=True))
                if body.validationSchema
                else v["validation_schema"],
                int(body.persistent) if body.persistent is not None else v["persistent"],
                dumps(body.tags) if body.tags is not None else v["tags"],
                now_iso(),
                v["id"],
            ),
        )
        if v["feature_id"] and (new_key != v["key"] or (body.type or v["type"]) != v["type"]):
            if new_key != v["key"]:
                for r in w.db.execute(
                    "SELECT id, variables FROM variations WHERE feature_id = ?", (v["feature_id"],)
                ).fetchall():
                    values = loads(r["variables"], {})
                    if v["key"] in values:
                        values = {new_key if k == v["key"] else k: x for k, x in values.items()}
                        w.db.execute("UPDATE variations SET variables = ? WHERE id = ?", (dumps(values), r["id"]))
            check_feature_values(w.db, v["feature_id"], "type")
            bump_feature(w, v["feature_id"])
        w.audit(
            "variable.update",
            f"variable:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))},
        )
        w.touch(access.id)
        return variable_view(_variable(w.db, access.id, v["id"]))

    return ctx.commit(change)


@router.route(
    "PATCH",
    "/v1/projects/{project}/variables/{key}/status",
    summary="Archive or re-activate a variable (archived variables are not served)",
    body=VariableStatus,
    headers=ORG,
)
async def update_variable_status(ctx: Ctx) -> Any:
    body: VariableStatus = ctx.body

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        v = _variable(w.db, access.id, ctx.path("key"))
        w.db.execute("UPDATE variables SET status = ?, updated_at = ? WHERE id = ?", (body.status, now_iso(), v["id"]))
        if v["feature_id"] and body.status != v["status"]:
            bump_feature(w, v["feature_id"])
        w.audit(
            "variable.status",
            f"variable:{v['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"from": v["status"], "to": body.status},
        )
        w.touch(access.id)
        return variable_view(_variable(w.db, access.id, v["id"]))

    return ctx.commit(change)


@router.route(
    "DELETE",
    "/v1/projects/{project}/variables/{key}",
    summary="Delete a variable (its values are removed from its feature's variations)",
    status=204,
    headers=ORG,
)
async def delete_variable(ctx: Ctx) -> Any:
    def change(w: Write) -> None:
        access = write_project(w, ctx, "write")
        v = _variable(w.db, access.id, ctx.path("key"))
        if v["feature_id"]:
            _strip_variable(w, v["feature_id"], v["key"])
            bump_feature(w, v["feature_id"])
        w.db.execute("DELETE FROM variables WHERE id = ?", (v["id"],))
        w.audit("variable.delete", f"variable:{v['key']}", organisation_id=access.organisation_id, project_id=access.id)
        w.touch(access.id)

    ctx.commit(change, status=204)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------
# Configurations


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
        f = _feature(db, access.id, ctx.path("feature"))
        env_id = environment(db, access.id, query.environment)["id"] if query.environment else None
        return _configurations(db, f, env_id)


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

    def change(w: Write) -> dict[str, Any]:
        access = write_project(w, ctx, "write")
        f = _feature(w.db, access.id, ctx.path("feature"))
        env = environment(w.db, access.id, query.environment or "")
        apply_configuration(w, access.id, f["id"], env, body)
        _touch_feature(w, f["id"])
        w.audit(
            "configuration.update",
            f"feature:{f['key']}/environment:{env['key']}",
            organisation_id=access.organisation_id,
            project_id=access.id,
            details={"fields": sorted(body.model_dump(exclude_unset=True, exclude={"change_reason"}))},
        )
        w.touch(access.id)
        row = w.db.execute(
            "SELECT * FROM feature_configurations WHERE feature_id = ? AND environment_id = ?", (f["id"], env["id"])
        ).fetchone()
        return configuration_view(_feature(w.db, access.id, f["id"]), env, row)

    return ctx.commit(change)


def configurations_using(db: sqlite3.Connection, project_id: str, audience_ids: set[str]) -> list[sqlite3.Row]:
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
