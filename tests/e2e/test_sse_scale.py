"""Idle SSE subscribers cost little: 2,000 streams on one real edge worker.

The real control plane and edge processes share a data dir (as in ``test_single_host.py``). 2,000
clients hold ``/features/stream`` open (raw asyncio streams, one socket each); the edge worker's
RSS growth stays small, a normal ``/features/evaluated`` still answers fast, and one admin change
reaches at least 99% of the subscribers as a new ``flagStateVersion`` event within 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.processes import bootstrap_project, free_port, process

SUBSCRIBERS = 2000
CONNECT_CONCURRENCY = 200
MAX_RSS_GROWTH_MB = 150
FANOUT_DEADLINE = 5.0
VERSION = re.compile(rb'"flagStateVersion":(\d+)')


@dataclass
class Edge:
    port: int
    pid: int
    client_key: str
    admin: httpx.Client
    auth: dict[str, str]


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < SUBSCRIBERS + 500:
        pytest.skip(f"needs ~{SUBSCRIBERS + 500} file descriptors, the hard limit allows {soft}")


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
            if int(ppid.split()[1]) == pid:
                found.append(int(status.parent.name))
    return found


def _rss_kb(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1])


def _worker_pid(edge_pid: int) -> int:
    """The granian worker serving requests: the edge's child process (the biggest, if several)."""
    deadline = time.monotonic() + 10
    while True:
        children = [c for c in _children(edge_pid) if b"resource_tracker" not in _cmdline(c)]
        if children:
            return max(children, key=_rss_kb)
        assert time.monotonic() < deadline, "no granian worker process found"
        time.sleep(0.1)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    _raise_fd_limit(SUBSCRIBERS * 2 + 1000)  # before starting the edge: it inherits the limit
    data = tmp_path_factory.mktemp("data")
    cp_port, edge_port = free_port(), free_port()
    with process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp_port)],
        f"http://127.0.0.1:{cp_port}/health",
        data / "control_plane.log",
    ):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=10)
        auth, keys = bootstrap_project(admin)
        client_key = keys["client"]
        with process(
            ["server", "serve", "--data-dir", str(data), "--port", str(edge_port)],
            f"http://127.0.0.1:{edge_port}/ready",
            data / "edge.log",
        ) as proc:
            yield Edge(edge_port, proc.pid, client_key, admin, auth)
        admin.close()


@dataclass
class Subscribers:
    """What the subscribers saw: the version each first got, and when each got a newer one."""

    initial: dict[int, int] = field(default_factory=dict)
    updated: dict[int, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    target: int | None = None  # a version newer than this counts as "the change"
    all_subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def subscribe(self, i: int, port: int, key: str, gate: asyncio.Semaphore) -> None:
        try:
            async with gate:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    f"GET /features/stream?publishableKey={key} HTTP/1.1\r\n"
                    "Host: edge\r\nAccept: text/event-stream\r\n\r\n".encode()
                )
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if not head.startswith(b"HTTP/1.1 200"):
                self.failed.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
            self.failed.append(f"{type(e).__name__}: {e}")
            return
        tail = head[-64:]
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buf = tail + data
                for match in VERSION.finditer(buf):
                    version = int(match.group(1))
                    if i not in self.initial:
                        self.initial[i] = version
                        if len(self.initial) == SUBSCRIBERS:
                            self.all_subscribed.set()
                    elif self.target is not None and version > self.target and i not in self.updated:
                        self.updated[i] = time.monotonic()
                tail = buf[-64:]  # never re-matches a complete number: events end in "}\n\n"
        except (OSError, asyncio.CancelledError):
            return
        finally:
            writer.close()


def _evaluated_latencies(port: int, key: str, n: int = 20) -> list[float]:
    times = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
        for i in range(n):
            started = time.perf_counter()
            r = c.get("/features/evaluated", params={"publishableKey": key, "context.user.id": f"u{i}"})
            times.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
    return times


async def _run(edge: Edge) -> dict[str, float]:
    worker = _worker_pid(edge.pid)
    # Warm the code paths one subscriber and one evaluation use, then take the baseline.
    _evaluated_latencies(edge.port, edge.client_key, 3)
    warm = Subscribers()
    warm_task = asyncio.create_task(warm.subscribe(0, edge.port, edge.client_key, asyncio.Semaphore(1)))
    deadline = time.monotonic() + 10
    while not warm.initial:
        assert time.monotonic() < deadline and not warm.failed, warm.failed
        await asyncio.sleep(0.01)
    warm_task.cancel()
    await asyncio.sleep(0.3)
    baseline_kb = _rss_kb(worker)

    subs = Subscribers()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    started = time.monotonic()
    tasks = [asyncio.create_task(subs.subscribe(i, edge.port, edge.client_key, gate)) for i in range(SUBSCRIBERS)]
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subs.all_subscribed.wait(), 30)
        assert not subs.failed, (len(subs.failed), subs.failed[:5])
        assert len(subs.initial) == SUBSCRIBERS, f"only {len(subs.initial)} of {SUBSCRIBERS} streams got their event"
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(0.5)  # let allocations settle
        growth_mb = (_rss_kb(worker) - baseline_kb) / 1024

        latencies = await asyncio.to_thread(_evaluated_latencies, edge.port, edge.client_key)

        # One admin change; every subscriber should hear the new environment version.
        subs.target = max(subs.initial.values())
        changed = time.monotonic()
        # A feature served in this environment: creating it inactive would change nothing served.
        feature = {
            "key": "sse-fanout",
            "name": "F",
            "configurations": {
                "prod": {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}}
            },
        }
        r = await asyncio.to_thread(edge.admin.post, "/v1/projects/shop/features", json=feature, headers=edge.auth)
        assert r.status_code == 201, r.text
        deadline = changed + FANOUT_DEADLINE
        while len(subs.updated) < SUBSCRIBERS and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        on_time = [t - changed for t in subs.updated.values() if t <= deadline]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert len(on_time) >= 0.99 * SUBSCRIBERS, f"{len(on_time)} of {SUBSCRIBERS} got the change within 5 s"
    ordered = sorted(on_time)
    stats = {
        "connect_s": connect_seconds,
        "rss_growth_mb": growth_mb,
        "rss_per_1000_mb": growth_mb * 1000 / SUBSCRIBERS,
        "evaluated_max_ms": max(latencies) * 1000,
        "evaluated_median_ms": statistics.median(latencies) * 1000,
        "fanout_p50_ms": ordered[len(ordered) // 2] * 1000,
        "fanout_p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "fanout_max_ms": ordered[-1] * 1000,
    }
    print("\nSSE scale:", ", ".join(f"{k}={v:.1f}" for k, v in stats.items()))
    assert growth_mb < MAX_RSS_GROWTH_MB, stats
    assert max(latencies) < 0.2, stats
    return stats


def test_two_thousand_idle_subscribers(edge: Edge) -> None:
    asyncio.run(_run(edge))
