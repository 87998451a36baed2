"""Releaseo's public routes on the edge (``server/releaseo.py``), in-process over a real control
plane: project keys, validation in the envelope, body limits, minted ids, listing and paging,
and that what the snapshot holds is only what may be public. The whole flow with real processes
is ``tests/e2e/test_releaseo.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control_plane.conftest import User
from tests.server.stack import Stack, stack

PRO = {"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}


@pytest.fixture
def rel(tmp_path: Path) -> Iterator[tuple[Stack, User, str]]:
    with stack(tmp_path) as s:
        owner = s.api.signup()
        s.api.organisation(owner, "acme")
        s.api.application(owner, "acme", "app")
        r = s.api.client.post("/projects/app/roadmap", json={"title": "First"}, headers=owner.auth)
        assert r.status_code == 201, r.text
        with s.store.read() as db:
            project_key = db.execute("SELECT project_key FROM releaseo_widgets").fetchone()[0]
        s.sync()
        yield s, owner, project_key


def admin(s: Stack, owner: User, method: str, path: str, body: Any = None, status: int = 201) -> Any:
    r = s.api.client.request(method, path, json=body, headers=owner.auth)
    assert r.status_code == status, r.text
    return r.json()


def error(r: Any, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code and body["request_id"] == r.headers["x-request-id"]
    if field is not None:
        assert [d["field"] for d in body["details"]] == [field]


def test_project_key_is_required_and_checked(rel: tuple[Stack, User, str]) -> None:
    s, _, key = rel
    error(s.edge.get("/sdk/feature-requests"), 401, "unauthorized", "key")
    error(s.edge.get("/sdk/roadmap/snapshot", params={"key": "rp_nope"}), 403, "forbidden")
    error(s.edge.post("/sdk/identify", params={"key": "rp_nope"}, json={"userId": "u"}), 403, "forbidden")
    for how in ({"params": {"key": key}}, {"params": {"projectKey": key}}, {"headers": {"x-project-key": key}}):
        assert s.edge.get("/sdk/feature-requests/categories", **how).status_code == 200
    # POST /e takes the project's public key as its publish key.
    assert s.edge.post("/e", params={"key": key}, json={"userId": "u", "event": "x"}).status_code == 202
    error(s.edge.post("/e", json={"userId": "u", "event": "x"}), 401, "unauthorized")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/sdk/feature-requests", {"title": "x"}, "userId"),
        ("/sdk/feature-requests", {"userId": "u"}, "title"),
        ("/sdk/feature-requests", {"userId": "u", "title": "  "}, "title"),
        ("/sdk/feature-requests", {"userId": "u", "title": "x" * 201}, "title"),
        ("/sdk/feature-requests", {"userId": "u", "title": "x", "categoryId": "nope"}, "categoryId"),
        ("/sdk/feature-requests", [], "body"),
        ("/sdk/identify", {"userId": ""}, "userId"),
        ("/sdk/identify", {"userId": "u", "properties": []}, "properties"),
        ("/sdk/identify", {"userId": "u", "timestamp": "yesterday"}, "timestamp"),
        ("/sdk/identify", {"userId": "u", "client_dedup_id": ""}, "client_dedup_id"),
        ("/e", [{"userId": "u", "event": "a"}, {"userId": "u"}], "[1].event"),
        ("/e", [], "body"),
    ],
)
def test_bad_bodies_answer_400_naming_the_field(rel: tuple[Stack, User, str], path: str, body: Any, field: str) -> None:
    s, _, key = rel
    error(s.edge.post(path, params={"key": key}, json=body), 400, "validation_failed", field)


def test_bad_json_large_bodies_and_bad_queries(rel: tuple[Stack, User, str]) -> None:
    s, _, key = rel
    headers = {"content-type": "application/json"}
    error(s.edge.post("/sdk/identify", params={"key": key}, content=b"{", headers=headers), 400, "validation_failed")
    big = {"userId": "u", "title": "t", "description": "x" * (70 * 1024)}
    error(s.edge.post("/sdk/feature-requests", params={"key": key}, json=big), 413, "payload_too_large")
    for params in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"cursor": "zzz"}, {"sort": "random"}):
        r = s.edge.get("/sdk/feature-requests", params={"key": key, **params})
        error(r, 400, "validation_failed", next(iter(params)))
    error(s.edge.get("/sdk/feature-requests/nope/comments", params={"key": key}), 404, "not_found")
    error(s.edge.post("/sdk/feature-requests/nope/vote", params={"key": key}, json={"userId": "u"}), 404, "not_found")
    error(s.edge.get("/sdk/roadmap/nope", params={"key": key}), 404, "not_found")


def test_minted_ids_follow_the_idempotency_key(rel: tuple[Stack, User, str]) -> None:
    s, _, key = rel
    body = {"userId": "u", "title": "Export"}

    def submit(**headers: str) -> str:
        r = s.edge.post("/sdk/feature-requests", params={"key": key}, json=body, headers=headers)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    assert submit(**{"Idempotency-Key": "a"}) == submit(**{"Idempotency-Key": "a"})
    assert submit(**{"Idempotency-Key": "a"}) != submit(**{"Idempotency-Key": "b"})
    assert submit() != submit()
    with_dedup = s.edge.post("/sdk/feature-requests", params={"key": key}, json={**body, "client_dedup_id": "a"})
    assert with_dedup.json()["id"] == submit(**{"Idempotency-Key": "a"})


def test_listing_pages_filters_and_sorts_only_approved_feature_requests(rel: tuple[Stack, User, str]) -> None:
    s, owner, key = rel
    category = admin(s, owner, "POST", "/projects/app/feature-request-categories", {"name": "UI"})
    made = []
    for i in range(7):
        body = {"title": f"r{i}", **({"categoryId": category["id"]} if i % 2 else {})}
        made.append(admin(s, owner, "POST", "/projects/app/feature-requests", body)["id"])
    hidden = [
        admin(s, owner, "POST", "/projects/app/feature-requests", {"title": "p", "reviewStatus": "pending"})["id"],
        admin(s, owner, "POST", "/projects/app/feature-requests", {"title": "r", "reviewStatus": "rejected"})["id"],
        admin(s, owner, "POST", "/projects/app/feature-requests", {"title": "b", "kind": "bug"})["id"],
    ]
    s.sync()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"key": key, "limit": "3", "sort": "new", **({"cursor": cursor} if cursor else {})}
        page = s.edge.get("/sdk/feature-requests", params=params).json()
        assert page["total"] == 7
        seen += [i["id"] for i in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made)) and not set(hidden) & set(seen)
    in_category = s.edge.get("/sdk/feature-requests", params={"key": key, "categoryId": category["id"]}).json()
    assert {i["id"] for i in in_category["items"]} == {made[1], made[3], made[5]}
    # Default order: most votes first, newest first among equals (votes applied by the consumer).
    for user in ("u1", "u2"):
        r = s.edge.post(f"/sdk/feature-requests/{made[2]}/vote", params={"key": key}, json={"userId": user})
        assert r.status_code == 202, r.text
    deadline = time.monotonic() + 15
    while s.edge.get("/sdk/feature-requests", params={"key": key}).json()["items"][0]["id"] != made[2]:
        assert time.monotonic() < deadline, "the votes were never applied"
        time.sleep(0.1)
        s.sync()
    top = s.edge.get("/sdk/feature-requests", params={"key": key}).json()["items"]
    assert [i["id"] for i in top] == [made[2], *(i for i in reversed(made) if i != made[2])]
    # Moderation takes one off the board at the next publish.
    admin(s, owner, "PATCH", f"/projects/app/feature-requests/{made[0]}", {"reviewStatus": "rejected"}, 200)
    s.sync()
    assert made[0] not in {i["id"] for i in s.edge.get("/sdk/feature-requests", params={"key": key}).json()["items"]}


def test_targeted_items_need_a_matching_identified_user(rel: tuple[Stack, User, str]) -> None:
    s, owner, key = rel
    body = {"title": "Pro", "visibility": "audience_targeted", "audience": {"mode": "condition", "filter": PRO}}
    targeted = admin(s, owner, "POST", "/projects/app/roadmap", body)
    s.sync()
    snapshot = s.edge.get("/sdk/roadmap/snapshot", params={"key": key}).json()
    assert [i["title"] for i in snapshot["items"]] == ["First"]
    pro = s.edge.get("/sdk/roadmap/snapshot", params={"key": key, "userId": "u", "context.user.plan": "pro"}).json()
    assert [i["title"] for i in pro["items"]] == ["First", "Pro"]
    assert pro["items"][1]["audience"] == "targeted" and "definition" not in str(pro)
    # The board in LMDB never carries internal items or pending requests at all.
    admin(s, owner, "POST", "/projects/app/roadmap", {"title": "Internal", "visibility": "internal_only"})
    s.sync()
    board = s.edge_app.state.view.boards[key]
    assert [i["title"] for i in board.roadmap] == ["First", "Pro"]
    assert targeted["id"] in board.roadmap_index


def test_dashboard_validation_of_audiences_and_moderation(rel: tuple[Stack, User, str]) -> None:
    s, owner, _ = rel

    def post(path: str, body: Any) -> Any:
        return s.api.client.post(path, json=body, headers=owner.auth)

    targeted = {"title": "T", "visibility": "audience_targeted"}
    error(post("/projects/app/roadmap", targeted), 400, "validation_failed", "audience")
    error(post("/projects/app/roadmap", {**targeted, "audience": {"mode": "all"}}), 400, "validation_failed")
    bad = {"mode": "condition", "filter": {"type": "context", "field": "x", "operator": "NOPE", "values": []}}
    error(post("/projects/app/changelog", {"title": "C", "audience": bad}), 400, "validation_failed")
    unpublished = admin(s, owner, "POST", "/projects/app/segments", {"name": "s", "definition": PRO})
    segment = {"mode": "segment", "segmentId": unpublished["id"]}
    error(post("/projects/app/changelog", {"title": "C", "audience": segment}), 400, "validation_failed")
    error(post("/projects/app/feature-requests", {"title": "x", "categoryId": "nope"}), 400, "validation_failed")
    r = s.api.client.patch("/projects/app/feature-requests/nope", json={"status": "done"}, headers=owner.auth)
    error(r, 404, "not_found")
    r = s.api.client.put("/projects/app/roadmap/order", json={"ids": ["nope"]}, headers=owner.auth)
    error(r, 400, "validation_failed", "ids")
