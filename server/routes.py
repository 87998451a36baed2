"""The edge's one route table: every path the edge answers, what answers it, how.

Each :class:`Api` declares a path, its methods, its handler (picked from the worker's
:class:`Handlers`), the shape its errors are answered in (DESIGN.md section 5b), whether load
shedding may refuse it, the request headers its browser clients send, and, for the SDK polling
routes, the answer parts the hot path sends for a GET. Everything else derives from this table:

* the Starlette routes (``server.app``), each wrapped in the guard that answers errors in the
  route's shape;
* the hot path's dispatch (:func:`hot_routes`): method and path → answer parts (``GET`` for the
  SDK polling routes, ``POST`` for OFREP evaluation);
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

from server.devcycle.bucketing import BucketingRoutes
from server.devcycle.config import STREAM_PATH, ConfigRoutes
from server.devcycle.events import EventRoutes
from server.errors import AIRBORNE, DEVCYCLE, ENVELOPE, OFREP, Shape
from server.events import FLAG_EVENT, EventIntake
from server.hot_path import HotRoute
from server.ofrep import ANY_METHOD, OfrepApi
from server.release import release_endpoint
from server.releaseo import ReleaseoApi
from server.service import Edge, Parts

Endpoint = Callable[[Request], Awaitable[Response]]
PartsEndpoint = Callable[[Request], Awaitable[Parts]]

# The request headers browser SDKs send that need a CORS preflight (Accept, and Content-Type of
# a form, need none), read from the packages' sources:
# - every client: keys, JSON bodies, revalidation, tracing;
# - @reflag/browser-sdk 1.6.1: Authorization, Content-Type and ``reflag-sdk-version`` on every
#   POST (``bucket-sdk-version`` before the rename); GETs and EventSource (``/sse/client``) carry
#   the key and version in the query, and EventSource adds Last-Event-ID when it reconnects;
# - @openfeature/ofrep-web-provider 0.4.3 (ofrep-core 2.3.0): Content-Type (with a charset),
#   If-None-Match, and the key as Authorization or X-API-Key;
# - @devcycle/js-client-sdk 1.47.10: Authorization and Content-Type only (no DevCycle route
#   is served here yet; its EdgeDB PATCH would also need the method allowed in server.app).
COMMON_HEADERS = ("Authorization", "Content-Type", "If-None-Match", "X-Request-Id")
REFLAG_HEADERS = ("reflag-sdk-version", "bucket-sdk-version")


@dataclass(frozen=True)
class Handlers:
    """One worker's handlers: the service and the per-API state built on it."""

    edge: Edge
    ofrep: OfrepApi
    release: Endpoint
    events: EventIntake
    releaseo: ReleaseoApi
    devcycle_config: ConfigRoutes
    devcycle_bucketing: BucketingRoutes
    devcycle_events: EventRoutes

    @classmethod
    def build(cls, edge: Edge) -> Handlers:
        events = EventIntake(edge)
        return cls(
            edge,
            OfrepApi(edge),
            release_endpoint(edge),
            events,
            ReleaseoApi(edge, events),
            ConfigRoutes(edge),
            BucketingRoutes(edge),
            EventRoutes(events),
        )


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
    # The hot path answers `hot_method` with these parts, before routing; the routed handler
    # (other methods) wraps the same parts in a Response.
    hot: Callable[[Handlers], PartsEndpoint] | None = None
    hot_method: str = "GET"


def hot_api(
    path: str, parts: Callable[[Handlers], PartsEndpoint], cors_headers: tuple[str, ...] = (), shape: Shape = ENVELOPE
) -> Api:
    return Api(path, lambda h: parts_endpoint(parts(h)), shape=shape, cors_headers=cors_headers, hot=parts)


def parts_endpoint(parts: PartsEndpoint) -> Endpoint:
    async def run(request: Request) -> Response:
        status, headers, body = await parts(request)
        response = Response(body, status_code=status)
        response.raw_headers = headers
        return response

    return run


def _event(kind: str | None) -> Callable[[Handlers], Endpoint]:
    return lambda h: h.events.endpoint(kind)


def _devcycle(
    path: str, handler: Callable[[Handlers], Endpoint], methods: tuple[str, ...] = ("POST",), *, shed: bool = True
) -> Api:
    """A DevCycle SDK route: DevCycle's error body; its SDKs send the key in ``Authorization``."""
    return Api(path, handler, methods, DEVCYCLE, shed)


def _ofrep(
    path: str,
    handler: Callable[[Handlers], Endpoint],
    *,
    shed: bool = True,
    cors_headers: tuple[str, ...] = (),
    hot: Callable[[Handlers], PartsEndpoint] | None = None,
) -> Api:
    """An OFREP route: every method reaches the handler (a wrong one gets OFREP's 405 body);
    with ``hot``, the hot path answers its POSTs."""
    return Api(path, handler, ANY_METHOD, OFREP, shed, (*OFREP_HEADERS, *cors_headers), hot, "POST")


REFLAG_READ = (*REFLAG_HEADERS, "Last-Event-ID")
OFREP_HEADERS = ("X-API-Key",)
OFREP_STREAM = ("Last-Event-ID",)
EVENT_HEADERS = (*REFLAG_HEADERS, "Idempotency-Key")
# The Releaseo widget: its project key, retried writes, the reader's user id.
RELEASEO_HEADERS = ("x-project-key", "Idempotency-Key", "x-user-id")


def _releaseo(path: str, handler: Callable[[ReleaseoApi], Endpoint], methods: tuple[str, ...] = ("GET",)) -> Api:
    return Api(path, lambda h: handler(h.releaseo), methods, cors_headers=RELEASEO_HEADERS)


ROUTES: tuple[Api, ...] = (
    # Reflag.
    Api("/features", lambda h: h.edge.features, cors_headers=REFLAG_HEADERS),
    hot_api("/features/evaluated", lambda h: partial(h.edge.evaluated_parts, False), REFLAG_HEADERS),
    hot_api("/features/enabled", lambda h: partial(h.edge.evaluated_parts, True), REFLAG_HEADERS),
    Api("/features/stream", lambda h: h.edge.stream, shed=False, cors_headers=REFLAG_READ),
    # The Reflag SDKs' push: the node SDK (fetch, secret key) and the browser SDK (EventSource).
    Api("/sse/server", lambda h: h.edge.sse_server, shed=False, cors_headers=REFLAG_READ),
    Api("/sse/client", lambda h: h.edge.sse_client, shed=False, cors_headers=REFLAG_READ),
    Api("/features/events", _event(FLAG_EVENT), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/user", _event("user"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/company", _event("company"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/event", _event("event"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/feedback", _event("feedback"), ("POST",), cors_headers=EVENT_HEADERS),
    Api("/bulk", _event(None), ("POST",), cors_headers=EVENT_HEADERS),
    # Releaseo: the widget config, the public board and roadmap, identify and product events.
    Api("/sdk/config", lambda h: h.edge.sdk_config, cors_headers=RELEASEO_HEADERS),
    _releaseo("/sdk/identify", lambda r: r.identify, ("POST",)),
    _releaseo("/sdk/feature-requests/categories", lambda r: r.categories),
    _releaseo("/sdk/feature-requests", lambda r: r.feature_requests, ("GET", "POST")),
    _releaseo("/sdk/feature-requests/{id}/comments", lambda r: r.comments, ("GET", "POST")),
    _releaseo("/sdk/feature-requests/{id}/vote", lambda r: r.vote, ("POST",)),
    _releaseo("/sdk/roadmap/snapshot", lambda r: r.roadmap_snapshot),
    _releaseo("/sdk/roadmap/{id}", lambda r: r.roadmap_item),
    _releaseo("/sdk/roadmap/{id}/follow", lambda r: r.follow, ("POST",)),
    _releaseo("/e", lambda r: r.product_events, ("POST",)),
    # OpenFeature remote evaluation.
    _ofrep("/ofrep/v1/evaluate/flags/{key:path}", lambda h: h.ofrep.evaluate_flag, hot=lambda h: h.ofrep.flag_parts),
    _ofrep("/ofrep/v1/evaluate/flags", lambda h: h.ofrep.evaluate_flags, hot=lambda h: h.ofrep.flags_parts),
    _ofrep("/ofrep/v1/configuration", lambda h: h.ofrep.configuration),
    _ofrep("/ofrep/v1/stream", lambda h: h.ofrep.stream, shed=False, cors_headers=OFREP_STREAM),
    # DevCycle SDKs: local-bucketing server SDKs' config and realtime stream, client SDKs'
    # bucketed config, the cloud bucketing API, events (server.devcycle).
    _devcycle("/config/v2/server/bootstrap/{key}.json", lambda h: h.devcycle_config.bootstrap_config, ("GET",)),
    _devcycle("/config/v2/server/{key}.json", lambda h: h.devcycle_config.server_config, ("GET",)),
    _devcycle(STREAM_PATH + "{key_hash}", lambda h: h.devcycle_config.stream, ("GET",), shed=False),
    hot_api("/v1/sdkConfig", lambda h: h.devcycle_bucketing.sdk_config_parts, shape=DEVCYCLE),
    hot_api("/v1/mobileSDKConfig", lambda h: h.devcycle_bucketing.sdk_config_parts, shape=DEVCYCLE),
    _devcycle("/v1/variables", lambda h: h.devcycle_bucketing.variables),
    _devcycle("/v1/variables/{key}", lambda h: h.devcycle_bucketing.variable),
    _devcycle("/v1/features", lambda h: h.devcycle_bucketing.features),
    _devcycle("/v1/track", lambda h: h.devcycle_events.user_events),
    _devcycle("/v1/events", lambda h: h.devcycle_events.user_events),
    _devcycle("/v1/events/batch", lambda h: h.devcycle_events.batch),
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


def hot_routes(handlers: Handlers) -> list[HotRoute]:
    """The hot path's dispatch: every route declared ``hot``, its method and answer parts. A
    trailing ``{name:path}`` parameter makes the path a prefix (no other parameter is allowed)."""
    out: list[HotRoute] = []
    for api in ROUTES:
        if api.hot is None:
            continue
        path, brace, param = api.path.partition("{")
        if brace and not (param.endswith(":path}") and "{" not in param):
            raise ValueError(f"hot route {api.path}: only a trailing {{name:path}} parameter is supported")
        name = param.removesuffix(":path}") if brace else None
        out.append(HotRoute(api.hot_method, path, api.hot(handlers), api.shape, name))
    return out
