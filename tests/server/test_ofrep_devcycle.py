"""OFREP for DevCycle projects (server/ofrep.py): flags are DevCycle variables by key, typed,
bucketed by DevCycle's algorithm for the user a flat OpenFeature context maps to; sdkVisibility
by key kind; errors in OFREP's bodies. Reflag projects keep their boolean flags (test_ofrep.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import evaluator
from server.devcycle import users
from tests.server.devcycle.support import (
    CLIENT_KEY,
    HIDDEN_FEATURE,
    MOBILE_KEY,
    SERVER_KEY,
    Harness,
    devcycle_config,
    running_edge,
    vector,
)

BULK = "/ofrep/v1/evaluate/flags"
FLAG = BULK + "/"


def context_of(user: dict[str, Any]) -> dict[str, Any]:
    """The flat OpenFeature context of a vector user (custom data as top-level keys)."""
    flat = {k: v for k, v in user.items() if k not in ("user_id", "customData", "platform")}
    return {"targetingKey": user["user_id"], **flat, **user.get("customData", {})}


CONTEXTS = [context_of(case["user"]) for case in vector()["cases"]]


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Harness]:
    with running_edge(tmp_path) as harness:
        yield harness


def post(edge: Harness, path: str, context: Any, key: str = SERVER_KEY, **headers: str) -> Any:
    return edge.post(path, {"context": context}, key=f"Bearer {key}", **headers)


def reference(context: dict[str, Any]) -> dict[str, Any]:
    bucketed: dict[str, Any] = evaluator.devcycle_bucket(
        devcycle_config(), users.from_openfeature(context), int(time.time() * 1000)
    )
    return bucketed


def variation_keys(bucketed: dict[str, Any]) -> dict[str, str]:
    """Variable key → the variation key of the feature serving it."""
    config = devcycle_config()
    names = {v["_id"]: v["key"] for v in config["variables"]}
    owner = {
        names[v["_var"]]: f["key"]
        for f in config["features"]
        for variation in f["variations"]
        for v in variation["variables"]
    }
    return {k: bucketed["features"][owner[k]]["variationKey"] for k in bucketed["variables"]}


@pytest.mark.parametrize("context", CONTEXTS, ids=[c["targetingKey"] for c in CONTEXTS])
def test_bulk_serves_the_users_variables_typed(edge: Harness, context: dict[str, Any]) -> None:
    r = post(edge, BULK, context)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = reference(context)
    flags = {f["key"]: f for f in body["flags"]}
    assert {k: f["value"] for k, f in flags.items()} == expected["variables"]
    assert {k: f["variant"] for k, f in flags.items()} == variation_keys(expected)
    assert {f["reason"] for f in flags.values()} <= {"TARGETING_MATCH", "SPLIT"}
    assert body["metadata"] == {"flagStateVersion": 1}
    for key, flag in list(flags.items())[:3]:
        one = post(edge, FLAG + key, context).json()
        assert one["value"] == flag["value"] and one["variant"] == flag["variant"]
        assert one["metadata"] == {**flag["metadata"], "flagStateVersion": 1}
        assert set(one["metadata"]) == {
            "evalReasonDetails",
            "evalReasonTargetId",
            "featureKey",
            "variableType",
            "flagStateVersion",
        }


def test_every_variable_type_keeps_its_json_type(edge: Harness) -> None:
    types = {v["key"]: v["type"] for v in devcycle_config()["variables"]}
    python: dict[str, type | tuple[type, ...]] = {"String": str, "Number": (int, float), "Boolean": bool, "JSON": dict}
    seen = set()
    for context in CONTEXTS:
        for flag in post(edge, BULK, context).json()["flags"]:
            kind = types[flag["key"]]
            assert isinstance(flag["value"], python[kind]) and flag["metadata"]["variableType"] == kind
            seen.add(kind)
    assert seen == set(types.values())


def test_client_keys_are_not_served_hidden_features(edge: Harness) -> None:
    context = CONTEXTS[0]
    hidden = HIDDEN_FEATURE["key"]
    server = {f["key"] for f in post(edge, BULK, context).json()["flags"]}
    client = {f["key"] for f in post(edge, BULK, context, key=CLIENT_KEY).json()["flags"]}
    mobile = {f["key"] for f in post(edge, BULK, context, key=MOBILE_KEY).json()["flags"]}
    hidden_vars = {k for k in server if k.startswith(hidden + "-")}
    assert hidden_vars and client == server - hidden_vars and mobile == server
    one = post(edge, FLAG + sorted(hidden_vars)[0], context, key=CLIENT_KEY)
    assert one.status_code == 404 and one.json()["errorCode"] == "FLAG_NOT_FOUND"


def test_a_variable_the_user_is_not_served_is_flag_not_found(edge: Harness) -> None:
    r = post(edge, FLAG + "no-such-variable", CONTEXTS[0])
    assert r.status_code == 404
    assert r.json() == {
        "key": "no-such-variable",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "variable 'no-such-variable' is not served to this user",
    }


@pytest.mark.parametrize("context", [{}, {"email": "a@example.com"}, {"targetingKey": 7}])
def test_a_context_without_a_targeting_key_is_targeting_key_missing(edge: Harness, context: Any) -> None:
    one = post(edge, FLAG + "feature-0-1-var-0", context)
    assert one.status_code == 400 and one.json()["errorCode"] == "TARGETING_KEY_MISSING"
    bulk = post(edge, BULK, context)
    assert bulk.status_code == 400 and bulk.json()["errorCode"] == "TARGETING_KEY_MISSING"


def test_an_overlong_targeting_key_is_an_invalid_context(edge: Harness) -> None:
    r = post(edge, FLAG + "feature-0-1-var-0", {"targetingKey": "u" * 201})
    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_CONTEXT"


def test_bulk_revalidates_with_if_none_match(edge: Harness) -> None:
    first = post(edge, BULK, CONTEXTS[0])
    again = post(edge, BULK, CONTEXTS[0], **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_the_configuration_announces_every_type(edge: Harness) -> None:
    r = edge.get("/ofrep/v1/configuration", headers={"Authorization": f"Bearer {SERVER_KEY}"})
    assert r.json()["capabilities"]["flagEvaluation"] == {
        "supportedTypes": ["boolean", "int", "float", "string", "object"],
        "unsupportedTypes": [],
    }
