"""One error type, one mapping per API shape (server/errors.py over contract/errors.py), and the
control plane's ApiError through the same builders."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.requests import Request

from contract.errors import CODES, code_for, reason_phrase
from control_plane.errors import ApiError
from control_plane.errors import body as api_body
from server.errors import AIRBORNE, DEVCYCLE, ENVELOPE, OFREP, EdgeError, error_response, render, send_error


def decoded(err: EdgeError, shape: Any) -> Any:
    return orjson.loads(render(err, "rid-1", shape)[2])


def test_envelope() -> None:
    err = EdgeError(400, "waitForVersion must be a non-negative integer", field="waitForVersion")
    assert decoded(err, ENVELOPE) == {
        "error": {
            "code": "validation_failed",
            "message": "waitForVersion must be a non-negative integer",
            "details": [
                {
                    "field": "waitForVersion",
                    "code": "validation_failed",
                    "message": "waitForVersion must be a non-negative integer",
                }
            ],
            "request_id": "rid-1",
        }
    }
    assert decoded(EdgeError(403, "no"), ENVELOPE)["error"]["details"] == []
    assert decoded(EdgeError(404, "gone", code="no_such_release"), ENVELOPE)["error"]["code"] == "no_such_release"


def test_ofrep() -> None:
    assert decoded(EdgeError(403, "unknown or revoked SDK key"), OFREP) == {
        "errorCode": "GENERAL",
        "errorDetails": "unknown or revoked SDK key",
    }
    flag = EdgeError(404, "flag 'x' not found", ofrep_code="FLAG_NOT_FOUND", flag_key="x")
    assert list(decoded(flag, OFREP).items()) == [
        ("key", "x"),
        ("errorCode", "FLAG_NOT_FOUND"),
        ("errorDetails", "flag 'x' not found"),
    ]


def test_airborne() -> None:
    assert decoded(EdgeError(404, "no application acme/app"), AIRBORNE) == {
        "error": "no application acme/app",
        "code": "not_found",
        "details": [],
        "request_id": "rid-1",
    }


def test_devcycle() -> None:
    assert decoded(EdgeError(404, "no such variable"), DEVCYCLE) == {
        "statusCode": 404,
        "message": "no such variable",
        "error": "Not Found",
        "details": [],
        "request_id": "rid-1",
    }
    assert reason_phrase(599) == "Error"


def test_render_keeps_the_error_headers_and_adds_the_request_id() -> None:
    err = EdgeError(503, "not loaded", headers={"Retry-After": "1"})
    status, headers, _ = render(err, "rid-1", ENVELOPE)
    assert status == 503 and headers == {"Retry-After": "1", "X-Request-Id": "rid-1"}


def test_send_error_answers_what_error_response_answers() -> None:
    """The raw-ASGI answer (hot path, load shedder) and the Response (guard) are the same."""
    err = EdgeError(429, "slow down", headers={"Retry-After": "2"})
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", b"rid-9")]}
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(send_error(send, err, "rid-9", OFREP))
    response = error_response(Request(scope), err, OFREP)
    assert sent[0]["status"] == response.status_code == 429
    assert sent[0]["headers"] == response.raw_headers
    assert sent[1]["body"] == response.body


@pytest.mark.parametrize("status", sorted(CODES))
def test_one_code_table_for_both_processes(status: int) -> None:
    assert EdgeError(status, "m").code == ApiError(status, "m").code == code_for(status)


def test_control_plane_errors_use_the_same_builders() -> None:
    err = ApiError(409, "exists", details=[{"field": "key", "code": "taken", "message": "exists"}])
    assert (
        api_body(err, "r")
        == err.envelope("r")
        == {"error": {"code": "conflict", "message": "exists", "details": err.details, "request_id": "r"}}
    )
    assert api_body(err, "r", "airborne") == {
        "error": "exists",
        "code": "conflict",
        "details": err.details,
        "request_id": "r",
    }
    assert api_body(err, "r", "devcycle")["error"] == "Conflict"
