"""The edge service: one worker's state, the SDK key and environment checks every route shares,
Reflag flag evaluation, the widget config and the probes.

The service knows nothing of routing: ``server.routes`` declares which path reaches which of
these handlers and in which error shape; ``server.app`` wires them into Starlette. Failures are
raised as :class:`server.errors.EdgeError` and answered by the wiring in the route's shape.

The state is the immutable view swap of :class:`server.state.EdgeState`: each handler reads
``state.view`` once and answers from that view, whatever is published meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.auth import not_loaded, sdk_key, unknown
from server.definitions import features_body
from server.errors import EdgeError, request_id
from server.etags import etag_of, not_modified
from server.overload import stats as overload_stats
from server.settings import EdgeSettings
from server.state import EdgeState, Environment, View
from server.streams import sse_response, version_stream

JSON_TYPE = "application/json"
RawHeaders = list[tuple[bytes, bytes]]
# Status, raw headers and body of an answer the hot path sends without a Response object.
Parts = tuple[int, RawHeaders, bytes]


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


def flag_state_event(version: int) -> bytes:
    """A ``/features/stream`` event: ``{"flagStateVersion": N}``."""
    return (
        f"id: {version}\nevent: flagStateVersion\ndata: ".encode()
        + orjson.dumps({"flagStateVersion": version})
        + b"\n\n"
    )


def flags_updated_event(version: int) -> bytes:
    """A Reflag SDK push message (``/sse/server``, ``/sse/client``): a default ``message`` event
    (no ``event:`` line) whose data is ``{"name":"flags-updated","data":{"flagStateVersion":N}}``.
    The node SDK (``flag-updates-sse.js``) acts on nothing else; the browser SDK's pubsub handler
    reads the same message and refreshes with ``waitForVersion=N``."""
    data = orjson.dumps({"name": "flags-updated", "data": {"flagStateVersion": version}})
    return f"id: {version}\ndata: ".encode() + data + b"\n\n"


def last_event_id(request: Request) -> int:
    """The version a reconnecting EventSource last saw (``Last-Event-ID``); -1 without one, so
    that the current version is sent at once: a client that connects just after its first fetch
    then cannot miss a change made in between (the SDKs skip a version they already have)."""
    last = request.headers.get("last-event-id", "")
    return int(last) if last.isascii() and last.isdigit() and len(last) < 19 else -1


class Edge:
    """One worker's service: settings, snapshot state and request counters."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.state = EdgeState(settings.data_dir, settings.poll_interval)
        self.started = time.time()
        self.requests = 0
        self.errors = 0
        # More /metrics lines, from the per-API state built on this service (the event intake).
        self.metric_sources: list[Callable[[], list[str]]] = []

    # --- checks shared by every route -------------------------------------------------------

    def environment(self, view: View, env_id: str) -> Environment:
        env = view.environments.get(env_id)
        if env is None:
            raise not_loaded()
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

    # --- Reflag -----------------------------------------------------------------------------

    async def features(self, request: Request) -> Response:
        view = await self.view_for(request)
        # The full flag definitions: a secret key, from the Authorization header only (§4).
        key = sdk_key(view, request, secret_only=True, allow_query=False, bearer_only=True)
        env = self.environment(view, key.environment)
        return cached_json(request, await features_body(self.state, env))

    async def evaluated_parts(self, enabled_only: bool, request: Request) -> Parts:
        """``/features/evaluated`` (or ``/enabled``): the hot path sends these parts as they are,
        the routed path (HEAD) wraps them in a Response (``enabled_only`` comes first so that
        ``functools.partial`` can bind it)."""
        view = await self.view_for(request)
        key = sdk_key(view, request)
        env = self.environment(view, key.environment)
        pairs = self.context_pairs(request)
        debug = request.query_params.get("debug") in ("true", "1")
        # The key's kind: flags `sdkVisibility` hides from it are neither evaluated nor sent.
        features = env.snapshot.evaluate_all_flat(pairs, enabled_only=enabled_only, debug=debug, key_kind=key.kind)
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

    async def stream(self, request: Request) -> Response:
        """Our own server-sent events (``/features/stream``): ``event: flagStateVersion`` with
        ``{"flagStateVersion": N}`` whenever this environment changes; the first event at once
        (unless ``Last-Event-ID`` names the current version)."""
        return self._version_events(request, flag_state_event)

    async def sse_server(self, request: Request) -> Response:
        """``/sse/server``: the node SDK's push mode (its default). The SDK sends its secret key
        as ``Authorization: Bearer`` (as for ``GET /features``, whose refresh this stream
        triggers), never in the query."""
        return self._version_events(request, flags_updated_event, secret_only=True, allow_query=False, bearer_only=True)

    async def sse_client(self, request: Request) -> Response:
        """``/sse/client``: the browser SDK's pubsub (live flag updates, and the channel its
        auto-feedback listens on). EventSource sends no headers: the publishable key comes as
        ``?publishableKey=``. The SDK also sends ``context`` (JSON of user/company/other) for
        per-user feedback prompts; the edge has no prompts to send, so it only announces flag
        versions, which are per environment, and ignores ``context``."""
        return self._version_events(request, flags_updated_event)

    def _version_events(self, request: Request, format_event: Callable[[int], bytes], **key_rules: bool) -> Response:
        """A stream of ``format_event`` for the environment of the request's key, checked by
        ``key_rules`` (:func:`server.auth.sdk_key`'s)."""
        view = self.state.view
        key = sdk_key(view, request, **key_rules)
        self.environment(view, key.environment)
        events = version_stream(self.state, key, last_event_id(request), format_event)
        return sse_response(events, {"X-Request-Id": request_id(request)})

    # --- Releaseo widget --------------------------------------------------------------------

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
            raise unknown(view, 404, "no widget config for this project key")
        body = orjson.dumps(
            {
                "projectKey": project_key,
                "settings": widget.get("settings", {}),
                "version": widget.get("version"),
                "updatedAt": widget.get("updatedAt"),
            }
        )
        # no-cache: browsers and CDNs may keep the answer but revalidate it on every load (304
        # while the ETag matches), so a changed or removed widget is seen on the next load.
        return cached_json(request, body)

    # --- probes -----------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return json_response(b'{"status":"ok"}', request)

    async def ready(self, request: Request) -> Response:
        view = self.state.view
        problems = view.problems
        failure = self.state.failure
        if failure is not None:
            # The store itself cannot be read (not one damaged value): named as "store" while the
            # last good view, if any, keeps being served; cleared by the next refresh that works.
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(failure.since))
            problems = {**problems, "store": f"{failure.error} ({failure.failures} refreshes failed since {since})"}
        not_ready = sorted(problems)
        ok = view.loaded
        body = orjson.dumps(
            {
                "ready": ok and not not_ready,
                "version": view.version,
                "environments": len(view.environments),
                "notReady": not_ready,
                "problems": problems,
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
            "# TYPE flagedge_snapshot_store_unreadable gauge",
            f"flagedge_snapshot_store_unreadable {int(self.state.failure is not None)}",
            "# TYPE flagedge_requests_total counter",
            f"flagedge_requests_total {self.requests}",
            "# TYPE flagedge_errors_total counter",
            f"flagedge_errors_total {self.errors}",
            "# TYPE flagedge_requests_shed_total counter",
            f"flagedge_requests_shed_total {overload_stats.shed}",
            "# TYPE flagedge_uptime_seconds gauge",
            f"flagedge_uptime_seconds {time.time() - self.started:.0f}",
        ]
        for source in self.metric_sources:
            lines += source()
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
