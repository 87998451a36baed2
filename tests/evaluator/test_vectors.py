"""Every conformance vector, run through the Python entry points of DESIGN.md section 5."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

import evaluator
from tests.conftest import load_vectors
from tests.evaluator.jsoneq import json_eq

JSONLOGIC = load_vectors("jsonlogic-official.json")
FRACTIONAL = load_vectors("flagd-fractional.json")
SEMVER = load_vectors("flagd-semver.json")
HASHES = load_vectors("reflag-hash.json")
OPERATORS = load_vectors("reflag-operators.json")
DEVCYCLE = load_vectors("devcycle-example.json")


def test_vector_counts() -> None:
    assert (len(JSONLOGIC), len(FRACTIONAL), len(SEMVER), len(HASHES), len(OPERATORS)) == (278, 47, 43, 50, 52)
    assert len(DEVCYCLE["cases"]) == 10


@pytest.mark.parametrize("case", JSONLOGIC, ids=lambda c: f"{c['section']}: {c['rule']}"[:120])
def test_jsonlogic_official(case: dict[str, Any]) -> None:
    assert json_eq(evaluator.jsonlogic_apply(case["rule"], case["data"]), case["expected"])


@pytest.mark.parametrize("case", FRACTIONAL + SEMVER, ids=lambda c: str(c["description"])[:120])
def test_flagd_operators(case: dict[str, Any]) -> None:
    assert json_eq(evaluator.jsonlogic_apply(case["rule"], case["data"]), case["expected"])


@pytest.mark.parametrize("case", HASHES, ids=lambda c: str(c["input"]))
def test_reflag_hash(case: dict[str, Any]) -> None:
    assert evaluator.reflag_hash(case["input"]) == case["expected"]


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


@pytest.mark.parametrize("case", OPERATORS, ids=lambda c: f"{c['fieldValue']} {c['operator']} {c['values']}")
def test_reflag_operators(case: dict[str, Any]) -> None:
    # evaluate(fieldValue, operator, values) through a one-rule evaluateFlagRules call.
    rules = [
        {
            "filter": {"type": "context", "field": "f", "operator": case["operator"], "values": case["values"]},
            "value": True,
        }
    ]
    now = _epoch_ms(case["now"]) if "now" in case else None
    result = evaluator.reflag_evaluate("flag", rules, {"f": case["fieldValue"]}, now_ms=now)
    assert result["ruleEvaluationResults"] == [case["expected"]]
    assert result["value"] is (True if case["expected"] else None)


@pytest.mark.parametrize("case", DEVCYCLE["cases"], ids=lambda c: str(c["user"].get("user_id")))
def test_devcycle_example(case: dict[str, Any]) -> None:
    out = evaluator.devcycle_bucket(DEVCYCLE["config"], case["user"], DEVCYCLE["now"]["epochMs"])
    features = out["features"]
    assert isinstance(features, dict)
    got = {k: {"_variation": v["_variation"], "variationKey": v["variationKey"]} for k, v in features.items()}
    assert got == case["expected"]["features"]
    # DESIGN.md section 5: "variables" maps each variable key straight to its value.
    assert json_eq(out["variables"], case["expected"]["variables"])


def test_devcycle_example_through_a_snapshot() -> None:
    import orjson

    snapshot = evaluator.Snapshot(orjson.dumps({"features": [], "devcycle": DEVCYCLE["config"]}))
    for case in DEVCYCLE["cases"]:
        out = snapshot.devcycle_bucket(case["user"], DEVCYCLE["now"]["epochMs"])
        assert out is not None
        assert out == evaluator.devcycle_bucket(DEVCYCLE["config"], case["user"], DEVCYCLE["now"]["epochMs"])
