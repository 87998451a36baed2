"""The control plane's one error type, answered in the shape of the API it belongs to (DESIGN.md
section 5b). Codes and body builders are shared with the edge (:mod:`contract.errors`)."""

from __future__ import annotations

from typing import Any, Literal

from contract import errors as shapes

Shape = Literal["envelope", "airborne", "devcycle"]


class ApiError(Exception):
    """An error answered with ``{"error": {code, message, details, request_id}}`` (or the shape of
    the route's API, :func:`body`)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or shapes.code_for(status)
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def envelope(self, request_id: str) -> dict[str, Any]:
        return shapes.envelope(self.code, self.message, self.details, request_id)


def body(err: ApiError, request_id: str, shape: Shape = "envelope") -> dict[str, Any]:
    """The error body of ``err`` in the given API shape."""
    if shape == "airborne":
        return shapes.airborne(err.code, err.message, err.details, request_id)
    if shape == "devcycle":
        return shapes.devcycle(err.status, devcycle_message(err), err.details, request_id)
    return shapes.envelope(err.code, err.message, err.details, request_id)


def devcycle_message(err: ApiError) -> str | list[str]:
    """DevCycle's ``message``: for a 400 with details a list of strings, as its validation errors
    come (the CLI prints them one by one): the message, then ``"<field>: <reason>"`` per detail;
    otherwise the message itself."""
    if err.status != 400 or not err.details:
        return err.message
    return [err.message, *(f"{d['field']}: {d['message']}" if d.get("field") else d["message"] for d in err.details)]


def validation(message: str, field: str = "", code: str = "invalid", reason: str | None = None) -> ApiError:
    return ApiError(400, message, details=[{"field": field, "code": code, "message": reason or message}])


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, f"{what} not found")


def forbidden(message: str = "your access level does not allow this") -> ApiError:
    return ApiError(403, message)


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def conflict(message: str) -> ApiError:
    return ApiError(409, message)
