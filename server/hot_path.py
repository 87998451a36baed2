"""The evaluation routes answered before Starlette: the SDK polling routes (``GET
/features/evaluated`` and ``/features/enabled``, DevCycle's SDK config) and OFREP evaluation
(``POST /ofrep/v1/evaluate/flags`` and ``/ofrep/v1/evaluate/flags/{key}``).

They are nearly all of an edge's traffic, and on them Starlette's machinery (its router, route
wrappers, exception middleware, Response objects, and the middleware stack each request passes
through: server errors, CORS, load shedding, each one more coroutine and ``send`` wrapper) cost
more per request than evaluating the flags. :class:`HotPath` is called by the app
(``server.app.EdgeApp``) before that stack; it applies the same load shedding (the stack's own
:class:`~server.overload.LoadShedder`) and CORS tagging (the stack's own ``CORSMiddleware``)
itself, so a hot answer carries exactly the headers the stack would have given it.

Which paths and methods, and the answer parts, come from the route table (``server.routes``:
the routes declared ``hot``); the routed path (other methods) answers from the same parts
function, so the checks and the answer are the same code; only the dispatch is shorter. A route
whose path ends in a ``{name:path}`` parameter is matched by its prefix, the rest of the path
being the parameter (as Starlette's ``path`` convertor takes it). Errors are answered in the
route's shape (``server.errors.render``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

import evaluator
from server.errors import EdgeError, Shape, request_id, send_error
from server.overload import LoadShedder
from server.service import Edge, Parts, RawHeaders

log = logging.getLogger("server")

# What CORSMiddleware adds to an answer to a request without Origin (``Vary: Origin``).
VARY_ORIGIN = (b"vary", b"Origin")


class LeanQueryParams(QueryParams):
    """QueryParams built straight from pairs already split (no re-checking, no ``str()`` of
    every key and value), whose ``get`` is a dict lookup: ``Mapping.get`` raises and catches a
    KeyError for each parameter a request leaves out (``waitForVersion``, ``debug``)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._list = pairs
        self._dict = dict(pairs)  # the last value of a repeated key, as QueryParams keeps it

    def get(self, key: str, default: Any = None) -> Any:
        return self._dict.get(key, default)


class LeanHeaders(Headers):
    """Headers whose ``get`` finds the first value without ``Mapping.get``'s KeyError for a
    header the request lacks (most of those the hot routes look for: keys, request ids,
    revalidation, Origin)."""

    def get(self, key: str, default: Any = None) -> Any:
        name = key.lower().encode("latin-1")
        for item, value in self._list:
            if item == name:
                return value.decode("latin-1")
        return default


class SdkRequest(Request):
    """A Request for the hot routes: its query string split in Rust (``evaluator.parse_query``:
    the same pairs as Starlette's ``QueryParams``, at a fraction of urllib's cost for ten context
    attributes), and lean lookups in it and in the headers."""

    @property
    def query_params(self) -> QueryParams:
        params: QueryParams | None = getattr(self, "_query_params", None)
        if params is None:
            params = self._query_params = LeanQueryParams(evaluator.parse_query(self.scope["query_string"]))
        return params

    @property
    def headers(self) -> Headers:
        headers: Headers | None = getattr(self, "_headers", None)
        if headers is None:
            headers = self._headers = LeanHeaders(scope=self.scope)
        return headers


@dataclass(frozen=True)
class HotRoute:
    """One route the hot path answers: ``method`` on ``path`` (with ``param``: every path that
    starts with ``path``, the rest being the path parameter ``param``)."""

    method: str
    path: str
    parts: Callable[[Request], Awaitable[Parts]]
    shape: Shape
    param: str | None = None


class HotPath:
    """The hot routes' dispatch and answer, with the stack's load ``shedder`` and ``cors``
    middleware (None when turned off) applied as the stack would."""

    def __init__(
        self,
        edge: Edge,
        routes: Iterable[HotRoute],
        *,
        shedder: LoadShedder | None = None,
        cors: CORSMiddleware | None = None,
    ) -> None:
        self.edge = edge
        routes = list(routes)
        self.exact = {(r.method, r.path): r for r in routes if r.param is None}
        self.prefixed = [r for r in routes if r.param is not None]
        self.shedder = shedder
        self.cors = cors
        if shedder is not None and any(r.path in shedder.exempt for r in routes):
            raise ValueError("a hot route is exempt from load shedding: route it instead")

    def route(self, scope: Scope) -> HotRoute | None:
        method, path = scope["method"], scope["path"]
        found = self.exact.get((method, path))
        if found is not None:
            return found
        for r in self.prefixed:
            if r.method == method and path.startswith(r.path):
                assert r.param is not None
                scope["path_params"] = {r.param: path[len(r.path) :]}
                return r
        return None

    async def answer(self, route: HotRoute, scope: Scope, receive: Receive, send: Send) -> None:
        # CORS: a browser's request (with Origin) goes through the middleware's own ``send``;
        # without Origin (SDKs on servers, wrk) it only adds ``Vary: Origin``, done here on the
        # answer's header list, without a send wrapper or header objects.
        vary = False
        cors = self.cors
        if cors is not None:
            if has_origin(scope):
                send = cors_send(cors, scope, send)
            else:
                vary = True
        shedder = self.shedder
        if shedder is not None and scope["path"] not in shedder.exempt and not shedder.admit():
            await shedder.refuse(scope, vary_send(send) if vary else send)
            return
        edge = self.edge
        request = SdkRequest(scope, receive)
        edge.requests += 1
        try:
            status, headers, body = await route.parts(request)
        except EdgeError as err:
            if err.status >= 500:
                edge.errors += 1
            await send_error(vary_send(send) if vary else send, err, request_id(request), route.shape)
            return
        except Exception:
            edge.errors += 1
            log.exception("unhandled error on %s", scope["path"])
            failed = EdgeError(500, "internal error")
            await send_error(vary_send(send) if vary else send, failed, request_id(request), route.shape)
            return
        await send(
            {"type": "http.response.start", "status": status, "headers": with_vary(headers) if vary else headers}
        )
        await send({"type": "http.response.body", "body": body})


def has_origin(scope: Scope) -> bool:
    # A plain loop: any() over a generator costs more, on every hot request.
    for name, _ in scope["headers"]:  # noqa: SIM110
        if name == b"origin":
            return True
    return False


def with_vary(headers: RawHeaders) -> RawHeaders:
    """``headers`` with ``Vary: Origin`` as ``CORSMiddleware`` sets it on an answer to a request
    without Origin: appended, or merged into the answer's own Vary (none of the hot answers has one)."""
    for name, _ in headers:
        if name == b"vary":
            merged = MutableHeaders(raw=list(headers))
            merged["Vary"] = ", ".join([*merged.getlist("Vary"), "Origin"])
            return merged.raw
    return [*headers, VARY_ORIGIN]


def vary_send(send: Send) -> Send:
    """``send`` adding ``Vary: Origin`` to the answer (:func:`with_vary`): the error answers."""

    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = with_vary(message["headers"])
        await send(message)

    return tagged


def cors_send(cors: CORSMiddleware, scope: Scope, send: Send) -> Send:
    """``send`` through ``CORSMiddleware``'s own tagging, as the middleware wraps it."""
    request_headers = Headers(scope=scope)

    async def tagged(message: Message) -> None:
        await cors.send(message, send, request_headers)

    return tagged
