"""The edge's main routes in process (server/service.py through the real app): ``/features/evaluated``
and ``/features/enabled`` on GET (the hot path) and HEAD (the routed path), the Reflag change
stream. The process-level counterparts are ``tests/e2e/test_single_host.py`` and the security
suite; these run in a fraction of a second on an LMDB store in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract.store import ChangeSet
from tests.server.ofrep_support import CLIENT_KEY, FEATURES, ORPHAN_KEY, SERVER_KEY, features_publish, key_hash
from tests.server.test_ofrep import Harness, running_edge
from tests.support.asgi import Answer, call

RID = {"X-Request-Id": "req-test-1"}
ROUTES = ("/features/evaluated", "/features/enabled")


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Harness]:
    with running_edge(tmp_path, wait_for_version_max=0.05) as harness:
        yield harness


def routed(edge: Harness, method: str, path: str, query: str = "", headers: dict[str, str] | None = None) -> Any:
    """``method path?query`` through the Starlette router only (no hot path in front of it):
    status, headers and body."""
    router = edge.client.app.router  # type: ignore[attr-defined]

    async def run() -> Answer:
        return await call(router, method, path, query, headers, host="testserver")

    portal = edge.client.portal
    assert portal is not None
    return portal.call(run)


def test_evaluated_body_shape(edge: Harness) -> None:
    r = edge.client.get(f"/features/evaluated?publishableKey={CLIENT_KEY}&context.company.plan=pro", headers=RID)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-request-id"] == "req-test-1"
    body = r.json()
    assert set(body) == {"success", "features", "flagStateVersion"}
    assert body["success"] is True and body["flagStateVersion"] == 1
    assert list(body["features"]) == [f["key"] for f in FEATURES]
    assert body["features"]["pro-dashboard"]["isEnabled"] is True
    assert body["features"]["legacy-banner"]["isEnabled"] is False
    enabled = edge.client.get(f"/features/enabled?publishableKey={CLIENT_KEY}&context.company.plan=pro").json()
    assert set(enabled["features"]) == {k for k, f in body["features"].items() if f["isEnabled"]}


def test_rule_results_without_debug_and_empty_lists_with_it(edge: Harness) -> None:
    # Reflag's SDKs never ask for debug: their check events carry ruleEvaluationResults and the
    # browser SDK warns about missingContextFields, so both come without it (empty lists only
    # with debug=true, to keep the hot path's body small).
    plain = edge.client.get(f"/features/evaluated?publishableKey={CLIENT_KEY}").json()["features"]
    debug = edge.client.get(f"/features/evaluated?publishableKey={CLIENT_KEY}&debug=true").json()["features"]
    assert plain["pro-dashboard"]["ruleEvaluationResults"] == debug["pro-dashboard"]["ruleEvaluationResults"]
    assert plain["pro-dashboard"]["missingContextFields"] == debug["pro-dashboard"]["missingContextFields"] != []
    assert all("missingContextFields" not in f or f["missingContextFields"] for f in plain.values())
    assert all("missingContextFields" in f for f in debug.values())


@pytest.mark.parametrize("path", ROUTES)
def test_etag_and_304(edge: Harness, path: str) -> None:
    url = f"{path}?publishableKey={CLIENT_KEY}"
    first = edge.client.get(url)
    etag = first.headers["etag"]
    again = edge.client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    # A new version of the flags is a new answer.
    edge.publish(features_publish(FEATURES[:3]))
    assert edge.client.get(url, headers={"If-None-Match": etag}).status_code == 200


@pytest.mark.parametrize("path", ROUTES)
def test_key_errors_and_bad_wait_for_version(edge: Harness, path: str) -> None:
    missing = edge.client.get(path, headers=RID)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json() == {
        "error": {
            "code": "unauthorized",
            "message": "an SDK key is required",
            "details": [],
            "request_id": "req-test-1",
        }
    }
    assert edge.client.get(f"{path}?publishableKey=nope").status_code == 403
    assert edge.client.get(f"{path}?publishableKey={SERVER_KEY}").status_code == 403  # never a secret in the query
    orphan = edge.client.get(path, headers={"Authorization": f"Bearer {ORPHAN_KEY}"})
    assert orphan.status_code == 503 and orphan.headers["retry-after"] == "1"
    bad = edge.client.get(f"{path}?publishableKey={CLIENT_KEY}&waitForVersion=%C2%B2", headers=RID)
    assert bad.status_code == 400
    assert bad.json()["error"]["details"] == [
        {
            "field": "waitForVersion",
            "code": "validation_failed",
            "message": "waitForVersion must be a non-negative integer",
        }
    ]
    # A version that never comes: the current answer after --wait-for-version-max.
    assert edge.client.get(f"{path}?publishableKey={CLIENT_KEY}&waitForVersion=99").status_code == 200


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "query",
    [
        f"publishableKey={CLIENT_KEY}&context.user.id=u-vip&context.company.plan=pro",
        f"publishableKey={CLIENT_KEY}&debug=1",
        "",
        "publishableKey=nope",
        f"publishableKey={CLIENT_KEY}&waitForVersion=x",
    ],
)
def test_hot_path_and_routed_path_answer_identically(edge: Harness, path: str, query: str) -> None:
    """GET is answered by the hot path, HEAD (and a GET that reached the router) by the route:
    the same status, headers and body."""
    hot = edge.client.get(f"{path}?{query}", headers=RID)
    status, headers, body = routed(edge, "GET", path, query, RID)
    assert (hot.status_code, hot.content) == (status, body)
    # (CORS, around both, adds Vary: Origin.)
    assert {k: v for k, v in hot.headers.items() if k != "vary"} == headers
    head = edge.client.head(f"{path}?{query}", headers=RID)
    assert head.status_code == status and head.content == b""
    assert {k: v for k, v in head.headers.items() if k != "vary"} == headers


def test_reflag_stream_sends_versions_and_ends_when_its_key_is_revoked(edge: Harness) -> None:
    with edge.client.stream("GET", f"/features/stream?publishableKey={CLIENT_KEY}") as r:
        lines = r.iter_lines()
        assert [next(lines) for _ in range(6)] == [
            "retry: 2000",
            "",
            "id: 1",
            "event: flagStateVersion",
            'data: {"flagStateVersion":1}',
            "",
        ]
        version = edge.publish(features_publish(FEATURES[:2]))
        assert [next(lines) for _ in range(3)][2] == "data: " + orjson.dumps({"flagStateVersion": version}).decode()
        edge.publish(ChangeSet(sdk_keys={key_hash(CLIENT_KEY): None}))
        assert [line for line in lines if line] == []


def flags_updated(version: int) -> list[str]:
    """The lines of one Reflag SDK push message: a default ``message`` event (no ``event:``)."""
    data = orjson.dumps({"name": "flags-updated", "data": {"flagStateVersion": version}}).decode()
    return [f"id: {version}", f"data: {data}", ""]


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/sse/server", {"headers": {"Authorization": f"Bearer {SERVER_KEY}"}}),
        ("/sse/client", {"params": {"publishableKey": CLIENT_KEY, "context": '{"user":{"id":"u1"}}'}}),
    ],
)
def test_reflag_sdk_push_speaks_flags_updated_and_ends_when_its_key_is_revoked(
    edge: Harness, path: str, auth: dict[str, Any]
) -> None:
    with edge.client.stream("GET", path, **auth) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        # The current version at once (the SDKs skip a version they have), then each change.
        assert [next(lines) for _ in range(5)] == ["retry: 2000", "", *flags_updated(1)]
        version = edge.publish(features_publish(FEATURES[:2]))
        assert [next(lines) for _ in range(3)] == flags_updated(version)
        revoked = SERVER_KEY if path == "/sse/server" else CLIENT_KEY
        edge.publish(ChangeSet(sdk_keys={key_hash(revoked): None}))
        assert [line for line in lines if line] == []


def test_reflag_sdk_push_resumes_after_the_last_event_id(edge: Harness) -> None:
    with edge.client.stream(
        "GET", "/sse/client", params={"publishableKey": CLIENT_KEY}, headers={"Last-Event-ID": "1"}
    ) as r:
        lines = r.iter_lines()
        assert [next(lines) for _ in range(2)] == ["retry: 2000", ""]
        version = edge.publish(features_publish(FEATURES[:1]))
        assert [next(lines) for _ in range(3)] == flags_updated(version)


def test_server_push_takes_a_secret_key_in_the_header_only(edge: Harness) -> None:
    def status(**kwargs: Any) -> tuple[int, str]:
        r = edge.client.get("/sse/server", **kwargs)
        return r.status_code, r.json()["error"]["code"]

    assert status() == (401, "unauthorized")
    assert status(headers={"Authorization": f"Bearer {CLIENT_KEY}"}) == (403, "forbidden")
    assert status(params={"publishableKey": CLIENT_KEY}) == (403, "forbidden")
    assert status(params={"publishableKey": SERVER_KEY}) == (403, "forbidden")
    assert status(headers={"Authorization": f"Bearer {ORPHAN_KEY}"})[0] == 503  # its snapshot is not loaded
    assert edge.client.get("/sse/client", params={"publishableKey": "pub-nope"}).status_code == 403


class FailingReader:
    """A store reader whose reads fail as a dead disk's would (the version moved, the data
    cannot be read)."""

    def version(self) -> int:
        return 10**6

    def reading(self) -> Any:
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        pass


def test_failing_refreshes_make_the_edge_not_ready_while_it_serves_the_last_good_view(edge: Harness) -> None:
    state = edge.client.app.state.edge.state  # type: ignore[attr-defined]
    portal = edge.client.portal
    assert portal is not None
    served = edge.client.get(f"/features/evaluated?publishableKey={CLIENT_KEY}")
    assert served.status_code == 200 and edge.client.get("/ready").status_code == 200
    healthy = state.reader
    state.reader = FailingReader()
    portal.call(state.poll_once)
    portal.call(state.poll_once)
    r = edge.client.get("/ready")
    assert r.status_code == 503, r.text
    assert r.json()["notReady"] == ["store"]
    assert "OSError" in r.json()["problems"]["store"] and "2 refreshes failed" in r.json()["problems"]["store"]
    # Still serving the last good view, byte for byte.
    again = edge.client.get(f"/features/evaluated?publishableKey={CLIENT_KEY}")
    assert (again.status_code, again.content) == (200, served.content)
    # Recovers by itself on the next refresh that works.
    state.reader = healthy
    edge.writer.publish(features_publish(FEATURES))
    portal.call(state.poll_once)
    r = edge.client.get("/ready")
    assert r.status_code == 200 and r.json()["notReady"] == [], r.text
