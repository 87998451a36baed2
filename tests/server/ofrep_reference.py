"""The OFREP answers as the edge built them before the evaluator wrote them (issue 15): from the
evaluator's debug answer (``Snapshot.evaluate_all(debug=True)``) and its single-flag result
(``Snapshot.evaluate_flag``), reasons decided from each flag's shape read off its definition.
Kept as the reference the evaluator's own OFREP bytes are compared with
(``tests/server/test_ofrep_answers.py``), bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

import evaluator
from server.ofrep import Context

TARGETING_FIELD = "user.id"


@dataclass(frozen=True)
class FlagShape:
    """What of a flag's OFREP reason its rules fix, whatever the context."""

    # DISABLED (no rules) or STATIC (only constant rules); None when the context decides.
    fixed: str | None
    # Per rule: the filter contains a percentage rollout (SPLIT when it is the first match).
    rollout: tuple[bool, ...]


def _has_rollout(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    kind = node.get("type")
    if kind == "rolloutPercentage":
        return True
    if kind == "group":
        filters = node.get("filters")
        return isinstance(filters, list) and any(_has_rollout(f) for f in filters)
    if kind == "negation":
        return _has_rollout(node.get("filter"))
    return False


def flag_shapes(definitions: list[Any], devcycle_splits: list[tuple[str, list[bool]]]) -> dict[str, FlagShape]:
    """The shape of every flag of a snapshot's definitions; a flag DevCycle's bucketing decides
    has one rule result per target, SPLIT as DevCycle says."""
    splits = dict(devcycle_splits)
    shapes: dict[str, FlagShape] = {}
    for feature in definitions:
        targeting = feature.get("targeting") or {}
        filters = [rule.get("filter") for rule in targeting.get("rules") or []]
        if not filters:
            shapes[feature["key"]] = FlagShape("DISABLED", ())
        elif all(isinstance(f, dict) and f.get("type") == "constant" for f in filters):
            shapes[feature["key"]] = FlagShape("STATIC", tuple(False for _ in filters))
        elif feature["key"] in splits:
            shapes[feature["key"]] = FlagShape(None, tuple(splits[feature["key"]]))
        else:
            shapes[feature["key"]] = FlagShape(None, tuple(_has_rollout(f) for f in filters))
    return shapes


def _needs_targeting_key(value: bool, missing: list[str], context: Context) -> bool:
    return not value and not context.has_targeting_key and TARGETING_FIELD in missing


def _success(
    key: str,
    value: bool,
    reason: str,
    variant: str,
    targeting_version: int | None,
    config: dict[str, Any] | None,
    version: int,
) -> dict[str, Any]:
    metadata: dict[str, bool | int | float | str] = {"flagStateVersion": version}
    if targeting_version is not None:
        metadata["targetingVersion"] = targeting_version
    if config is not None:
        metadata["configKey"] = config["key"]
        metadata["configPayload"] = orjson.dumps(config.get("payload")).decode()
    return {"key": key, "value": value, "reason": reason, "variant": variant, "metadata": metadata}


def targeting_key_missing(key: str) -> dict[str, str]:
    return {
        "key": key,
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": f"flag {key!r} needs a targetingKey (or user.id) in the context",
    }


def evaluate_one(
    snapshot: evaluator.Snapshot, version: int, key: str, context: Context, kind: str | None, now_ms: float
) -> dict[str, Any] | None:
    """One flag's success body, its TARGETING_KEY_MISSING failure, or None when unknown."""
    result = snapshot.evaluate_flag(key, context.reflag, key_kind=kind, now_ms=now_ms)
    if result is None:
        return None
    if _needs_targeting_key(result["value"], result["missingContextFields"], context):
        return targeting_key_missing(key)
    config = dict(result["config"]) if result["config"] is not None else None
    return _success(
        key, result["value"], result["reason"], result["variant"], result["targetingVersion"], config, version
    )


def evaluate_all(
    snapshot: evaluator.Snapshot,
    definitions: list[Any],
    version: int,
    context: Context,
    kind: str | None,
    now_ms: float,
) -> list[dict[str, Any]]:
    """Every flag (``definitions``: the snapshot's), each an OFREP success or failure, in snapshot order."""
    shapes = flag_shapes(definitions, snapshot.devcycle_splits())
    raw: dict[str, dict[str, Any]] = orjson.loads(
        snapshot.evaluate_all(context.reflag, debug=True, key_kind=kind, now_ms=now_ms)
    )
    flags: list[dict[str, Any]] = []
    for key, r in raw.items():
        shape = shapes.get(key)
        value = bool(r["isEnabled"])
        results: list[bool] = r.get("ruleEvaluationResults", [])
        first = next((i for i, hit in enumerate(results) if hit), None)
        if shape is None or (value and (first is None or first >= len(shape.rollout))):
            one = evaluate_one(snapshot, version, key, context, kind, now_ms)
            assert one is not None
            flags.append(one)
            continue
        if _needs_targeting_key(value, r.get("missingContextFields", []), context):
            flags.append(targeting_key_missing(key))
            continue
        if shape.fixed is not None:
            reason = shape.fixed
        elif not value:
            reason = "DEFAULT"
        else:
            reason = "SPLIT" if first is not None and shape.rollout[first] else "TARGETING_MATCH"
        config = r.get("config")
        if config is not None and "key" not in config:
            config = None
        variant = config["key"] if value and config is not None else ("on" if value else "off")
        flags.append(_success(key, value, reason, variant, r.get("targetingVersion"), config, version))
    return flags
