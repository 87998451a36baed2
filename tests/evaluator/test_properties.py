"""Property-based tests: the evaluator agrees with the Reflag model, its two context paths and
its two output forms agree, and bucketing distributions are uniform."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evaluator
from tests.evaluator import reflag_model

FIELDS = ["user.id", "user.email", "company.id", "company.plan", "user.tags.0", "n", "flag"]
OPERATORS = ["IS", "IS_NOT", "ANY_OF", "NOT_ANY_OF", "CONTAINS", "NOT_CONTAINS", "GT", "LT", "SET", "NOT_SET"]
OPERATORS += ["IS_TRUE", "IS_FALSE"]
WORDS = st.sampled_from(["", "a", "Acme", "acme", "1", "10", "2.5", "-3", "true", "false", "x@acme.com", "ß"])


def filters(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    context = st.builds(
        lambda f, op, vs: {"type": "context", "field": f, "operator": op, "values": vs},
        st.sampled_from(FIELDS),
        st.sampled_from(OPERATORS),
        st.lists(WORDS, min_size=1, max_size=4),
    )
    rollout = st.builds(
        lambda a, t: {"type": "rolloutPercentage", "partialRolloutAttribute": a, "partialRolloutThreshold": t},
        st.sampled_from(FIELDS),
        st.integers(0, 100000),
    )
    constant = st.builds(lambda b: {"type": "constant", "value": b}, st.booleans())
    leaf = st.one_of(context, rollout, constant)
    if depth == 0:
        return leaf
    inner = filters(depth - 1)
    group = st.builds(
        lambda op, fs: {"type": "group", "operator": op, "filters": fs},
        st.sampled_from(["and", "or"]),
        st.lists(inner, max_size=4),
    )
    negation = st.builds(lambda f: {"type": "negation", "filter": f}, inner)
    return st.one_of(leaf, group, negation)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), WORDS)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "user": st.fixed_dictionaries(
            {}, optional={"id": scalars, "email": scalars, "tags": st.lists(scalars, max_size=3)}
        ),
        "company": st.fixed_dictionaries({}, optional={"id": scalars, "plan": scalars}),
        "n": scalars,
        "flag": scalars,
    },
)
rules_lists = st.lists(st.builds(lambda f, v: {"filter": f, "value": v}, filters(), st.integers(0, 9)), max_size=4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rules_lists, context=contexts)
def test_reflag_matches_the_reference_model(rules: list[dict[str, Any]], context: dict[str, Any]) -> None:
    assert evaluator.reflag_evaluate("flag-key", rules, context) == reflag_model.evaluate_flag_rules(
        "flag-key", rules, context
    )


def _snapshot(rules: list[dict[str, Any]]) -> evaluator.Snapshot:
    doc = {"features": [{"key": "f", "targeting": {"version": 1, "rules": [{"filter": r["filter"]} for r in rules]}}]}
    return evaluator.Snapshot(orjson.dumps(doc))


@settings(max_examples=300, deadline=None)
@given(rules=rules_lists, context=contexts)
def test_flat_nested_and_single_flag_paths_agree(rules: list[dict[str, Any]], context: dict[str, Any]) -> None:
    snapshot = _snapshot(rules)
    flat = reflag_model.flatten(context)
    nested_body = orjson.loads(snapshot.evaluate_all(context, debug=True))
    flat_body = orjson.loads(snapshot.evaluate_all_flat(flat, debug=True))
    assert nested_body == flat_body
    single = snapshot.evaluate_flag("f", context)
    assert single is not None
    model = reflag_model.evaluate_flag_rules("f", rules, context)
    assert single["value"] == nested_body["f"]["isEnabled"] == any(model["ruleEvaluationResults"])
    assert nested_body["f"]["ruleEvaluationResults"] == model["ruleEvaluationResults"]
    assert nested_body["f"]["missingContextFields"] == model["missingContextFields"]


def test_rollout_distribution_is_uniform() -> None:
    rule = [
        {
            "filter": {
                "type": "rolloutPercentage",
                "partialRolloutAttribute": "user.id",
                "partialRolloutThreshold": 30000,
            }
        }
    ]
    snapshot = _snapshot(rule)
    contexts = [{"user": {"id": f"user-{i}"}} for i in range(100_000)]
    enabled = sum(b'"isEnabled":true' in body for body in snapshot.evaluate_batch(contexts))
    assert abs(enabled / 100_000 - 0.30) < 0.01


def test_fractional_distribution_is_uniform() -> None:
    rule = {"fractional": [{"var": "id"}, ["a", 50], ["b", 50]]}
    hits = sum(evaluator.jsonlogic_apply(rule, {"id": f"user-{i}"}) == "a" for i in range(100_000))
    assert abs(hits / 100_000 - 0.5) < 0.01
