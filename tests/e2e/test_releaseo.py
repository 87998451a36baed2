"""Releaseo end to end: the real control plane and edge processes on one data dir.

The acceptance of issue 16: a public submission is hidden until moderation approves it, then
listed with its votes (one per user, retractable, retries applied once) and comments; an
internal roadmap item never appears; an audience-targeted item appears only for an identified
user the audience matches (the evaluator the flags use); a changelog entry targeted at a saved
segment keeps its audience after the segment changes; identify and product events show up in
the analytics routes; the edge serves the board and roadmap with the control plane stopped, and
the writes it takes meanwhile are applied once the control plane is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from bench.processes import bootstrap_project, free_port, process

T = TypeVar("T")
PRO = {"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}
ENTERPRISE = {"type": "context", "field": "user.plan", "operator": "IS", "values": ["enterprise"]}


@dataclass
class Releaseo:
    data: Path
    cp_port: int
    admin: httpx.Client
    edge: httpx.Client
    auth: dict[str, str]
    key: str = ""
    stack: ExitStack = field(default_factory=ExitStack)

    def start_control_plane(self) -> None:
        self.stack.enter_context(
            process(
                ["control_plane", "serve", "--data-dir", str(self.data), "--port", str(self.cp_port)],
                f"http://127.0.0.1:{self.cp_port}/health",
                self.data / "control_plane.log",
            )
        )

    def stop_control_plane(self) -> None:
        self.stack.close()
        self.stack = ExitStack()

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.admin.request(method, path, json=body, headers=self.auth)
        assert r.status_code == status, r.text
        return r.json()

    def sdk(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        params = {"key": self.key, **kwargs.pop("params", {})}
        return self.edge.request(method, path, params=params, **kwargs)


def eventually(fetch: Callable[[], T], ok: Callable[[T], bool], timeout: float = 15) -> T:
    """``fetch()`` until ``ok`` holds (the consumer applies intake within about a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"never happened; last value: {value}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def rel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Releaseo]:
    data = tmp_path_factory.mktemp("releaseo")
    cp_port, edge_port = free_port(), free_port()
    admin = httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=10)
    r = Releaseo(data, cp_port, admin, httpx.Client(base_url=f"http://127.0.0.1:{edge_port}", timeout=10), {})
    r.start_control_plane()
    r.auth, _ = bootstrap_project(admin)
    r.key = r.call("PUT", "/projects/shop/widget-config", {"settings": {"theme": "dark"}}, 201)["projectKey"]
    # A per-user limit low enough to reach in a test, high enough for the scenarios.
    env = {"FLAGEDGE_EDGE_RELEASEO_RATE_PER_USER": "5"}
    with process(
        ["server", "serve", "--data-dir", str(data), "--port", str(edge_port)],
        f"http://127.0.0.1:{edge_port}/ready",
        data / "edge.log",
        env=env,
    ):
        eventually(lambda: r.sdk("GET", "/sdk/feature-requests").status_code, lambda s: s == 200)
        yield r
    r.stop_control_plane()


def public_ids(rel: Releaseo) -> list[str]:
    r = rel.sdk("GET", "/sdk/feature-requests")
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["items"]]


def public_request(rel: Releaseo, request_id: str) -> dict[str, Any]:
    items = rel.sdk("GET", "/sdk/feature-requests").json()["items"]
    found: dict[str, Any] = next(i for i in items if i["id"] == request_id)
    return found


def vote(rel: Releaseo, request_id: str, user: str, voted: bool = True, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return rel.sdk(
        "POST", f"/sdk/feature-requests/{request_id}/vote", json={"userId": user, "voted": voted}, headers=headers
    )


def test_submission_is_hidden_until_approved_then_listed_with_votes_and_comments(rel: Releaseo) -> None:
    category = rel.call("POST", "/projects/shop/feature-request-categories", {"name": "Integrations"}, 201)
    eventually(lambda: rel.sdk("GET", "/sdk/feature-requests/categories").json()["items"], lambda c: len(c) == 1)

    body = {"userId": "u-1", "title": "Dark mode", "description": "please", "categoryId": category["id"]}
    headers = {"Idempotency-Key": "submit-dark-mode"}
    first = rel.sdk("POST", "/sdk/feature-requests", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["reviewStatus"] == "pending"
    request_id = first.json()["id"]
    retry = rel.sdk("POST", "/sdk/feature-requests", json=body, headers=headers)
    assert retry.status_code == 202 and retry.json()["id"] == request_id

    pending = eventually(
        lambda: rel.call("GET", "/projects/shop/feature-requests?reviewStatus=pending")["items"],
        lambda items: len(items) > 0,
    )
    assert [i["id"] for i in pending] == [request_id]  # the retry was applied once
    assert pending[0]["source"] == "sdk" and pending[0]["authorUserId"] == "u-1"
    assert request_id not in public_ids(rel)
    assert vote(rel, request_id, "u-1").status_code == 404  # not on the public board
    assert rel.sdk("GET", f"/sdk/feature-requests/{request_id}/comments").status_code == 404

    approved = rel.call("PATCH", f"/projects/shop/feature-requests/{request_id}", {"reviewStatus": "approved"})
    assert approved["reviewStatus"] == "approved" and approved["reviewedBy"]
    eventually(lambda: public_ids(rel), lambda ids: request_id in ids)

    # Votes: one per user (a repeat or a retry counts once), taken back with voted=false.
    for user, key in (("u-1", "v1"), ("u-1", "v1"), ("u-1", "v1-again"), ("u-2", "v2")):
        assert vote(rel, request_id, user, key=key).status_code == 202
    eventually(lambda: public_request(rel, request_id)["voteCount"], lambda n: n == 2)
    assert vote(rel, request_id, "u-1", voted=False).json() == {
        "success": True,
        "requestId": request_id,
        "voted": False,
    }
    eventually(lambda: public_request(rel, request_id)["voteCount"], lambda n: n == 1)

    comment = rel.sdk(
        "POST",
        f"/sdk/feature-requests/{request_id}/comments",
        json={"userId": "u-3", "body": "Yes please", "authorName": "Ana"},
        headers={"Idempotency-Key": "c-1"},
    )
    assert comment.status_code == 202, comment.text
    comments = eventually(
        lambda: rel.sdk("GET", f"/sdk/feature-requests/{request_id}/comments").json()["items"],
        lambda items: len(items) == 1,
    )
    assert comments[0]["body"] == "Yes please" and comments[0]["authorName"] == "Ana"
    assert comments[0]["id"] == comment.json()["id"] and "userId" not in comments[0]
    listed = eventually(lambda: public_request(rel, request_id), lambda r: r["commentCount"] == 1)
    assert listed["title"] == "Dark mode" and listed["categoryId"] == category["id"] and listed["voteCount"] == 1

    # Revalidation: the same answer is a 304 for its ETag.
    r = rel.sdk("GET", "/sdk/feature-requests")
    assert r.headers["cache-control"] == "no-cache"
    again = rel.sdk("GET", "/sdk/feature-requests", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304

    # Moderation removes a comment; a bug report, even approved, is not a feature request.
    rel.call("DELETE", f"/projects/shop/feature-requests/{request_id}/comments/{comments[0]['id']}")
    eventually(lambda: public_request(rel, request_id)["commentCount"], lambda n: n == 0)
    bug = rel.call("POST", "/projects/shop/feature-requests", {"title": "Crash", "kind": "bug"}, 201)
    idea = rel.call("POST", "/projects/shop/feature-requests", {"title": "Export"}, 201)
    eventually(lambda: public_ids(rel), lambda ids: idea["id"] in ids)
    assert bug["id"] not in public_ids(rel)


def _snapshot(rel: Releaseo, **params: str) -> dict[str, Any]:
    r = rel.sdk("GET", "/sdk/roadmap/snapshot", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_roadmap_visibility_internal_never_targeted_only_for_matching_users(rel: Releaseo) -> None:
    public = rel.call("POST", "/projects/shop/roadmap", {"title": "Public API", "status": "in_progress"}, 201)
    internal = rel.call("POST", "/projects/shop/roadmap", {"title": "Secret", "visibility": "internal_only"}, 201)
    targeted = rel.call(
        "POST",
        "/projects/shop/roadmap",
        {
            "title": "Pro analytics",
            "visibility": "audience_targeted",
            "audience": {"mode": "condition", "filter": PRO},
        },
        201,
    )
    assert targeted["audience"]["mode"] == "condition"

    def ids(**params: str) -> set[str]:
        return {i["id"] for i in _snapshot(rel, **params)["items"]}

    # The edge follows each write within its poll interval: wait for the last one.
    pro = {"userId": "p-1", "context.user.plan": "pro"}
    eventually(lambda: ids(**pro), lambda seen: targeted["id"] in seen)

    assert ids() >= {public["id"]} and not ids() & {internal["id"], targeted["id"]}
    assert targeted["id"] in ids(**pro) and internal["id"] not in ids(**pro)
    assert targeted["id"] not in ids(userId="f-1", **{"context.user.plan": "free"})
    # Identified users only: the matching context without a user id shows nothing targeted.
    assert targeted["id"] not in ids(**{"context.user.plan": "pro"})

    assert rel.sdk("GET", f"/sdk/roadmap/{internal['id']}").status_code == 404
    assert rel.sdk("GET", f"/sdk/roadmap/{targeted['id']}").status_code == 404
    item = rel.sdk("GET", f"/sdk/roadmap/{targeted['id']}", params=pro)
    assert item.status_code == 200 and item.json()["title"] == "Pro analytics"

    follow = f"/sdk/roadmap/{targeted['id']}/follow"
    assert rel.sdk("POST", follow, json={"userId": "f-1", "context": {"user": {"plan": "free"}}}).status_code == 404
    assert rel.sdk("POST", f"/sdk/roadmap/{internal['id']}/follow", json={"userId": "p-1"}).status_code == 404
    r = rel.sdk("POST", follow, json={"userId": "p-1", "context": {"user": {"plan": "pro"}}})
    assert r.status_code == 202, r.text
    eventually(lambda: rel.call("GET", f"/projects/shop/roadmap/{targeted['id']}")["followerCount"], lambda n: n == 1)

    # The dashboard sees every item, in order; reordering is published.
    order = [i["id"] for i in rel.call("GET", "/projects/shop/roadmap")["items"]]
    assert set(order) >= {public["id"], internal["id"], targeted["id"]}
    rel.call("PUT", "/projects/shop/roadmap/order", {"ids": list(reversed(order))})
    shown = [i for i in reversed(order) if i not in (internal["id"], targeted["id"])]
    eventually(lambda: [i["id"] for i in _snapshot(rel)["items"]], lambda listed: listed == shown)


def test_changelog_segment_audience_keeps_its_snapshot(rel: Releaseo) -> None:
    segment = rel.call("POST", "/projects/shop/segments", {"name": "pro users", "definition": PRO}, 201)
    url = f"/projects/shop/segments/{segment['id']}"
    rel.call("POST", f"{url}/publish", {})
    entry = rel.call(
        "POST",
        "/projects/shop/changelog",
        {
            "title": "Pro reports",
            "status": "published",
            "audience": {"mode": "segment", "segmentId": segment["id"]},
        },
        201,
    )
    assert entry["audience"]["segmentVersion"] == 1 and entry["audience"]["definition"] == PRO
    everyone = rel.call("POST", "/projects/shop/changelog", {"title": "New look", "status": "published"}, 201)
    draft = rel.call("POST", "/projects/shop/changelog", {"title": "Coming soon"}, 201)
    condition = rel.call(
        "POST",
        "/projects/shop/changelog",
        {"title": "Enterprise SSO", "status": "published", "audience": {"mode": "condition", "filter": ENTERPRISE}},
        201,
    )

    def seen(plan: str | None) -> set[str]:
        params = {"userId": f"user-{plan}", "context.user.plan": plan} if plan else {}
        return {e["id"] for e in _snapshot(rel, **params)["changelog"]}

    # The edge follows each write within its poll interval: wait for the last one.
    eventually(lambda: seen("enterprise"), lambda s: condition["id"] in s)
    assert everyone["id"] in seen(None) and everyone["id"] in seen("pro")
    assert entry["id"] in seen("pro") and entry["id"] not in seen("enterprise") and entry["id"] not in seen(None)
    assert condition["id"] in seen("enterprise") and condition["id"] not in seen("pro")
    assert draft["id"] not in seen("pro") | seen("enterprise") | seen(None)

    # The segment now means enterprise users (version 2); the entry keeps version 1's audience.
    rel.call("PATCH", url, {"definition": ENTERPRISE})
    assert rel.call("POST", f"{url}/publish", {})["published"]["version"] == 2
    time.sleep(0.3)  # past the edge's poll: a republish, if any, has been picked up
    assert entry["id"] in seen("pro") and entry["id"] not in seen("enterprise")
    assert rel.call("GET", f"/projects/shop/changelog/{entry['id']}")["audience"]["segmentVersion"] == 1
    # Deleting the segment leaves the entry's audience (and the version) in place.
    rel.call("DELETE", url, {})
    assert rel.call("GET", f"{url}/versions/1")["definition"] == PRO
    assert entry["id"] in seen("pro")


def test_identify_and_product_events_show_in_analytics(rel: Releaseo) -> None:
    for user, props in (("a-1", {"plan": "pro", "seats": 3, "beta": True}), ("a-2", {"plan": "free"})):
        r = rel.sdk("POST", "/sdk/identify", json={"userId": user, "properties": props})
        assert r.status_code == 202, r.text
    events = [{"userId": "a-1", "event": "report_exported", "properties": {"format": "csv"}}] * 2
    r = rel.edge.post("/e", params={"key": rel.key}, json=events)
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text

    user = eventually(
        lambda: rel.admin.get("/analytics/shop/users/a-1", headers=rel.auth),
        lambda r: r.status_code == 200 and r.json()["eventCount"] == 2,
    ).json()
    assert user["properties"] == {"plan": "pro", "seats": 3, "beta": True}
    assert [e["event"] for e in user["recentEvents"]] == ["report_exported"] * 2
    assert user["recentEvents"][0]["properties"] == {"format": "csv"}
    listed = {u["userId"] for u in rel.call("GET", "/analytics/shop/users")["items"]}
    assert {"a-1", "a-2"} <= listed
    keys = {k["key"]: k for k in rel.call("GET", "/analytics/shop/lookups/user-properties")["items"]}
    assert keys["plan"]["types"] == {"string": 2} and keys["seats"]["types"] == {"number": 1}
    plan = rel.call("GET", "/analytics/shop/lookups/user-properties/plan")
    assert sorted((v["value"], v["count"]) for v in plan["values"]) == [("free", 1), ("pro", 1)]
    beta = rel.call("GET", "/analytics/shop/lookups/user-properties/beta")
    assert beta["values"] == [{"value": True, "type": "boolean", "count": 1}]


def test_per_user_rate_limit_answers_429_with_retry_after(rel: Releaseo) -> None:
    statuses = []
    for _ in range(30):
        r = rel.sdk("POST", "/sdk/identify", json={"userId": "hammering-user"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "rate_limited"
            break
    assert statuses[-1] == 429 and statuses[0] == 202
    # Another user of the same project is not locked out.
    assert rel.sdk("POST", "/sdk/identify", json={"userId": "calm-user"}).status_code == 202


def test_sdk_config_revalidates_and_cors_allows_widget_headers(rel: Releaseo) -> None:
    r = rel.edge.get("/sdk/config", params={"key": rel.key})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    assert (
        rel.edge.get("/sdk/config", params={"key": rel.key}, headers={"If-None-Match": r.headers["etag"]}).status_code
        == 304
    )
    rel.call("PUT", "/projects/shop/widget-config", {"settings": {"theme": "light"}})
    fresh = eventually(
        lambda: rel.edge.get("/sdk/config", params={"key": rel.key}, headers={"If-None-Match": r.headers["etag"]}),
        lambda resp: resp.status_code == 200,
    )
    assert fresh.json()["settings"] == {"theme": "light"}
    preflight = rel.edge.options(
        "/sdk/feature-requests",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-project-key, idempotency-key, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "x-project-key" in allowed and "idempotency-key" in allowed


def test_edge_serves_the_board_with_the_control_plane_stopped(rel: Releaseo) -> None:
    target = rel.call("POST", "/projects/shop/feature-requests", {"title": "Offline votes"}, 201)["id"]
    eventually(lambda: public_ids(rel), lambda ids: target in ids)
    before = {path: rel.sdk("GET", path) for path in ("/sdk/feature-requests", "/sdk/roadmap/snapshot")}
    rel.stop_control_plane()
    try:
        for path, answer in before.items():
            r = rel.sdk("GET", path)
            assert r.status_code == 200 and r.content == answer.content
            assert rel.sdk("GET", path, headers={"If-None-Match": answer.headers["etag"]}).status_code == 304
        # Writes are taken (durable in the intake) while nothing can apply them.
        assert vote(rel, target, "offline-user", key="offline-1").status_code == 202
        time.sleep(0.5)
        assert public_request(rel, target)["voteCount"] == 0
    finally:
        rel.start_control_plane()
    eventually(lambda: public_request(rel, target)["voteCount"], lambda n: n == 1)
