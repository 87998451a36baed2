"""The SDK polling routes, ``GET /features/evaluated`` and ``/features/enabled``, answered
without Starlette's router, route wrappers, exception middleware and Response objects.

They are nearly all of an edge's traffic, and on them that machinery cost more per request than
evaluating the flags. The checks and the answer are the same code as the routes'
(:meth:`server.app.Edge.evaluated_parts`); only the dispatch is shorter. It sits inside the CORS
and load-shedding middleware, so those still apply; anything else passes through untouched.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

import evaluator
from server.errors import EdgeError, error_response

if TYPE_CHECKING:
    from server.app import Edge

log = logging.getLogger("server")

# Path → enabled_only.
ROUTES = {"/features/evaluated": False, "/features/enabled": True}


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
    def __init__(self, app: ASGIApp, edge: Edge) -> None:
        self.app = app
        self.edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        enabled_only = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if enabled_only is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        edge = self.edge
        request = SdkRequest(scope, receive)
        edge.requests += 1
        try:
            status, headers, body = await edge.evaluated_parts(request, enabled_only)
        except EdgeError as err:
            if err.status >= 500:
                edge.errors += 1
            await error_response(request, err)(scope, receive, send)
            return
        except Exception:
            edge.errors += 1
            log.exception("unhandled error on %s", scope["path"])
            await error_response(request, EdgeError(500, "internal error"))(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
