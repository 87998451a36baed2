"""granian's RSGI interface for the edge (``--interface rsgi``): the ASGI app (``server.app``)
served through granian's leaner calling convention.

Over ASGI every answer is two awaited ``send`` calls into granian, each a future crossing into
Rust, and every request a scope dict granian fills in completely. Over RSGI an answer is one
synchronous ``response_bytes`` call. :class:`RsgiEdge` turns an RSGI request into the ASGI scope,
``receive`` and ``send`` the app expects (:func:`asgi_scope`, :class:`Body`, :class:`Responder`)
and calls the app: the hot routes' :class:`~server.hot_path.HotPath` directly, everything else
(streams included) through Starlette. Lifespan, which RSGI lacks, is driven by hand on granian's
worker loop before it serves (:class:`Lifespan`).

What RSGI cannot carry: a request header whose value is not visible ASCII (granian's RSGI
headers leave it out, where ASGI passes its bytes), and the raw (undecoded) path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope

from contract.lifecycle import die_with_master
from server.app import EdgeApp, create_app
from server.settings import from_environ

# What granian's ASGI scope declares (spec 2.3: no ``OSError`` from ``send`` on a disconnect,
# a disconnect is seen through ``receive``).
ASGI = {"version": "3.0", "spec_version": "2.3"}


class RsgiHeaders(Protocol):
    def items(self) -> list[tuple[str, str]]: ...


class RsgiScope(Protocol):
    proto: str
    http_version: str
    scheme: str
    method: str
    path: str
    query_string: str
    server: str
    client: str

    @property
    def headers(self) -> RsgiHeaders: ...


class RsgiStream(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class RsgiProtocol(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def client_disconnect(self) -> None: ...
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...
    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> RsgiStream: ...


def address(text: str) -> tuple[str, str]:
    """``host:port`` (``[v6]:port``) as granian's ASGI scope gives it: ``(host, port)``, both str."""
    host, _, port = text.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), port


def asgi_scope(scope: RsgiScope) -> Scope:
    """The part of the ASGI HTTP scope the hot routes read (:func:`complete` adds the rest)."""
    return {
        "type": "http",
        "method": scope.method,
        "path": scope.path,
        "query_string": scope.query_string.encode("latin-1"),
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()],
    }


def complete(asgi: Scope, scope: RsgiScope) -> Scope:
    """``asgi`` made the ASGI HTTP scope granian would have built for the request, without
    ``raw_path`` (RSGI gives the decoded path only; nothing on the edge reads it)."""
    asgi["asgi"] = ASGI
    asgi["http_version"] = scope.http_version
    asgi["server"] = address(scope.server)
    asgi["client"] = address(scope.client)
    asgi["scheme"] = scope.scheme
    asgi["root_path"] = ""
    asgi["state"] = {}
    return asgi


class Body:
    """ASGI ``receive`` over an RSGI request: the body as it arrives, then (as granian's ASGI
    ``receive`` does) ``http.disconnect`` once the client goes away."""

    def __init__(self, proto: RsgiProtocol) -> None:
        self.proto = proto
        self.chunks: AsyncIterator[bytes] | None = None
        self.done = False

    async def __call__(self) -> Message:
        if not self.done:
            if self.chunks is None:
                self.chunks = aiter(self.proto)
            try:
                return {"type": "http.request", "body": await anext(self.chunks), "more_body": True}
            except StopAsyncIteration:
                self.done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        await self.proto.client_disconnect()
        return {"type": "http.disconnect"}


class Responder:
    """ASGI ``send`` over an RSGI response: a whole answer as one ``response_bytes``, a body in
    several messages (server-sent events) as a stream."""

    def __init__(self, proto: RsgiProtocol) -> None:
        self.proto = proto
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.stream: RsgiStream | None = None
        self.sent = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
            return
        if kind != "http.response.body" or self.sent:
            return
        body: bytes = message.get("body", b"")
        if self.stream is None:
            if not message.get("more_body", False):
                self.sent = True
                self.proto.response_bytes(self.status, self.headers, body)
                return
            self.stream = self.proto.response_stream(self.status, self.headers)
        if body:
            await self.stream.send_bytes(body)
        if not message.get("more_body", False):
            self.sent = True


class Lifespan:
    """The app's ASGI lifespan, driven by hand: RSGI has none, granian calls ``__rsgi_init__`` and
    ``__rsgi_del__`` on the worker's loop instead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _send(self, message: Message) -> None:
        await self.outbox.put(message)

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        answer = await self.outbox.get()
        if answer["type"] != f"lifespan.{event}.complete":
            raise RuntimeError(f"lifespan {event} failed: {answer.get('message', '')}")

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI, "state": {}}
        # The app's lifespan runs in this task for the worker's whole life (it holds the
        # lifespan context open), on the loop granian then serves with.
        self.task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._step("startup")

    async def _run(self, scope: Scope) -> None:
        await self.app(scope, self.inbox.get, self._send)

    async def shutdown(self) -> None:
        if self.task is not None and not self.task.done():
            await self._step("shutdown")


class RsgiEdge:
    """The edge app as an RSGI application (see the module docstring)."""

    def __init__(self, app: EdgeApp) -> None:
        self.app = app
        self.lifespan = Lifespan(app)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.lifespan.startup())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.lifespan.shutdown())

    async def __rsgi__(self, scope: RsgiScope, proto: Any) -> None:
        if scope.proto != "http":
            proto.close(403)  # no websocket routes: refused as Starlette refuses one
            return
        asgi = asgi_scope(scope)
        receive: Receive = Body(proto)
        send = Responder(proto)
        hot = self.app.hot
        route = hot.route(asgi) if hot is not None else None
        if route is not None:
            assert hot is not None
            await hot.answer(route, asgi, receive, send)
        else:
            await self.app(complete(asgi, scope), receive, send)
        if not send.sent and send.stream is None:
            # The app ended without an answer (as granian answers it over ASGI).
            proto.response_bytes(500, [], b"")


def app_from_env() -> RsgiEdge:
    """Factory for granian workers over RSGI (called in the worker, after the fork)."""
    die_with_master()
    return RsgiEdge(create_app(from_environ()))
