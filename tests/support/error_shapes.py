"""The error bodies of DESIGN.md 5b, read back in one form: ``{code, message, details, request_id}``.

Every API answers errors in its own shape (the envelope, Airborne's, DevCycle's); tests check
the shape a route must speak, then read the code and details the same way whatever it is.
"""

from __future__ import annotations

from typing import Any

from contract.errors import code_for, reason_phrase


def shape_of(body: dict[str, Any]) -> str:
    """``"devcycle"``, ``"airborne"`` or ``"envelope"``: which DESIGN.md 5b shape ``body`` has."""
    if "statusCode" in body:
        return "devcycle"
    if isinstance(body.get("error"), str):
        return "airborne"
    return "envelope"


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    """``{code, message, details, request_id}`` of an error body in any shape of DESIGN.md 5b:
    the envelope, Airborne's ``{"error": "<message>", "code", "details", "request_id"}``, or
    DevCycle's ``{"statusCode", "message", "error": "<reason>", "details", "request_id"}`` (whose
    code is the status's stable code)."""
    shape = shape_of(body)
    if shape == "devcycle":
        assert set(body) == {"statusCode", "message", "error", "details", "request_id"}, body
        assert body["error"] == reason_phrase(body["statusCode"]), body
        message = body["message"]
        if isinstance(message, list):
            assert message and all(isinstance(m, str) for m in message), body
            message = "; ".join(message)
        return {
            "code": code_for(body["statusCode"]),
            "message": message,
            **{k: body[k] for k in ("details", "request_id")},
        }
    if shape == "airborne":
        assert set(body) == {"error", "code", "details", "request_id"}, body
        return {"message": body["error"], **{k: body[k] for k in ("code", "details", "request_id")}}
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    return err
