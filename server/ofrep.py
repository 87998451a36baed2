"""OpenFeature Remote Evaluation Protocol (OFREP) on the edge.

Routes (``service/openapi.yaml`` of open-feature/protocol, with the ADR-0008 event streams):

* ``POST /ofrep/v1/evaluate/flags/{key}``: one flag, for server (dynamic context) providers.
* ``POST /ofrep/v1/evaluate/flags``: every flag of the key's environment, for client (static
  context) providers; ``ETag`` on the answer and ``If-None-Match`` → ``304``.
* ``GET /ofrep/v1/configuration``: the provider configuration (name and capabilities).
* ``GET /ofrep/v1/stream``: server-sent ``refetchEvaluation`` events whenever the environment's
  snapshot changes; advertised to providers as ``eventStreams`` in both evaluation answers.

The request is ``{"context": {...}}``. The OFREP context is used as the nested Reflag context,
with ``targetingKey`` also placed at ``user.id`` when the context has no ``user.id``. A flag's
value is its boolean ``isEnabled``; ``variant`` is ``on``/``off`` or the key of the matched
config variant; ``metadata`` carries ``flagStateVersion``, ``targetingVersion`` and, with a
config, ``configKey`` and ``configPayload`` (the payload as JSON text, since metadata values
are limited to booleans, numbers and strings).

**DevCycle projects** (an environment whose snapshot carries DevCycle variables) are answered
as DevCycle's own OpenFeature providers answer: flags are DevCycle *variables*, by variable
key, with their typed values (String, Number, Boolean, JSON), bucketed by DevCycle's algorithm
(``Snapshot.devcycle_json``); ``variant`` is the key of the variation serving the variable,
``reason`` DevCycle's (``TARGETING_MATCH``, ``SPLIT``), ``metadata`` ``evalReasonDetails``,
``evalReasonTargetId``, ``featureKey``, ``variableType`` and ``flagStateVersion``. The context is
a flat OpenFeature context mapped to a DevCycle user as the providers map it
(``server.devcycle.users.from_openfeature``: ``targetingKey`` is the user id and is required,
TARGETING_KEY_MISSING otherwise). A variable the user is not served is FLAG_NOT_FOUND (404), as
DevCycle's bucketing API answers it; the bulk answer lists only the variables served. Features
hidden from the key's SDK kind (``sdkVisibility``) are left out.

The two evaluation routes are answered by the hot path on POST (``server.hot_path``; other
methods reach the routed handlers, for OFREP's 405). The evaluator writes the Reflag answers
(``Snapshot.ofrep_all`` / ``ofrep_flag``, ``evaluator/src/ofrep.rs``) and the DevCycle ones
(``Snapshot.devcycle_json`` / ``devcycle_ofrep_flag``, ``evaluator/src/devcycle/answer.rs``);
this module adds the members that end them (``eventStreams``, bulk ``metadata``), built once
per snapshot version and publishable key (:class:`TailCache`).

Errors keep OFREP's bodies, never the project envelope: ``{"key", "errorCode", "errorDetails"}``
for evaluation failures (400 PARSE_ERROR / INVALID_CONTEXT / TARGETING_KEY_MISSING / GENERAL,
404 FLAG_NOT_FOUND), ``{"errorCode", "errorDetails"}`` for a failed bulk request and for the
rest, with errorCode GENERAL (401, 403, 405, 408, 413, 429 with integer ``Retry-After``, 5xx).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

import evaluator
from contract.sdk_keys import Kind
from server.auth import PUBLISHABLE, bearer, sdk_key
from server.devcycle import users
from server.errors import GENERAL, EdgeError, read_limited, request_id
from server.etags import etag_of, not_modified
from server.ratelimit import RateLimiter
from server.service import Edge, Parts
from server.state import Environment, SdkKey
from server.streams import sse_response, version_stream

PARSE_ERROR = "PARSE_ERROR"
TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
INVALID_CONTEXT = "INVALID_CONTEXT"
FLAG_NOT_FOUND = "FLAG_NOT_FOUND"

SSE_INACTIVITY_DELAY = 120
# Every method reaches the handlers, so that a wrong one gets an OFREP 405 body.
ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

CONFIGURATION: dict[str, Any] = {
    "name": "flagedge",
    "capabilities": {
        "cacheInvalidation": {
            # minPollingInterval and unsupportedTypes are the names of earlier spec versions.
            "polling": {"enabled": True, "minPollingIntervalMs": 1000, "minPollingInterval": 1000},
        },
        "flagEvaluation": {"supportedTypes": ["boolean"], "unsupportedTypes": ["int", "float", "string", "object"]},
        # Server providers must not cache: a flag can change at any publish.
        "caching": {"enabled": False},
    },
}
CONFIGURATION_BODY = orjson.dumps(CONFIGURATION)
# A DevCycle project's flags are its variables, of every OpenFeature type.
DEVCYCLE_CONFIGURATION_BODY = orjson.dumps(
    {
        **CONFIGURATION,
        "capabilities": {
            **CONFIGURATION["capabilities"],
            "flagEvaluation": {
                "supportedTypes": ["boolean", "int", "float", "string", "object"],
                "unsupportedTypes": [],
            },
        },
    }
)


def ofrep_error(
    status: int,
    details: str,
    *,
    code: str = GENERAL,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> EdgeError:
    """An edge error answered as ``{"key"?, "errorCode", "errorDetails"}`` (GENERAL unless more is known)."""
    return EdgeError(status, details, headers=headers, ofrep_code=code, flag_key=key)


@dataclass(frozen=True)
class Context:
    """A request's context: the nested Reflag context and whether it names its subject."""

    reflag: dict[str, Any]
    has_targeting_key: bool


def reflag_context(context: dict[str, Any], key: str | None = None) -> Context:
    """The Reflag context of an OFREP context: ``targetingKey`` also at ``user.id`` unless set."""
    user = context.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if "targetingKey" not in context:
        return Context(context, user_id is not None)
    targeting_key = context["targetingKey"]
    if not isinstance(targeting_key, str):
        raise ofrep_error(400, "targetingKey must be a string", code=INVALID_CONTEXT, key=key)
    if user is not None and not isinstance(user, dict):
        raise ofrep_error(400, "user must be an object to carry targetingKey as user.id", code=INVALID_CONTEXT, key=key)
    if not targeting_key or user_id is not None:
        return Context(context, bool(targeting_key) or user_id is not None)
    return Context({**context, "user": {**(user or {}), "id": targeting_key}}, True)


def evaluate_one(env: Environment, key: str, context: Context, kind: Kind, tail: bytes = b"") -> bytes:
    """One flag's OFREP success body, written by the evaluator (``Snapshot.ofrep_flag``) with
    ``tail`` (further members, each with its leading comma) before its closing brace.

    EdgeError 404 for an unknown flag (or one ``sdkVisibility`` hides from keys of ``kind``), 400
    for a bad context or a flag that needs the targeting key the context lacks."""
    try:
        answer = env.snapshot.ofrep_flag(
            key,
            context.reflag,
            flag_state_version=env.version,
            has_targeting_key=context.has_targeting_key,
            tail=tail,
            key_kind=kind,
        )
    except evaluator.EvaluatorError as e:
        raise ofrep_error(400, f"evaluation failed: {e}", code=GENERAL, key=key) from None
    except (ValueError, TypeError) as e:
        raise ofrep_error(400, f"context cannot be evaluated: {e}", code=INVALID_CONTEXT, key=key) from None
    if answer is None:
        raise ofrep_error(404, f"flag {key!r} not found", code=FLAG_NOT_FOUND, key=key)
    ok, body = answer
    if not ok:
        # The failure object the bulk answer would list for this flag, answered as the error.
        failure: dict[str, str] = orjson.loads(body)
        raise ofrep_error(400, failure["errorDetails"], code=failure["errorCode"], key=key)
    return body


def evaluate_all(env: Environment, context: Context, kind: Kind, tail: bytes = b"") -> bytes:
    """The OFREP bulk body, written by the evaluator (``Snapshot.ofrep_all``): every flag of the
    environment in snapshot order, each a success or a TARGETING_KEY_MISSING failure, then
    ``tail`` (further members, each with its leading comma)."""
    try:
        return env.snapshot.ofrep_all(
            context.reflag,
            flag_state_version=env.version,
            has_targeting_key=context.has_targeting_key,
            tail=tail,
            key_kind=kind,
        )
    except evaluator.EvaluatorError as e:
        raise ofrep_error(400, f"evaluation failed: {e}", code=GENERAL) from None
    except (ValueError, TypeError) as e:
        raise ofrep_error(400, f"context cannot be evaluated: {e}", code=INVALID_CONTEXT) from None


# --- DevCycle projects -----------------------------------------------------------------------


def is_devcycle(env: Environment) -> bool:
    """OFREP serves this environment's DevCycle variables (it has some), not its Reflag flags."""
    return env.devcycle is not None and env.devcycle.has_variables


def devcycle_user(context: dict[str, Any], key: str | None = None) -> users.User:
    try:
        return users.from_openfeature(context)
    except users.MissingUserId as e:
        raise ofrep_error(400, e.message, code=TARGETING_KEY_MISSING, key=key) from None
    except users.Invalid as e:
        raise ofrep_error(400, e.message, code=INVALID_CONTEXT, key=key) from None


def _hidden(env: Environment, kind: Kind) -> frozenset[str] | None:
    return (env.devcycle.hidden.get(kind) or None) if env.devcycle is not None else None


def devcycle_one(env: Environment, kind: Kind, key: str, context: dict[str, Any], tail: bytes = b"") -> bytes:
    """One DevCycle variable's OFREP success body with ``tail`` before its closing brace; 404
    FLAG_NOT_FOUND when the user is not served it."""
    user = devcycle_user(context, key)
    body = env.snapshot.devcycle_ofrep_flag(
        user, now_ms(), key, _hidden(env, kind), flag_state_version=env.version, tail=tail
    )
    if body is None:
        raise ofrep_error(404, f"variable {key!r} is not served to this user", code=FLAG_NOT_FOUND, key=key)
    return body


def devcycle_all(env: Environment, kind: Kind, context: dict[str, Any]) -> bytes:
    """The ``flags`` array (JSON) of every DevCycle variable served to the context's user."""
    flags = env.snapshot.devcycle_json(devcycle_user(context), now_ms(), "ofrep", None, _hidden(env, kind))
    return flags if flags is not None else b"[]"


def now_ms() -> int:
    return int(time.time() * 1000)


async def read_context(request: Request, limit: int, key: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """The ``context`` of the request body, read to at most ``limit`` bytes within ``timeout`` seconds.

    An empty body is an empty context; malformed JSON or a body that is not an object is a
    PARSE_ERROR, a ``context`` that is not an object an INVALID_CONTEXT."""
    try:
        body = await read_limited(request, limit, timeout)
    except EdgeError as e:
        if e.status == 400:  # the client went away mid-body
            raise ofrep_error(400, e.message, code=PARSE_ERROR, key=key) from None
        raise
    if not body.strip():
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ofrep_error(400, f"request body is not valid JSON: {e}", code=PARSE_ERROR, key=key) from None
    if not isinstance(document, dict):
        raise ofrep_error(400, 'request body must be a JSON object: {"context": {...}}', code=PARSE_ERROR, key=key)
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise ofrep_error(400, "context must be a JSON object", code=INVALID_CONTEXT, key=key)
    return context


def _allow(request: Request, method: str) -> None:
    if request.method != method:
        raise ofrep_error(405, f"method not allowed; use {method}", headers={"Allow": method})


def event_streams(token: str | None, version: int, public_url: str) -> list[dict[str, Any]]:
    """``eventStreams`` (ADR-0008): this edge's change stream for the key's environment.

    The URL is absolute from the configured ``public_url``, else relative to the edge: never built
    from the request's Host header, which would let whoever sends the request (or poisons a cache
    in front of the edge) point other clients' streams at their own server. A publishable key
    (``token``) rides in it, as browsers' EventSource cannot send headers; a secret key never
    does (it is sent as a header)."""
    params = {"since": str(version)}
    if token:
        params["publishableKey"] = token
    url = f"{public_url.rstrip('/')}/ofrep/v1/stream?{urlencode(params)}"
    return [{"type": "sse", "url": url, "inactivityDelaySec": SSE_INACTIVITY_DELAY}]


@dataclass(frozen=True)
class Tails:
    """The members that end every evaluation answer of one snapshot version for one key token,
    each with its leading comma: ``eventStreams`` (single flag), and ``metadata`` with it (bulk)."""

    single: bytes
    bulk: bytes


class TailCache:
    """:class:`Tails` per (snapshot version, publishable key), built once rather than per request
    (the stream URL, its query encoding and the JSON around it)."""

    LIMIT = 4096

    def __init__(self, public_url: str) -> None:
        self.public_url = public_url
        self._tails: dict[tuple[int, str | None], Tails] = {}

    def get(self, request: Request, key: SdkKey, version: int) -> Tails:
        # Only a publishable key rides in the URL; sdk_key() has already checked it is one of the
        # view's keys, so the cache holds at most the live keys of the live versions.
        token = (bearer(request) or request.headers.get("x-api-key")) if key.kind in PUBLISHABLE else None
        hit = self._tails.get((version, token))
        if hit is not None:
            return hit
        streams = b',"eventStreams":' + orjson.dumps(event_streams(token, version, self.public_url))
        tails = Tails(streams, b',"metadata":{"flagStateVersion":%d}' % version + streams)
        if len(self._tails) >= self.LIMIT:
            self._tails.clear()
        self._tails[(version, token)] = tails
        return tails


def _event_id(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ofrep_error(400, f"{name} must be a non-negative integer")
    return int(raw)


def _refetch_event(version: int) -> bytes:
    data = orjson.dumps({"type": "refetchEvaluation", "etag": f'"{version}"', "flagStateVersion": version})
    return f"id: {version}\nevent: message\ndata: ".encode() + data + b"\n\n"


def _answer(request: Request, body: bytes, etag: str) -> Parts:
    return (
        200,
        [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"etag", etag.encode()),
            (b"x-request-id", request_id(request).encode()),
        ],
        body,
    )


def _cached(request: Request, body: bytes, etag: str | None = None) -> Parts:
    """``body`` with its ETag (``etag`` when known), or ``304`` when ``If-None-Match`` names it."""
    etag = etag or etag_of(body)
    if not_modified(request.headers.get("if-none-match"), etag):
        return 304, [(b"etag", etag.encode()), (b"x-request-id", request_id(request).encode())], b""
    return _answer(request, body, etag)


def _routed(method: str, parts: Callable[[Request], Awaitable[Parts]]) -> Callable[[Request], Awaitable[Response]]:
    """The routed handler of a route whose ``method`` the hot path answers: any other method
    gets OFREP's 405 (a ``method`` request reaches it only without the hot path)."""

    async def run(request: Request) -> Response:
        _allow(request, method)
        status, headers, body = await parts(request)
        response = Response(body, status_code=status)
        response.raw_headers = headers
        return response

    return run


CONFIGURATION_ETAG = etag_of(CONFIGURATION_BODY)
DEVCYCLE_CONFIGURATION_ETAG = etag_of(DEVCYCLE_CONFIGURATION_BODY)


class OfrepApi:
    """The OFREP handlers of one edge worker (their rate limiter per SDK key and answer tails
    with them; a refused evaluation is answered in OFREP's body, errorCode GENERAL).

    The evaluation routes are answered by the hot path on POST (``flag_parts``, ``flags_parts``:
    ``server.hot_path``); every other method reaches the routed handlers (``ANY_METHOD`` in the
    route table), so that a wrong one gets an OFREP 405 body. Errors are raised as EdgeError and
    answered in OFREP's shape by the hot path or the route guard."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.limiter = RateLimiter(edge.settings.ofrep_rate_limit)
        self.tails = TailCache(edge.settings.public_url)
        self.evaluate_flag = _routed("POST", self.flag_parts)
        self.evaluate_flags = _routed("POST", self.flags_parts)

    async def flag_parts(self, request: Request) -> Parts:
        """``POST /ofrep/v1/evaluate/flags/{key}``: one flag, with an ETag like every
        snapshot-dependent answer of the edge (the spec has no 304 here)."""
        edge = self.edge
        key: str = request.path_params["key"]
        view = edge.state.view
        sdk = sdk_key(view, request, allow_query=False)
        env = edge.environment(view, sdk.environment)
        self.limiter.check(sdk.key_hash)
        raw = await read_context(request, edge.settings.max_body_bytes, key, edge.settings.body_timeout)
        tail = self.tails.get(request, sdk, env.version).single
        if is_devcycle(env):
            body = devcycle_one(env, sdk.kind, key, raw, tail)
        else:
            body = evaluate_one(env, key, reflag_context(raw, key), sdk.kind, tail)
        return _answer(request, body, etag_of(body))

    async def flags_parts(self, request: Request) -> Parts:
        """``POST /ofrep/v1/evaluate/flags``: every flag, ETag and ``If-None-Match`` → 304."""
        edge = self.edge
        view = edge.state.view
        sdk = sdk_key(view, request, allow_query=False)
        env = edge.environment(view, sdk.environment)
        self.limiter.check(sdk.key_hash)
        raw = await read_context(request, edge.settings.max_body_bytes, timeout=edge.settings.body_timeout)
        tail = self.tails.get(request, sdk, env.version).bulk
        if is_devcycle(env):
            return _cached(request, b'{"flags":' + devcycle_all(env, sdk.kind, raw) + tail + b"}")
        return _cached(request, evaluate_all(env, reflag_context(raw), sdk.kind, tail))

    async def configuration(self, request: Request) -> Response:
        _allow(request, "GET")
        view = self.edge.state.view
        sdk = sdk_key(view, request, allow_query=False)
        env = view.environments.get(sdk.environment)
        if env is not None and is_devcycle(env):
            parts = _cached(request, DEVCYCLE_CONFIGURATION_BODY, DEVCYCLE_CONFIGURATION_ETAG)
        else:
            parts = _cached(request, CONFIGURATION_BODY, CONFIGURATION_ETAG)
        status, headers, body = parts
        response = Response(body, status_code=status)
        response.raw_headers = headers
        return response

    async def stream(self, request: Request) -> Response:
        """SSE: a ``refetchEvaluation`` event each time the key's environment gets a new version.

        The client's last seen version is ``Last-Event-ID`` (on reconnect) or ``since`` (from
        ``eventStreams``); when the environment is already past it the first event comes at
        once. The stream ends when the key is revoked or the environment goes away
        (:func:`server.streams.version_stream`)."""
        _allow(request, "GET")
        edge = self.edge
        view = edge.state.view
        sdk = sdk_key(view, request)
        seen = _event_id(request.headers.get("last-event-id"), "Last-Event-ID")
        if seen is None:
            seen = _event_id(request.query_params.get("since"), "since")
        edge.environment(view, sdk.environment)
        return sse_response(version_stream(edge.state, sdk, seen, _refetch_event))
