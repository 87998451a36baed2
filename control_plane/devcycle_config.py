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
from collections.abc import Iterator, Mapping
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


def custom_data_types(declared: Mapping[str, str], trees: list[Any]) -> dict[str, str]:
    """Declared custom property types, then for undeclared keys the first filter's type."""
    types = dict(declared)
    for tree in trees:
        for node in _nodes(tree):
            key = node.get("dataKey")
            if node.get("subType") != "customData" or not isinstance(key, str) or key in types:
                continue
            values = node.get("values")
            first = values[0] if isinstance(values, list) and values else None
            kind = node.get("dataKeyType") or _value_type(first)
            if kind in ("String", "Number", "Boolean"):
                types[key] = kind
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


def environment_devcycle(db: Connection, environment_id: str) -> dict[str, Any]:
    """``{"devcycle", "customDataTypes", "sdkVisibility"}`` of one environment (module doc);
    empty when the environment does not exist."""
    env = db.execute("SELECT id, key, project_id FROM environments WHERE id = ?", (environment_id,)).fetchone()
    if env is None:
        return {}
    project_id = env["project_id"]
    audience_trees = {
        r["id"]: _loads(r["filters"], {})
        for r in db.execute("SELECT id, filters FROM audiences WHERE project_id = ? ORDER BY id", (project_id,))
    }
    readable = devcycle_audiences(audience_trees)
    variables = [
        {"_id": r["id"], "key": r["key"], "type": r["type"], "feature_id": r["feature_id"]}
        for r in db.execute(
            "SELECT id, key, type, feature_id FROM variables WHERE project_id = ? AND status = 'active' "
            "AND feature_id IS NOT NULL ORDER BY key",
            (project_id,),
        )
    ]
    variable_ids: dict[tuple[str, str], str] = {(v["feature_id"], v["key"]): v["_id"] for v in variables}
    rows = db.execute(
        "SELECT f.id, f.key, f.type, f.status, f.static_variation, f.settings, f.sdk_visibility, f.tags, "
        "c.targets, c.reflag FROM features f "
        "JOIN feature_configurations c ON c.feature_id = f.id AND c.environment_id = ? "
        "WHERE f.project_id = ? AND f.status != 'archived' AND c.status = 'active' ORDER BY f.created_at, f.id",
        (environment_id, project_id),
    ).fetchall()
    features: list[dict[str, Any]] = []
    visibility: dict[str, dict[str, bool]] = {}
    trees: list[Any] = []
    for r in rows:
        hidden = _hidden(_loads(r["sdk_visibility"], {}))
        if hidden:
            visibility[r["key"]] = hidden
        stored_targets: list[dict[str, Any]] = _loads(r["targets"], [])
        trees += config_filters(stored_targets, _loads(r["reflag"], None))
        if r["reflag"] is not None:
            continue
        if r["status"] == "complete":
            if not r["static_variation"]:
                continue
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
            continue
        feature: dict[str, Any] = {
            "_id": r["id"],
            "key": r["key"],
            "type": r["type"],
            "variations": _variations(db, r["id"], variable_ids),
            "configuration": {
                "_id": derived_id(r["id"], environment_id),
                "targets": [_target(t) for t in stored_targets],
            },
        }
        settings = _loads(r["settings"], {})
        if settings:
            feature["settings"] = settings
        feature["tags"] = _loads(r["tags"], [])
        features.append(feature)
    audiences = {a: {"filters": audience_trees[a]} for a in sorted(audience_trees) if readable.get(a)}
    trees += list(audience_trees.values())
    declared = {
        r["property_key"]: r["type"]
        for r in db.execute(
            "SELECT property_key, type FROM custom_properties WHERE project_id = ? ORDER BY property_key",
            (project_id,),
        )
    }
    config = {
        "project": _project(db, project_id),
        "environment": {"_id": env["id"], "key": env["key"]},
        "features": features,
        "variables": [{"_id": v["_id"], "key": v["key"], "type": v["type"]} for v in variables],
        # DevCycle hashes `variable.key + environment.apiKey`; the snapshot holds no SDK key, so
        # the environment id stands in for it (only the bucketing API's knownVariableKeys read it).
        "variableHashes": {v["key"]: evaluator.murmur3_32(v["key"] + env["id"]) for v in variables},
        "audiences": audiences,
        "debugUsers": [],
    }
    members: dict[str, Any] = {
        "devcycle": config,
        "customDataTypes": custom_data_types(declared, trees),
        "sdkVisibility": visibility,
    }
    overrides = environment_overrides(db, environment_id)
    if overrides:  # absent when empty: an environment without overrides keeps its bytes
        members[OVERRIDES] = overrides
    return members


def _variations(db: Connection, feature_id: str, variable_ids: Mapping[tuple[str, str], str]) -> list[Any]:
    out = []
    for r in db.execute(
        "SELECT id, key, name, variables FROM variations WHERE feature_id = ? ORDER BY position", (feature_id,)
    ):
        values = _loads(r["variables"], {})
        out.append(
            {
                "_id": r["id"],
                "key": r["key"],
                "name": r["name"],
                "variables": [
                    {"_var": variable_ids[(feature_id, k)], "value": v}
                    for k, v in values.items()
                    if (feature_id, k) in variable_ids
                ],
            }
        )
    return out
