"""SDK key classes cannot be mixed, on the real edge and control plane (DESIGN.md §4 rules).

* a publishable key (client or mobile) never reads ``GET /features`` (403, header or query);
* ``GET /features`` takes the secret key from ``Authorization: Bearer`` only (401 from
  ``X-API-Key``);
* a secret (server) key is refused from the query string on every route that takes a key
  there (403), even when a publishable key rides beside it;
* admin credentials (API keys ``fe_*`` of every scope, JWTs) are not SDK keys (403 on the edge);
* SDK keys are not admin credentials (401 on the control plane, as Bearer or ``X-API-Key``).

Also covered elsewhere: the in-process key rules in ``tests/e2e/test_single_host.py::test_key_rules``
and ``tests/server/test_events.py::test_keys``; OFREP's ``eventStreams`` URL never carries a secret
key (``tests/server/test_ofrep.py::test_a_secret_key_never_rides_in_the_stream_url``).
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.checks import assert_envelope, assert_error_body, assert_ofrep_error
from tests.security.conftest import World
from tests.security.rawhttp import request

GET_ROUTES = ["/features/evaluated", "/features/enabled", "/features"]
STREAMS = ["/features/stream", "/sse/client", "/sse/server", "/ofrep/v1/stream"]
EVENT_ROUTES = ["/features/events", "/user", "/company", "/event", "/feedback", "/bulk"]
OFREP_POST = ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/plan"]


def _status(r: httpx.Response, ofrep: bool) -> int:
    if ofrep:
        assert_ofrep_error(r.content, r.status_code)
    else:
        assert_envelope(r.content, r.status_code)
    return r.status_code


@pytest.mark.parametrize("kind", ["client", "mobile"])
def test_publishable_keys_never_read_features(world: World, kind: str) -> None:
    key = world.keys[kind]
    edge = world.edge
    r = edge.get("/features", headers={"Authorization": f"Bearer {key}"})
    assert _status(r, False) == 403 and "secret" in r.json()["error"]["message"]
    assert _status(edge.get("/features", headers={"X-API-Key": key}), False) == 401
    assert _status(edge.get("/features", params={"publishableKey": key}), False) == 403
    # ... while the secret key does, from the header.
    assert edge.get("/features", headers={"Authorization": f"Bearer {world.keys['server']}"}).status_code == 200


def test_features_takes_the_secret_key_from_bearer_only(world: World) -> None:
    """Issue 11 item 7c: ``X-API-Key`` was accepted too."""
    secret = world.keys["server"]
    for edge in (world.edge, world.edge_b):
        r = edge.get("/features", headers={"X-API-Key": secret})
        assert _status(r, False) == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert "Authorization" in r.json()["error"]["message"]
        assert edge.get("/features", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_secret_key_is_never_accepted_in_the_url(world: World) -> None:
    edge, secret, client = world.edge, world.keys["server"], world.keys["client"]
    body = {"userId": "u1", "companyId": "c1", "event": "e", "key": "plan", "score": 1, "action": "check"}
    queries: list[list[tuple[str, str | int | float | bool | None]]] = [
        [("publishableKey", secret)],
        [("publishableKey", client), ("publishableKey", secret)],
    ]
    for query in queries:
        for path in [*GET_ROUTES, "/ofrep/v1/configuration"]:
            assert _status(edge.get(path, params=query), path.startswith("/ofrep")) == 403, path
        for path in EVENT_ROUTES:
            sent = [{"type": "user", "userId": "u1"}] if path == "/bulk" else body
            assert _status(edge.post(path, params=query, json=sent), False) == 403, path
        for path in OFREP_POST:
            assert _status(edge.post(path, params=query, json={"context": {}}), True) == 403, path
        for path in STREAMS:
            target = path.encode() + b"?" + str(httpx.QueryParams(query)).encode()
            r = request(world.edge_port, b"GET", target, head_only=True)
            assert r.status == 403, (path, r)
    # The same routes take the secret key from the Authorization header.
    auth = {"Authorization": f"Bearer {secret}"}
    assert edge.get("/features/evaluated", headers=auth).status_code == 200
    assert edge.post("/user", headers=auth, json={"userId": "u1"}).status_code == 200
    assert edge.post("/ofrep/v1/evaluate/flags", headers=auth, json={"context": {}}).status_code == 200


def test_admin_credentials_are_not_sdk_keys(world: World) -> None:
    edge = world.edge
    credentials = [world.auth["Authorization"].removeprefix("Bearer ")]
    for scope in ("read", "write", "submit", "admin"):
        r = world.admin.post(
            "/organisations/acme/api-keys", json={"name": f"k-{scope}", "scope": scope}, headers=world.auth
        )
        assert r.status_code == 201, r.text
        credentials.append(r.json()["key"])
    world.remember(*credentials)
    for token in credentials:
        for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": token}):
            for path in ("/features", "/features/evaluated"):
                # /features reads no X-API-Key at all: 401, as without a key.
                refused = 401 if path == "/features" and "X-API-Key" in headers else 403
                assert _status(edge.get(path, headers=headers), False) == refused
            r = edge.post("/ofrep/v1/evaluate/flags", headers=headers, json={"context": {}})
            assert _status(r, True) == 403
            assert _status(edge.post("/event", headers=headers, json={"event": "e", "userId": "u"}), False) == 403
        assert _status(edge.get("/features/evaluated", params={"publishableKey": token}), False) == 403


def test_sdk_keys_are_not_admin_credentials(world: World) -> None:
    for key in world.keys.values():
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
            # Each in its API's shape: /v1/projects is DevCycle's, the others ours.
            shapes = {"/v1/projects": "devcycle", "/user": "envelope", "/organisations/acme/api-keys": "envelope"}
            for path, shape in shapes.items():
                r = world.admin.get(path, headers={**headers, "x-organisation": "acme"})
                assert r.status_code == 401, (path, r.text)
                assert assert_error_body(r.content, r.status_code, shape)["code"] == "unauthorized", (path, r.text)
        r = world.admin.post("/v1/projects", json={"name": "x", "key": "x"}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401


def test_no_key_is_401_and_a_wrong_one_403(world: World) -> None:
    edge = world.edge
    r = edge.get("/features/evaluated")
    assert _status(r, False) == 401 and r.headers["www-authenticate"] == "Bearer"
    assert _status(edge.post("/ofrep/v1/evaluate/flags", json={}), True) == 401
    for wrong in ("", "client-", world.keys["client"] + "x", world.keys["client"][:-1], world.keys["client"].upper()):
        assert edge.get("/features/evaluated", params={"publishableKey": wrong}).status_code == 403
