"""The server SDKs' config (server/devcycle/config.py): the body, ETag/304, keys, visibility in
the bootstrap config, the sse it points SDKs at and the realtime stream itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from contract.store import ChangeSet
from server.devcycle.config import refetch_event
from tests.server.devcycle.support import (
    CLIENT_KEY,
    ENV_ID,
    HIDDEN_FEATURE,
    MOBILE_KEY,
    PLAIN_SERVER_KEY,
    PROJECT,
    SERVER_KEY,
    Harness,
    devcycle_config,
    initial_publish,
    key_hash,
    running_edge,
)
from tests.server.test_ofrep import read_events


def config_url(key: str, bootstrap: bool = False) -> str:
    return f"/config/v2/server/{'bootstrap/' if bootstrap else ''}{key}.json"


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Harness]:
    with running_edge(tmp_path) as harness:
        yield harness


def test_the_server_config_is_the_published_devcycle_config(edge: Harness) -> None:
    r = edge.get(config_url(SERVER_KEY))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    # Nothing is hidden from server SDKs, and no sse is announced without --public-url.
    assert r.json() == devcycle_config()
    assert r.headers["etag"].startswith('"') and "last-modified" not in r.headers


def test_if_none_match_revalidates_until_a_publish_changes_the_config(edge: Harness) -> None:
    etag = edge.get(config_url(SERVER_KEY)).headers["etag"]
    again = edge.get(config_url(SERVER_KEY), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    config = devcycle_config()
    config["features"] = config["features"][1:]
    edge.publish(initial_publish(config))
    changed = edge.get(config_url(SERVER_KEY), headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [f["key"] for f in changed.json()["features"]] == [f["key"] for f in config["features"]]


def test_the_bootstrap_config_leaves_out_what_client_sdks_may_not_see(edge: Harness) -> None:
    config = edge.get(config_url(SERVER_KEY, bootstrap=True)).json()
    keys = [f["key"] for f in config["features"]]
    assert HIDDEN_FEATURE["key"] not in keys and len(keys) == len(devcycle_config()["features"]) - 1
    hidden_vars = {v["_var"] for variation in HIDDEN_FEATURE["variations"] for v in variation["variables"]}
    assert hidden_vars and not hidden_vars & {v["_id"] for v in config["variables"]}


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        ("server-prod-unknown-key-000000000000", 403, "unknown or revoked SDK key"),
        (CLIENT_KEY, 403, "this endpoint takes a server SDK key, not a client key"),
        (MOBILE_KEY, 403, "this endpoint takes a server SDK key, not a mobile key"),
        (PLAIN_SERVER_KEY, 404, "this environment has no DevCycle config"),
    ],
)
def test_keys_are_checked_and_answered_in_devcycle_shape(edge: Harness, key: str, status: int, message: str) -> None:
    for bootstrap in (False, True):
        r = edge.get(config_url(key, bootstrap))
        assert r.status_code == status
        body = r.json()
        assert {k: body[k] for k in ("statusCode", "message", "error")} == {
            "statusCode": status,
            "message": message,
            "error": {403: "Forbidden", 404: "Not Found"}[status],
        }
        assert body["request_id"] == r.headers["x-request-id"]


def test_a_revoked_key_is_refused_at_once(edge: Harness) -> None:
    edge.publish(ChangeSet(sdk_keys={key_hash(SERVER_KEY): None}))
    assert edge.get(config_url(SERVER_KEY)).status_code == 403


def test_sse_points_at_the_key_stream_on_the_public_url_without_the_key(tmp_path: Path) -> None:
    with running_edge(tmp_path, public_url="https://flags.example.com/edge/") as edge:
        r = edge.get(config_url(SERVER_KEY), headers={"Host": "evil.example"})
    sse = r.json()["sse"]
    assert sse == {"hostname": "https://flags.example.com", "path": f"/edge/v1/devcycle/stream/{key_hash(SERVER_KEY)}"}
    assert SERVER_KEY not in r.text


def test_the_stream_tells_sdks_to_refetch_on_every_new_version(edge: Harness) -> None:
    with edge.client.stream("GET", f"/v1/devcycle/stream/{key_hash(SERVER_KEY)}") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "retry: 2000"
        version = edge.publish(initial_publish())
        [event] = read_events(lines, 1)
    assert event["id"] == str(version)
    # What both SDKs do with it: JSON.parse(JSON.parse(event.data).data).
    message = orjson.loads(orjson.loads(event["data"])["data"])
    assert message == {"type": "refetchConfig", "etag": str(version)}


def test_the_stream_of_an_unknown_key_is_refused(edge: Harness) -> None:
    r = edge.get("/v1/devcycle/stream/" + "0" * 64)
    assert r.status_code == 403 and r.json()["statusCode"] == 403


def test_the_stream_ends_when_its_key_is_revoked(edge: Harness) -> None:
    with edge.client.stream("GET", f"/v1/devcycle/stream/{key_hash(CLIENT_KEY)}") as r:
        lines = r.iter_lines()
        assert next(lines) == "retry: 2000"
        edge.publish(ChangeSet(sdk_keys={key_hash(CLIENT_KEY): None}))
        rest = list(lines)
    assert all(line == "" or line.startswith(":") for line in rest)


def test_refetch_event_is_one_sse_message() -> None:
    assert refetch_event(7) == (
        b'id: 7\ndata: {"id":"7","name":"change","data":"{\\"type\\":\\"refetchConfig\\",\\"etag\\":\\"7\\"}"}\n\n'
    )


def test_config_changes_follow_the_environment_not_other_projects(edge: Harness) -> None:
    before = edge.get(config_url(SERVER_KEY)).headers["etag"]
    other = {"project": PROJECT, "environment": "other", "document": {"features": []}}
    edge.publish(ChangeSet(environments={ENV_ID + "-other": other}))
    assert edge.get(config_url(SERVER_KEY), headers={"If-None-Match": before}).status_code == 304
