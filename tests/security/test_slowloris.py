"""Slow clients do not starve other connections of the real edge (granian, 2 workers).

While 200 connections send their request headers one byte at a time, 50 send a partial body
(event routes and OFREP) and stall, and 50 are open without sending anything, ordinary requests
on fresh connections still answer promptly (each under 1 s; the median is a few ms).

What protects the edge, and what bounds each kind of slow client:

* headers: granian parses HTTP in Rust, off the Python event loop, and closes a connection whose
  headers are not complete 30 s after they started (hyper's ``header_read_timeout``, granian's
  default; measured: a one-byte-per-second client was cut at 30.0 s). Not waited for here.
* bodies: granian has no body deadline and a request with a body is already the app's, holding
  one of the worker's ``--max-concurrency`` slots. ``--body-timeout`` (``FLAGEDGE_EDGE_BODY_TIMEOUT``,
  default 30 s, 2 s in this suite) bounds how long: the body must arrive in full by then, else the
  answer is 408 (events: the error envelope; OFREP: its error body). Tested below.
* idle connections that never send a byte are kept by granian (they cost a file descriptor and
  no Python work); bounding those is a job for the proxy or load balancer in front.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from tests.security.checks import assert_envelope, assert_ofrep_error, workers_unharmed
from tests.security.conftest import BODY_TIMEOUT, World
from tests.security.rawhttp import read_response, request

DRIPPERS = 200
PARTIAL = 50
IDLE = 50


class Drip:
    """Connections that send ``payload`` one byte per round, every ``interval`` seconds."""

    def __init__(self, socks: list[socket.socket], payload: bytes, interval: float = 0.02) -> None:
        self.socks, self.payload, self.interval = socks, payload, interval
        self.sent = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # Never the last CRLF: the requests stay incomplete.
        while not self._stop.is_set() and self.sent < len(self.payload) - 2:
            byte = self.payload[self.sent : self.sent + 1]
            for s in self.socks:
                try:
                    s.send(byte)
                except OSError:
                    self.failures += 1
            self.sent += 1
            time.sleep(self.interval)

    def __enter__(self) -> Drip:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _connections(port: int, n: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(n)]


@pytest.fixture
def held(world: World) -> Iterator[dict[str, list[socket.socket]]]:
    port = world.edge_port
    socks = {"drip": _connections(port, DRIPPERS), "partial": [], "idle": _connections(port, IDLE)}
    try:
        yield socks
    finally:
        for group in socks.values():
            for s in group:
                s.close()


def _partial_body(port: int, route: str, key: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    s.sendall(head.encode() + b'{"userId": "')
    return s


def test_slow_clients_do_not_starve_fresh_connections(world: World, held: dict[str, list[socket.socket]]) -> None:
    port, key = world.edge_port, world.keys["client"]
    header = (
        f"GET /features/evaluated?publishableKey={key} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {'p' * 4000}\r\n\r\n"
    ).encode()
    routes = ["/event", "/bulk", "/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/plan"]
    target = f"/features/evaluated?publishableKey={key}&context.company.plan=pro".encode()
    with workers_unharmed(world):
        started = time.monotonic()
        held["partial"] += [_partial_body(port, routes[i % len(routes)], key) for i in range(PARTIAL)]
        latencies: list[float] = []
        with Drip(held["drip"], header) as drip:
            time.sleep(0.3)
            while time.monotonic() - started < 1.5 or len(latencies) < 30:
                t0 = time.monotonic()
                r = request(port, b"GET", target, timeout=5)
                latencies.append(time.monotonic() - t0)
                assert r.status == 200, r
                assert r.json()["features"]["plan"]["isEnabled"] is True
            sent = drip.sent
        print(f"slowloris: {DRIPPERS} drippers ({sent} bytes each so far), {PARTIAL} partial bodies, {IDLE} idle")
        median, worst = statistics.median(latencies) * 1000, max(latencies) * 1000
        print(f"{len(latencies)} fresh requests: median {median:.1f} ms, max {worst:.1f} ms")
        # Every one prompt; the bound is generous for a shared machine (the median is ~0.5 ms).
        p99 = sorted(latencies)[int(len(latencies) * 0.99)]
        assert p99 < 0.5 and max(latencies) < 1.0, (p99, max(latencies))
        assert drip.failures == 0  # the drippers were still connected: it was a fair test

        # The partial bodies are answered 408 once --body-timeout passes, freeing their slots.
        for i, s in enumerate(held["partial"]):
            s.settimeout(BODY_TIMEOUT + 15)
            r = read_response(s)
            waited = time.monotonic() - started
            assert r.status == 408, r
            assert waited >= BODY_TIMEOUT * 0.9
            if routes[i % len(routes)].startswith("/ofrep"):
                assert "did not arrive" in assert_ofrep_error(r.body, r.status)["errorDetails"]
            else:
                assert assert_envelope(r.body, r.status)["error"]["code"] == "request_timeout"
        print(f"partial bodies all answered 408 after {time.monotonic() - started:.1f} s")
