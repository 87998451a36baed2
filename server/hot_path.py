"""The SDK polling routes, ``GET /features/evaluated`` and ``/features/enabled``, answered
without Starlette's router, route wrappers, exception middleware and Response objects.

They are nearly all of an edge's traffic, and on them that machinery cost more per request than
evaluating the flags. Which paths, and the answer parts, come from the route table
(``server.routes``: the routes declared ``hot``); the routed path (HEAD) answers from the same
parts function, so the checks and the answer are the same code; only the dispatch is shorter.
It sits inside the CORS and load-shedding middleware, so those still apply; anything else
passes through untouched. Errors are answered in the route's shape (``server.errors.render``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

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


class HotPath:
    def __init__(
        self,
        app: ASGIApp,
        edge: Edge,
        routes: Mapping[str, Callable[[Request], Awaitable[Parts]]],
        shapes: Mapping[str, Shape],
    ) -> None:
        self.app = app
        self.edge = edge
        self.routes = dict(routes)
        self.shapes = dict(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if parts is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        edge = self.edge
        request = SdkRequest(scope, receive)
        edge.requests += 1
        try:
            status, headers, body = await parts(request)
        except EdgeError as err:
            if err.status >= 500:
                edge.errors += 1
            await send_error(send, err, request_id(request), self.shapes[scope["path"]])
            return
        except Exception:
            edge.errors += 1
            log.exception("unhandled error on %s", scope["path"])
            await send_error(send, EdgeError(500, "internal error"), request_id(request), self.shapes[scope["path"]])
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
