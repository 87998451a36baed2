"""The config DevCycle's local-bucketing server SDKs poll, and the stream that tells them to.

* ``GET /config/v2/server/{sdkKey}.json``: the environment's DevCycle server config
  (:mod:`server.devcycle.document`: the features visible to server SDKs), by server key in the
  path as DevCycle's CDN takes it (``configCDNURI`` of ``@devcycle/nodejs-server-sdk``). ``ETag``
  and ``If-None-Match`` → ``304``, as the SDK revalidates; no ``Last-Modified``, so the SDK never
  skips a config as older than the one it has. An unknown or revoked key is 403 (the SDK then
  stops with "Invalid SDK key"), a client or mobile key too.
* ``GET /config/v2/server/bootstrap/{sdkKey}.json``: the same for ``enableClientBootstrapping``
  (the features visible to client SDKs), still by server key.
* ``GET /v1/devcycle/stream/{keyHash}``: server-sent events, one each time the environment gets a
  new snapshot version, in the shape DevCycle's realtime messages have (both SDKs parse
  ``data`` as ``{"data": "<JSON text of {type: refetchConfig, etag}>"}`` and refetch when the
  ``etag`` differs from the one they hold). The key is named by its SHA-256, which the edge
  indexes keys by: a stream URL travels in configs and must not carry the key itself (browsers'
  EventSource cannot send a header). It ends when the key is revoked.

Configs point SDKs at that stream (``sse`` of the server config: ``{hostname, path}``; ``sse``
of a client's bucketed config: ``{url, inactivityDelay}``) when the edge knows its public URL
(``--public-url``); the address is never taken from the request's Host header, which whoever
sends the request chooses. Without one, the SDKs poll.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from contract.sdk_keys import CLIENT, SECRET, Kind
from server.auth import devcycle_key, unknown
from server.errors import EdgeError
from server.service import Edge, cached_json
from server.state import Environment, SdkKey
from server.streams import sse_response, version_stream

STREAM_PATH = "/v1/devcycle/stream/"
# How long a client SDK keeps its stream open on a hidden page (DevCycle's default).
INACTIVITY_DELAY_MS = 120_000


def stream_location(public_url: str, key: SdkKey) -> tuple[str, str] | None:
    """``(origin, path)`` of ``key``'s stream at the edge's public URL (None when unknown)."""
    if not public_url:
        return None
    parts = urlsplit(public_url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/") + STREAM_PATH + key.key_hash


def server_sse(public_url: str, key: SdkKey) -> bytes | None:
    """The ``sse`` of a server config: ``new URL(path, hostname)`` is the stream."""
    location = stream_location(public_url, key)
    return None if location is None else orjson.dumps({"hostname": location[0], "path": location[1]})


def client_sse(public_url: str, key: SdkKey) -> bytes | None:
    """The ``sse`` of a client's bucketed config: ``url`` is the stream."""
    location = stream_location(public_url, key)
    if location is None:
        return None
    return orjson.dumps({"url": location[0] + location[1], "inactivityDelay": INACTIVITY_DELAY_MS})


def with_fields(config: bytes, fields: list[tuple[str, bytes]]) -> bytes:
    """``config`` (a JSON object) with more members, each ``(name, JSON value)``."""
    extra = b"".join(b',"' + name.encode() + b'":' + value for name, value in fields)
    return config[:-1] + extra + b"}" if config != b"{}" else b"{" + extra[1:] + b"}"


def refetch_event(version: int) -> bytes:
    """A realtime message: DevCycle's SDKs read ``JSON.parse(JSON.parse(event.data).data)``."""
    inner = orjson.dumps({"type": "refetchConfig", "etag": str(version)}).decode()
    data = orjson.dumps({"id": str(version), "name": "change", "data": inner})
    return b"id: %d\ndata: " % version + data + b"\n\n"


def devcycle_config(env: Environment) -> Environment:
    """``env`` if it has a DevCycle config, else 404 (a project without DevCycle features)."""
    if env.devcycle is None:
        raise EdgeError(404, "this environment has no DevCycle config")
    return env


class ConfigRoutes:
    """The server-config and stream handlers of one worker."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    def _config(self, request: Request, kind: Kind) -> Response:
        edge = self.edge
        view = edge.state.view
        key = devcycle_key(view, request.path_params["key"], (SECRET,), where="the config URL")
        env = devcycle_config(edge.environment(view, key.environment))
        assert env.devcycle is not None
        body = env.devcycle.configs[kind]
        sse = server_sse(edge.settings.public_url, key)
        return cached_json(request, with_fields(body, [("sse", sse)]) if sse is not None else body)

    async def server_config(self, request: Request) -> Response:
        return self._config(request, SECRET)

    async def bootstrap_config(self, request: Request) -> Response:
        return self._config(request, CLIENT)

    async def stream(self, request: Request) -> Response:
        edge = self.edge
        view = edge.state.view
        key = view.keys.get(request.path_params["key_hash"])
        if key is None:
            raise unknown(view, 403, "unknown or revoked SDK key")
        edge.environment(view, key.environment)
        return sse_response(version_stream(edge.state, key, None, refetch_event))
