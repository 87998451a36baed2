"""Evaluation counts of a compiled snapshot (``Snapshot.drain_counts``): every evaluating entry
point counts what it answered, per flag (or DevCycle feature) and variation, and a drain resets
them. The edge ships them (``server/evaluation_counts.py``; end to end in
``tests/e2e/test_edge_evaluation_counts.py``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

import evaluator
from tests.evaluator.test_devcycle_edge import CONFIG, NOW, compiled

BLUE_FOR_U1 = {"type": "context", "field": "user.id", "operator": "IS", "values": ["u1"]}
REFLAG = {
    "features": [
        {
            "key": "a",
            "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": True}}]},
            "config": {"version": 1, "variants": [{"key": "blue", "filter": BLUE_FOR_U1, "payload": 1}]},
        },
        {"key": "b", "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": False}}]}},
    ]
}


def drained(snapshot: evaluator.Snapshot) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for feature, variation, n in snapshot.drain_counts():
        out[feature, variation] += n
    return out


def test_reflag_flags_count_the_variant_their_answer_reports() -> None:
    s = evaluator.Snapshot(orjson.dumps(REFLAG))
    s.evaluate_all_flat([("user.id", "u1")])
    s.evaluate_all({"user": {"id": "u2"}})
    s.evaluate_all_flat([("user.id", "u2")], enabled_only=True)  # b is not in the answer
    assert s.evaluate_flag("a", {"user": {"id": "u1"}})["variant"] == "blue"  # type: ignore[index]
    assert s.evaluate_flag_flat("b", [("user.id", "u1")])["variant"] == "off"  # type: ignore[index]
    assert drained(s) == {("a", "blue"): 2, ("a", "on"): 2, ("b", "off"): 3}
    assert s.drain_counts() == []


def test_devcycle_routes_count_the_features_they_answer() -> None:
    s = compiled(CONFIG)
    user = {"user_id": "u-7", "email": "a@acme.com", "country": "DE"}
    bucketed = s.devcycle_bucket(user, NOW)  # the reference; not a route, not counted
    assert bucketed is not None and s.drain_counts() == []
    served: dict[str, Any] = {key: f["variationKey"] for key, f in bucketed["features"].items()}
    assert served, "the example serves this user something"

    answer = s.devcycle_json(user, NOW, "config")
    assert answer is not None
    s.devcycle_json(user, NOW, "ofrep")
    assert drained(s) == {(key, variation): 2 for key, variation in served.items()}

    # One variable: only the feature serving it.
    variable, value = next(iter(orjson.loads(answer)["variables"].items()))
    feature = next(k for k, f in bucketed["features"].items() if f["_id"] == value["_feature"])
    s.devcycle_json(user, NOW, "variable", variable)
    assert drained(s) == {(feature, served[feature]): 1}
    # A hidden feature is neither answered nor counted.
    s.devcycle_json(user, NOW, "features", hidden={value["_feature"]})
    assert drained(s) == {(key, variation): 1 for key, variation in served.items() if key != feature}

    # The Reflag-shape routes count DevCycle-decided flags as served, and nothing when unserved.
    s.evaluate_all({"user": {"id": "u-7", "email": "a@acme.com", "country": "DE"}}, now_ms=NOW)
    assert drained(s) == {(key, variation): 1 for key, variation in served.items()}


def test_snapshots_compiled_while_counting_is_off_count_nothing() -> None:
    evaluator.set_counting(False)
    try:
        s = evaluator.Snapshot(orjson.dumps(REFLAG))
    finally:
        evaluator.set_counting(True)
    s.evaluate_all_flat([("user.id", "u1")])
    assert s.drain_counts() == []
    counting = evaluator.Snapshot(orjson.dumps(REFLAG))
    counting.evaluate_all_flat([("user.id", "u1")])
    assert drained(counting) == {("a", "blue"): 1, ("b", "off"): 1}
