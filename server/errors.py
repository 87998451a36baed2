"""The edge's one error type and its one mapping per API shape (DESIGN.md section 5b).

Everything on the edge that fails a request raises :class:`EdgeError`; whoever answers it (the
route guard, the hot path, the 404/405 handler, the load shedder) calls :func:`render` with the
shape of the route's API, taken from the route table (``server.routes``):

* ``envelope`` (Reflag, Releaseo, events, our own routes, unknown paths): ``{"error": {"code",
  "message", "details", "request_id"}}``;
* ``ofrep``: OFREP's ``{"key"?, "errorCode", "errorDetails"}`` (``errorCode`` GENERAL unless the
  error names an OFREP code, ``key`` when it names a flag);
* ``airborne`` and ``devcycle``: those seeds' bodies (:mod:`contract.errors`).

The status → code table and the envelope/Airborne/DevCycle builders are shared with the control
plane (:mod:`contract.errors`). The request id goes into the body (where the shape has a place for
it) and always into ``X-Request-Id``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Literal

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Send

from contract import errors as shapes

Shape = Literal["envelope", "ofrep", "airborne", "devcycle"]
ENVELOPE: Shape = "envelope"
OFREP: Shape = "ofrep"
AIRBORNE: Shape = "airborne"
DEVCYCLE: Shape = "devcycle"

# OFREP's error code when nothing more precise is known.
GENERAL = "GENERAL"


class EdgeError(Exception):
    """A failed request: status, message, the offending field (a detail of the envelope), extra
    headers; ``code`` overrides the status's stable code, ``ofrep_code`` and ``flag_key`` are
    what the OFREP body says beyond GENERAL."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        ofrep_code: str | None = None,
        flag_key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or shapes.code_for(status)
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.ofrep_code = ofrep_code
        self.flag_key = flag_key

    @property
    def details(self) -> shapes.Details:
        return [{"field": self.field, "code": self.code, "message": self.message}] if self.field else []

    def ofrep_body(self) -> dict[str, str]:
        """``{"key"?, "errorCode", "errorDetails"}``: also one failed flag inside a bulk answer."""
        body: dict[str, str] = {}
        if self.flag_key is not None:
            body["key"] = self.flag_key
        body["errorCode"] = self.ofrep_code or GENERAL
        body["errorDetails"] = self.message
        return body


def body(err: EdgeError, rid: str, shape: Shape) -> dict[str, Any]:
    """The error body of ``err`` in the API shape ``shape``."""
    if shape == OFREP:
        return err.ofrep_body()
    if shape == AIRBORNE:
        return shapes.airborne(err.code, err.message, err.details, rid)
    if shape == DEVCYCLE:
        return shapes.devcycle(err.status, err.message, err.details, rid)
    return shapes.envelope(err.code, err.message, err.details, rid)


def render(err: EdgeError, rid: str, shape: Shape) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (the error's own, then ``X-Request-Id``) and JSON body of an error answer."""
    return err.status, {**err.headers, "X-Request-Id": rid}, orjson.dumps(body(err, rid, shape))


def request_id(request: Request) -> str:
    sent = request.headers.get("x-request-id", "")
    if 0 < len(sent) <= 128 and sent.isascii() and all(c.isalnum() or c in "._:-" for c in sent):
        return sent
    return new_request_id()


def new_request_id() -> str:
    """24 random hex digits. A request id names a request in logs and answers; it must be
    unique, not unguessable: the module's generator (reseeded in every forked worker) instead of
    a system call per request for ``secrets``."""
    return f"{random.getrandbits(96):024x}"


def error_response(request: Request, err: EdgeError, shape: Shape = ENVELOPE) -> Response:
    status, headers, content = render(err, request_id(request), shape)
    return Response(content, status_code=status, media_type="application/json", headers=headers)


async def send_error(send: Send, err: EdgeError, rid: str, shape: Shape) -> None:
    """Answer ``err`` straight on an ASGI ``send`` (middleware that answers before any route)."""
    status, headers, content = render(err, rid, shape)
    # The headers of the same answer as a Starlette Response (error_response), in its order.
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw += [(b"content-length", b"%d" % len(content)), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


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
