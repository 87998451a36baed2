"""Bucketed DevCycle configs per user: what client SDKs and the cloud bucketing API ask for.

* ``GET /v1/sdkConfig`` (and ``/v1/mobileSDKConfig``): the user's bucketed config for a client
  (or mobile) key in ``sdkKey``, the user in the query as ``@devcycle/js-client-sdk`` sends it
  (``apiProxyURL``). The features hidden from the key's kind (``sdkVisibility``) are left out
  with their variables. The body is ``generateBucketedConfig``'s
  (``project, environment, features, featureVariationMap, variableVariationMap, variables``) plus
  ``etag`` (the snapshot version, which realtime messages carry: the SDK refetches when they
  differ) and ``sse`` when the edge knows its public URL. ``ETag`` + ``If-None-Match`` → 304;
  the ETag is the body's, so it changes whenever a rollout step changes the answer.
  A server key is refused (403): it never travels in a query string. Obfuscated configs
  (``enableObfuscation``) are not served (400).
* The cloud bucketing API, by server key in ``Authorization`` (``bucketingAPIURI`` of
  ``@devcycle/js-cloud-server-sdk`` / ``enableCloudBucketing``), the body a DevCycle user:
  ``POST /v1/variables`` (every variable served to the user), ``POST /v1/variables/{key}`` (one;
  404 when the user is not served it, which the SDK answers with the default), ``POST
  /v1/features``. ``?enableEdgeDB=`` is accepted and ignored (no EdgeDB here).

Buckets are DevCycle's own (murmur3, in the evaluator) at the request's time, so rollouts move
without a publish. Errors are DevCycle's body (``server.errors``, shape ``devcycle``).
"""

from __future__ import annotations

import time
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from contract.sdk_keys import PUBLISHABLE, SECRET
from server.auth import authorization_token, devcycle_key
from server.devcycle import users
from server.devcycle.config import client_sse, devcycle_config, with_fields
from server.errors import EdgeError, request_id
from server.etags import etag_of, not_modified
from server.events import read_body
from server.ratelimit import RateLimiter
from server.service import Edge, Parts, json_response

Part = Literal["variables", "features", "variable"]


def now_ms() -> int:
    return int(time.time() * 1000)


def bad_user(e: users.Invalid) -> EdgeError:
    return EdgeError(400, e.message, field=e.field)


class BucketingRoutes:
    """The bucketed-config handlers of one worker (the bucketing API's rate limiter per SDK key
    with them: ``--ofrep-rate-limit`` covers every evaluation by POST)."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.limiter = RateLimiter(edge.settings.ofrep_rate_limit)

    async def sdk_config_parts(self, request: Request) -> Parts:
        edge = self.edge
        view = edge.state.view
        if len(request.scope.get("query_string", b"")) > edge.settings.max_query_bytes:
            raise EdgeError(400, f"query string longer than {edge.settings.max_query_bytes} bytes", field="query")
        params = request.query_params
        key = devcycle_key(view, params.get("sdkKey"), PUBLISHABLE, where="the sdkKey query parameter")
        env = devcycle_config(edge.environment(view, key.environment))
        assert env.devcycle is not None
        if params.get("obfuscated") == "1":
            # enableObfuscation: the SDK would look variables up by hashed keys and find none.
            raise EdgeError(400, "obfuscated configs are not served by this edge", field="obfuscated")
        try:
            user = users.from_query(params.multi_items())
        except users.Invalid as e:
            raise bad_user(e) from None
        bucketed = env.snapshot.devcycle_json(user, now_ms(), hidden=env.devcycle.hidden[key.kind] or None)
        if bucketed is None:  # a view swapped between the checks cannot drop the section
            raise EdgeError(404, "this environment has no DevCycle config")
        fields = [("etag", b'"%d"' % env.version)]
        sse = client_sse(edge.settings.public_url, key)
        if sse is not None:
            fields.append(("sse", sse))
        body = with_fields(bucketed, fields)
        etag = etag_of(body)
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", request_id(request).encode()),
        ]
        if not_modified(request.headers.get("if-none-match"), etag, wildcard=False):
            return 304, headers, b""
        return 200, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *headers], body

    async def _bucket(self, request: Request, part: Part, variable: str | None = None) -> Response:
        edge = self.edge
        view = edge.state.view
        key = devcycle_key(view, authorization_token(request), (SECRET,), where="the Authorization header")
        env = devcycle_config(edge.environment(view, key.environment))
        assert env.devcycle is not None
        self.limiter.check(key.key_hash)
        body, _ = await read_body(request, edge.settings.max_body_bytes, edge.settings.body_timeout)
        try:
            user = users.from_body(body)
        except users.Invalid as e:
            raise bad_user(e) from None
        hidden = env.devcycle.hidden[key.kind] or None
        answer = env.snapshot.devcycle_json(user, now_ms(), part, variable, hidden)
        if answer is None:
            raise EdgeError(404, f"Variable not found for key: {variable}")
        return json_response(answer, request)

    async def variables(self, request: Request) -> Response:
        return await self._bucket(request, "variables")

    async def variable(self, request: Request) -> Response:
        return await self._bucket(request, "variable", request.path_params["key"])

    async def features(self, request: Request) -> Response:
        return await self._bucket(request, "features")
