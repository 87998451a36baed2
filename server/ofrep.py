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

Errors keep OFREP's bodies, never the project envelope: ``{"key", "errorCode", "errorDetails"}``
for evaluation failures (400 PARSE_ERROR / INVALID_CONTEXT / TARGETING_KEY_MISSING / GENERAL,
404 FLAG_NOT_FOUND), ``{"errorCode", "errorDetails"}`` for a failed bulk request and for the
rest, with errorCode GENERAL (401, 403, 405, 408, 413, 429 with integer ``Retry-After``, 5xx).
"""

from __future__ import annotations

import time
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
from server.errors import GENERAL, EdgeError, read_limited
from server.etags import etag_of, not_modified
from server.ratelimit import RateLimiter
from server.service import Edge
from server.state import Environment, SdkKey
from server.streams import sse_response, version_stream

JSON_TYPE = "application/json"

PARSE_ERROR = "PARSE_ERROR"
TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
INVALID_CONTEXT = "INVALID_CONTEXT"
FLAG_NOT_FOUND = "FLAG_NOT_FOUND"

# The context field OFREP's targetingKey stands for, and the flags that cannot be evaluated
# without it report missing.
TARGETING_FIELD = "user.id"
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
class FlagShape:
    """What of a flag's OFREP reason its rules fix, whatever the context."""

    # DISABLED (no rules) or STATIC (only constant rules); None when the context decides.
    fixed: str | None
    # Per rule: the filter contains a percentage rollout (SPLIT when it is the first match).
    rollout: tuple[bool, ...]


def _has_rollout(node: Any) -> bool:
    """The evaluator's ``Filter::has_rollout`` over the filter's JSON (depth is bounded by compile)."""
    if not isinstance(node, dict):
        return False
    kind = node.get("type")
    if kind == "rolloutPercentage":
        return True
    if kind == "group":
        filters = node.get("filters")
        return isinstance(filters, list) and any(_has_rollout(f) for f in filters)
    if kind == "negation":
        return _has_rollout(node.get("filter"))
    return False


def flag_shapes(definitions: list[Any], devcycle_splits: list[tuple[str, list[bool]]]) -> dict[str, FlagShape]:
    """The shape of every flag of a snapshot's definitions (``Snapshot.definitions_json()``).

    A flag DevCycle's bucketing decides (``Snapshot.devcycle_splits()``: per target, whether
    serving from it is a SPLIT) has one rule result per target, SPLIT as DevCycle says."""
    splits = dict(devcycle_splits)
    shapes: dict[str, FlagShape] = {}
    for feature in definitions:
        targeting = feature.get("targeting") or {}
        filters = [rule.get("filter") for rule in targeting.get("rules") or []]
        if not filters:
            shapes[feature["key"]] = FlagShape("DISABLED", ())
        elif all(isinstance(f, dict) and f.get("type") == "constant" for f in filters):
            shapes[feature["key"]] = FlagShape("STATIC", tuple(False for _ in filters))
        elif feature["key"] in splits:
            shapes[feature["key"]] = FlagShape(None, tuple(splits[feature["key"]]))
        else:
            shapes[feature["key"]] = FlagShape(None, tuple(_has_rollout(f) for f in filters))
    return shapes


class ShapeCache:
    """Flag shapes per environment, rebuilt when the environment's snapshot version moves."""

    def __init__(self) -> None:
        self._by_env: dict[str, tuple[int, dict[str, FlagShape]]] = {}

    def get(self, env: Environment) -> dict[str, FlagShape]:
        hit = self._by_env.get(env.id)
        if hit is not None and hit[0] == env.version:
            return hit[1]
        shapes = flag_shapes(orjson.loads(env.snapshot.definitions_json()), env.snapshot.devcycle_splits())
        if len(self._by_env) > 10_000:
            self._by_env.clear()
        self._by_env[env.id] = (env.version, shapes)
        return shapes


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


def _needs_targeting_key(value: bool, missing: list[str], context: Context) -> bool:
    """The flag could not match because it reads the targeting key and the context has none."""
    return not value and not context.has_targeting_key and TARGETING_FIELD in missing


def _success(
    key: str,
    value: bool,
    reason: str,
    variant: str,
    targeting_version: int | None,
    config: dict[str, Any] | None,
    version: int,
) -> dict[str, Any]:
    metadata: dict[str, bool | int | float | str] = {"flagStateVersion": version}
    if targeting_version is not None:
        metadata["targetingVersion"] = targeting_version
    if config is not None:
        metadata["configKey"] = config["key"]
        metadata["configPayload"] = orjson.dumps(config.get("payload")).decode()
    return {"key": key, "value": value, "reason": reason, "variant": variant, "metadata": metadata}


def _targeting_key_missing(key: str) -> dict[str, str]:
    return {
        "key": key,
        "errorCode": TARGETING_KEY_MISSING,
        "errorDetails": f"flag {key!r} needs a targetingKey (or user.id) in the context",
    }


def evaluate_one(env: Environment, key: str, context: Context, kind: Kind) -> dict[str, Any]:
    """One flag's OFREP success body; EdgeError 404 for an unknown flag (or one ``sdkVisibility``
    hides from keys of ``kind``), 400 for a bad context."""
    try:
        result = env.snapshot.evaluate_flag(key, context.reflag, key_kind=kind)
    except evaluator.EvaluatorError as e:
        raise ofrep_error(400, f"evaluation failed: {e}", code=GENERAL, key=key) from None
    except (ValueError, TypeError) as e:
        raise ofrep_error(400, f"context cannot be evaluated: {e}", code=INVALID_CONTEXT, key=key) from None
    if result is None:
        raise ofrep_error(404, f"flag {key!r} not found", code=FLAG_NOT_FOUND, key=key)
    if _needs_targeting_key(result["value"], result["missingContextFields"], context):
        raise ofrep_error(400, _targeting_key_missing(key)["errorDetails"], code=TARGETING_KEY_MISSING, key=key)
    config = dict(result["config"]) if result["config"] is not None else None
    return _success(
        key, result["value"], result["reason"], result["variant"], result["targetingVersion"], config, env.version
    )


def evaluate_all(env: Environment, context: Context, shapes: dict[str, FlagShape], kind: Kind) -> list[dict[str, Any]]:
    """Every flag of the environment, each an OFREP success or failure, in snapshot order.

    The context is converted once for all flags (``Snapshot.evaluate_all``); calling
    ``evaluate_flag`` per flag would convert it once per flag. The reason and variant follow
    ``evaluate_flag``'s rules from the per-rule results and the flag's shape."""
    try:
        raw: dict[str, dict[str, Any]] = orjson.loads(
            env.snapshot.evaluate_all(context.reflag, debug=True, key_kind=kind)
        )
    except evaluator.EvaluatorError as e:
        raise ofrep_error(400, f"evaluation failed: {e}", code=GENERAL) from None
    except (ValueError, TypeError) as e:
        raise ofrep_error(400, f"context cannot be evaluated: {e}", code=INVALID_CONTEXT) from None
    flags: list[dict[str, Any]] = []
    for key, r in raw.items():
        shape = shapes.get(key)
        value = bool(r["isEnabled"])
        results: list[bool] = r.get("ruleEvaluationResults", [])
        first = next((i for i, hit in enumerate(results) if hit), None)
        if shape is None or (value and (first is None or first >= len(shape.rollout))):
            # Not expected; the single-flag path is the reference.
            try:
                flags.append(evaluate_one(env, key, context, kind))
            except EdgeError as err:
                flags.append({"key": key, **err.ofrep_body()})
            continue
        if _needs_targeting_key(value, r.get("missingContextFields", []), context):
            flags.append(_targeting_key_missing(key))
            continue
        if shape.fixed is not None:
            reason = shape.fixed
        elif not value:
            reason = "DEFAULT"
        else:
            reason = "SPLIT" if first is not None and shape.rollout[first] else "TARGETING_MATCH"
        config = r.get("config")
        if config is not None and "key" not in config:
            config = None
        variant = config["key"] if value and config is not None else ("on" if value else "off")
        flags.append(_success(key, value, reason, variant, r.get("targetingVersion"), config, env.version))
    return flags


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


def devcycle_one(env: Environment, kind: Kind, key: str, context: dict[str, Any]) -> dict[str, Any]:
    """One DevCycle variable's OFREP success body; 404 FLAG_NOT_FOUND when the user is not served it."""
    user = devcycle_user(context, key)
    raw = env.snapshot.devcycle_json(user, now_ms(), "ofrep_flag", key, _hidden(env, kind))
    if raw is None:
        raise ofrep_error(404, f"variable {key!r} is not served to this user", code=FLAG_NOT_FOUND, key=key)
    flag: dict[str, Any] = orjson.loads(raw)
    flag["metadata"]["flagStateVersion"] = env.version
    return flag


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


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers)


def _cached(request: Request, body: bytes) -> Response:
    etag = etag_of(body)
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _json(body, headers={"ETag": etag})


def _allow(request: Request, method: str) -> None:
    if request.method != method:
        raise ofrep_error(405, f"method not allowed; use {method}", headers={"Allow": method})


def event_streams(request: Request, key: SdkKey, version: int, public_url: str) -> list[dict[str, Any]]:
    """``eventStreams`` (ADR-0008): this edge's change stream for the key's environment.

    The URL is absolute from the configured ``public_url``, else relative to the edge: never built
    from the request's Host header, which would let whoever sends the request (or poisons a cache
    in front of the edge) point other clients' streams at their own server. A publishable key
    rides in it, as browsers' EventSource cannot send headers; a secret key never does (it is sent
    as a header)."""
    params = {"since": str(version)}
    token = bearer(request) or request.headers.get("x-api-key")
    if key.kind in PUBLISHABLE and token:
        params["publishableKey"] = token
    url = f"{public_url.rstrip('/')}/ofrep/v1/stream?{urlencode(params)}"
    return [{"type": "sse", "url": url, "inactivityDelaySec": SSE_INACTIVITY_DELAY}]


def _event_id(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ofrep_error(400, f"{name} must be a non-negative integer")
    return int(raw)


def _refetch_event(version: int) -> bytes:
    data = orjson.dumps({"type": "refetchEvaluation", "etag": f'"{version}"', "flagStateVersion": version})
    return f"id: {version}\nevent: message\ndata: ".encode() + data + b"\n\n"


class OfrepApi:
    """The OFREP handlers of one edge worker (their rate limiter per SDK key and flag shape cache
    with them; a refused evaluation is answered in OFREP's body, errorCode GENERAL).

    Every method reaches the handlers (``ANY_METHOD`` in the route table), so that a wrong one
    gets an OFREP 405 body; errors are raised as EdgeError and answered in OFREP's shape by the
    route guard."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.limiter = RateLimiter(edge.settings.ofrep_rate_limit)
        self.shapes = ShapeCache()

    async def evaluate_flag(self, request: Request) -> Response:
        _allow(request, "POST")
        edge = self.edge
        key: str = request.path_params["key"]
        view = edge.state.view
        sdk = sdk_key(view, request, allow_query=False)
        env = edge.environment(view, sdk.environment)
        self.limiter.check(sdk.key_hash)
        body_timeout = edge.settings.body_timeout
        raw = await read_context(request, edge.settings.max_body_bytes, key, body_timeout)
        if is_devcycle(env):
            flag = devcycle_one(env, sdk.kind, key, raw)
        else:
            flag = evaluate_one(env, key, reflag_context(raw, key), sdk.kind)
        body = orjson.dumps(
            {**flag, "eventStreams": event_streams(request, sdk, env.version, edge.settings.public_url)}
        )
        # An ETag like every snapshot-dependent answer of the edge; the spec has no 304 here.
        return _json(body, headers={"ETag": etag_of(body)})

    async def evaluate_flags(self, request: Request) -> Response:
        _allow(request, "POST")
        edge = self.edge
        view = edge.state.view
        sdk = sdk_key(view, request, allow_query=False)
        env = edge.environment(view, sdk.environment)
        self.limiter.check(sdk.key_hash)
        raw = await read_context(request, edge.settings.max_body_bytes, timeout=edge.settings.body_timeout)
        streams = event_streams(request, sdk, env.version, edge.settings.public_url)
        if is_devcycle(env):
            return _cached(
                request,
                b'{"flags":'
                + devcycle_all(env, sdk.kind, raw)
                + b',"metadata":{"flagStateVersion":%d},"eventStreams":' % env.version
                + orjson.dumps(streams)
                + b"}",
            )
        context = reflag_context(raw)
        body = {
            "flags": evaluate_all(env, context, self.shapes.get(env), sdk.kind),
            "metadata": {"flagStateVersion": env.version},
            "eventStreams": streams,
        }
        return _cached(request, orjson.dumps(body))

    async def configuration(self, request: Request) -> Response:
        _allow(request, "GET")
        view = self.edge.state.view
        sdk = sdk_key(view, request, allow_query=False)
        env = view.environments.get(sdk.environment)
        return _cached(
            request, DEVCYCLE_CONFIGURATION_BODY if env is not None and is_devcycle(env) else CONFIGURATION_BODY
        )

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
