"""Hostile input: nothing a caller passes crashes the process or escapes as a Rust panic."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evaluator


def _deep_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _deep_dict(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), -float("inf"), {1: "x"}, {"a": object()}, b"bytes", "\ud800", {"\udfff": 1}],
)
def test_bad_python_values_are_clean_errors(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        evaluator.jsonlogic_apply({"var": "a"}, {"a": bad})
    with pytest.raises((ValueError, TypeError)):
        evaluator.reflag_evaluate("f", [], {"a": bad})


def test_deep_data_is_rejected_not_a_crash() -> None:
    with pytest.raises(ValueError):
        evaluator.jsonlogic_apply({"var": "a"}, {"a": _deep_list(10_000)})
    with pytest.raises(ValueError):
        evaluator.reflag_evaluate("f", [], _deep_dict(10_000))


def test_deep_rules_are_rule_errors() -> None:
    rule: Any = {"var": "a"}
    for _ in range(40):
        rule = {"!": [rule]}
    # 80 levels of JSON: accepted as data, but deeper than the 64-level rule limit.
    with pytest.raises(evaluator.EvaluatorError):
        evaluator.jsonlogic_apply(rule, {})
    for _ in range(500):
        rule = {"!": [rule]}
    with pytest.raises(ValueError):
        evaluator.jsonlogic_apply(rule, {})
    nested: Any = {"type": "constant", "value": True}
    for _ in range(80):
        nested = {"type": "negation", "filter": nested}
    with pytest.raises(evaluator.RuleError) as info:
        evaluator.Snapshot(orjson.dumps({"features": [{"key": "f", "targeting": {"rules": [{"filter": nested}]}}]}))
    assert info.value.path.startswith("$.features[0].targeting.rules[0].filter.filter.filter")


def test_deep_snapshot_json_is_a_rule_error() -> None:
    with pytest.raises(evaluator.RuleError):
        evaluator.Snapshot(b"[" * 100_000 + b"]" * 100_000)


def test_jsonlogic_bombs_hit_the_budget() -> None:
    big = {"merge": [[0] * 1000] * 1000}
    bomb = {"map": [big, {"map": [big, {"var": ""}]}]}
    with pytest.raises(evaluator.BudgetExceededError):
        evaluator.jsonlogic_apply(bomb, {})
    reduce_bomb = {"reduce": [big, {"cat": [{"var": "accumulator"}, "xxxxxxxxxx"]}, ""]}
    with pytest.raises(evaluator.BudgetExceededError):
        evaluator.jsonlogic_apply(reduce_bomb, {})


def test_bomb_inside_a_snapshot_only_fails_that_rule() -> None:
    big = {"merge": [[0] * 1000] * 1000}
    bomb = {"map": [big, {"map": [big, 1]}]}
    doc = {
        "features": [
            {"key": "bomb", "targeting": {"rules": [{"filter": {"type": "jsonLogic", "rule": bomb}}]}},
            {"key": "fine", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}},
        ]
    }
    body = orjson.loads(evaluator.Snapshot(orjson.dumps(doc)).evaluate_all({}))
    assert body["bomb"]["isEnabled"] is False
    assert body["fine"]["isEnabled"] is True


def test_huge_arrays_and_strings() -> None:
    doc = {
        "features": [
            {
                "key": "f",
                "targeting": {
                    "rules": [
                        {"filter": {"type": "context", "field": "x", "operator": "ANY_OF", "values": ["v"] * 100_000}}
                    ]
                },
            }
        ]
    }
    snapshot = evaluator.Snapshot(orjson.dumps(doc))
    ctx = {"x": "v" * 1_000_000, "y": list(range(100_000))}
    assert orjson.loads(snapshot.evaluate_all(ctx))["f"]["isEnabled"] is False


def test_semver_compare_errors() -> None:
    assert evaluator.semver_compare("1.2.3", "v1.2.4") == -1
    assert evaluator.semver_compare("2.0.0", "2.0.0+build") == 0
    assert evaluator.semver_compare("1.0.0", "1.0.0-rc.1") == 1
    for bad in ("", "x", "1.2.3.4", "01.2.3"):
        with pytest.raises(ValueError):
            evaluator.semver_compare(bad, "1.0.0")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(rule=json_values, data=json_values)
def test_random_jsonlogic_never_crashes(rule: Any, data: Any) -> None:
    with contextlib.suppress(evaluator.EvaluatorError):
        evaluator.jsonlogic_apply(rule, data)


@settings(max_examples=300, deadline=None)
@given(doc=json_values)
def test_random_snapshots_never_crash(doc: Any) -> None:
    for wrapped in (doc, {"features": doc}, {"features": [doc]}, {"features": [{"key": "k", "targeting": doc}]}):
        with contextlib.suppress(evaluator.RuleError):
            evaluator.Snapshot(orjson.dumps(wrapped)).evaluate_all({"a": doc} if isinstance(doc, dict) else {})


@settings(max_examples=300, deadline=None)
@given(config=json_values, user=json_values)
def test_random_devcycle_inputs_never_crash(config: Any, user: Any) -> None:
    with contextlib.suppress(evaluator.EvaluatorError, TypeError):
        evaluator.devcycle_bucket({"features": config} if not isinstance(config, dict) else config, user, 0)


def test_jsonlogic_compile_errors_name_the_node() -> None:
    with pytest.raises(evaluator.RuleError) as info:
        evaluator.jsonlogic_apply({"if": [{"var": "a"}, {"nope": [1]}, 2]}, {})
    assert info.value.path == "$.if[1].nope"
