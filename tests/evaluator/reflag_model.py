"""A small pure-Python model of ``@reflag/flag-evaluation`` 1.0.1, the oracle of the property tests.

It covers flattening and the operators whose semantics need no JavaScript engine (everything but
the date operators and GT/LT's ``Number()`` corner cases, which the vectors cover).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any


def js_string(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def flatten(data: dict[str, Any]) -> dict[str, str]:
    result: dict[str, str] = {}

    def recurse(value: Any, prop: str) -> None:
        if value is None:
            result[prop] = ""
        elif isinstance(value, list):
            if not value:
                result[prop] = ""
            for i, item in enumerate(value):
                recurse(item, f"{prop}.{i}" if prop else str(i))
        elif isinstance(value, dict):
            if not value:
                result[prop] = ""
            for k, item in value.items():
                recurse(item, f"{prop}.{k}" if prop else k)
        else:
            result[prop] = js_string(value)

    if data:
        recurse(data, "")
    return result


def hash_int(text: str) -> int:
    v = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0xFFFFF
    return math.floor(v / 0xFFFFF * 100000)


def _number(text: str) -> float:
    stripped = text.strip()
    if stripped == "":
        return 0.0
    try:
        return float(stripped)
    except ValueError:
        return math.nan


def compare(field: str, operator: str, values: list[str]) -> bool:
    value = values[0] if values else None
    if operator == "CONTAINS":
        return value is not None and value.lower() in field.lower()
    if operator == "NOT_CONTAINS":
        return value is not None and value.lower() not in field.lower()
    if operator in ("GT", "LT"):
        a, b = _number(field), _number(value) if value is not None else math.nan
        if math.isnan(a) or math.isnan(b):
            return False
        return a > b if operator == "GT" else a < b
    if operator == "SET":
        return field != ""
    if operator == "NOT_SET":
        return field == ""
    if operator == "IS":
        return field == value
    if operator == "IS_NOT":
        return field != value
    if operator == "ANY_OF":
        return field in values
    if operator == "NOT_ANY_OF":
        return field not in values
    if operator == "IS_TRUE":
        return field == "true"
    if operator == "IS_FALSE":
        return field == "false"
    raise ValueError(operator)


def evaluate(node: dict[str, Any], ctx: dict[str, str], missing: list[str], flag_key: str) -> bool:
    kind = node["type"]
    if kind == "constant":
        return bool(node["value"])
    if kind == "context":
        field = node["field"]
        if field not in ctx and node["operator"] not in ("SET", "NOT_SET"):
            if field not in missing:
                missing.append(field)
            return False
        return compare(ctx.get(field, ""), node["operator"], node.get("values") or [])
    if kind == "rolloutPercentage":
        attr = node["partialRolloutAttribute"]
        if attr not in ctx:
            if attr not in missing:
                missing.append(attr)
            return False
        threshold: float = node["partialRolloutThreshold"]
        return hash_int(f"{node.get('key', flag_key)}.{ctx[attr]}") < threshold
    if kind == "group":
        acc: bool = node["operator"] == "and"
        for child in node["filters"]:
            acc = (
                (acc and evaluate(child, ctx, missing, flag_key))
                if node["operator"] == "and"
                else (acc or evaluate(child, ctx, missing, flag_key))
            )
        return acc
    if kind == "negation":
        return not evaluate(node["filter"], ctx, missing, flag_key)
    raise ValueError(kind)


def evaluate_flag_rules(flag_key: str, rules: list[dict[str, Any]], context: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(context)
    missing: list[str] = []
    results = [evaluate(r["filter"], flat, missing, flag_key) for r in rules]
    first = next((i for i, r in enumerate(results) if r), -1)
    return {
        "value": rules[first].get("value") if first >= 0 else None,
        "flagKey": flag_key,
        "context": flat,
        "ruleEvaluationResults": results,
        "reason": f"rule #{first} matched" if first >= 0 else "no matched rules",
        "missingContextFields": missing,
    }
