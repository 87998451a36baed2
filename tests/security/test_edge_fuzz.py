"""Every parser of the edge fuzzed with hypothesis, against the real granian process (2 workers).

Query strings (duplicate parameters, broken or invalid-UTF-8 percent-encoding, raw non-ASCII
bytes, unicode digits, hostile key values), headers (Authorization variants, ``x-dimensions`` on
``/release/{org}/{app}``, ``If-None-Match``, ``Last-Event-ID`` on both SSE routes,
``X-Request-Id``, ``Idempotency-Key``) and bodies of every POST route (the six event routes and
both OFREP evaluation routes). Requests are sent as raw bytes (``rawhttp``), so nothing is
normalised on the way.

Each answer: never a 5xx; a 4xx from the app uses the error envelope (OFREP's error body on
OFREP routes); granian's own rejections of malformed HTTP (no body) are 4xx. Around each test the
same two worker pids must be alive afterwards, ``/health`` answers and worker RSS stays bounded.

Found this way and fixed (regressions below): ``str.isdigit()`` is true for ``'²'``, which
``int()`` refuses, so ``waitForVersion=%C2%B2``, ``Last-Event-ID: ²`` and OFREP ``since=²`` were
500s; a bulk item ``{"type": []}`` was a 500 (unhashable); an event stream closed by its client
logged ``RuntimeError: cannot wait on un-acquired lock`` about once in 15 times
(``server/state.py`` ``wait_for``); an event body abandoned half-sent logged an unhandled
``ClientDisconnect``. The control plane's own API is fuzzed from its OpenAPI document in
``tests/control_plane/test_fuzz_openapi.py``; the evaluator's inputs in
``tests/evaluator/test_safety.py``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.checks import assert_envelope, assert_sane, workers_unharmed
from tests.security.conftest import World
from tests.security.rawhttp import request

# SECURITY_FUZZ_EXAMPLES=1000 for a deeper run; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HOSTILE = [
    "",
    "%",
    "%z",
    "%zz",
    "%FF",
    "%C0%AF",
    "%ED%A0%80",  # an encoded lone surrogate
    "%00",
    "%C2%B2",  # '²': isdigit() but not int()
    "%D9%A3",  # '٣': an Arabic-Indic digit
    "+",
    "=",
    "==",
    "&&",
    "-1",
    "1e309",
    "9" * 40,
    "NaN",
    "true",
    "null",
    "[]",
    "{}",
    "__proto__",
    "constructor",
    "..%2F..%2F",
    "%E2%80%AE",
    "x" * 3000,
]
NAMES = [
    "publishableKey",
    "context.user.id",
    "context.user.country",
    "context.company.plan",
    "context.company.id",
    "context.",
    "context",
    "context.a.b.c.d.e.f.g",
    "context.__proto__.x",
    "waitForVersion",
    "debug",
    "key",
    "projectKey",
    "toss",
    "since",
    "userId",
    "limit",
    "cursor",
    "sort",
    "categoryId",
    "status",
]
GET_PATHS = [
    "/features/evaluated",
    "/features/enabled",
    "/features",
    "/sdk/config",
    "/release/demo/demo-app",
    "/ofrep/v1/configuration",
    "/health",
    "/ready",
]


def _dumps(value: Any) -> bytes:
    # Not orjson: hypothesis makes integers beyond 64 bits, which a JSON text may carry.
    return json.dumps(value).encode()


safe_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=24)
encoded_text = safe_text.map(lambda s: quote(s, safe="").encode())
percent_bytes = st.binary(max_size=12).map(lambda b: "".join(f"%{x:02X}" for x in b).encode())
raw_bytes = st.binary(max_size=12).map(lambda b: bytes(x for x in b if x > 0x20 and x not in b"#&= \x7f"))
hostile = st.sampled_from(HOSTILE).map(str.encode)


def _keys(world: World) -> st.SearchStrategy[bytes]:
    keys = [world.keys["client"], world.keys["server"], world.keys["mobile"]]
    mutated = [k[:-1] + ("A" if k[-1] != "A" else "B") for k in keys]
    return st.sampled_from([*keys, *mutated, "fe_rk_" + "x" * 43, ""]).map(str.encode)


def _value(world: World) -> st.SearchStrategy[bytes]:
    return st.one_of(encoded_text, percent_bytes, hostile, raw_bytes, _keys(world))


def _query(world: World) -> st.SearchStrategy[bytes]:
    name = st.one_of(st.sampled_from(NAMES).map(str.encode), encoded_text, percent_bytes, hostile)
    pair = st.tuples(name, _value(world)).map(lambda p: p[0] + b"=" + p[1])
    bare = st.one_of(name, st.just(b""))
    # The client key first, so most examples get past authentication into the parsers behind it.
    key = st.sampled_from([b"publishableKey=" + world.keys["client"].encode(), b""])
    return st.tuples(key, st.lists(st.one_of(pair, bare), max_size=12)).map(lambda t: b"&".join([t[0], *t[1]]))


@pytest.fixture(scope="module")
def workers(world: World) -> list[int]:
    pids = world.workers()
    assert len(pids) == 2
    return pids


def test_query_strings(world: World, workers: list[int]) -> None:
    with workers_unharmed(world, workers):

        @FUZZ
        @given(path=st.sampled_from(GET_PATHS), query=_query(world))
        def run(path: str, query: bytes) -> None:
            r = request(world.edge_port, b"GET", path.encode() + b"?" + query)
            assert_sane(r, ofrep=path.startswith("/ofrep"), what=query[:200])

        run()


def _authorization(world: World) -> st.SearchStrategy[bytes]:
    scheme = st.sampled_from([b"Bearer ", b"bearer ", b"BEARER   ", b"Bearer", b"Basic ", b"Token ", b"", b" Bearer "])
    token = st.one_of(
        _keys(world),
        _keys(world).map(lambda k: k + b" "),
        _keys(world).map(lambda k: k + b"\xff"),
        st.binary(max_size=64).map(lambda b: bytes(x for x in b if x >= 0x20 and x != 0x7F)),
        st.integers(1000, 20_000).map(lambda n: b"x" * n),
    )
    return st.tuples(scheme, token).map(lambda t: t[0] + t[1])


header_bytes = st.binary(max_size=200).map(lambda b: bytes(x for x in b if x >= 0x20 and x != 0x7F))


def _dimensions() -> st.SearchStrategy[bytes]:
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), safe_text)
    json_dims = st.dictionaries(safe_text, st.one_of(scalar, st.lists(scalar, max_size=3)), max_size=8)
    pairs = st.lists(st.tuples(st.one_of(encoded_text, hostile), st.one_of(encoded_text, hostile, percent_bytes)))
    return st.one_of(
        json_dims.map(_dumps),
        pairs.map(lambda ps: b";".join(k + b"=" + v for k, v in ps)),
        header_bytes,
        st.sampled_from([b"{", b"[1,2]", b'{"a":{"b":1}}', b"a", b";;;", b"=1", b"a=" + b"v" * 10_000]),
    )


def test_headers(world: World, workers: list[int]) -> None:
    client = world.keys["client"].encode()
    etag = st.one_of(header_bytes, st.sampled_from([b"*", b'W/"x"', b'"a", "b",,,', b"," * 2000]))
    with workers_unharmed(world, workers):

        @FUZZ
        @given(
            path=st.sampled_from(
                ["/features/evaluated", "/features", "/release/demo/demo-app", "/ofrep/v1/configuration"]
            ),
            authorization=st.one_of(st.none(), _authorization(world)),
            api_key=st.one_of(st.none(), _keys(world), header_bytes),
            dimensions=st.one_of(st.none(), _dimensions()),
            dimension_name=st.sampled_from([b"x-dimensions", b"x-dimension"]),
            if_none_match=st.one_of(st.none(), etag),
            request_id=st.one_of(st.none(), header_bytes),
            with_query_key=st.booleans(),
        )
        def run(
            path: str,
            authorization: bytes | None,
            api_key: bytes | None,
            dimensions: bytes | None,
            dimension_name: bytes,
            if_none_match: bytes | None,
            request_id: bytes | None,
            with_query_key: bool,
        ) -> None:
            headers = [
                (name, value)
                for name, value in (
                    (b"Authorization", authorization),
                    (b"X-API-Key", api_key),
                    (dimension_name, dimensions),
                    (b"If-None-Match", if_none_match),
                    (b"X-Request-Id", request_id),
                )
                if value is not None
            ]
            target = path.encode() + (b"?publishableKey=" + client if with_query_key else b"")
            r = request(world.edge_port, b"GET", target, headers)
            assert_sane(r, ofrep=path.startswith("/ofrep"), what=headers)

        run()


def test_last_event_id_on_both_streams(world: World, workers: list[int]) -> None:
    """Event streams never end: only the head of the answer is read."""
    client = world.keys["client"].encode()
    value = st.one_of(header_bytes, st.sampled_from([b"\xb2", b"\xb9", b"-1", b"9" * 30, b"00", b"1 "]))
    with workers_unharmed(world, workers):

        @FUZZ
        @given(
            stream=st.sampled_from([b"/features/stream?publishableKey=" + client, b"/ofrep/v1/stream"]),
            last_event_id=value,
            since=st.one_of(st.none(), _value(world)),
        )
        def run(stream: bytes, last_event_id: bytes, since: bytes | None) -> None:
            ofrep = stream.startswith(b"/ofrep")
            target = stream + (b"?since=" + since if since is not None and ofrep else b"")
            headers = [(b"Last-Event-ID", last_event_id)]
            if ofrep:
                headers.append((b"Authorization", b"Bearer " + client))
            r = request(world.edge_port, b"GET", target, headers, head_only=True)
            assert_sane(r, ofrep=ofrep, what=headers)
            if r.status == 200:
                assert r.headers["content-type"].startswith("text/event-stream")

        run()


POST_ROUTES = ["/features/events", "/user", "/company", "/event", "/feedback", "/bulk"]
OFREP_ROUTES = ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/plan", "/ofrep/v1/evaluate/flags/%FF%00"]
VALID: dict[str, Any] = {
    "/features/events": {"action": "check", "key": "plan", "evalResult": True, "evalContext": {"a": 1}},
    "/user": {"userId": "u1", "attributes": {"name": "A"}},
    "/company": {"companyId": "c1", "userId": "u1"},
    "/event": {"event": "clicked", "userId": "u1", "timestamp": "2026-01-01T00:00:00Z"},
    "/feedback": {"key": "plan", "userId": "u1", "score": 3},
    "/bulk": [{"type": "user", "userId": "u1"}, {"type": "event", "event": "e", "userId": "u1"}],
    "/ofrep/v1/evaluate/flags": {"context": {"targetingKey": "u1", "company": {"plan": "pro"}}},
    "/sdk/identify": {"userId": "u1", "properties": {"plan": "pro"}},
    "/sdk/feature-requests": {"userId": "u1", "title": "Dark mode", "description": "please"},
    "/sdk/roadmap/none/follow": {"userId": "u1", "following": True, "context": {"user": {"plan": "pro"}}},
    "/e": {"userId": "u1", "event": "opened", "properties": {"a": 1}},
}
# Releaseo's public routes, authorised by the demo's project key in the query.
RELEASEO_POST = ["/sdk/identify", "/sdk/feature-requests", "/sdk/roadmap/none/follow", "/e"]
RELEASEO_GET = ["/sdk/feature-requests", "/sdk/feature-requests/categories", "/sdk/roadmap/snapshot", "/sdk/roadmap/x"]

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        safe_text,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(safe_text, inner, max_size=5)),
    max_leaves=30,
)
FIELDS = [
    "userId",
    "companyId",
    "event",
    "key",
    "featureId",
    "action",
    "score",
    "comment",
    "attributes",
    "context",
    "timestamp",
    "client_dedup_id",
    "evalResult",
    "evalContext",
    "evalRuleResults",
    "evalMissingFields",
    "targetingVersion",
    "type",
    "targetingKey",
    "title",
    "description",
    "properties",
    "traits",
    "categoryId",
    "authorName",
    "voted",
    "following",
    "body",
]


def _mutated(route: str) -> st.SearchStrategy[Any]:
    """A valid body with one field replaced by anything (or removed)."""
    base = VALID.get(route, VALID["/ofrep/v1/evaluate/flags"])
    if isinstance(base, list):
        return st.tuples(st.sampled_from(FIELDS), json_values).map(lambda fv: [*base, {"type": "user", fv[0]: fv[1]}])

    def mutate(fv: tuple[str, Any, bool]) -> Any:
        name, value, drop = fv
        body = dict(base)
        if name in body and drop:
            del body[name]
        else:
            body[name] = value
        return body

    return st.tuples(st.sampled_from(FIELDS), json_values, st.booleans()).map(mutate)


HOSTILE_BODIES = {
    "empty": b"",
    "space": b" ",
    "null": b"null",
    "deep array": b"[" * 5000,
    "deep object": b'{"a":' * 2000,
    "raw invalid utf-8": b'{"userId": "\xff\xfe"}',
    "lone surrogate": b'{"userId": "\\ud800"}',
    "NaN": b'{"context": {"a": NaN}}',
    "1e999": b'{"context": 1e999}',
    "huge integer": b'{"context": {"a": 123456789012345678901234567890}}',
    "duplicate keys": b'{"a":1,"a":2}',
    "BOM": b"\xef\xbb\xbf{}",
}


def _body(route: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        _mutated(route).map(_dumps),
        json_values.map(_dumps),
        st.binary(max_size=200),
        st.sampled_from(sorted(HOSTILE_BODIES)).map(HOSTILE_BODIES.__getitem__),
    )


@pytest.mark.parametrize("route", POST_ROUTES + OFREP_ROUTES)
def test_bodies(world: World, workers: list[int], route: str) -> None:
    auth = [(b"Authorization", b"Bearer " + world.keys["client"].encode())]
    ofrep = route.startswith("/ofrep")
    with workers_unharmed(world, workers):

        @settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
        @given(
            body=_body(route),
            content_type=st.sampled_from([b"application/json", b"text/plain", b"application/json; charset=latin-1"]),
            idempotency=st.one_of(st.none(), header_bytes),
        )
        def run(body: bytes, content_type: bytes, idempotency: bytes | None) -> None:
            headers = [*auth, (b"Content-Type", content_type)]
            if idempotency is not None:
                headers.append((b"Idempotency-Key", idempotency))
            r = request(world.edge_port, b"POST", route.encode(), headers, body)
            assert_sane(r, ofrep=ofrep, what=body[:200])

        run()


@pytest.mark.parametrize("route", RELEASEO_POST)
def test_releaseo_bodies(world: World, workers: list[int], route: str) -> None:
    target = route.encode() + b"?key=" + world.demo["releaseoProjectKey"].encode()
    with workers_unharmed(world, workers):

        @settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
        @given(body=_body(route), idempotency=st.one_of(st.none(), header_bytes))
        def run(body: bytes, idempotency: bytes | None) -> None:
            headers = [(b"Content-Type", b"application/json")]
            if idempotency is not None:
                headers.append((b"Idempotency-Key", idempotency))
            r = request(world.edge_port, b"POST", target, headers, body)
            assert_sane(r, what=body[:200])

        run()


def test_releaseo_query_strings(world: World, workers: list[int]) -> None:
    key = b"key=" + world.demo["releaseoProjectKey"].encode()
    with workers_unharmed(world, workers):

        @FUZZ
        @given(path=st.sampled_from(RELEASEO_GET), query=_query(world), keyed=st.booleans())
        def run(path: str, query: bytes, keyed: bool) -> None:
            r = request(world.edge_port, b"GET", path.encode() + b"?" + (key + b"&" if keyed else b"") + query)
            assert_sane(r, what=query[:200])

        run()


@pytest.mark.parametrize(
    ("target", "headers", "expect"),
    [
        (b"/features/evaluated?publishableKey={client}&waitForVersion=%C2%B2", [], 400),
        (b"/features/evaluated?publishableKey={client}&waitForVersion=%D9%A3", [], 400),
        (b"/features/stream?publishableKey={client}", [(b"Last-Event-ID", b"\xb2")], 200),
        (b"/ofrep/v1/stream", [(b"Authorization", b"Bearer {client}"), (b"Last-Event-ID", b"\xb2")], 400),
        (b"/ofrep/v1/stream?since=%C2%B2", [(b"Authorization", b"Bearer {client}")], 400),
    ],
)
def test_unicode_digits_are_not_integers(
    world: World, target: bytes, headers: list[tuple[bytes, bytes]], expect: int
) -> None:
    """Regression: these were 500s (``'²'.isdigit()`` is true, ``int('²')`` raises)."""
    client = world.keys["client"].encode()
    sent = [(name, value.replace(b"{client}", client)) for name, value in headers]
    r = request(world.edge_port, b"GET", target.replace(b"{client}", client), sent, head_only=expect == 200)
    assert r.status == expect, r
    assert_sane(r, ofrep=target.startswith(b"/ofrep"))


def test_bulk_item_with_an_unhashable_type(world: World, workers: list[int]) -> None:
    """Regression: ``{"type": []}`` in a bulk was a TypeError (``[] in dict``), a 500."""
    auth = [(b"Authorization", b"Bearer " + world.keys["client"].encode())]
    with workers_unharmed(world, workers):
        for kind in (b"[]", b"{}", b"1", b"null", b'"nope"'):
            r = request(world.edge_port, b"POST", b"/bulk", auth, b'[{"type": ' + kind + b', "userId": "u"}]')
            assert r.status == 400, r
            assert assert_envelope(r.body, r.status)["error"]["details"][0]["field"] == "[0].type"


def test_clients_that_go_away_end_cleanly(world: World, workers: list[int]) -> None:
    """Event streams closed right after their first bytes, and bodies abandoned half-sent: the
    edge logs no exception. Regression: a closed SSE stream could raise ``RuntimeError: cannot
    wait on un-acquired lock`` (``asyncio.wait_for`` around a condition wait, cancelled
    repeatedly), about once in 15 streams; an abandoned event body was an "unhandled error"."""
    key = world.keys["client"].encode()
    streams = [b"/features/stream?publishableKey=" + key, b"/ofrep/v1/stream"]
    auth = [(b"Authorization", b"Bearer " + key)]
    with workers_unharmed(world, workers):
        for i in range(200):
            r = request(world.edge_port, b"GET", streams[i % 2], [*auth, (b"Last-Event-ID", b"1")], head_only=True)
            assert r.status == 200
        for route in (b"/event", b"/bulk", b"/ofrep/v1/evaluate/flags"):
            for _ in range(10):
                with socket.create_connection(("127.0.0.1", world.edge_port), timeout=10) as s:
                    head = b"POST " + route + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key
                    s.sendall(head + b'\r\nContent-Length: 1000\r\n\r\n{"userId": ')
                    time.sleep(0.01)
        time.sleep(0.5)
