"""OFREP on the edge (server/ofrep.py): evaluation bodies, every error code and status, ETag/304,
configuration and the event stream, against the real app over an LMDB store."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import evaluator
from contract.store import ChangeSet, SnapshotReader, SnapshotWriter
from server.app import create_app
from server.errors import OFREP, EdgeError, render
from server.ofrep import evaluate_all, evaluate_one, reflag_context
from server.service import Edge
from server.settings import EdgeSettings
from server.state import Environment
from tests.server.ofrep_support import (
    CLIENT_KEY,
    FEATURES,
    MOBILE_KEY,
    ORPHAN_KEY,
    SERVER_KEY,
    features_publish,
    flag,
    initial_publish,
    key_hash,
)

FLAG = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"
CONFIG = "/ofrep/v1/configuration"
STREAM = "/ofrep/v1/stream"
KEYS_IN_ORDER = [f["key"] for f in FEATURES]


class Harness:
    """The edge app in a TestClient, with the writer of its store."""

    def __init__(self, client: TestClient, writer: SnapshotWriter) -> None:
        self.client = client
        self.writer = writer

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        key: str | None = SERVER_KEY,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {key}")
        if content is None:
            content = orjson.dumps({} if body is None else body)
        response: httpx.Response = self.client.post(
            path, content=content, headers={"Content-Type": "application/json", **sent}
        )
        return response

    def flag(self, name: str, context: Any = None, **kw: Any) -> httpx.Response:
        return self.post(FLAG + name, {} if context is None else {"context": context}, **kw)

    def bulk(self, context: Any = None, **kw: Any) -> httpx.Response:
        return self.post(BULK, {} if context is None else {"context": context}, **kw)

    def publish(self, change: ChangeSet) -> int:
        """Publish and make the edge load the new version now."""
        version = self.writer.publish(change)
        edge: Edge = self.client.app.state.edge  # type: ignore[attr-defined]
        portal = self.client.portal
        assert portal is not None
        portal.call(edge.state.refresh)
        assert edge.state.view.version == version
        return version


@contextmanager
def running_edge(data_dir: Path, **settings: Any) -> Iterator[Harness]:
    writer = SnapshotWriter(data_dir)
    try:
        writer.publish(initial_publish())
        app = create_app(EdgeSettings(data_dir=data_dir, poll_interval=3600, **settings))
        app.state.edge.state.reader = SnapshotReader.over(writer)
        with TestClient(app) as client:
            yield Harness(client, writer)
    finally:
        writer.close()


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Harness]:
    with running_edge(tmp_path) as harness:
        yield harness


def stream_url(version: int, key: str | None = None) -> str:
    """Relative to the edge: no ``--public-url`` is configured in these tests."""
    query = f"?since={version}" + (f"&publishableKey={key}" if key else "")
    return f"{STREAM}{query}"


def success(key: str, value: bool, reason: str, variant: str, **metadata: Any) -> dict[str, Any]:
    return {"key": key, "value": value, "reason": reason, "variant": variant, "metadata": metadata}


def without_streams(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "eventStreams"}


# --- single flag: success bodies -------------------------------------------------------------


def test_static_flag_body_is_exactly_the_ofrep_shape(edge: Harness) -> None:
    r = edge.flag("new-checkout")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        **success("new-checkout", True, "STATIC", "on", flagStateVersion=1, targetingVersion=7),
        "eventStreams": [{"type": "sse", "url": stream_url(1), "inactivityDelaySec": 120}],
    }


@pytest.mark.parametrize(
    ("name", "context", "value", "reason", "variant"),
    [
        ("legacy-banner", {}, False, "DISABLED", "off"),
        ("kill-switch", {}, False, "STATIC", "off"),
        ("pro-dashboard", {"company": {"plan": "pro"}}, True, "TARGETING_MATCH", "on"),
        ("pro-dashboard", {"company": {"plan": "free"}}, False, "DEFAULT", "off"),
        ("gradual-rollout", {"targetingKey": "someone"}, True, "SPLIT", "on"),
        ("devcycle-everyone", {}, True, "TARGETING_MATCH", "on"),
        ("email-logic", {"user": {"email": "ada@example.com"}}, True, "TARGETING_MATCH", "on"),
        ("email-logic", {"user": {"email": "bob@example.com"}}, False, "DEFAULT", "off"),
        # The first matching rule decides between SPLIT and TARGETING_MATCH.
        ("mixed-rules", {"company": {"plan": "enterprise"}}, True, "TARGETING_MATCH", "on"),
        ("mixed-rules", {"user": {"tier": "gold"}, "company": {"id": "c1"}}, True, "SPLIT", "on"),
        # A rollout on another attribute than user.id is no targeting key matter.
        ("company-rollout", {}, False, "DEFAULT", "off"),
    ],
)
def test_values_reasons_and_variants(
    edge: Harness, name: str, context: dict[str, Any], value: bool, reason: str, variant: str
) -> None:
    r = edge.flag(name, context)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["key"], body["value"], body["reason"], body["variant"]) == (name, value, reason, variant)


@pytest.mark.parametrize(
    ("context", "value"),
    [
        ({"targetingKey": "u-vip"}, True),
        # targetingKey joins an existing user object.
        ({"targetingKey": "u-vip", "user": {"email": "vip@example.com"}}, True),
        ({"targetingKey": "u-vip", "user": {"id": None}}, True),
        # An explicit user.id wins over targetingKey.
        ({"targetingKey": "u-vip", "user": {"id": "u-other"}}, False),
        ({"targetingKey": "u-other", "user": {"id": "u-vip"}}, True),
        ({"user": {"id": "u-vip"}}, True),
    ],
)
def test_targeting_key_is_user_id_unless_the_context_has_one(
    edge: Harness, context: dict[str, Any], value: bool
) -> None:
    r = edge.flag("vip-lounge", context)
    assert r.status_code == 200, r.text
    assert r.json()["value"] is value


def test_context_mapping() -> None:
    assert reflag_context({"targetingKey": "u1", "plan": "pro"}).reflag == {
        "targetingKey": "u1",
        "plan": "pro",
        "user": {"id": "u1"},
    }
    assert reflag_context({"targetingKey": "u1", "user": {"id": "u2"}}).reflag == {
        "targetingKey": "u1",
        "user": {"id": "u2"},
    }
    assert reflag_context({"targetingKey": ""}).has_targeting_key is False
    assert reflag_context({"user": {"id": "u2"}}).has_targeting_key is True
    assert reflag_context({}).has_targeting_key is False


def test_config_variant_key_is_the_variant_and_its_payload_json_text_is_metadata(edge: Harness) -> None:
    gold = edge.flag("seat-limits", {"targetingKey": "u1", "user": {"tier": "gold"}}).json()
    assert without_streams(gold) == success(
        "seat-limits",
        True,
        "STATIC",
        "gold",
        flagStateVersion=1,
        targetingVersion=5,
        configKey="gold",
        configPayload='{"seats":10,"label":"Gold"}',
    )
    assert orjson.loads(gold["metadata"]["configPayload"]) == {"seats": 10, "label": "Gold"}
    basic = edge.flag("seat-limits", {"targetingKey": "u1"}).json()
    assert basic["variant"] == "basic"
    assert basic["metadata"]["configKey"] == "basic"
    assert basic["metadata"]["configPayload"] == '"basic"'


def test_metadata_values_are_only_booleans_numbers_and_strings(edge: Harness) -> None:
    flags = edge.bulk({"targetingKey": "u1", "user": {"tier": "gold"}}).json()["flags"]
    for entry in flags:
        for value in entry.get("metadata", {}).values():
            assert isinstance(value, bool | int | float | str), entry


def test_empty_body_is_an_empty_context(edge: Harness) -> None:
    r = edge.post(FLAG + "new-checkout", content=b"")
    assert r.status_code == 200
    assert r.json()["value"] is True
    assert edge.post(FLAG + "new-checkout", content=b"{}").status_code == 200


# --- single flag: errors ---------------------------------------------------------------------


def test_unknown_flag_is_404_flag_not_found(edge: Harness) -> None:
    r = edge.flag("no-such-flag", {"targetingKey": "u1"})
    assert r.status_code == 404
    assert r.json() == {
        "key": "no-such-flag",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "flag 'no-such-flag' not found",
    }
    for odd in ("a%2Fb", "a/b", ""):
        r = edge.flag(odd)
        assert r.status_code == 404
        assert r.json()["errorCode"] == "FLAG_NOT_FOUND"


def test_single_flag_answer_carries_an_etag(edge: Harness) -> None:
    first = edge.flag("new-checkout", {"targetingKey": "u1"})
    assert first.headers["etag"] == edge.flag("new-checkout", {"targetingKey": "u1"}).headers["etag"]
    assert first.headers["etag"] != edge.flag("vip-lounge", {"targetingKey": "u1"}).headers["etag"]


@pytest.mark.parametrize("content", [b"{", b"nul", b'{"context": {}} x', b"[1, 2]", b'"context"', b"\xff\xfe"])
def test_malformed_body_is_400_parse_error(edge: Harness, content: bytes) -> None:
    single = edge.post(FLAG + "new-checkout", content=content)
    assert single.status_code == 400
    body = single.json()
    assert body["key"] == "new-checkout"
    assert body["errorCode"] == "PARSE_ERROR"
    assert body["errorDetails"]
    bulk = edge.post(BULK, content=content)
    assert bulk.status_code == 400
    assert set(bulk.json()) == {"errorCode", "errorDetails"}
    assert bulk.json()["errorCode"] == "PARSE_ERROR"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "body",
    [
        {"context": []},
        {"context": "user-1"},
        {"context": 1},
        {"context": None},
        {"context": {"targetingKey": 42}},
        {"context": {"targetingKey": None}},
        {"context": {"targetingKey": "u1", "user": "bob"}},
        {"context": nested(200)},
    ],
)
def test_bad_context_is_400_invalid_context(edge: Harness, body: dict[str, Any]) -> None:
    single = edge.post(FLAG + "new-checkout", body)
    assert single.status_code == 400, single.text
    assert single.json()["errorCode"] == "INVALID_CONTEXT"
    assert single.json()["key"] == "new-checkout"
    assert single.json()["errorDetails"]
    bulk = edge.post(BULK, body)
    assert bulk.status_code == 400
    assert bulk.json()["errorCode"] == "INVALID_CONTEXT"


def test_flag_that_needs_a_targeting_key_without_one_is_400_targeting_key_missing(edge: Harness) -> None:
    r = edge.flag("gradual-rollout", {"plan": "pro"})
    assert r.status_code == 400
    assert r.json() == {
        "key": "gradual-rollout",
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": "flag 'gradual-rollout' needs a targetingKey (or user.id) in the context",
    }
    assert edge.flag("gradual-rollout", {"targetingKey": "u1"}).status_code == 200
    assert edge.flag("gradual-rollout", {"user": {"id": "u1"}}).status_code == 200
    # Flags that do not read user.id evaluate without it.
    assert edge.flag("pro-dashboard", {}).status_code == 200


class FailingSnapshot:
    """An evaluator that fails inside (as on an internal evaluator error)."""

    def evaluate_flag(self, key: str, context: Any = None, **options: Any) -> None:
        raise evaluator.EvaluatorError("internal evaluator error")

    def evaluate_all(self, context: Any = None, **options: Any) -> bytes:
        raise evaluator.EvaluatorError("internal evaluator error")

    def ofrep_flag(self, key: str, context: Any = None, **options: Any) -> None:
        raise evaluator.EvaluatorError("internal evaluator error")

    def ofrep_all(self, context: Any = None, **options: Any) -> bytes:
        raise evaluator.EvaluatorError("internal evaluator error")


def test_evaluator_failure_is_400_general() -> None:
    env = Environment("env", "production", "proj", 1, cast(evaluator.Snapshot, FailingSnapshot()), b"")
    context = reflag_context({"targetingKey": "u1"})
    with pytest.raises(EdgeError) as single:
        evaluate_one(env, "any", context, "server")
    assert (single.value.status, single.value.ofrep_code, single.value.flag_key) == (400, "GENERAL", "any")
    assert orjson.loads(render(single.value, "rid", OFREP)[2]) == {
        "key": "any",
        "errorCode": "GENERAL",
        "errorDetails": "evaluation failed: internal evaluator error",
    }
    with pytest.raises(EdgeError) as bulk:
        evaluate_all(env, context, "server")
    assert (bulk.value.status, bulk.value.ofrep_code, bulk.value.flag_key) == (400, "GENERAL", None)


# --- auth, availability, limits --------------------------------------------------------------


@pytest.mark.parametrize("path", [FLAG + "new-checkout", BULK])
def test_no_key_is_401_and_unknown_key_403_with_ofrep_bodies(edge: Harness, path: str) -> None:
    none = edge.post(path, key=None)
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer"
    assert none.json() == {"errorCode": "GENERAL", "errorDetails": "an SDK key is required"}
    unknown = edge.post(path, key="srv_not_a_key")
    assert unknown.status_code == 403
    assert unknown.json() == {"errorCode": "GENERAL", "errorDetails": "unknown or revoked SDK key"}


@pytest.mark.parametrize("key", [SERVER_KEY, CLIENT_KEY, MOBILE_KEY])
def test_bearer_and_x_api_key_are_accepted(edge: Harness, key: str) -> None:
    assert edge.flag("new-checkout", key=key).status_code == 200
    assert edge.flag("new-checkout", key=None, headers={"X-API-Key": key}).status_code == 200
    assert edge.bulk(key=None, headers={"X-API-Key": key}).status_code == 200


@pytest.mark.parametrize("key", [SERVER_KEY, CLIENT_KEY])
def test_keys_in_the_query_string_are_not_accepted(edge: Harness, key: str) -> None:
    for path in (FLAG + "new-checkout", BULK):
        r = edge.post(f"{path}?publishableKey={key}", key=None)
        assert r.status_code == 403
        assert r.json()["errorCode"] == "GENERAL"
        assert r.json()["errorDetails"]


def test_revoked_key_is_403(edge: Harness) -> None:
    assert edge.flag("new-checkout").status_code == 200
    edge.publish(ChangeSet(sdk_keys={key_hash(SERVER_KEY): None}))
    r = edge.flag("new-checkout")
    assert r.status_code == 403
    assert r.json()["errorCode"] == "GENERAL"


@pytest.mark.parametrize("path", [FLAG + "new-checkout", BULK])
def test_environment_without_a_loaded_snapshot_is_503_with_retry_after(edge: Harness, path: str) -> None:
    r = edge.post(path, key=ORPHAN_KEY)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json() == {"errorCode": "GENERAL", "errorDetails": "this environment's snapshot is not loaded yet"}


def test_rate_limit_is_429_with_integer_retry_after(tmp_path: Path) -> None:
    with running_edge(tmp_path, ofrep_rate_limit=1.0) as edge:
        assert edge.flag("new-checkout").status_code == 200
        limited = edge.flag("new-checkout")
        assert limited.status_code == 429
        assert limited.headers["retry-after"].isdigit()
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json() == {"errorCode": "GENERAL", "errorDetails": "rate limit reached for this SDK key"}
        assert edge.bulk().status_code == 429
        # Each key has its own budget.
        assert edge.bulk(key=CLIENT_KEY).status_code == 200


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    with running_edge(tmp_path, max_body_bytes=256) as edge:
        big = {"context": {"targetingKey": "u1", "blob": "x" * 512}}
        for path in (FLAG + "new-checkout", BULK):
            r = edge.post(path, big)
            assert r.status_code == 413
            assert r.json() == {"errorCode": "GENERAL", "errorDetails": "request body larger than 256 bytes"}
        assert edge.flag("new-checkout", {"targetingKey": "u1"}).status_code == 200


def test_wrong_method_is_405_with_an_ofrep_body(edge: Harness) -> None:
    r = edge.client.get(BULK, headers={"Authorization": f"Bearer {SERVER_KEY}"})
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json() == {"errorCode": "GENERAL", "errorDetails": "method not allowed; use POST"}
    assert edge.post(CONFIG).status_code == 405


def test_every_answer_carries_the_request_id(edge: Harness) -> None:
    for r in (
        edge.flag("new-checkout", headers={"X-Request-Id": "req-1"}),
        edge.flag("no-such-flag", headers={"X-Request-Id": "req-1"}),
        edge.post(BULK, key=None, headers={"X-Request-Id": "req-1"}),
    ):
        assert r.headers["x-request-id"] == "req-1"
    assert edge.bulk().headers["x-request-id"]


# --- bulk -------------------------------------------------------------------------------------


def test_bulk_lists_every_flag_in_snapshot_order(edge: Harness) -> None:
    r = edge.bulk({"targetingKey": "u-vip", "company": {"plan": "pro"}}, key=CLIENT_KEY)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"flags", "metadata", "eventStreams"}
    assert [f["key"] for f in body["flags"]] == KEYS_IN_ORDER
    assert body["metadata"] == {"flagStateVersion": 1}
    # A publishable key rides in the stream URL (browsers' EventSource sends no headers).
    assert body["eventStreams"] == [{"type": "sse", "url": stream_url(1, CLIENT_KEY), "inactivityDelaySec": 120}]
    by_key = {f["key"]: f for f in body["flags"]}
    assert by_key["vip-lounge"] == success(
        "vip-lounge", True, "TARGETING_MATCH", "on", flagStateVersion=1, targetingVersion=1
    )
    assert by_key["legacy-banner"]["reason"] == "DISABLED"


def test_a_secret_key_never_rides_in_the_stream_url(edge: Harness) -> None:
    assert edge.bulk().json()["eventStreams"][0]["url"] == stream_url(1)


def test_the_host_header_never_makes_the_stream_url(edge: Harness) -> None:
    """Issue 11 item 7b: the URL was built from the request's base URL, so ``Host: evil`` sent
    (or cached in front of the edge) pointed streams at the sender's server."""
    hostile = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    for r in (edge.bulk(headers=hostile), edge.flag("vip-lounge", {"targetingKey": "u"}, headers=hostile)):
        assert r.json()["eventStreams"][0]["url"] == stream_url(1), r.text


def test_the_configured_public_url_makes_absolute_stream_urls(tmp_path: Path) -> None:
    with running_edge(tmp_path, public_url="https://flags.example.com/") as edge:
        url = edge.bulk(headers={"Host": "evil.example"}).json()["eventStreams"][0]["url"]
    assert url == "https://flags.example.com" + stream_url(1)


def test_bulk_failure_entries_for_flags_that_need_a_targeting_key(edge: Harness) -> None:
    by_key = {f["key"]: f for f in edge.bulk({}).json()["flags"]}
    assert by_key["gradual-rollout"] == {
        "key": "gradual-rollout",
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": "flag 'gradual-rollout' needs a targetingKey (or user.id) in the context",
    }
    assert by_key["new-checkout"]["value"] is True


CONTEXTS: list[dict[str, Any]] = [
    {},
    {"targetingKey": "u1"},
    {"targetingKey": "u-vip", "user": {"tier": "gold"}},
    {"user": {"id": "u-vip", "tier": "gold", "email": "ada@example.com"}},
    {"company": {"plan": "pro", "id": "c1"}},
    {"company": {"plan": "enterprise"}, "targetingKey": "u2"},
    {"user": {"tier": "gold"}, "company": {"id": "c2"}},
    {"targetingKey": "u3", "user": {"email": "bob@example.com"}, "extra": [1, {"b": None}], "n": 1.5},
    *({"targetingKey": f"user-{i}"} for i in range(40)),
]


@pytest.mark.parametrize("context", CONTEXTS)
def test_bulk_agrees_with_single_flag_evaluation(edge: Harness, context: dict[str, Any]) -> None:
    """Bulk converts the context once and derives reasons; the single-flag path is the reference."""
    bulk = edge.bulk(context).json()["flags"]
    singles = []
    for name in KEYS_IN_ORDER:
        r = edge.flag(name, context)
        assert r.status_code in (200, 400), r.text
        singles.append(without_streams(r.json()))
    assert bulk == singles


def test_half_rollout_splits_users(edge: Harness) -> None:
    values = {edge.flag("half-rollout", {"targetingKey": f"user-{i}"}).json()["value"] for i in range(40)}
    assert values == {True, False}


def test_flag_shapes() -> None:
    """The reference's shapes (tests/server/ofrep_reference.py; the evaluator's answers are
    compared with it in test_ofrep_answers.py)."""
    from tests.server.ofrep_reference import flag_shapes

    shapes = flag_shapes(FEATURES, [])
    assert (shapes["legacy-banner"].fixed, shapes["new-checkout"].fixed, shapes["kill-switch"].fixed) == (
        "DISABLED",
        "STATIC",
        "STATIC",
    )
    assert shapes["mixed-rules"].fixed is None
    assert shapes["mixed-rules"].rollout == (False, True)
    assert shapes["gradual-rollout"].rollout == (True,)
    assert shapes["devcycle-everyone"].rollout == (False,)
    assert shapes["email-logic"].rollout == (False,)
    # A flag DevCycle's bucketing decides: SPLIT per target as DevCycle says, not from its rules.
    assert flag_shapes(FEATURES, [("mixed-rules", [True, False])])["mixed-rules"].rollout == (True, False)


def test_bulk_etag_and_if_none_match(edge: Harness) -> None:
    context = {"targetingKey": "u1"}
    first = edge.bulk(context)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = edge.bulk(context, headers={"If-None-Match": sent})
        assert again.status_code == 304, sent
        assert again.content == b""
        assert again.headers["etag"] == etag
    # The validator covers the evaluated body: another context is answered in full.
    other = edge.bulk({"targetingKey": "u-vip"}, headers={"If-None-Match": etag})
    assert other.status_code == 200
    assert other.headers["etag"] != etag
    assert edge.bulk(context, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_a_new_snapshot_version_changes_the_etag(edge: Harness) -> None:
    etag = edge.bulk({"targetingKey": "u1"}).headers["etag"]
    version = edge.publish(features_publish([*FEATURES, flag("brand-new", 1, {"type": "constant", "value": True})]))
    r = edge.bulk({"targetingKey": "u1"}, headers={"If-None-Match": etag})
    assert r.status_code == 200
    assert r.headers["etag"] != etag
    assert r.json()["metadata"] == {"flagStateVersion": version}
    assert r.json()["flags"][-1]["key"] == "brand-new"
    assert edge.flag("brand-new").json()["metadata"]["flagStateVersion"] == version


# --- configuration ----------------------------------------------------------------------------


def test_configuration(edge: Harness) -> None:
    r = edge.client.get(CONFIG, headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "flagedge"
    assert body["capabilities"]["flagEvaluation"]["supportedTypes"] == ["boolean"]
    assert body["capabilities"]["cacheInvalidation"]["polling"]["enabled"] is True
    cached = edge.client.get(CONFIG, headers={"X-API-Key": CLIENT_KEY, "If-None-Match": r.headers["etag"]})
    assert cached.status_code == 304
    assert edge.client.get(CONFIG).status_code == 401
    assert edge.client.get(CONFIG, headers={"X-API-Key": "nope"}).status_code == 403


# --- event stream -----------------------------------------------------------------------------


def read_events(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    """The next ``count`` SSE events that carry data (comments and retry-only blocks skipped)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in current:
                events.append(current)
                if len(events) == count:
                    break
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
    return events


def test_stream_sends_refetch_evaluation_when_the_environment_changes(edge: Harness) -> None:
    url = edge.bulk(key=CLIENT_KEY).json()["eventStreams"][0]["url"]
    with edge.client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "retry: 2000"
        version = edge.publish(features_publish(FEATURES[:3]))
        [event] = read_events(lines, 1)
    assert event == {
        "id": str(version),
        "event": "message",
        "data": orjson.dumps(
            {"type": "refetchEvaluation", "etag": f'"{version}"', "flagStateVersion": version}
        ).decode(),
    }


def test_stream_catches_up_from_since_or_last_event_id(edge: Harness) -> None:
    version = edge.publish(features_publish(FEATURES[:2]))
    headers = {"Authorization": f"Bearer {SERVER_KEY}"}
    with edge.client.stream("GET", f"{STREAM}?since={version - 1}", headers=headers) as r:
        assert read_events(r.iter_lines(), 1)[0]["id"] == str(version)
    # Last-Event-ID (an EventSource reconnecting) wins over the since of the URL.
    with edge.client.stream(
        "GET", f"{STREAM}?since={version}", headers={**headers, "Last-Event-ID": str(version - 1)}
    ) as r:
        assert read_events(r.iter_lines(), 1)[0]["id"] == str(version)


def test_stream_ends_when_the_key_is_revoked(edge: Harness) -> None:
    with edge.client.stream("GET", f"{STREAM}?publishableKey={CLIENT_KEY}") as r:
        lines = r.iter_lines()
        assert next(lines) == "retry: 2000"
        edge.publish(ChangeSet(sdk_keys={key_hash(CLIENT_KEY): None}))
        assert list(lines) == [""]


def test_stream_errors(edge: Harness) -> None:
    assert edge.client.get(STREAM).status_code == 401
    assert edge.client.get(STREAM, headers={"X-API-Key": "nope"}).status_code == 403
    # A secret key is never taken from the query string.
    secret = edge.client.get(f"{STREAM}?publishableKey={SERVER_KEY}")
    assert secret.status_code == 403
    assert secret.json()["errorCode"] == "GENERAL"
    assert edge.client.get(STREAM, headers={"X-API-Key": ORPHAN_KEY}).status_code == 503
    bad = edge.client.get(f"{STREAM}?since=-1", headers={"X-API-Key": SERVER_KEY})
    assert bad.status_code == 400
    assert bad.json() == {"errorCode": "GENERAL", "errorDetails": "since must be a non-negative integer"}
