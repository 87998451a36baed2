"""kill -9 of ``sync`` and of Redis while both hosts' edges serve traffic.

Host A runs the control plane and edge A on data dir A; host B runs ``python -m server sync``
(following a real redis-server) and edge B on data dir B. During each fault, edge B keeps
answering every request with its last good snapshot (the same flags, the same version); the
writes made during the fault reach A at once and B once the process returns, including every
version published while it was down; no edge ever serves an older version after a newer one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import (
    Answer,
    Background,
    Traffic,
    assert_no_failures,
    assert_versions_never_go_back,
    control_plane,
    create_flags,
    edge,
    ready,
    traffic,
    wait_until,
)
from tests.support.redis_server import RedisServer


@dataclass
class Hosts:
    admin: httpx.Client
    auth: dict[str, str]
    key: str
    edge_a: str
    edge_b: str
    redis: RedisServer
    sync: Background


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    redis = RedisServer(tmp_path / "redis", free_port())
    redis.start()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    sync = Background(["server", "sync", "--data-dir", str(b), "--redis-url", redis.url], tmp_path / "sync.log")
    cp, ea, eb = free_port(), free_port(), free_port()
    try:
        sync.start()
        with control_plane(a, cp, "--redis-url", redis.url):
            admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
            auth, keys = bootstrap_project(admin)
            assert create_flags(admin, auth, ["base"]).status_code == 201
            wait_until(lambda: (b / "snapshots").exists(), "sync to create host B's LMDB")
            with edge(a, ea), edge(b, eb):
                url_a, url_b = f"http://127.0.0.1:{ea}", f"http://127.0.0.1:{eb}"
                for url in (url_a, url_b):
                    wait_until(lambda: ready(url)[0] == 200, f"{url} ready")  # noqa: B023 - called at once
                yield Hosts(admin, auth, keys["client"], url_a, url_b, redis, sync)
    finally:
        sync.kill()
        redis.kill()


def _served(answers: list[Answer]) -> set[tuple[int | None, frozenset[str]]]:
    return {(a.version, a.enabled) for a in answers if a.ok}


def _fault_during_traffic(hosts: Hosts, fault: str) -> None:
    on_a = Traffic(hosts.edge_a, hosts.key, threads=2, name="a")
    on_b = Traffic(hosts.edge_b, hosts.key, threads=2, name="b")
    with traffic(on_a, on_b):
        # Both hosts serve "base" before the fault.
        first = on_b.wait_for(lambda a: a.ok and "base" in a.enabled, "base on host B")
        on_a.wait_for(lambda a: a.ok and "base" in a.enabled, "base on host A")
        time.sleep(0.5)
        good = on_b.between(first.started)[-1]
        assert good.version is not None

        down_at = time.monotonic()
        if fault == "sync":
            hosts.sync.kill()
        else:
            hosts.redis.kill()
        # Versions published while the process is down: two separate commits, two versions.
        for flags in (["during-1"], ["during-2", "during-3"]):
            r = create_flags(hosts.admin, hosts.auth, flags)
            assert r.status_code == 201, r.text
        on_a.wait_for(lambda a: a.ok and {"during-1", "during-2", "during-3"} <= a.enabled, "new flags on A")
        time.sleep(1.5)  # host B keeps serving on its own for a while
        back_at = time.monotonic()
        if fault == "sync":
            hosts.sync.start()
        else:
            hosts.redis.start()  # same port, empty (no persistence), as after a crash
        caught_up = on_b.wait_for(
            lambda a: a.ok and {"during-1", "during-2", "during-3"} <= a.enabled,
            f"host B to catch up after {fault} returns",
            timeout=40,
        )
        time.sleep(0.5)
    down = on_b.between(down_at, back_at)
    assert_no_failures(on_a.snapshot(), f"edge A during the {fault} fault")
    assert_no_failures(on_b.snapshot(), f"edge B during the {fault} fault")
    # While the fault lasted, B served exactly its last good snapshot.
    assert _served(down) == {(good.version, good.enabled)}, _served(down)
    assert_versions_never_go_back(on_a.snapshot(), "edge A")
    assert_versions_never_go_back(on_b.snapshot(), "edge B")
    # B ends on A's version: every version published meanwhile arrived (sync applies them in
    # order, or the full state at the newest one when Redis restarted empty).
    a_version = int(ready(hosts.edge_a)[1]["version"])
    wait_until(lambda: int(ready(hosts.edge_b)[1]["version"]) == a_version, "host B on host A's store version")
    print(
        f"{fault} kill: edge B served v{good.version} for {back_at - down_at:.1f} s "
        f"({len(down)} requests, 0 failed), caught up to v{caught_up.version} "
        f"{caught_up.ended - back_at:.2f} s after {fault} returned; "
        f"{len(on_a.answers)} + {len(on_b.answers)} requests, 0 failed"
    )


def test_kill_sync_during_traffic(hosts: Hosts) -> None:
    _fault_during_traffic(hosts, "sync")


def test_kill_redis_during_traffic(hosts: Hosts) -> None:
    _fault_during_traffic(hosts, "redis")
