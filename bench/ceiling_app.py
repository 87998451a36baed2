"""The ceiling: the smallest ASGI app granian can serve, answering a fixed JSON body.

Run on the same core, with the same load tool and settings as the edge, it shows how much of
the server's own limit the edge reaches. ``FLAGEDGE_CEILING_BYTES`` pads the body to that many
bytes (a ceiling for an answer of the same size); a POST's body is read before answering, as
any route with a request body must."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

SMALL = b'{"features":{}}'


def body(size: int | None) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least the small body)."""
    if size is None or size <= len(SMALL):
        return SMALL
    filler = size - len(b'{"features":{},"pad":""}')
    return b'{"features":{},"pad":"' + b"x" * max(filler, 0) + b'"}'


_size = os.environ.get("FLAGEDGE_CEILING_BYTES")
BODY = body(int(_size) if _size else None)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope.get("method") == "POST":
        more = True
        while more:
            more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
