"""Load shedding (server/overload.py) in process: what a shed answer looks like, what is never
shed, and which stalls do not count. The behaviour under real overload is
``tests/reliability/test_soak_overload.py``."""

from __future__ import annotations

import asyncio
import time
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest

from server.app import create_app
from server.overload import BURST, LoadShedder
from server.routes import NEVER_SHED, shape_for
from server.settings import EdgeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(shedder: LoadShedder, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "headers": headers or []}
    asyncio.run(shedder(scope, receive, send))
    return sent


def _overloaded(shedder: LoadShedder) -> None:
    """As the heartbeat leaves it during a lasting backlog: 1 s behind, and late last time."""
    shedder._task = object()  # type: ignore[assignment]  # no heartbeat task in these unit tests
    shedder._beat = time.monotonic() - 1
    shedder.last_lag = 0.5


def test_shed_answer_is_a_fast_503_with_retry_after_and_the_envelope() -> None:
    shedder = LoadShedder(_ok, max_delay=0.1, exempt=NEVER_SHED, shape_for=shape_for)
    _overloaded(shedder)
    sent = _call(shedder, "/features/evaluated", [(b"x-request-id", b"req-1")])
    start, body = sent
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"1"
    assert headers[b"x-request-id"] == b"req-1"
    error = orjson.loads(body["body"])["error"]
    assert error["code"] == "unavailable" and error["request_id"] == "req-1" and "overloaded" in error["message"]


@pytest.mark.parametrize(
    "path", ["/health", "/ready", "/metrics", "/features/stream", "/sse/server", "/sse/client", "/ofrep/v1/stream"]
)
def test_probes_and_sse_subscriptions_are_never_shed(path: str) -> None:
    shedder = LoadShedder(_ok, max_delay=0.1, exempt=NEVER_SHED, shape_for=shape_for)
    _overloaded(shedder)
    assert _call(shedder, path)[0]["status"] == 200


def test_not_shed_when_the_heartbeat_is_on_time_or_after_a_one_off_stall() -> None:
    shedder = LoadShedder(_ok, max_delay=0.1, exempt=NEVER_SHED, shape_for=shape_for)
    shedder._task = object()  # type: ignore[assignment]
    shedder._beat = time.monotonic()
    assert _call(shedder, "/features/evaluated")[0]["status"] == 200
    # One stall (the heartbeat is late, it was not late before, few requests since): served.
    shedder._beat = time.monotonic() - 1
    shedder.last_lag = 0.0
    assert [_call(shedder, "/features/evaluated")[0]["status"] for _ in range(BURST - 1)] == [200] * (BURST - 1)


def test_a_burst_is_shed_once_the_loop_has_worked_through_it_for_the_whole_delay() -> None:
    shedder = LoadShedder(_ok, max_delay=0.1, exempt=NEVER_SHED, shape_for=shape_for)
    shedder._task = object()  # type: ignore[assignment]
    shedder._beat = time.monotonic() - 1
    shedder.last_lag = 0.0
    shedder._count, shedder._first = BURST, time.monotonic() - 0.05
    assert _call(shedder, "/features/evaluated")[0]["status"] == 200
    shedder._count, shedder._first = BURST, time.monotonic() - 0.11
    assert _call(shedder, "/features/evaluated")[0]["status"] == 503


def test_the_app_sheds_with_cors_headers_and_can_turn_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LoadShedder, "overloaded", lambda self, now: True)
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path))) as client:
        r = client.get("/features/evaluated", headers={"Origin": "https://app.example"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.headers["access-control-allow-origin"] == "*"
        assert client.get("/health").status_code == 200
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path, shed_queue_delay=0))) as client:
        assert client.get("/features/evaluated").status_code == 401  # evaluated as usual: no key


def test_a_shed_ofrep_request_gets_the_ofrep_error_body() -> None:
    shedder = LoadShedder(_ok, max_delay=0.1, exempt=NEVER_SHED, shape_for=shape_for)
    _overloaded(shedder)
    start, body = _call(shedder, "/ofrep/v1/evaluate/flags/new-checkout")
    assert start["status"] == 503 and dict(start["headers"])[b"retry-after"] == b"1"
    assert orjson.loads(body["body"]) == {
        "errorCode": "GENERAL",
        "errorDetails": "the edge is overloaded; retry after the delay in Retry-After",
    }
