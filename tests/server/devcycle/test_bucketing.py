"""Bucketed configs per user (server/devcycle/bucketing.py): /v1/sdkConfig for client SDKs and
the cloud bucketing API, against DevCycle's algorithm (``evaluator.devcycle_bucket``), with
sdkVisibility, ETag/304, keys and bad input in DevCycle's error shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

import evaluator
from tests.server.devcycle.support import (
    CLIENT_KEY,
    HIDDEN_FEATURE,
    MOBILE_KEY,
    PLAIN_SERVER_KEY,
    SERVER_KEY,
    Harness,
    devcycle_config,
    key_hash,
    running_edge,
    vector,
)

USERS: list[dict[str, Any]] = [case["user"] for case in vector()["cases"]]


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Harness]:
    with running_edge(tmp_path) as harness:
        yield harness


def reference(user: dict[str, Any]) -> dict[str, Any]:
    """DevCycle's bucketing of the user now (the vector's rollouts have all completed)."""
    bucketed: dict[str, Any] = evaluator.devcycle_bucket(devcycle_config(), user, int(time.time() * 1000))
    return bucketed


def query(user: dict[str, Any], key: str = CLIENT_KEY) -> str:
    """The query string @devcycle/js-client-sdk sends: objects as JSON text, dates in epoch ms."""
    params = {"sdkKey": key, **{k: orjson.dumps(v).decode() if isinstance(v, dict) else v for k, v in user.items()}}
    params |= {"isAnonymous": "false", "createdDate": "1718452800000", "sdkType": "client", "sdkVersion": "1.47.10"}
    return "/v1/sdkConfig?" + urlencode(params)


def served_values(variables: dict[str, Any]) -> dict[str, Any]:
    return {k: v["value"] for k, v in variables.items()}


@pytest.mark.parametrize("user", USERS, ids=[u["user_id"] for u in USERS])
def test_sdk_config_is_devcycle_bucketing_without_what_clients_may_not_see(edge: Harness, user: dict[str, Any]) -> None:
    r = edge.get(query(user))
    assert r.status_code == 200, r.text
    body = r.json()
    expected = reference(user)
    hidden = HIDDEN_FEATURE["key"]
    assert hidden in expected["features"]  # the vector serves it to everyone: leaving it out shows
    assert {k: f["variationKey"] for k, f in body["features"].items()} == {
        k: f["variationKey"] for k, f in expected["features"].items() if k != hidden
    }
    hidden_vars = {v["key"] for v in devcycle_config()["variables"] if v["key"].startswith(hidden + "-")}
    assert served_values(body["variables"]) == {k: v for k, v in expected["variables"].items() if k not in hidden_vars}
    assert HIDDEN_FEATURE["_id"] not in body["featureVariationMap"]
    # The snapshot version, which the stream's messages carry too.
    assert body["etag"] == "1" and "sse" not in body
    assert set(body) == {
        "project",
        "environment",
        "features",
        "featureVariationMap",
        "variableVariationMap",
        "variables",
        "etag",
    }


def test_mobile_keys_get_the_mobile_config(edge: Harness) -> None:
    body = edge.get(query(USERS[0], MOBILE_KEY).replace("/v1/sdkConfig", "/v1/mobileSDKConfig")).json()
    assert HIDDEN_FEATURE["key"] in body["features"]  # hidden from client SDKs only


def test_sdk_config_revalidates_with_if_none_match(edge: Harness) -> None:
    first = edge.get(query(USERS[0]))
    again = edge.get(query(USERS[0]), headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = edge.get(query(USERS[1]), headers={"If-None-Match": first.headers["etag"]})
    assert other.status_code == 200


def test_sdk_config_points_client_sdks_at_their_stream(tmp_path: Path) -> None:
    with running_edge(tmp_path, public_url="https://flags.example.com") as edge:
        sse = edge.get(query(USERS[0])).json()["sse"]
    assert sse == {
        "url": f"https://flags.example.com/v1/devcycle/stream/{key_hash(CLIENT_KEY)}",
        "inactivityDelay": 120000,
    }


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/sdkConfig?user_id=u", 401, "a DevCycle SDK key is required in the sdkKey query parameter"),
        ("/v1/sdkConfig?user_id=u&sdkKey=client-unknown-000000000000", 403, "unknown or revoked SDK key"),
        # A secret key never rides in a query string.
        (f"/v1/sdkConfig?user_id=u&sdkKey={SERVER_KEY}", 403, "this endpoint takes a client or mobile SDK key"),
        (f"/v1/sdkConfig?sdkKey={CLIENT_KEY}", 400, "user_id is required"),
        (f"/v1/sdkConfig?sdkKey={CLIENT_KEY}&user_id=u&customData=%7Bx", 400, "customData must be a JSON object"),
        (f"/v1/sdkConfig?sdkKey={CLIENT_KEY}&user_id=u&customData=%5B1%5D", 400, "customData must be a JSON object"),
        (f"/v1/sdkConfig?sdkKey={CLIENT_KEY}&user_id=u&appBuild=x", 400, "appBuild must be a number"),
        (f"/v1/sdkConfig?sdkKey={CLIENT_KEY}&user_id=u&isAnonymous=maybe", 400, "isAnonymous must be true or false"),
        (f"/v1/sdkConfig?sdkKey={CLIENT_KEY}&user_id={'u' * 201}", 400, "user_id must be at most 200 characters"),
        (f"/v1/sdkConfig?sdkKey={CLIENT_KEY}&user_id=u&obfuscated=1", 400, "obfuscated configs are not served"),
    ],
)
def test_sdk_config_errors_speak_devcycle(edge: Harness, path: str, status: int, message: str) -> None:
    r = edge.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["statusCode"] == status and body["message"].startswith(message)
    if status == 400:
        assert body["details"][0]["field"] == message.split()[0]


@pytest.mark.parametrize("user", USERS[:4], ids=[u["user_id"] for u in USERS[:4]])
def test_bucketing_api_is_devcycle_bucketing(edge: Harness, user: dict[str, Any]) -> None:
    expected = reference(user)
    variables = edge.post("/v1/variables", user).json()
    assert served_values(variables) == expected["variables"]
    assert all({"_id", "key", "type", "value"} <= set(v) for v in variables.values())
    assert edge.post("/v1/features", user).json() == expected["features"]
    for key, value in list(expected["variables"].items())[:3]:
        one = edge.post(f"/v1/variables/{key}", user)
        assert one.status_code == 200 and one.json()["value"] == value and one.json()["key"] == key


def test_bucketing_api_answers_404_for_a_variable_the_user_is_not_served(edge: Harness) -> None:
    r = edge.post("/v1/variables/no-such-variable", USERS[0])
    assert r.status_code == 404 and r.json()["message"] == "Variable not found for key: no-such-variable"


def test_bucketing_api_takes_the_bare_key_or_bearer_and_ignores_edge_db(edge: Harness) -> None:
    bare = edge.post("/v1/variables?enableEdgeDB=true", USERS[0])
    bearer = edge.post("/v1/variables", USERS[0], key=f"Bearer {SERVER_KEY}")
    assert bare.status_code == bearer.status_code == 200 and bare.json() == bearer.json()


@pytest.mark.parametrize(
    ("key", "body", "status", "message"),
    [
        (None, {"user_id": "u"}, 401, "a DevCycle SDK key is required in the Authorization header"),
        ("server-unknown-00000000000000000", {"user_id": "u"}, 403, "unknown or revoked SDK key"),
        (CLIENT_KEY, {"user_id": "u"}, 403, "this endpoint takes a server SDK key, not a client key"),
        (PLAIN_SERVER_KEY, {"user_id": "u"}, 404, "this environment has no DevCycle config"),
        (SERVER_KEY, b"{not json", 400, "the body is not valid JSON"),
        (SERVER_KEY, b"", 400, "a JSON body is required"),
        (SERVER_KEY, [], 400, "body must be a JSON object"),
        (SERVER_KEY, {}, 400, "user_id is required"),
        (SERVER_KEY, {"user_id": 7}, 400, "user_id must be a string"),
        (SERVER_KEY, {"user_id": "u", "customData": {"a": {"b": 1}}}, 400, "customData.a must be a string"),
        (SERVER_KEY, {"user_id": "u", "appBuild": "12"}, 400, "appBuild must be a finite number"),
        (SERVER_KEY, {"user_id": "u", "isAnonymous": "no"}, 400, "isAnonymous must be a boolean"),
    ],
)
def test_bucketing_api_errors_speak_devcycle(
    edge: Harness, key: str | None, body: Any, status: int, message: str
) -> None:
    for path in ("/v1/variables", "/v1/variables/x", "/v1/features"):
        r = edge.post(path, body, key=key)
        assert r.status_code == status, (path, r.text)
        answer = r.json()
        assert answer["statusCode"] == status and answer["message"].startswith(message), answer


def test_bucketing_api_refuses_other_methods_in_devcycle_shape(edge: Harness) -> None:
    r = edge.get("/v1/variables")
    assert r.status_code == 405 and r.json()["statusCode"] == 405
