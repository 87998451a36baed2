"""Unit tests of the DevCycle -> evaluator translation in ``control_plane.features_snapshot``:
filter trees, audience inlining, distributions, rollouts and bucketing attributes."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.errors import ApiError
from control_plane.features_snapshot import (
    FeatureData,
    audience_refs,
    bucketing_attribute,
    build_definition,
    iso_ms,
    rollout_percentage,
    translate_filter,
)
from control_plane.routes.devcycle.common import FilterChecker

TRUE = {"type": "constant", "value": True}
FALSE = {"type": "constant", "value": False}
EMAIL = {"type": "user", "subType": "email", "comparator": "endWith", "values": ["@example.com"]}
DAY = 86_400_000.0


def test_devcycle_nodes_translate_to_evaluator_nodes() -> None:
    assert translate_filter({"operator": "or", "filters": [{"type": "all"}, EMAIL]}, {}) == {
        "type": "group",
        "operator": "or",
        "filters": [TRUE, EMAIL],
    }
    # A top-level group without an operator requires every filter; an empty group never matches.
    assert translate_filter({"filters": [{"type": "optIn"}]}, {}) == {
        "type": "group",
        "operator": "and",
        "filters": [{"type": "optIn"}],
    }
    assert translate_filter({"operator": "and", "filters": []}, {}) == FALSE
    custom = {
        "type": "user",
        "subType": "customData",
        "dataKey": "plan",
        "dataKeyType": "String",
        "comparator": "=",
        "values": ["pro"],
    }
    assert translate_filter(custom, {}) == custom
    logic = {"type": "jsonLogic", "rule": {"==": [{"var": "user.plan"}, "pro"]}}
    assert translate_filter(logic, {}) == logic
    # Reflag groups and negations are walked, so DevCycle nodes inside them translate too.
    assert translate_filter(
        {"type": "negation", "filter": {"type": "group", "operator": "and", "filters": [{"type": "all"}]}}, {}
    ) == {"type": "negation", "filter": {"type": "group", "operator": "and", "filters": [TRUE]}}
    # Shapes the evaluator must report are passed through untouched.
    for odd in ({"type": "group", "operator": "and", "filters": "x"}, {"nothing": 1}, "x", None):
        assert translate_filter(odd, {}) == odd


def test_audience_match_inlines_audiences() -> None:
    audiences = {
        "a1": {"operator": "and", "filters": [EMAIL]},
        "a2": {"operator": "and", "filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["a1"]}]},
        "loop": {"filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["loop"]}]},
    }
    email_group = {"type": "group", "operator": "and", "filters": [EMAIL]}
    node = {"type": "audienceMatch", "comparator": "=", "_audiences": ["a2", "missing"]}
    assert translate_filter(node, audiences) == {
        "type": "group",
        "operator": "or",
        "filters": [
            {
                "type": "group",
                "operator": "and",
                "filters": [{"type": "group", "operator": "or", "filters": [email_group]}],
            },
            FALSE,
        ],
    }
    assert translate_filter({**node, "comparator": "!=", "_audiences": ["a1"]}, audiences) == {
        "type": "negation",
        "filter": {"type": "group", "operator": "or", "filters": [email_group]},
    }
    # A reference cycle never matches instead of recursing forever.
    looped = translate_filter({"type": "audienceMatch", "comparator": "=", "_audiences": ["loop"]}, audiences)
    assert looped == {
        "type": "group",
        "operator": "or",
        "filters": [
            {"type": "group", "operator": "and", "filters": [{"type": "group", "operator": "or", "filters": [FALSE]}]}
        ],
    }
    assert audience_refs({"filters": [node, {"type": "negation", "filter": {**node, "_audiences": ["z"]}}]}) == [
        "a2",
        "missing",
        "z",
    ]


def _feature(targets: list[dict[str, Any]], **kw: Any) -> FeatureData:
    base: dict[str, Any] = {
        "key": "flag",
        "status": "active",
        "static_variation": None,
        "variations": [("v1", "one", {"x": 1}), ("v2", "two", {"x": 2}), ("v3", "three", {"x": 3})],
        "targets": targets,
        "reflag": None,
        "version": 7,
    }
    return FeatureData(**{**base, **kw})


def test_distribution_becomes_bucket_ranges() -> None:
    target = {
        "_id": "t",
        "audience": {"filters": {"filters": [EMAIL]}},
        "bucketingKey": "country",
        "distribution": [
            {"_variation": "v1", "percentage": 0.2},
            {"_variation": "v2", "percentage": 0},
            {"_variation": "v3", "percentage": 0.3},
            {"_variation": "v2", "percentage": 0.5},
        ],
    }
    built = build_definition(_feature([target]), {}, disable_passthrough=False, now_ms=0)
    d = built.definition
    audience = {"type": "group", "operator": "and", "filters": [EMAIL]}
    assert d["targeting"] == {
        "version": 7,
        "rules": [{"filter": {"type": "group", "operator": "and", "filters": [audience]}}],
    }

    def node(threshold: int) -> dict[str, Any]:
        return {
            "type": "rolloutPercentage",
            "key": "t",
            "partialRolloutAttribute": "user.country",
            "partialRolloutThreshold": threshold,
        }

    variants = d["config"]["variants"]
    assert [(v["key"], v["payload"]) for v in variants] == [("one", {"x": 1}), ("three", {"x": 3}), ("two", {"x": 2})]
    assert variants[0]["filter"]["filters"] == [audience, node(20000)]
    assert variants[1]["filter"]["filters"] == [audience, {"type": "negation", "filter": node(20000)}, node(50000)]
    # The last range is open so that the top hash value (100000) still gets a variation.
    assert variants[2]["filter"]["filters"] == [audience, {"type": "negation", "filter": node(50000)}]
    assert built.variant_targets == [0, 0, 0]
    assert d["config"]["version"] == 7


def test_targets_without_values_complete_and_reflag_shapes() -> None:
    target = {
        "_id": "t",
        "audience": {"filters": {"filters": [{"type": "all"}]}},
        "distribution": [{"_variation": "v1", "percentage": 1}],
    }
    empty: list[tuple[str, str, dict[str, Any]]] = [("v1", "one", {}), ("v2", "two", {})]
    d = build_definition(_feature([target], variations=empty), {}, disable_passthrough=False, now_ms=0).definition
    assert "config" not in d and len(d["targeting"]["rules"]) == 1
    d = build_definition(
        _feature([target], status="complete", static_variation="v2"), {}, disable_passthrough=False, now_ms=0
    ).definition
    assert d == {
        "key": "flag",
        "targeting": {"version": 7, "rules": [{"filter": TRUE}]},
        "config": {"version": 7, "variants": [{"key": "two", "filter": TRUE, "payload": {"x": 2}}]},
    }
    d = build_definition(
        _feature([], status="complete", static_variation="gone"), {}, disable_passthrough=False, now_ms=0
    ).definition
    assert d["targeting"]["rules"] == [] and "config" not in d
    reflag = {"targeting": {"rules": [{"filter": {"type": "audienceMatch", "comparator": "=", "_audiences": ["a"]}}]}}
    d = build_definition(
        _feature([], reflag=reflag), {"a": {"filters": [EMAIL]}}, disable_passthrough=False, now_ms=0
    ).definition
    assert d == {
        "key": "flag",
        "targeting": {
            "version": 7,
            "rules": [
                {
                    "filter": {
                        "type": "group",
                        "operator": "or",
                        "filters": [{"type": "group", "operator": "and", "filters": [EMAIL]}],
                    }
                }
            ],
        },
    }


def test_passthrough_setting() -> None:
    a = {
        "_id": "a",
        "audience": {"filters": {"filters": [EMAIL]}},
        "distribution": [{"_variation": "v1", "percentage": 1}],
        "rollout": {"type": "gradual", "startPercentage": 0.25, "startDate": "2020-01-01T00:00:00.000Z"},
    }
    b = {
        "_id": "b",
        "audience": {"filters": {"filters": [{"type": "all"}]}},
        "distribution": [{"_variation": "v2", "percentage": 1}],
    }
    now = iso_ms("2024-01-01T00:00:00Z")
    rules = build_definition(_feature([a, b]), {}, disable_passthrough=False, now_ms=now).definition["targeting"]
    gate = {
        "type": "rolloutPercentage",
        "key": "a_rollout",
        "partialRolloutAttribute": "user.id",
        "partialRolloutThreshold": 25000,
    }
    assert rules["rules"][0]["filter"]["filters"][1] == gate
    assert rules["rules"][1]["filter"]["filters"][1:] == []
    rules = build_definition(_feature([a, b]), {}, disable_passthrough=True, now_ms=now).definition["targeting"]
    email = {"type": "group", "operator": "and", "filters": [EMAIL]}
    assert rules["rules"][1]["filter"]["filters"][1:] == [{"type": "negation", "filter": email}]


def test_rollout_percentage_follows_devcycle() -> None:
    start = iso_ms("2024-06-01T00:00:00Z")
    assert rollout_percentage({"type": "schedule", "startDate": "2024-06-01T00:00:00Z"}, start - 1) == 0.0
    assert rollout_percentage({"type": "schedule", "startDate": "2024-06-01T00:00:00Z"}, start) == 1.0
    gradual = {"type": "gradual", "startPercentage": 0.3, "startDate": "2024-06-01T00:00:00Z"}
    assert rollout_percentage(gradual, start) == 0.0
    assert rollout_percentage(gradual, start + 1) == 0.3
    linear = {
        "type": "gradual",
        "startPercentage": 0.0,
        "startDate": "2024-06-01T00:00:00Z",
        "stages": [{"type": "linear", "date": "2024-06-11T00:00:00Z", "percentage": 1}],
    }
    assert rollout_percentage(linear, start + 2.5 * DAY) == pytest.approx(0.25)
    assert rollout_percentage(linear, start + 20 * DAY) == 1.0
    assert rollout_percentage(linear, start - DAY) == 0.0
    boundary = {
        "type": "gradual",
        "startPercentage": 0.1,
        "startDate": "2024-06-01T00:00:00Z",
        "stages": [
            {"type": "linear", "date": "2024-06-05T00:00:00Z", "percentage": 0.5},
            {"type": "linear", "date": "2024-06-09T00:00:00Z", "percentage": 0.9},
        ],
    }
    s1 = iso_ms("2024-06-05T00:00:00Z")
    assert rollout_percentage(boundary, s1) == 0.0
    assert rollout_percentage(boundary, s1 + 2 * DAY) == pytest.approx(0.7)
    assert rollout_percentage(boundary, s1 - 2 * DAY) == pytest.approx(0.3)
    out_of_order = {
        "type": "stepped",
        "startPercentage": 0.1,
        "startDate": "2024-01-01T00:00:00Z",
        "stages": [
            {"type": "discrete", "date": "2024-03-01T00:00:00Z", "percentage": 0.9},
            {"type": "discrete", "date": "2024-02-01T00:00:00Z", "percentage": 0.4},
        ],
    }
    assert rollout_percentage(out_of_order, iso_ms("2024-04-01T00:00:00Z")) == 0.4


def test_bucketing_attributes() -> None:
    assert bucketing_attribute(None) == "user.id"
    assert bucketing_attribute("user_id") == "user.id"
    assert bucketing_attribute("email") == "user.email"
    assert bucketing_attribute("organization_id") == "user.customData.organization_id"


def test_filter_checker_normalises_user_nodes() -> None:
    checker = FilterChecker(lambda ref: {"pro": "id-pro"}.get(ref))
    tree = {
        "filters": [
            {"type": "user", "subType": "country", "comparator": "exist"},
            {"type": "user", "subType": "appVersion", "comparator": ">=", "values": ["1.2.0", 2, True]},
            {"type": "audienceMatch", "_audiences": ["pro"]},
            {"type": "group", "operator": "or", "filters": [{"filters": [{"type": "optIn"}]}]},
        ]
    }
    assert checker.check(tree, "filters") == {
        "operator": "and",
        "filters": [
            {"type": "user", "subType": "country", "comparator": "exist"},
            {"type": "user", "subType": "appVersion", "comparator": ">=", "values": ["1.2.0", 2, True]},
            {"type": "audienceMatch", "comparator": "=", "_audiences": ["id-pro"]},
            {"type": "group", "operator": "or", "filters": [{"operator": "and", "filters": [{"type": "optIn"}]}]},
        ],
    }
    with pytest.raises(ApiError) as e:
        checker.check(
            {"filters": [{"type": "user", "subType": "email", "comparator": "=", "values": [1.5, None]}]}, "f"
        )
    assert e.value.details[0]["field"] == "f.filters[0].values[1]"
