"""The evaluation routes answered without Starlette's router, route wrappers, exception
middleware and Response objects: the SDK polling routes (``GET /features/evaluated`` and
``/features/enabled``, DevCycle's SDK config) and OFREP evaluation (``POST
/ofrep/v1/evaluate/flags`` and ``/ofrep/v1/evaluate/flags/{key}``).

They are nearly all of an edge's traffic, and on them that machinery cost more per request than
evaluating the flags. Which paths and methods, and the answer parts, come from the route table
(``server.routes``: the routes declared ``hot``); the routed path (other methods) answers from
the same parts function, so the checks and the answer are the same code; only the dispatch is
shorter. A route whose path ends in a ``{name:path}`` parameter is matched by its prefix, the rest
of the path being the parameter (as Starlette's ``path`` convertor takes it).
It sits inside the CORS and load-shedding middleware, so those still apply; anything else
passes through untouched. Errors are answered in the route's shape (``server.errors.render``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

import evaluator
from server.errors import EdgeError, Shape, request_id, send_error
from server.service import Edge, Parts

log = logging.getLogger("server")


class SdkRequest(Request):
    """A Request whose query string is split in Rust (``evaluator.parse_query``): the same pairs
    as Starlette's ``QueryParams``, at a fraction of urllib's cost for ten context attributes."""

    @property
    def query_params(self) -> QueryParams:
        params: QueryParams | None = getattr(self, "_query_params", None)
        if params is None:
            params = self._query_params = QueryParams(evaluator.parse_query(self.scope["query_string"]))
        return params


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
    def __init__(self, app: ASGIApp, edge: Edge, routes: Iterable[HotRoute]) -> None:
        self.app = app
        self.edge = edge
        routes = list(routes)
        self.exact = {(r.method, r.path): r for r in routes if r.param is None}
        self.prefixed = [r for r in routes if r.param is not None]

    def route(self, scope: Scope) -> HotRoute | None:
        if scope["type"] != "http":
            return None
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        edge = self.edge
        request = SdkRequest(scope, receive)
        edge.requests += 1
        try:
            status, headers, body = await route.parts(request)
        except EdgeError as err:
            if err.status >= 500:
                edge.errors += 1
            await send_error(send, err, request_id(request), route.shape)
            return
        except Exception:
            edge.errors += 1
            log.exception("unhandled error on %s", scope["path"])
            await send_error(send, EdgeError(500, "internal error"), request_id(request), route.shape)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
