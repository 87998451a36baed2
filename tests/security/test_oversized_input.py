"""Huge and deeply nested input to the real edge and control plane: a 4xx naming the problem,
never a 5xx, no dead worker, bounded memory.

* JSON nested 100,000 levels deep on every POST route of the edge and on control-plane routes:
  400 whose reason says "depth limit exceeded" (orjson stops at 1024 levels; it never recurses
  in Python).
* Bodies over ``--max-body-bytes`` (1 MiB), with and without ``Content-Length`` (chunked): 413.
* A 1 MB query string and 10,000 ``context.*`` parameters: granian refuses a request target over
  64 KiB itself (414) and a header section over its buffer (431) before the app sees it; under
  that, more than ``--max-context-params`` (1000) context parameters are a 400 naming ``context``.
* Duplicate parameters: the last ``publishableKey`` wins, so a secret key in the URL is refused
  wherever it is (the publishable one beside it does not smuggle it through).

Where else: the control plane's nesting limit inside stored JSON (64 levels) is
``tests/control_plane/test_bad_input_regressions.py``; deep or huge evaluator input is
``tests/evaluator/test_safety.py``.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.security.checks import assert_envelope, assert_error_body, assert_ofrep_error, assert_sane, workers_unharmed
from tests.security.conftest import World
from tests.security.rawhttp import RawResponse, read_response, request

EVENT_ROUTES = ["/features/events", "/user", "/company", "/event", "/feedback", "/bulk"]
OFREP_ROUTES = ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/plan"]
DEEP = b"[" * 100_000
MIB = 1 << 20


def _auth(world: World) -> list[tuple[bytes, bytes]]:
    return [(b"Authorization", b"Bearer " + world.keys["client"].encode()), (b"Content-Type", b"application/json")]


def chunked(port: int, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
    """POST ``body`` with ``Transfer-Encoding: chunked`` (no declared length to refuse early)."""
    head = [b"POST " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", b"Transfer-Encoding: chunked"]
    head += [k + b": " + v for k, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        try:
            for i in range(0, len(body), 64 * 1024):
                piece = body[i : i + 64 * 1024]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) and closed before the whole body was sent
        return read_response(sock)


@pytest.mark.parametrize("route", EVENT_ROUTES + OFREP_ROUTES)
def test_deeply_nested_json_to_the_edge(world: World, route: str) -> None:
    with workers_unharmed(world):
        r = request(world.edge_port, b"POST", route.encode(), _auth(world), DEEP)
        assert r.status == 400, r
        if route.startswith("/ofrep"):
            doc = assert_ofrep_error(r.body, r.status)
            assert doc["errorCode"] == "PARSE_ERROR" and "depth" in doc["errorDetails"]
        else:
            doc = assert_envelope(r.body, r.status)
            assert "depth limit exceeded" in doc["error"]["message"]
            assert doc["error"]["details"][0]["field"] == "body"


@pytest.mark.parametrize("route", EVENT_ROUTES + OFREP_ROUTES)
def test_bodies_over_the_limit_are_413_on_the_edge(world: World, route: str) -> None:
    big = b'{"userId": "' + b"x" * (MIB + 10) + b'"}'
    with workers_unharmed(world):
        for r in (
            request(world.edge_port, b"POST", route.encode(), _auth(world), big),
            chunked(world.edge_port, route.encode(), _auth(world), big),
        ):
            assert r.status == 413, r
            if route.startswith("/ofrep"):
                assert "larger than" in assert_ofrep_error(r.body, r.status)["errorDetails"]
            else:
                assert assert_envelope(r.body, r.status)["error"]["code"] == "payload_too_large"


def test_control_plane_nesting_and_size(world: World) -> None:
    auth = [(b"Authorization", world.auth["Authorization"].encode()), (b"x-organisation", b"acme")]
    # Each route answers in its API's shape: ours the envelope, DevCycle's (/v1/projects) its own.
    routes: list[tuple[bytes, list[tuple[bytes, bytes]], str]] = [
        (b"/users/login", [], "envelope"),
        (b"/users/create", [], "envelope"),
        (b"/v1/projects", auth, "devcycle"),
    ]
    for target, headers, shape in routes:
        deep = request(world.cp_port, b"POST", target, headers, DEEP)
        assert deep.status == 400, deep
        detail = assert_error_body(deep.body, deep.status, shape)["details"][0]
        assert detail["code"] == "invalid_json" and "depth limit exceeded" in detail["message"]
        big = b'{"name": "' + b"x" * (MIB + 10) + b'"}'
        for r in (request(world.cp_port, b"POST", target, headers, big), chunked(world.cp_port, target, headers, big)):
            assert r.status == 413, r
            assert assert_error_body(r.body, r.status, shape)["code"] == "payload_too_large"
    # Nesting that orjson accepts (< 1024 levels) is refused by the bound on stored JSON (64).
    deep_filter = b'{"targeting": {"rules": [{"filter": ' + b'{"a":' * 500 + b"1" + b"}" * 500 + b"}]}}"
    target = b"/v1/projects/shop/features/plan/configurations?environment=prod"
    r = request(world.cp_port, b"PATCH", target, auth, deep_filter)
    assert r.status == 400, r
    assert "deeper than 64" in r.body.decode(), r


def _evaluated(world: World, query: bytes) -> RawResponse:
    return request(
        world.edge_port, b"GET", b"/features/evaluated?publishableKey=" + world.keys["client"].encode() + query
    )


def test_huge_queries(world: World) -> None:
    with workers_unharmed(world):
        # 1 MB: over granian's header buffer; 200 kB and 10k context params: over its 64 KiB URI limit.
        assert _evaluated(world, b"&context.a=" + b"x" * MIB).status == 431
        assert _evaluated(world, b"&context.a=" + b"x" * 200_000).status == 414
        ten_k = b"".join(b"&context.a%d=1" % i for i in range(10_000))
        r = _evaluated(world, ten_k)
        assert r.status == 414 and not r.from_app
        # What fits in 64 KiB reaches the app: 10,000 other parameters are ignored...
        r = _evaluated(world, b"&p=1" * 10_000)
        assert r.status == 200, r
        # ...more than 1000 context parameters are refused, naming the field...
        r = _evaluated(world, b"&context.a=1" * 5000)
        assert r.status == 400
        assert assert_envelope(r.body, r.status)["error"]["details"][0]["field"] == "context"
        # ...and 1000 of them, or one 60 kB value, are evaluated.
        assert _evaluated(world, b"".join(b"&context.k%d=v" % i for i in range(1000))).status == 200
        assert _evaluated(world, b"&context.company.plan=" + b"x" * 60_000).status == 200


def test_huge_headers(world: World) -> None:
    with workers_unharmed(world):
        many = [(b"X-H%d" % i, b"v") for i in range(1000)]
        r = request(world.edge_port, b"GET", b"/health", many)
        assert r.status == 431 and not r.from_app
        long = [(b"x-dimensions", b"a=" + b"v" * 9000)]
        r = request(world.edge_port, b"GET", b"/release/demo/demo-app", long)
        assert r.status == 400 and "longer than" in assert_envelope(r.body, r.status)["error"]  # Airborne shape
        # Around granian's 408 KiB buffer it refuses the header itself (431) or, depending on how
        # the bytes arrive, hands it to the app (400): either is a clean 4xx.
        for size in (500_000, 2 * MIB):
            r = request(world.edge_port, b"GET", b"/release/demo/demo-app", [(b"x-dimensions", b"v" * size)])
            assert_sane(r)
            assert r.status in (400, 431), r


def test_duplicate_parameters(world: World) -> None:
    edge = world.edge
    client, server = world.keys["client"], world.keys["server"]

    def get(query: str) -> httpx.Response:
        return edge.get("/features/evaluated?" + query)

    assert get(f"publishableKey={server}&publishableKey={client}").status_code == 200
    assert get(f"publishableKey={client}&publishableKey={server}").status_code == 403
    assert get(f"publishableKey={client}&publishableKey=nope").status_code == 403
    # The last value of a repeated context field is the one evaluated (as a dict would keep it).
    plan = get(f"publishableKey={client}&context.company.plan=free&context.company.plan=pro").json()
    assert plan["features"]["plan"]["isEnabled"] is True
    plan = get(f"publishableKey={client}&context.company.plan=pro&context.company.plan=free").json()
    assert plan["features"]["plan"]["isEnabled"] is False
    assert get(f"publishableKey={client}&waitForVersion=1&waitForVersion=x").status_code == 400


def test_big_accepted_requests_do_not_grow_memory(world: World) -> None:
    """Many large requests that are accepted (1000 context params; 1 MiB bodies refused only after
    reading): worker RSS stays within the generous bound of ``workers_unharmed``."""
    params = b"".join(b"&context.k%d=%d" % (i, i) for i in range(999))
    body = b'{"userId": "' + b"x" * (MIB - 100) + b'"}'
    with workers_unharmed(world, growth_kb=48 * 1024) as before:
        for i in range(150):
            assert _evaluated(world, params + b"&context.user.id=%d" % i).status == 200
        for _ in range(30):
            r = request(world.edge_port, b"POST", b"/user", _auth(world), body)
            assert r.status == 400  # userId over 256 characters
    assert all(rss > 0 for rss in before.values())
