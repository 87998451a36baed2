"""Webhook delivery over real processes, against a local HTTP receiver (issue 18 acceptance).

* A change announces itself: an HTTP POST to the webhook's URL whose ``X-FlagEdge-Signature``
  verifies with the webhook's secret, carrying an event id.
* A receiver answering 500 gets the same event again (same id, same bytes) until it answers 2xx;
  the delivery history lists every attempt.
* kill -9 of the control plane while the receiver holds a delivery's answer: after a restart the
  event is delivered, with the same event id (at-least-once with an event id).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.processes import bootstrap_project, free_port, on_rule, process

ENV = {
    "FLAGEDGE_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    "FLAGEDGE_WEBHOOK_TIMEOUT": "2",
    "FLAGEDGE_WEBHOOK_BACKOFF_BASE": "0.2",
    "FLAGEDGE_WEBHOOK_BACKOFF_CAP": "1",
}


@dataclass
class Received:
    event_id: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A local HTTP receiver; ``answer(n, tries)`` gives the status of the n-th request (0-based)
    whose event id came ``tries`` times before, and may block (a receiver slow to answer)."""

    answer: Callable[[int, int], int]
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def wait(self, ok: Callable[[list[Received]], bool], timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                seen = list(self.requests)
            if ok(seen):
                return seen
            assert time.monotonic() < deadline, f"the receiver never saw what was expected: {seen}"
            time.sleep(0.05)


@contextmanager
def receiving(answer: Callable[[int, int], int]) -> Iterator[Receiver]:
    receiver = Receiver(answer)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                n = len(receiver.requests)
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = Received(headers.get("x-flagedge-event-id", ""), headers, body, 0)
                tries = sum(1 for r in receiver.requests if r.event_id == record.event_id)
                receiver.requests.append(record)
            status = receiver.answer(n, tries)
            record.answered = status
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()


@contextmanager
def control_plane(data: Path, port: int) -> Iterator[Any]:
    with process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
        data / f"cp-{port}.log",
        env=ENV,
    ) as proc:
        yield proc


def _webhook(admin: httpx.Client, auth: dict[str, str], url: str, events: list[str]) -> dict[str, Any]:
    r = admin.post("/v1/projects/shop/webhooks", json={"name": "hook", "url": url, "events": events}, headers=auth)
    assert r.status_code == 201, r.text
    hook: dict[str, Any] = r.json()
    assert hook["events"] == events and hook["secret"]
    return hook


def _signed(secret: str, got: Received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, got.headers.get("x-flagedge-signature", ""))


def test_delivery_signature_and_retry_after_500s(tmp_path: Path) -> None:
    # Each event is refused twice (500), then taken.
    port = free_port()
    with receiving(lambda n, tries: 500 if tries < 2 else 200) as receiver, control_plane(tmp_path, port):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        auth, _keys = bootstrap_project(admin)
        hook = _webhook(admin, auth, receiver.url, ["createdFeature", "modifiedTargeting"])
        assert "secret" not in admin.get(f"/v1/projects/shop/webhooks/{hook['_id']}", headers=auth).json()
        # Kept sealed at rest: the secret is in no file of the data dir (store, WAL, logs).
        secret = hook["secret"].encode()
        assert not [f for f in tmp_path.rglob("*") if f.is_file() and secret in f.read_bytes()]

        assert admin.post("/v1/projects/shop/features", json={"key": "w", "name": "W"}, headers=auth).status_code == 201
        r = admin.patch(
            "/v1/projects/shop/features/w/configurations", params={"environment": "prod"}, json=on_rule(), headers=auth
        )
        assert r.status_code == 200, r.text

        seen = receiver.wait(lambda rs: len({g.event_id for g in rs if g.answered == 200}) == 2)
        # Each event the receiver refused twice came again, same id and same bytes, then was taken.
        for event_id in {g.event_id for g in seen}:
            assert [g.answered for g in seen if g.event_id == event_id] == [500, 500, 200]
            assert len({g.body for g in seen if g.event_id == event_id}) == 1
        for got in seen:
            assert _signed(hook["secret"], got), got.headers
            assert got.headers["idempotency-key"] == got.event_id
            assert not _signed("another secret", got)
        payloads = {g.event_id: orjson.loads(g.body) for g in seen}
        assert sorted(p["events"][0] for p in payloads.values()) == ["createdFeature", "modifiedTargeting"]
        for event_id, p in payloads.items():
            assert (p["eventId"], p["key"], p["projectId"], p["user"]["email"]) == (
                event_id,
                "w",
                "shop",
                "ops@example.com",
            )

        for delivery in _delivered(admin, auth, hook["_id"], 2):
            assert [a["statusCode"] for a in delivery["history"]] == [500, 500, 200]
            assert delivery["attempts"] == 3


def test_kill_9_mid_delivery_then_delivered_with_the_same_event_id(tmp_path: Path) -> None:
    release = threading.Event()

    def answer(n: int, tries: int) -> int:
        if n == 0:
            release.wait(30)  # holds the first delivery's answer until the control plane is dead
        return 200

    port = free_port()
    with receiving(answer) as receiver:
        with control_plane(tmp_path, port) as proc:
            admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            auth, _keys = bootstrap_project(admin)
            hook = _webhook(admin, auth, receiver.url, ["createdFeature"])
            r = admin.post("/v1/projects/shop/features", json={"key": "k", "name": "K"}, headers=auth)
            assert r.status_code == 201  # acknowledged: a delivery is owed
            first = receiver.wait(lambda rs: len(rs) == 1)[0]
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        release.set()
        with control_plane(tmp_path, port):
            seen = receiver.wait(lambda rs: len(rs) >= 2, timeout=30)
            again = seen[1]
            assert again.event_id == first.event_id and again.body == first.body
            assert again.headers["x-flagedge-delivery-attempt"] == "2"
            assert _signed(hook["secret"], again)
            deliveries = _delivered(admin, auth, hook["_id"], 1)
            assert deliveries[0]["eventId"] == first.event_id
            assert [a["statusCode"] for a in deliveries[0]["history"]] == [200]  # the attempt that was recorded


def _delivered(admin: httpx.Client, auth: dict[str, str], hook_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        r = admin.get(f"/v1/projects/shop/webhooks/{hook_id}/deliveries", headers=auth)
        assert r.status_code == 200, r.text
        deliveries: list[dict[str, Any]] = r.json()
        if len(deliveries) == count and all(d["status"] == "delivered" for d in deliveries):
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.1)
