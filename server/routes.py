"""The edge's one route table: every path the edge answers, what answers it, how.

Each :class:`Api` declares a path, its methods, its handler (picked from the worker's
:class:`Handlers`), the shape its errors are answered in (DESIGN.md section 5b), whether load
shedding may refuse it, the request headers its browser clients send, and, for the SDK polling
routes, the answer parts the hot path sends for a GET. Everything else derives from this table:

* the Starlette routes (``server.app``), each wrapped in the guard that answers errors in the
  route's shape;
* the hot path's dispatch (:func:`hot_parts`): path → answer parts, for ``GET`` only;
* the load shedder's exemptions (:data:`NEVER_SHED`): probes and SSE subscriptions;
* the CORS allow-headers (:data:`CORS_ALLOW_HEADERS`);
* the error shape of a path answered before or without its handler (:func:`shape_for`: a shed
  503, a 404/405).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from server.errors import AIRBORNE, ENVELOPE, OFREP, Shape
from server.events import FLAG_EVENT, EventIntake
from server.ofrep import ANY_METHOD, OfrepApi
from server.release import release_endpoint
from server.service import Edge, Parts

Endpoint = Callable[[Request], Awaitable[Response]]
PartsEndpoint = Callable[[Request], Awaitable[Parts]]

# Headers any browser client sends: keys, JSON bodies, revalidation, SSE resumption, tracing.
COMMON_HEADERS = ("Authorization", "Content-Type", "If-None-Match", "X-Request-Id")
# The Reflag browser SDK's version header (``reflag-sdk-version``; ``bucket-sdk-version`` before
# the rename); it also sends the version as a query parameter on GETs.
REFLAG_HEADERS = ("reflag-sdk-version", "bucket-sdk-version")


@dataclass(frozen=True)
class Handlers:
    """One worker's handlers: the service and the per-API state built on it."""

    edge: Edge
    ofrep: OfrepApi
    release: Endpoint
    events: EventIntake

    @classmethod
    def build(cls, edge: Edge) -> Handlers:
        return cls(edge, OfrepApi(edge), release_endpoint(edge), EventIntake(edge))


@dataclass(frozen=True)
class Api:
    path: str
    handler: Callable[[Handlers], Endpoint]
    methods: tuple[str, ...] = ("GET",)
    shape: Shape = ENVELOPE
    # False: never refused by load shedding (probes, long-lived SSE subscriptions).
    shed: bool = True
    # Request headers the route's browser clients send (CORS preflights must allow them).
    cors_headers: tuple[str, ...] = ()
    # The hot path answers GET with these parts, before routing; the routed handler (HEAD)
    # wraps the same parts in a Response.
    hot: Callable[[Handlers], PartsEndpoint] | None = None


def hot_api(path: str, parts: Callable[[Handlers], PartsEndpoint], cors_headers: tuple[str, ...] = ()) -> Api:
    return Api(path, lambda h: parts_endpoint(parts(h)), cors_headers=cors_headers, hot=parts)


def parts_endpoint(parts: PartsEndpoint) -> Endpoint:
    async def run(request: Request) -> Response:
        status, headers, body = await parts(request)
        response = Response(body, status_code=status)
        response.raw_headers = headers
        return response

    return run


def _event(kind: str | None) -> Callable[[Handlers], Endpoint]:
    return lambda h: h.events.endpoint(kind)


def _ofrep(
    path: str, handler: Callable[[Handlers], Endpoint], *, shed: bool = True, cors_headers: tuple[str, ...] = ()
) -> Api:
    """An OFREP route: every method reaches the handler (a wrong one gets OFREP's 405 body)."""
    return Api(path, handler, ANY_METHOD, OFREP, shed, (*OFREP_HEADERS, *cors_headers))


REFLAG_READ = (*REFLAG_HEADERS, "Last-Event-ID")
OFREP_HEADERS = ("X-API-Key",)
OFREP_STREAM = ("Last-Event-ID",)
EVENT_HEADERS = (*REFLAG_HEADERS, "Idempotency-Key")

ROUTES: tuple[Api, ...] = (
    # Reflag.
    Api("/features", lambda h: h.edge.features, cors_headers=REFLAG_HEADERS),
    hot_api("/features/evaluated", lambda h: partial(h.edge.evaluated_parts, False), REFLAG_HEADERS),
    hot_api("/features/enabled", lambda h: partial(h.edge.evaluated_parts, True), REFLAG_HEADERS),
    Api("/features/stream", lambda h: h.edge.stream, shed=False, cors_headers=REFLAG_READ),
    Api("/features/events", _event(FLAG_EVENT), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/user", _event("user"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/company", _event("company"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/event", _event("event"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/feedback", _event("feedback"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/bulk", _event(None), ("POST",), cors_headers=EVENT_HEADERS),
    # Releaseo widget.
    Api("/sdk/config", lambda h: h.edge.sdk_config, cors_headers=("x-project-key",)),
    # OpenFeature remote evaluation.
    _ofrep("/ofrep/v1/evaluate/flags/{key:path}", lambda h: h.ofrep.evaluate_flag),
    _ofrep("/ofrep/v1/evaluate/flags", lambda h: h.ofrep.evaluate_flags),
    _ofrep("/ofrep/v1/configuration", lambda h: h.ofrep.configuration),
    _ofrep("/ofrep/v1/stream", lambda h: h.ofrep.stream, shed=False, cors_headers=OFREP_STREAM),
    # Airborne releases, in Airborne's error shape.
    Api(
        "/release/{organisation}/{application}",
        lambda h: h.release,
        shape=AIRBORNE,
        cors_headers=("x-dimensions", "x-dimension"),
    ),
    # Probes: never shed, an orchestrator must not take out a worker that is merely busy.
    Api("/health", lambda h: h.edge.health, shed=False),
    Api("/ready", lambda h: h.edge.ready, shed=False),
    Api("/metrics", lambda h: h.edge.metrics, shed=False),
)


def _unique(names: list[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return tuple(out)


NEVER_SHED = frozenset(api.path for api in ROUTES if not api.shed)
CORS_ALLOW_HEADERS = _unique([*COMMON_HEADERS, *(h for api in ROUTES for h in api.cors_headers)])
HOT_SHAPES = {api.path: api.shape for api in ROUTES if api.hot is not None}

_EXACT = {api.path: api.shape for api in ROUTES if "{" not in api.path}
_PATTERNS: list[tuple[re.Pattern[str], Shape]] = [(compile_path(a.path)[0], a.shape) for a in ROUTES if "{" in a.path]


def shape_for(path: str) -> Shape:
    """The error shape of the route ``path`` belongs to; the envelope for a path of no route."""
    shape = _EXACT.get(path)
    if shape is not None:
        return shape
    for pattern, found in _PATTERNS:
        if pattern.match(path):
            return found
    return ENVELOPE


def hot_parts(handlers: Handlers) -> dict[str, PartsEndpoint]:
    """The hot path's dispatch: path → the answer parts of a GET."""
    return {api.path: api.hot(handlers) for api in ROUTES if api.hot is not None}
