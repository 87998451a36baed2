"""The edge's one error type, answered with the DESIGN.md section 5b envelope."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

CODES = {
    400: "validation_failed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class EdgeError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = CODES.get(status, "internal")
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        details = [{"field": self.field, "code": self.code, "message": self.message}] if self.field else []
        return {"error": {"code": self.code, "message": self.message, "details": details, "request_id": request_id}}


def request_id(request: Request) -> str:
    sent = request.headers.get("x-request-id", "")
    if 0 < len(sent) <= 128 and sent.isascii() and all(c.isalnum() or c in "._:-" for c in sent):
        return sent
    return secrets.token_hex(12)


def error_response(request: Request, err: EdgeError) -> Response:
    rid = request_id(request)
    return Response(
        orjson.dumps(err.body(rid)),
        status_code=err.status,
        media_type="application/json",
        headers={**err.headers, "X-Request-Id": rid},
    )


async def read_limited(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, at most ``limit`` bytes, all of it within ``timeout`` seconds (a client that
    trickles its body would otherwise hold one of the worker's concurrency slots for ever).
    EdgeError 413, 408, or 400 when the client goes away mid-body."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise EdgeError(413, f"request body larger than {limit} bytes", field="body")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise EdgeError(413, f"request body larger than {limit} bytes", field="body")
                chunks.append(chunk)
    except TimeoutError:
        raise EdgeError(408, f"the request body did not arrive within {timeout:g} seconds", field="body") from None
    except ClientDisconnect:
        raise EdgeError(400, "the client went away while sending the body", field="body") from None
    return b"".join(chunks)
