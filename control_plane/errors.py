"""The control plane's one error type and its envelope (DESIGN.md section 5b)."""

from __future__ import annotations

from typing import Any

CODES_BY_STATUS = {
    400: "validation_failed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal",
}


class ApiError(Exception):
    """An error answered with ``{"error": {code, message, details, request_id}}``."""

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
        self.code = code or CODES_BY_STATUS.get(status, "internal")
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def envelope(self, request_id: str) -> dict[str, Any]:
        return {
            "error": {"code": self.code, "message": self.message, "details": self.details, "request_id": request_id}
        }


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
