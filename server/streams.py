"""The one server-sent-events loop of the edge: a client is told each new version of its key's
environment, in the protocol of the route it listens on.

``/features/stream`` (ours), ``/sse/server`` and ``/sse/client`` (the Reflag SDKs' push) and
``/ofrep/v1/stream`` (OFREP) differ only in how an event is written (``format_event``), in how
the key is checked and in the version a new client starts from; the loop is this one.
It yields ``retry``, then an event whenever the environment's version differs from the last one
sent, and a comment every ``heartbeat`` seconds without a change (so proxies and clients see a
live connection, and Starlette notices a client that went away). It ends when the environment
leaves the snapshot or the key is revoked (the view no longer holds the key's hash, or holds it
for another environment): a stream never outlives the key that opened it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse

from server.state import EdgeState, SdkKey

RETRY = b"retry: 2000\n\n"
KEEP_ALIVE = b": keep-alive\n\n"
HEARTBEAT = 15.0


async def version_stream(
    state: EdgeState,
    key: SdkKey,
    seen: int | None,
    format_event: Callable[[int], bytes],
    heartbeat: float = HEARTBEAT,
) -> AsyncIterator[bytes]:
    """Events for ``key``'s environment; ``seen`` is the version the client has (None: the
    current one, so the first event waits for a change)."""
    yield RETRY
    while True:
        view = state.view
        current = view.environments.get(key.environment)
        held = view.keys.get(key.key_hash)
        if current is None or held is None or held.environment != key.environment:
            return
        if seen is None:
            seen = current.version
        if current.version != seen:
            seen = current.version
            yield format_event(seen)
            continue
        # No request.is_disconnected() here: under granian its cancelled receive() can make
        # Starlette's own disconnect listener end the response mid-stream. Starlette ends this
        # generator when the client goes away (at the latest on the next heartbeat).
        after = await state.wait_change(view.version, heartbeat)
        if after.version == view.version:
            yield KEEP_ALIVE


def sse_response(events: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )
