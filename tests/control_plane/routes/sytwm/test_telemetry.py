"""POST/GET /api/v1/telemetry: 201 with an integer id, the most recent first with next_cursor,
bounded body and fields."""

from __future__ import annotations

from typing import Any

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.sytwm.support import bearer, site

EVENT = {
    "event_type": "page_hit",
    "post_slug": "default",
    "step_id": "tried",
    "session_id": "client-session",
    "path": "/feedback/default",
    "referrer": "https://news.example/post/123",
    "payload": {"experiment": "homepage-A"},
}


def test_record_and_read_back(api: Api) -> None:
    s = site(api)
    c = api.client
    r = c.post("/api/v1/telemetry", json=EVENT, headers={"X-API-Key": s.submit})
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"id"} and isinstance(r.json()["id"], int)
    second = c.post("/api/v1/telemetry", json={"event_type": "step_view"}, headers=bearer(s.submit)).json()["id"]
    assert second > r.json()["id"]
    listed = c.get("/api/v1/telemetry", headers=bearer(s.read)).json()
    assert listed["next_cursor"] is None
    assert [i["id"] for i in listed["items"]] == [second, r.json()["id"]]
    first = listed["items"][1]
    assert {k: first[k] for k in EVENT} == EVENT
    assert first["received_at"].endswith("Z")
    assert listed["items"][0]["payload"] is None and listed["items"][0]["path"] is None
    assert site(api).list_feedback().json()["items"] == []


def test_pages_most_recent_first(api: Api) -> None:
    s = site(api)
    c = api.client
    ids = [
        c.post("/api/v1/telemetry", json={"event_type": "e"}, headers=bearer(s.submit)).json()["id"] for _ in range(5)
    ]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = c.get("/api/v1/telemetry", params=params, headers=bearer(s.read)).json()
        seen += [i["id"] for i in body["items"]]
        # Events arriving between pages do not shift the rest.
        c.post("/api/v1/telemetry", json={"event_type": "late"}, headers=bearer(s.submit))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    other = site(api)
    assert c.get("/api/v1/telemetry", headers=bearer(other.read)).json() == {"items": [], "next_cursor": None}
    assert_error(c.get("/api/v1/telemetry", params={"limit": 501}, headers=bearer(s.read)), 400, "validation_failed")


def test_fields_and_body_are_bounded(api: Api) -> None:
    s = site(api)
    c = api.client
    for body, field in (
        ({}, "event_type"),
        ({"event_type": ""}, "event_type"),
        ({"event_type": "x" * 65}, "event_type"),
        ({"event_type": "has space"}, "event_type"),
        ({**EVENT, "path": "/" * 2049}, "path"),
        ({**EVENT, "referrer": "r" * 2049}, "referrer"),
        ({**EVENT, "session_id": "s" * 129}, "session_id"),
        ({**EVENT, "payload": [1, 2]}, "payload"),
        ({**EVENT, "post_slug": 7}, "post_slug"),
        ({**EVENT, "colour": "red"}, "colour"),
    ):
        err = assert_error(c.post("/api/v1/telemetry", json=body, headers=bearer(s.submit)), 400, "validation_failed")
        assert field in [d["field"] for d in err["error"]["details"]], (body, err)
    big_payload = {**EVENT, "payload": {"blob": "x" * (5 << 10)}}
    err = assert_error(
        c.post("/api/v1/telemetry", json=big_payload, headers=bearer(s.submit)), 413, "payload_too_large"
    )
    assert err["error"]["details"][0]["field"] == "payload"
    huge = {**EVENT, "payload": {"blob": "x" * (20 << 10)}}
    assert_error(c.post("/api/v1/telemetry", json=huge, headers=bearer(s.submit)), 413, "payload_too_large")
    r = c.post("/api/v1/telemetry", content=b"[1,", headers={**bearer(s.submit), "content-type": "application/json"})
    assert_error(r, 400, "validation_failed")
    assert c.get("/api/v1/telemetry", headers=bearer(s.read)).json()["items"] == []
