"""What DevCycle's SDKs post (server/devcycle/events.py): the bodies each SDK sends, validated,
spooled as intake records and stored by the control plane's consumer; 201 as DevCycle answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.events_consumer import consume_spool
from control_plane.store import Store
from server.devcycle.events import EVENT_TYPE, parse_batch, parse_user_events
from server.events import Invalid
from tests.server.devcycle.support import CLIENT_KEY, ENV_ID, MOBILE_KEY, PROJECT, SERVER_KEY, Harness, running_edge

USER = {"user_id": "u-1", "email": "a@example.com", "customData": {"plan": "pro"}, "platform": "NodeJS"}
# As @devcycle/nodejs-server-sdk's WASM event queue flushes them.
AGGREGATE: dict[str, Any] = {
    "type": "aggVariableEvaluated",
    "target": "show-new-dashboard",
    "value": 3,
    "date": 1718452800000,
    "clientDate": 1718452800000,
    "featureVars": {"f1": "v1"},
    "user_id": "u-1",
}
BATCH = {
    "batch": [
        {
            "user": USER,
            "events": [
                AGGREGATE,
                {"type": "customEvent", "customType": "checkout", "user_id": "u-1", "metaData": {"cart": 2}},
            ],
        }
    ]
}
# As @devcycle/js-client-sdk posts them (dates in ms, the user beside the events).
CLIENT = {
    "events": [{"type": "variableDefaulted", "target": "x", "user_id": "u-2", "clientDate": 1718452800000}],
    "user": {"user_id": "u-2", "isAnonymous": False},
}
# As @devcycle/js-cloud-server-sdk's track() posts it (one event, ISO dates).
TRACK = {"user": USER, "events": [{"type": "signup", "date": "2024-06-15T12:00:00.000Z"}]}


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Harness]:
    with running_edge(tmp_path) as harness:
        yield harness


def stored(edge: Harness, tmp_path: Path) -> list[dict[str, Any]]:
    store = Store(tmp_path / "cp.sqlite3")
    consume_spool(edge.edge.settings.data_dir, store)
    rows = store.all("SELECT * FROM events ORDER BY received_at, id")
    return [dict(r) for r in rows]


def test_each_sdks_events_reach_the_control_plane(edge: Harness, tmp_path: Path) -> None:
    for path, body, key in (("/v1/events/batch", BATCH, SERVER_KEY), ("/v1/events", CLIENT, CLIENT_KEY)):
        r = edge.post(path, body, key=key)
        assert r.status_code == 201, r.text
    r = edge.post("/v1/track", TRACK)
    assert r.status_code == 201 and r.json() == {"message": "Successfully received 1 events."}
    rows = stored(edge, tmp_path)
    assert {(r["type"], r["user_id"], r["name"], r["key_kind"]) for r in rows} == {
        (EVENT_TYPE, "u-1", "show-new-dashboard", "server"),
        (EVENT_TYPE, "u-1", "checkout", "server"),
        (EVENT_TYPE, "u-2", "x", "client"),
        (EVENT_TYPE, "u-1", "signup", "server"),
    }
    assert {(r["environment_id"], r["project_id"]) for r in rows} == {(ENV_ID, PROJECT)}
    agg = next(orjson.loads(r["payload"]) for r in rows if r["name"] == "show-new-dashboard")
    sent = {k: v for k, v in AGGREGATE.items() if k != "user_id"}
    assert agg == {**sent, "userId": "u-1", "user": USER}
    track = next(orjson.loads(r["payload"]) for r in rows if r["name"] == "signup")
    assert track["type"] == "customEvent" and track["customType"] == "signup"


def test_the_batch_answer_counts_its_events(edge: Harness) -> None:
    r = edge.post("/v1/events/batch", BATCH)
    assert r.status_code == 201 and r.json() == {"message": "Successfully received 2 events."}


def test_any_kind_of_key_may_post_events(edge: Harness) -> None:
    for key in (SERVER_KEY, CLIENT_KEY, MOBILE_KEY):
        assert edge.post("/v1/events", CLIENT, key=key).status_code == 201


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/events/batch", {"events": []}, "batch"),
        ("/v1/events/batch", {"batch": [{"events": []}]}, "batch[0].user"),
        ("/v1/events/batch", {"batch": [7]}, "batch[0]"),
        ("/v1/events/batch", {"batch": [{"user": USER, "events": {}}]}, "batch[0].events"),
        ("/v1/events/batch", {"batch": [{"user": USER, "events": [{"target": "x"}]}]}, "batch[0].events[0].type"),
        ("/v1/events", {"events": [{"type": "x"}]}, "events[0].user_id"),
        ("/v1/events", {"events": [{"type": "x", "user_id": "u", "value": "3"}]}, "events[0].value"),
        ("/v1/events", {"events": [{"type": "x", "user_id": "u", "date": True}]}, "events[0].date"),
        ("/v1/events", {"events": [{"type": "x", "user_id": "u", "featureVars": {"f": 1}}]}, "events[0].featureVars"),
        ("/v1/events", {"events": [{"type": "x", "user_id": "u", "metaData": []}]}, "events[0].metaData"),
        ("/v1/events", {"user": "u-1", "events": []}, "user"),
        ("/v1/track", [], "body"),
        ("/v1/track", {"user": USER, "events": [{"type": "x"}] * 1001}, "events"),
    ],
)
def test_bad_events_are_400_naming_the_field_and_nothing_is_taken(
    edge: Harness, tmp_path: Path, path: str, body: Any, field: str
) -> None:
    r = edge.post(path, body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["statusCode"] == 400 and answer["error"] == "Bad Request"
    assert answer["details"][0]["field"] == field
    assert stored(edge, tmp_path) == []


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("client-unknown-0000000000000000", 403)])
def test_event_keys_are_checked(edge: Harness, key: str | None, status: int) -> None:
    for path in ("/v1/events/batch", "/v1/events", "/v1/track"):
        r = edge.post(path, BATCH, key=key)
        assert r.status_code == status and r.json()["statusCode"] == status


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)
EVENT = st.dictionaries(
    st.sampled_from(
        ["type", "customType", "target", "value", "date", "clientDate", "featureVars", "metaData", "user_id"]
    ),
    JSON,
)


@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "batch": st.lists(
                    st.fixed_dictionaries({"user": JSON, "events": st.lists(EVENT, max_size=3)}), max_size=3
                )
            }
        ),
    )
)
def test_any_batch_is_events_or_invalid(body: Any) -> None:
    try:
        events = parse_batch(body)
    except Invalid as e:
        assert e.field
    else:
        assert all(e.fields["userId"] for e in events)


@given(st.one_of(JSON, st.fixed_dictionaries({"user": JSON, "events": st.lists(EVENT, max_size=3)})))
def test_any_user_events_body_is_events_or_invalid(body: Any) -> None:
    try:
        parse_user_events(body)
    except Invalid as e:
        assert e.field
