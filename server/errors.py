"""The edge's one error type, answered with the DESIGN.md section 5b envelope."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from starlette.requests import Request
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
