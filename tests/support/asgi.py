"""One HTTP request straight through an ASGI app, without an HTTP client: for tests that call
the edge many times, or want one layer of it (the router without the middleware in front)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Scope

Answer = tuple[int, dict[str, str], bytes]


async def call(
    app: ASGIApp, method: str, path: str, query: str = "", headers: dict[str, str] | None = None, host: str = "edge"
) -> Answer:
    """Status, headers (last value per name) and body of ``method path?query``."""
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", host.encode())] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 1),
        "server": (host, 80),
        "app": app,
    }
    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body
