"""The compiled-snapshot API: body shape, modes, formats, errors with node paths."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import evaluator

DOC: dict[str, Any] = {
    "features": [
        {
            "key": "huddle",
            "targeting": {
                "version": 42,
                "rules": [
                    {
                        "filter": {
                            "type": "group",
                            "operator": "and",
                            "filters": [
                                {"type": "context", "field": "company.id", "operator": "IS", "values": ["acme_inc"]},
                                {
                                    "type": "rolloutPercentage",
                                    "partialRolloutAttribute": "company.id",
                                    "partialRolloutThreshold": 100000,
                                },
                            ],
                        }
                    }
                ],
            },
            "config": {
                "version": 3,
                "variants": [
                    {
                        "key": "gold",
                        "filter": {"type": "context", "field": "user.tier", "operator": "IS", "values": ["gold"]},
                        "payload": {"seats": 10, "label": "Gold \u2728"},
                    }
                ],
            },
        },
        {"key": "dark-mode", "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": True}}]}},
        {"key": "empty", "targeting": {"version": 5, "rules": []}},
    ]
}


@pytest.fixture(scope="module")
def snapshot() -> evaluator.Snapshot:
    return evaluator.Snapshot(orjson.dumps(DOC))


def test_evaluated_body_shape(snapshot: evaluator.Snapshot) -> None:
    body = orjson.loads(snapshot.evaluate_all({"company": {"id": "acme_inc"}, "user": {"tier": "gold"}}))
    assert body == {
        "huddle": {
            "isEnabled": True,
            "key": "huddle",
            "targetingVersion": 42,
            "ruleEvaluationResults": [True],
            "config": {
                "key": "gold",
                "version": 3,
                "payload": {"seats": 10, "label": "Gold \u2728"},
                "ruleEvaluationResults": [True],
            },
        },
        "dark-mode": {"isEnabled": True, "key": "dark-mode", "targetingVersion": 1, "ruleEvaluationResults": [True]},
        "empty": {"isEnabled": False, "key": "empty", "targetingVersion": 5, "ruleEvaluationResults": []},
    }
    assert list(body) == ["huddle", "dark-mode", "empty"]


def test_enabled_only_and_debug(snapshot: evaluator.Snapshot) -> None:
    enabled = orjson.loads(snapshot.evaluate_all({"company": {"id": "nope"}}, enabled_only=True))
    assert list(enabled) == ["dark-mode"]
    debug = orjson.loads(snapshot.evaluate_all({}, debug=True))
    assert debug["huddle"]["ruleEvaluationResults"] == [False]
    assert debug["huddle"]["missingContextFields"] == ["company.id"]
    assert debug["huddle"]["config"]["missingContextFields"] == ["user.tier"]


def test_flat_context_forms(snapshot: evaluator.Snapshot) -> None:
    as_dict = snapshot.evaluate_all_flat({"company.id": "acme_inc"})
    as_pairs = snapshot.evaluate_all_flat([("company.id", "other"), ("company.id", "acme_inc")])
    assert as_dict == as_pairs == snapshot.evaluate_all({"company": {"id": "acme_inc"}})
    with pytest.raises(TypeError):
        snapshot.evaluate_all_flat({"company.id": 5})  # type: ignore[arg-type]


def test_single_flag(snapshot: evaluator.Snapshot) -> None:
    result = snapshot.evaluate_flag("huddle", {"company": {"id": "acme_inc"}, "user": {"tier": "gold"}})
    assert result is not None
    assert result["value"] is True
    assert result["variant"] == "gold"
    assert result["reason"] == "SPLIT"
    assert result["config"] == {"key": "gold", "payload": {"seats": 10, "label": "Gold \u2728"}}
    static = snapshot.evaluate_flag("dark-mode")
    assert static is not None and (static["reason"], static["variant"]) == ("STATIC", "on")
    off = snapshot.evaluate_flag_flat("huddle", {})
    assert off is not None and (off["value"], off["reason"], off["variant"]) == (False, "DEFAULT", "off")
    disabled = snapshot.evaluate_flag("empty")
    assert disabled is not None and disabled["reason"] == "DISABLED"
    assert snapshot.evaluate_flag("missing") is None


def test_definitions_and_keys(snapshot: evaluator.Snapshot) -> None:
    # The snapshot keeps only the definitions' hashes: their texts come from the store's entries.
    stored = [orjson.dumps({"order": "", "definition": f}) for f in DOC["features"]]
    assert orjson.loads(snapshot.definitions_json(stored) or b"null") == DOC["features"]
    assert snapshot.definitions_json(stored[1:]) is None
    changed = {**DOC["features"][0], "targeting": {"version": 99, "rules": []}}
    assert snapshot.local_definitions_json([orjson.dumps({"definition": changed}), *stored[1:]]) is None
    assert snapshot.flag_keys() == ["huddle", "dark-mode", "empty"]
    assert len(snapshot) == 3 and "huddle" in snapshot and "nope" not in snapshot


def test_msgpack_equals_json() -> None:
    packed = _msgpack_encode(DOC)
    from_pack = evaluator.Snapshot(packed, format="msgpack")
    from_json = evaluator.Snapshot(orjson.dumps(DOC))
    ctx = {"company": {"id": "acme_inc"}}
    assert from_pack.evaluate_all(ctx) == from_json.evaluate_all(ctx)


def _msgpack_encode(value: Any) -> bytes:
    """A minimal MessagePack encoder for the test document (maps, arrays, str, int, bool)."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        return b"\xd3" + value.to_bytes(8, "big", signed=True)
    if isinstance(value, str):
        raw = value.encode()
        return b"\xdb" + len(raw).to_bytes(4, "big") + raw
    if isinstance(value, list):
        return b"\xdd" + len(value).to_bytes(4, "big") + b"".join(_msgpack_encode(v) for v in value)
    if isinstance(value, dict):
        items = b"".join(_msgpack_encode(k) + _msgpack_encode(v) for k, v in value.items())
        return b"\xdf" + len(value).to_bytes(4, "big") + items
    raise TypeError(type(value))


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"features": [{"key": ""}]}, "$.features[0].key"),
        ({"features": [{"key": "a", "targeting": {"rules": [{}]}}]}, "$.features[0].targeting.rules[0].filter"),
        (
            {
                "features": [
                    {
                        "key": "a",
                        "targeting": {"rules": [{"filter": {"type": "group", "operator": "xor", "filters": []}}]},
                    }
                ]
            },
            "$.features[0].targeting.rules[0].filter.operator",
        ),
        (
            {"features": [{"key": "a", "targeting": {"version": "1"}}]},
            "$.features[0].targeting.version",
        ),
        (
            {"features": [{"key": "a", "config": {"variants": [{"key": 1}]}}]},
            "$.features[0].config.variants[0].key",
        ),
        (
            {
                "features": [
                    {"key": "a", "targeting": {"rules": [{"filter": {"type": "jsonLogic", "rule": {"nope": [1]}}}]}}
                ]
            },
            "$.features[0].targeting.rules[0].filter.rule",
        ),
        ({"features": "x"}, "$.features"),
        ([], "$"),
    ],
)
def test_rule_errors_carry_paths(doc: Any, path: str) -> None:
    with pytest.raises(evaluator.RuleError) as info:
        evaluator.Snapshot(orjson.dumps(doc))
    assert info.value.path.startswith(path)
    assert info.value.reason


def test_invalid_bytes() -> None:
    for data in (b"", b"{", b"\xff\xfe", b'{"features": [1, 2'):
        with pytest.raises(evaluator.RuleError) as info:
            evaluator.Snapshot(data)
        assert info.value.path == "$"
    with pytest.raises(evaluator.RuleError):
        evaluator.Snapshot(b"\x93\x01", format="msgpack")
    with pytest.raises(ValueError):
        evaluator.Snapshot(b"{}", format="yaml")  # type: ignore[arg-type]


def test_mixed_dialect_tree() -> None:
    doc = {
        "features": [
            {
                "key": "mixed",
                "targeting": {
                    "version": 1,
                    "rules": [
                        {
                            "filter": {
                                "type": "group",
                                "operator": "and",
                                "filters": [
                                    {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]},
                                    {"type": "user", "subType": "country", "comparator": "=", "values": ["DE", "AT"]},
                                    {
                                        "type": "jsonLogic",
                                        "rule": {"sem_ver": [{"var": "user.appVersion"}, ">=", "2.0.0"]},
                                    },
                                ],
                            }
                        }
                    ],
                },
            }
        ]
    }
    snapshot = evaluator.Snapshot(orjson.dumps(doc))
    yes = {"company": {"plan": "pro"}, "user": {"id": "u1", "country": "AT", "appVersion": "2.1.0"}}
    old = {"company": {"plan": "pro"}, "user": {"id": "u1", "country": "AT", "appVersion": "1.9.9"}}
    assert orjson.loads(snapshot.evaluate_all(yes))["mixed"]["isEnabled"] is True
    assert orjson.loads(snapshot.evaluate_all(old))["mixed"]["isEnabled"] is False
    flat = {"company.plan": "pro", "user.id": "u1", "user.country": "AT", "user.appVersion": "2.1.0"}
    assert orjson.loads(snapshot.evaluate_all_flat(flat))["mixed"]["isEnabled"] is True
