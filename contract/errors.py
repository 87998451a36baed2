"""Error codes and error bodies both processes answer with (DESIGN.md section 5b).

One status → code table (:data:`CODES`) for the edge and the control plane, and one body builder
per API shape. Errors speak the shape of the API they belong to, because real clients parse them:

* :func:`envelope`: ``{"error": {"code", "message", "details": [{"field", "code", "message"}],
  "request_id"}}``, the default for every route of our own and the Reflag/Releaseo ones;
* :func:`airborne`: Airborne's ``{"error": "<message>"}``, with ``code``, ``details`` and
  ``request_id`` beside it;
* :func:`devcycle`: DevCycle's (NestJS) ``{"statusCode", "message", "error": "<reason phrase>"}``,
  with ``details`` and ``request_id`` beside it.

OFREP's own body belongs to the edge alone (``server.errors``). The builders return plain dicts;
each process serializes them (orjson) and adds its headers. They never fail: an unknown status
has the code ``internal`` and the reason phrase ``Error``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

Details = list[dict[str, str]]

CODES = {
    400: "validation_failed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def code_for(status: int) -> str:
    """The stable code of an HTTP error status (``internal`` for one the table does not name)."""
    return CODES.get(status, "internal")


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def envelope(code: str, message: str, details: Details, request_id: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details, "request_id": request_id}}


def airborne(code: str, message: str, details: Details, request_id: str) -> dict[str, Any]:
    return {"error": message, "code": code, "details": details, "request_id": request_id}


def devcycle(status: int, message: str | list[str], details: Details, request_id: str) -> dict[str, Any]:
    """``message`` may be a list of strings (DevCycle's validation errors)."""
    return {
        "statusCode": status,
        "message": message,
        "error": reason_phrase(status),
        "details": details,
        "request_id": request_id,
    }
