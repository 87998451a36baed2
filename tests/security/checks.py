"""Assertions shared by the hostile-input tests: the shape of every answer, and that the edge's
worker processes survive with bounded memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson

from tests.security.conftest import World
from tests.security.rawhttp import RawResponse, alive, rss_kb
from tests.support.error_shapes import error_of, shape_of

# Answers granian's HTTP layer gives before our app sees a request (malformed request line or
# header, URI over 64 KiB, header section over its buffer): no body, so no envelope.
PROTOCOL_REJECTIONS = {400, 408, 413, 414, 431}
# How much a worker's RSS may grow across one hostile test (shared, noisy machine: generous).
RSS_GROWTH_KB = 64 * 1024


def assert_envelope(body: bytes, status: int) -> dict[str, Any]:
    """DESIGN.md §5b: ``{"error": {"code", "message", "details", "request_id"}}``, or on Airborne
    routes Airborne's ``{"error": "<message>", "code", "details", "request_id"}``."""
    doc = orjson.loads(body)
    assert isinstance(doc, dict), (status, body[:300])
    if isinstance(doc.get("error"), str):
        assert set(doc) == {"error", "code", "details", "request_id"}, (status, body[:300])
        error = {**doc, "message": doc["error"]}
    else:
        assert set(doc) == {"error"}, (status, body[:300])
        error = doc["error"]
    assert isinstance(error["code"], str) and error["code"], body[:300]
    assert isinstance(error["message"], str) and error["message"], body[:300]
    assert isinstance(error["details"], list) and isinstance(error["request_id"], str), body[:300]
    return doc


def assert_error_body(body: bytes, status: int, shape: str) -> dict[str, Any]:
    """An error body in ``shape`` (DESIGN.md §5b: ``"envelope"``, ``"airborne"`` or, on DevCycle
    routes, ``"devcycle"``), read back as ``{code, message, details, request_id}`` (a DevCycle
    body's code is its status's stable code; its details keep their own codes)."""
    doc = orjson.loads(body)
    assert isinstance(doc, dict), (status, body[:300])
    assert shape_of(doc) == shape, (status, body[:300])
    if shape == "devcycle":
        assert doc["statusCode"] == status, body[:300]
    error = error_of(doc)
    assert isinstance(error["code"], str) and error["code"], body[:300]
    assert isinstance(error["message"], str) and error["message"], body[:300]
    assert isinstance(error["details"], list) and isinstance(error["request_id"], str), body[:300]
    return error


def assert_ofrep_error(body: bytes, status: int) -> dict[str, Any]:
    """OFREP routes keep OFREP's own error body: ``{"key"?, "errorCode", "errorDetails"}``."""
    doc = orjson.loads(body)
    assert isinstance(doc, dict) and isinstance(doc.get("errorCode"), str), (status, body[:300])
    assert isinstance(doc.get("errorDetails"), str), body[:300]
    return doc


def assert_sane(r: RawResponse | httpx.Response, *, ofrep: bool = False, what: Any = "") -> None:
    """Never a 5xx; a 4xx from our app has the error envelope (OFREP's body on OFREP routes);
    one from granian's HTTP layer is one of the statuses it uses for malformed requests."""
    status = r.status if isinstance(r, RawResponse) else r.status_code
    body = r.body if isinstance(r, RawResponse) else r.content
    headers = r.headers
    assert status < 500, (status, body[:300], what)
    if "x-request-id" not in headers:
        assert status in PROTOCOL_REJECTIONS, (status, body[:300], what)
        return
    if 400 <= status < 500:
        (assert_ofrep_error if ofrep else assert_envelope)(body, status)


@contextmanager
def workers_unharmed(
    world: World, pids: list[int] | None = None, growth_kb: int = RSS_GROWTH_KB
) -> Iterator[dict[int, int]]:
    """Around a hostile test on host A's edge: the same worker processes are alive after it
    (granian respawns a dead worker under a new pid, so a crash shows as a changed pid),
    ``/health`` answers, no worker's RSS grew by more than ``growth_kb``, and the edge logged no
    exception meanwhile (a traceback is a bug even when the client got its answer). Yields the
    RSS before, by pid."""
    pids = pids or world.workers()
    assert len(pids) >= 1
    log = world.logs[1]
    logged = log.stat().st_size
    before = {pid: rss_kb(pid) for pid in pids}
    yield before
    for pid in pids:
        assert alive(pid), f"edge worker {pid} died"
    health = httpx.get(f"http://127.0.0.1:{world.edge_port}/health", timeout=10)
    assert health.status_code == 200
    after = {pid: rss_kb(pid) for pid in pids}
    for pid in pids:
        assert after[pid] - before[pid] < growth_kb, f"worker {pid} RSS {before[pid]} kB -> {after[pid]} kB"
    time.sleep(0.2)  # let the workers' last log lines reach the file
    new = log.read_bytes()[logged:]
    for marker in (b"Traceback", b"unhandled error", b"[ERROR]"):
        assert marker not in new, new.decode(errors="replace")[-3000:]
