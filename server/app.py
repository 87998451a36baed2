"""The edge's ASGI wiring: the route table (``server.routes``) onto Starlette, around the service
(``server.service.Edge``).

From the inside out: the Starlette router (every route of the table, each behind :func:`guard`,
which counts requests and answers every error in the route's shape; 404/405 in the shape of the
path's route, the envelope for no route), load shedding (never for the table's ``shed=False``
routes), CORS (allowing the headers the table's routes declare). The hot path (the table's
``hot`` routes) answers before all of it (:class:`EdgeApp`), shedding and tagging with the same
load shedder and CORS middleware. ``granian`` and the tests build it with :func:`app_from_env` / :func:`create_app`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from contract.lifecycle import die_with_master
from server.errors import EdgeError, Shape, error_response, request_id
from server.evaluation_counts import EvaluationCounts
from server.hot_path import HotPath
from server.overload import LoadShedder
from server.routes import CORS_ALLOW_HEADERS, NEVER_SHED, ROUTES, Endpoint, Handlers, hot_routes, shape_for
from server.service import Edge
from server.settings import EdgeSettings, from_environ

log = logging.getLogger("server")


def guard(edge: Edge, handler: Endpoint, shape: Shape) -> Endpoint:
    """Count the request, answer an error in ``shape``, tag the answer with its request id."""

    async def run(request: Request) -> Response:
        edge.requests += 1
        try:
            response = await handler(request)
        except EdgeError as err:
            if err.status >= 500:
                edge.errors += 1
            return error_response(request, err, shape)
        except Exception:
            edge.errors += 1
            log.exception("unhandled error on %s", request.url.path)
            return error_response(request, EdgeError(500, "internal error"), shape)
        if "x-request-id" not in response.headers:
            response.headers["X-Request-Id"] = request_id(request)
        return response

    return run


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (a route, not this method)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "no such route", 405: "method not allowed"}.get(status, "request failed")
    return error_response(request, EdgeError(status, message), shape_for(request.url.path))


class EdgeApp(Starlette):
    """Starlette, with the hot routes (``server.hot_path``) answered before its middleware stack."""

    hot: HotPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if hot is not None and scope["type"] == "http":
            route = hot.route(scope)
            if route is not None:
                await hot.answer(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


Wired = LoadShedder | CORSMiddleware


async def _unwired(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("middleware called before Starlette built its stack")


def wrapping(app: ASGIApp, middleware: Wired) -> ASGIApp:
    """Starlette's middleware factory for an instance built beforehand (the hot path uses the
    same one): it wraps ``app``."""
    middleware.app = app
    return middleware


def create_app(settings: EdgeSettings) -> EdgeApp:
    edge = Edge(settings)
    handlers = Handlers.build(edge)
    counts = EvaluationCounts(edge.state, handlers.events, settings.evaluation_counts_interval)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # LMDB is opened here, after granian forked this worker.
        await edge.state.start()
        log.info("edge worker serving snapshot version %d from %s", edge.state.view.version, settings.data_dir)
        counts.start()
        yield
        await counts.stop()
        await edge.state.stop()

    routes = [
        Route(api.path, guard(edge, api.handler(handlers), api.shape), methods=list(api.methods)) for api in ROUTES
    ]
    app = EdgeApp(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    # First added = innermost. The hot path answers before this stack, with the same instances.
    shedder: LoadShedder | None = None
    cors: CORSMiddleware | None = None
    if settings.shed_queue_delay > 0:
        # Added before CORS (the outer one), so a shed 503 carries the CORS headers as well.
        shedder = LoadShedder(_unwired, max_delay=settings.shed_queue_delay, exempt=NEVER_SHED, shape_for=shape_for)
        app.add_middleware(wrapping, middleware=shedder)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        # Browser SDKs read /features/evaluated, post events and use OFREP cross-origin. No
        # credentials: keys travel in the query or the Authorization header, never cookies.
        cors = CORSMiddleware(
            _unwired,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=list(CORS_ALLOW_HEADERS),
            expose_headers=["ETag", "X-Request-Id", "Retry-After"],
            max_age=600,
        )
        app.add_middleware(wrapping, middleware=cors)
    app.hot = HotPath(edge, hot_routes(handlers), shedder=shedder, cors=cors)
    app.state.edge = edge
    return app


def app_from_env() -> EdgeApp:
    """Factory for granian workers (called in the worker, after the fork)."""
    die_with_master()
    return create_app(from_environ())
