"""The DevCycle section of an environment's snapshot: DevCycle's server SDK config, and what the
edge needs besides it to evaluate DevCycle targets as DevCycle does.

:func:`environment_devcycle` returns ``{"devcycle", "customDataTypes", "sdkVisibility"}``, the
top-level members it adds to the snapshot document (``control_plane.snapshots``):

- ``devcycle``: the body of DevCycle's ``GET /config/v2/server/{sdkKey}.json``, the config that
  ``@devcycle/bucketing`` and the server SDKs' WASM bucketing read: ``project {_id, key,
  a0_organization, settings}``, ``environment {_id, key}``, ``features [{_id, key, type,
  variations [{_id, key, name, variables [{_var, value}]}], configuration {_id, targets [{_id,
  _audience {_id, filters}, rollout?, distribution [{_variation, percentage}], bucketingKey?}]},
  settings?, tags}]``, ``variables [{_id, key, type}]``, ``variableHashes``, ``audiences {id:
  {filters}}`` and ``debugUsers``. The evaluator compiles it (``devcycle::Config``) and evaluates
  every flag whose key names one of its features with DevCycle's own bucketing, at request time
  (rollouts move with the clock). It holds every feature DevCycle's bucketing can evaluate,
  whatever its ``sdkVisibility``: a route serving it to one kind of SDK leaves out the features
  ``sdkVisibility`` hides from that kind.
- ``customDataTypes``: ``{dataKey: "String" | "Number" | "Boolean"}``, the declared custom
  property types, and for keys no property declares, the type of the first filter on that key
  (its ``dataKeyType``, else the JSON type of its first value). The edge coerces string custom
  data (query strings carry nothing else) to these types before evaluating.
- ``devcycleOverrides`` (when any): the self-targeting overrides, ``control_plane.devcycle_overrides``.
- ``sdkVisibility``: ``{feature key: {"client"?: false, "mobile"?: false, "server"?: false}}``
  for the features hidden from some kind of SDK key (key kinds ``client``, ``mobile``,
  ``server`` of the key index): the edge neither evaluates nor sends them to such keys.

Left out of ``devcycle`` (and so evaluated from their Reflag-shape definition, as before):
features configured in Reflag format, and features whose targets use Reflag or JSON Logic filter
nodes (directly or through an audience), which DevCycle's bucketing cannot read.

Everything is ordered deterministically (features in creation order, variables by key,
audiences by id), so that an unchanged environment serializes to the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

import evaluator
from control_plane.devcycle_overrides import MEMBER as OVERRIDES
from control_plane.devcycle_overrides import environment_overrides
from control_plane.dialect import Connection
from control_plane.features_snapshot import config_filters

# Filter node types DevCycle's bucketing evaluates (an operator group has no type).
DEVCYCLE_TYPES = frozenset({"all", "user", "optIn", "audienceMatch"})
SDK_KINDS = ("client", "mobile", "server")
# Project settings DevCycle's bucketing config carries, in DevCycle's order.
PROJECT_SETTINGS = ("edgeDB", "optIn", "disablePassthroughRollouts", "obfuscation")
_ALL_USERS: dict[str, Any] = {"operator": "and", "filters": [{"type": "all"}]}


def _loads(text: str | None, default: Any) -> Any:
    return orjson.loads(text) if text else default


def derived_id(*parts: str) -> str:
    """A stable 24-hex-digit id for what DevCycle ids and our tables do not (a configuration)."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every node of a filter tree (groups, negations and their children included)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield node
        children = node.get("filters")
        if isinstance(children, list):
            stack.extend(reversed(children))
        if isinstance(node.get("filter"), dict):
            stack.append(node["filter"])


def is_devcycle_tree(tree: Any) -> bool:
    """Whether DevCycle's bucketing reads every node of the tree (operator groups and DevCycle
    filter types only)."""
    for node in _nodes(tree):
        kind = node.get("type")
        if kind is None and "operator" not in node and "filters" not in node:
            return False
        if kind is not None and kind not in DEVCYCLE_TYPES:
            return False
    return True


def _audience_refs(tree: Any) -> list[str]:
    return [
        ref
        for node in _nodes(tree)
        if node.get("type") == "audienceMatch" and isinstance(node.get("_audiences"), list)
        for ref in node["_audiences"]
        if isinstance(ref, str)
    ]


def devcycle_audiences(audiences: Mapping[str, Any]) -> dict[str, bool]:
    """Per audience id: whether it and every audience it references are DevCycle-readable
    (a missing or cyclic reference is not)."""
    known: dict[str, bool] = {}

    def readable(audience_id: str, stack: tuple[str, ...]) -> bool:
        if audience_id in known:
            return known[audience_id]
        tree = audiences.get(audience_id)
        if tree is None or audience_id in stack:
            return False
        ok = is_devcycle_tree(tree) and all(readable(r, (*stack, audience_id)) for r in _audience_refs(tree))
        known[audience_id] = ok
        return ok

    for audience_id in audiences:
        readable(audience_id, ())
    return known


def top_level(filters: Any) -> Any:
    """A target's audience filters as DevCycle's top-level operator (a bare filter is wrapped)."""
    if isinstance(filters, dict) and filters.get("type") is not None:
        return {"operator": "and", "filters": [filters]}
    return filters


def _value_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        return "String"
    return None


def type_candidates(trees: list[Any]) -> tuple[tuple[str, str], ...]:
    """The custom data types filter trees imply, in order: per data key the type of its first
    filter (its ``dataKeyType``, else the JSON type of its first value) that names one."""
    found: dict[str, str] = {}
    for tree in trees:
        for node in _nodes(tree):
            key = node.get("dataKey")
            if node.get("subType") != "customData" or not isinstance(key, str) or key in found:
                continue
            values = node.get("values")
            first = values[0] if isinstance(values, list) and values else None
            kind = node.get("dataKeyType") or _value_type(first)
            if kind in ("String", "Number", "Boolean"):
                found[key] = kind
    return tuple(found.items())


def custom_data_types(declared: Mapping[str, str], candidates: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Declared custom property types, then for undeclared keys the first candidate's type."""
    types = dict(declared)
    for key, kind in candidates:
        types.setdefault(key, kind)
    return dict(sorted(types.items()))


def _project(db: Connection, project_id: str) -> dict[str, Any]:
    row = db.execute("SELECT id, key, organisation_id, settings FROM projects WHERE id = ?", (project_id,)).fetchone()
    stored = _loads(row["settings"], {})
    settings: dict[str, Any] = {"edgeDB": {"enabled": False}}
    for name in PROJECT_SETTINGS:
        if name in stored:
            settings[name] = stored[name]
    settings["disablePassthroughRollouts"] = bool(stored.get("disablePassthroughRollouts"))
    return {"_id": row["id"], "key": row["key"], "a0_organization": row["organisation_id"], "settings": settings}


def _target(target: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "_id": target["_id"],
        "_audience": {"_id": target["_id"], "filters": top_level(target.get("audience", {}).get("filters", {}))},
    }
    if target.get("rollout"):
        out["rollout"] = target["rollout"]
    out["distribution"] = target.get("distribution", [])
    if target.get("bucketingKey"):
        out["bucketingKey"] = target["bucketingKey"]
    return out


def _hidden(visibility: Mapping[str, Any]) -> dict[str, bool]:
    return {kind: False for kind in SDK_KINDS if visibility.get(kind) is False}


@dataclass(frozen=True)
class Context:
    """What an environment's DevCycle section reads besides its features: the project, the
    environment, audiences, declared custom properties and self-targeting overrides. None of it
    grows with the number of flags, so an incremental build reads it every time."""

    project_id: str
    environment: dict[str, str]
    project: dict[str, Any]
    audience_trees: dict[str, Any]
    readable: dict[str, bool]
    declared: dict[str, str]
    overrides: dict[str, dict[str, str]]


@dataclass(frozen=True)
class FeaturePart:
    """What one feature adds to its environment's DevCycle section; equal parts add the same,
    so a change that leaves every changed feature's part alone leaves the section alone."""

    order: str
    # Its active variables, (id, key, type): the project's, whatever the configuration here.
    variables: tuple[tuple[str, str, str], ...]
    # The rest only when its configuration here is active (and it is not archived).
    active: bool = False
    key: str = ""
    hidden: dict[str, bool] = field(default_factory=dict)
    types: tuple[tuple[str, str], ...] = ()
    devcycle: dict[str, Any] | None = None

    def adds_nothing(self) -> bool:
        """Whether the section is the same with or without this feature (a Reflag flag without
        variables or hidden kinds, or a feature not active here and without variables)."""
        return not self.variables and not self.hidden and not self.types and self.devcycle is None


def devcycle_context(db: Connection, environment_id: str) -> Context | None:
    """The feature-independent inputs of one environment's section; None when it does not exist."""
    env = db.execute("SELECT id, key, project_id FROM environments WHERE id = ?", (environment_id,)).fetchone()
    if env is None:
        return None
    project_id = env["project_id"]
    audience_trees = {
        r["id"]: _loads(r["filters"], {})
        for r in db.execute("SELECT id, filters FROM audiences WHERE project_id = ? ORDER BY id", (project_id,))
    }
    declared = {
        r["property_key"]: r["type"]
        for r in db.execute(
            "SELECT property_key, type FROM custom_properties WHERE project_id = ? ORDER BY property_key",
            (project_id,),
        )
    }
    return Context(
        project_id=project_id,
        environment={"_id": env["id"], "key": env["key"]},
        project=_project(db, project_id),
        audience_trees=audience_trees,
        readable=devcycle_audiences(audience_trees),
        declared=declared,
        overrides=environment_overrides(db, environment_id),
    )


def _in(column: str, ids: list[str] | None) -> str:
    return f" AND {column} IN ({', '.join('?' * len(ids))})" if ids is not None else ""


def feature_parts(db: Connection, ctx: Context, feature_ids: Collection[str] | None = None) -> dict[str, FeaturePart]:
    """The parts of the project's features (of ``feature_ids`` only, when given), by feature id.
    A feature id missing from the answer adds nothing (it is gone)."""
    out: dict[str, FeaturePart] = {}
    ids = None if feature_ids is None else sorted(feature_ids)
    for chunk in [ids] if ids is None else [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]:
        out.update(_parts(db, ctx, chunk))
    return out


#: Feature ids per query (far below SQLite's and PostgreSQL's bound on parameters).
CHUNK = 500


def _parts(db: Connection, ctx: Context, ids: list[str] | None) -> dict[str, FeaturePart]:
    env_id, project_id = ctx.environment["_id"], ctx.project_id
    params = (project_id, *(ids or ()))
    variables: dict[str, list[tuple[str, str, str]]] = {}
    for r in db.execute(
        "SELECT id, key, type, feature_id FROM variables WHERE project_id = ? AND status = 'active' "
        "AND feature_id IS NOT NULL" + _in("feature_id", ids) + " ORDER BY key",
        params,
    ):
        variables.setdefault(r["feature_id"], []).append((r["id"], r["key"], r["type"]))
    variations: dict[str, list[Any]] = {}
    for r in db.execute(
        "SELECT v.id, v.feature_id, v.key, v.name, v.variables FROM variations v"
        " JOIN features f ON f.id = v.feature_id WHERE f.project_id = ?"
        + _in("f.id", ids)
        + " ORDER BY v.feature_id, v.position",
        params,
    ):
        variations.setdefault(r["feature_id"], []).append(r)
    rows = db.execute(
        "SELECT f.id, f.key, f.type, f.status, f.static_variation, f.settings, f.sdk_visibility, f.tags, f.created_at,"
        " c.status AS config_status, c.targets, c.reflag FROM features f "
        "LEFT JOIN feature_configurations c ON c.feature_id = f.id AND c.environment_id = ? "
        "WHERE f.project_id = ?" + _in("f.id", ids),
        (env_id, *params),
    ).fetchall()
    out: dict[str, FeaturePart] = {}
    for r in rows:
        order = f"{r['created_at']}/{r['id']}"
        own = tuple(variables.get(r["id"], ()))
        if r["status"] == "archived" or r["config_status"] != "active":
            out[r["id"]] = FeaturePart(order, own)
            continue
        variable_ids = {key: vid for vid, key, _ in own}
        out[r["id"]] = FeaturePart(
            order,
            own,
            active=True,
            key=r["key"],
            hidden=_hidden(_loads(r["sdk_visibility"], {})),
            types=type_candidates(config_filters(_loads(r["targets"], []), _loads(r["reflag"], None))),
            devcycle=_devcycle_feature(r, env_id, ctx.readable, variations.get(r["id"], []), variable_ids),
        )
    return out


def _devcycle_feature(
    r: Any, environment_id: str, readable: Mapping[str, bool], variations: list[Any], variable_ids: Mapping[str, str]
) -> dict[str, Any] | None:
    """The feature as DevCycle's config carries it; None when its bucketing cannot decide it."""
    if r["reflag"] is not None:
        return None
    stored_targets: list[dict[str, Any]] = _loads(r["targets"], [])
    if r["status"] == "complete":
        if not r["static_variation"]:
            return None
        stored_targets = [
            {
                "_id": derived_id(r["id"], "static"),
                "audience": {"filters": _ALL_USERS},
                "distribution": [{"_variation": r["static_variation"], "percentage": 1}],
            }
        ]
    filters = [t.get("audience", {}).get("filters", {}) for t in stored_targets]
    refs = [ref for tree in filters for ref in _audience_refs(tree)]
    if not all(is_devcycle_tree(tree) for tree in filters) or not all(readable.get(a, False) for a in refs):
        return None
    feature: dict[str, Any] = {
        "_id": r["id"],
        "key": r["key"],
        "type": r["type"],
        "variations": [_variation(v, variable_ids) for v in variations],
        "configuration": {
            "_id": derived_id(r["id"], environment_id),
            "targets": [_target(t) for t in stored_targets],
        },
    }
    settings = _loads(r["settings"], {})
    if settings:
        feature["settings"] = settings
    feature["tags"] = _loads(r["tags"], [])
    return feature


def assemble_devcycle(ctx: Context, parts: Iterable[FeaturePart]) -> dict[str, Any]:
    """``{"devcycle", "customDataTypes", "sdkVisibility"}`` (and the overrides) from the context
    and every feature's part, whatever order the parts come in."""
    features: list[dict[str, Any]] = []
    visibility: dict[str, dict[str, bool]] = {}
    candidates: list[tuple[str, str]] = []
    variables: list[tuple[str, str, str]] = []
    for part in sorted(parts, key=lambda p: p.order):
        variables += part.variables
        if not part.active:
            continue
        if part.hidden:
            visibility[part.key] = part.hidden
        candidates += part.types
        if part.devcycle is not None:
            features.append(part.devcycle)
    candidates += type_candidates(list(ctx.audience_trees.values()))
    variables.sort(key=lambda v: v[1])
    readable = ctx.readable
    env_id = ctx.environment["_id"]
    config = {
        "project": ctx.project,
        "environment": ctx.environment,
        "features": features,
        "variables": [{"_id": vid, "key": key, "type": kind} for vid, key, kind in variables],
        # DevCycle hashes `variable.key + environment.apiKey`; the snapshot holds no SDK key, so
        # the environment id stands in for it (only the bucketing API's knownVariableKeys read it).
        "variableHashes": {key: evaluator.murmur3_32(key + env_id) for _, key, _ in variables},
        "audiences": {a: {"filters": ctx.audience_trees[a]} for a in sorted(ctx.audience_trees) if readable.get(a)},
        "debugUsers": [],
    }
    members: dict[str, Any] = {
        "devcycle": config,
        "customDataTypes": custom_data_types(ctx.declared, candidates),
        "sdkVisibility": visibility,
    }
    if ctx.overrides:  # absent when empty: an environment without overrides keeps its bytes
        members[OVERRIDES] = ctx.overrides
    return members


def environment_devcycle(db: Connection, environment_id: str) -> dict[str, Any]:
    """``{"devcycle", "customDataTypes", "sdkVisibility"}`` of one environment (module doc);
    empty when the environment does not exist."""
    ctx = devcycle_context(db, environment_id)
    if ctx is None:
        return {}
    return assemble_devcycle(ctx, feature_parts(db, ctx).values())


def _variation(r: Any, variable_ids: Mapping[str, str]) -> dict[str, Any]:
    values = _loads(r["variables"], {})
    return {
        "_id": r["id"],
        "key": r["key"],
        "name": r["name"],
        "variables": [{"_var": variable_ids[k], "value": v} for k, v in values.items() if k in variable_ids],
    }
