"""The edge ASGI application: SDK reads answered from the LMDB snapshot by the Rust evaluator."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from server.auth import sdk_key
from server.errors import EdgeError, error_response, request_id
from server.etags import etag_of, not_modified
from server.events import events_routes
from server.hot_path import HotPath
from server.ofrep import ofrep_routes
from server.overload import LoadShedder
from server.overload import stats as overload_stats
from server.release import release_routes
from server.settings import EdgeSettings, from_environ
from server.state import EdgeState, Environment, View

log = logging.getLogger("server")
Endpoint = Callable[[Request], Awaitable[Response]]
JSON_TYPE = "application/json"
RawHeaders = list[tuple[bytes, bytes]]
SSE_HEARTBEAT = 15.0


def json_response(
    body: bytes, request: Request, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        body, status_code=status, media_type=JSON_TYPE, headers={"X-Request-Id": request_id(request), **(headers or {})}
    )


def cached_json(request: Request, body: bytes, cache_control: str = "no-cache") -> Response:
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if not_modified(request.headers.get("if-none-match"), etag, wildcard=False):
        return Response(status_code=304, headers={**headers, "X-Request-Id": request_id(request)})
    return json_response(body, request, headers=headers)


class Edge:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.state = EdgeState(settings.data_dir, settings.poll_interval)
        self.started = time.time()
        self.requests = 0
        self.errors = 0

    def environment(self, view: View, env_id: str) -> Environment:
        env = view.environments.get(env_id)
        if env is None:
            raise EdgeError(503, "this environment's snapshot is not loaded yet", headers={"Retry-After": "1"})
        return env

    def context_pairs(self, request: Request) -> list[tuple[str, str]]:
        if len(request.scope.get("query_string", b"")) > self.settings.max_query_bytes:
            raise EdgeError(400, f"query string longer than {self.settings.max_query_bytes} bytes", field="query")
        pairs = [(k[8:], v) for k, v in request.query_params.multi_items() if k.startswith("context.")]
        if len(pairs) > self.settings.max_context_params:
            raise EdgeError(400, f"more than {self.settings.max_context_params} context parameters", field="context")
        return pairs

    async def view_for(self, request: Request) -> View:
        wait = request.query_params.get("waitForVersion")
        if wait is None:
            return self.state.view
        # isascii: str.isdigit() is also true for '²', which int() refuses (a 500).
        if not (wait.isascii() and wait.isdigit()) or len(wait) > 18:
            raise EdgeError(400, "waitForVersion must be a non-negative integer", field="waitForVersion")
        return await self.state.wait_for(int(wait), self.settings.wait_for_version_max)

    async def features(self, request: Request) -> Response:
        view = await self.view_for(request)
        key = sdk_key(view, request, secret_only=True, allow_query=False)
        env = self.environment(view, key.environment)
        return cached_json(request, env.definitions)

    async def evaluated_parts(self, request: Request, enabled_only: bool) -> tuple[int, RawHeaders, bytes]:
        """Status, raw headers and body of ``/features/evaluated`` (or ``/enabled``)."""
        view = await self.view_for(request)
        key = sdk_key(view, request)
        env = self.environment(view, key.environment)
        pairs = self.context_pairs(request)
        debug = request.query_params.get("debug") in ("true", "1")
        features = env.snapshot.evaluate_all_flat(pairs, enabled_only=enabled_only, debug=debug)
        body = b'{"success":true,"features":' + features + b',"flagStateVersion":' + str(env.version).encode() + b"}"
        etag = etag_of(body)
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", request_id(request).encode()),
        ]
        if not_modified(request.headers.get("if-none-match"), etag, wildcard=False):
            return 304, headers, b""
        return 200, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *headers], body

    async def evaluated(self, request: Request, enabled_only: bool) -> Response:
        # Reached only by HEAD: server.hot_path answers GET before routing.
        status, headers, body = await self.evaluated_parts(request, enabled_only)
        response = Response(body, status_code=status)
        response.raw_headers = headers
        return response

    async def feature_evaluated(self, request: Request) -> Response:
        return await self.evaluated(request, enabled_only=False)

    async def feature_enabled(self, request: Request) -> Response:
        return await self.evaluated(request, enabled_only=True)

    async def stream(self, request: Request) -> Response:
        """Server-sent events: ``{"flagStateVersion": N}`` whenever this environment changes."""
        view = self.state.view
        key = sdk_key(view, request)
        env_id = key.environment
        self.environment(view, env_id)
        last = request.headers.get("last-event-id", "")
        seen = int(last) if last.isascii() and last.isdigit() and len(last) < 19 else -1

        async def events() -> AsyncIterator[bytes]:
            nonlocal seen
            yield b"retry: 2000\n\n"
            while True:
                current = self.state.view.environments.get(env_id)
                if current is None:
                    return
                if current.version != seen:
                    seen = current.version
                    yield (
                        f"id: {seen}\nevent: flagStateVersion\ndata: ".encode()
                        + orjson.dumps({"flagStateVersion": seen})
                        + b"\n\n"
                    )
                    continue
                # No is_disconnected() poll: under granian it can end a live stream early, and
                # Starlette already stops this generator when the client goes away.
                before = self.state.view.version
                view_after = await self.state.wait_change(before, SSE_HEARTBEAT)
                if view_after.version == before:
                    yield b": keep-alive\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Request-Id": request_id(request)},
        )

    async def sdk_config(self, request: Request) -> Response:
        view = self.state.view
        project_key = (
            request.query_params.get("key")
            or request.query_params.get("projectKey")
            or request.headers.get("x-project-key")
        )
        if not project_key:
            raise EdgeError(401, "a project key is required (?key=)", field="key")
        widget = view.widgets.get(project_key)
        if widget is None:
            raise EdgeError(404, "no widget config for this project key")
        body = orjson.dumps(
            {
                "projectKey": project_key,
                "settings": widget.get("settings", {}),
                "version": widget.get("version"),
                "updatedAt": widget.get("updatedAt"),
            }
        )
        return cached_json(request, body, cache_control="public, max-age=30, stale-while-revalidate=60")

    async def health(self, request: Request) -> Response:
        return json_response(b'{"status":"ok"}', request)

    async def ready(self, request: Request) -> Response:
        view = self.state.view
        not_ready = sorted(view.problems)
        ok = self.state.loaded and view.version > 0
        body = orjson.dumps(
            {
                "ready": ok and not not_ready,
                "version": view.version,
                "environments": len(view.environments),
                "notReady": not_ready,
                "problems": view.problems,
            }
        )
        return json_response(body, request, status=200 if ok and not not_ready else 503)

    async def metrics(self, request: Request) -> Response:
        view = self.state.view
        lines = [
            "# TYPE flagedge_snapshot_version gauge",
            f"flagedge_snapshot_version {view.version}",
            "# TYPE flagedge_environments gauge",
            f"flagedge_environments {len(view.environments)}",
            "# TYPE flagedge_environments_not_ready gauge",
            f"flagedge_environments_not_ready {len(view.problems)}",
            "# TYPE flagedge_requests_total counter",
            f"flagedge_requests_total {self.requests}",
            "# TYPE flagedge_errors_total counter",
            f"flagedge_errors_total {self.errors}",
            "# TYPE flagedge_requests_shed_total counter",
            f"flagedge_requests_shed_total {overload_stats.shed}",
            "# TYPE flagedge_uptime_seconds gauge",
            f"flagedge_uptime_seconds {time.time() - self.started:.0f}",
        ]
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    def guard(self, handler: Endpoint) -> Endpoint:
        async def run(request: Request) -> Response:
            self.requests += 1
            try:
                return await handler(request)
            except EdgeError as err:
                if err.status >= 500:
                    self.errors += 1
                return error_response(request, err)
            except Exception:
                self.errors += 1
                log.exception("unhandled error on %s", request.url.path)
                return error_response(request, EdgeError(500, "internal error"))

        return run


def create_app(settings: EdgeSettings) -> Starlette:
    edge = Edge(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # LMDB is opened here, after granian forked this worker.
        await edge.state.start()
        log.info("edge worker serving snapshot version %d from %s", edge.state.view.version, settings.data_dir)
        yield
        await edge.state.stop()

    g = edge.guard
    routes = [
        Route("/features", g(edge.features), methods=["GET"]),
        Route("/features/evaluated", g(edge.feature_evaluated), methods=["GET"]),
        Route("/features/enabled", g(edge.feature_enabled), methods=["GET"]),
        Route("/features/stream", g(edge.stream), methods=["GET"]),
        Route("/sdk/config", g(edge.sdk_config), methods=["GET"]),
        Route("/health", g(edge.health), methods=["GET"]),
        Route("/ready", g(edge.ready), methods=["GET"]),
        Route("/metrics", g(edge.metrics), methods=["GET"]),
        *ofrep_routes(edge, g),
        *release_routes(edge, g),
        *events_routes(edge, g),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error_response(
            request, EdgeError(status, {404: "no such route", 405: "method not allowed"}.get(status, "request failed"))
        )

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    # First added = innermost: load shedding and CORS below still wrap the SDK polling routes.
    app.add_middleware(HotPath, edge=edge)
    if settings.shed_queue_delay > 0:
        # Added before CORS (the outer one), so a shed 503 carries the CORS headers as well.
        app.add_middleware(LoadShedder, max_delay=settings.shed_queue_delay)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        # Browser SDKs read /features/evaluated, post events and use OFREP cross-origin. No
        # credentials: keys travel in the query or the Authorization header, never cookies.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-None-Match",
                "Last-Event-ID",
                "X-API-Key",
                "X-Request-Id",
                "x-dimensions",
                "x-dimension",
            ],
            expose_headers=["ETag", "X-Request-Id", "Retry-After"],
            max_age=600,
        )
    app.state.edge = edge
    return app


def app_from_env() -> Starlette:
    return create_app(from_environ())
