"""Two control-plane replicas on one PostgreSQL, Redis, and two edge hosts following Redis through
``sync``. 50 writers spread over both replicas; the publishing replica is killed with -9 in the
middle: the other takes over within a bound, no acknowledged write is lost, every edge converges
to the same final version and no edge's version ever goes backwards (issue 19's acceptance)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bench.processes import Background, bootstrap_project, free_port, process
from contract.store import SnapshotReader
from tests.support.redis_server import RedisServer

WRITERS = 50
BEFORE_KILL = 3.0  # seconds of writes before the leader dies
AFTER_KILL = 4.0  # and after
TAKEOVER_BOUND = 5.0  # seconds from kill -9 to the other replica publishing
SECRET = "e2e-replicas-share-one-jwt-secret-0123456789"
KEY_SECRET = "e2e-replicas-share-one-key-encryption-secret-0123"


def _rule(value: str) -> dict[str, Any]:
    rule = {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": [value]}}
    return {"status": "active", "targeting": {"rules": [rule]}}


class Writer(threading.Thread):
    """Sets its flag's rule to v0, v1, … in turn; a write that fails (its replica died) is retried
    on the other replica until acknowledged. ``acked``: the last acknowledged value."""

    def __init__(self, index: int, replicas: list[str], auth: dict[str, str], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.flag = f"w{index}"
        self.replicas = replicas[index % 2 :] + replicas[: index % 2]  # half start on each
        self.auth, self.stop = auth, stop
        self.acked: str | None = None
        self.writes = 0
        self.retries = 0

    def run(self) -> None:
        clients = [httpx.Client(base_url=url, timeout=30) for url in self.replicas]
        n = 0
        while not self.stop.is_set():
            value = f"v{n}"
            while True:
                try:
                    r = clients[0].patch(
                        f"/v1/projects/shop/features/{self.flag}/configurations",
                        params={"environment": "prod"},
                        json=_rule(value),
                        headers=self.auth,
                    )
                except httpx.TransportError:
                    clients = clients[1:] + clients[:1]  # that replica is gone: the other one
                    self.retries += 1
                    continue
                assert r.status_code == 200, r.text
                break
            self.acked, self.writes = value, self.writes + 1
            n += 1


class Versions(threading.Thread):
    """Watches each edge's LMDB version; records any step backwards."""

    def __init__(self, dirs: list[Path], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.readers = [SnapshotReader(d) for d in dirs]
        self.stop = stop
        self.seen: list[list[int]] = [[] for _ in dirs]
        self.backwards: list[tuple[int, int, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for i, reader in enumerate(self.readers):
                v = reader.version()
                if self.seen[i] and v < self.seen[i][-1]:
                    self.backwards.append((i, self.seen[i][-1], v))
                if not self.seen[i] or v != self.seen[i][-1]:
                    self.seen[i].append(v)
            time.sleep(0.005)


def _served(edge: httpx.Client, key: str, flag: str, value: str) -> bool:
    r = edge.get("/features/evaluated", params={"publishableKey": key, "context.company.plan": value})
    return r.status_code == 200 and r.json()["features"].get(flag, {}).get("isEnabled") is True


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_kill_the_publishing_replica_mid_stream(tmp_path: Path, redis: RedisServer, postgres_url: str) -> None:
    ports = [free_port(), free_port()]
    dirs = {name: tmp_path / name for name in ("r0", "r1", "edge-a", "edge-b")}
    for d in dirs.values():
        d.mkdir()
    common = [
        "--redis-url",
        redis.url,
        "--database-url",
        postgres_url,
        "--jwt-secret",
        SECRET,
        "--key-encryption-secret",
        KEY_SECRET,
    ]
    with ExitStack() as stack:
        replicas = []
        for i, port in enumerate(ports):
            args = ["control_plane", "serve", "--data-dir", str(dirs[f"r{i}"]), "--port", str(port), *common]
            health = f"http://127.0.0.1:{port}/health"
            replicas.append(stack.enter_context(process(args, health, tmp_path / f"r{i}.log")))
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        assert httpx.get(urls[0] + "/ready").json()["publish"]["role"] == "leader"
        assert httpx.get(urls[1] + "/ready").json()["publish"]["role"] == "standby"
        admin = httpx.Client(base_url=urls[1], timeout=30)  # set up through the standby
        auth, keys = bootstrap_project(admin)
        flags = [f"w{i}" for i in range(WRITERS)]
        body = [{"key": k, "name": k, "configurations": {"prod": _rule("start")}} for k in flags]
        assert admin.post("/v1/projects/shop/features/multiple", json=body, headers=auth).status_code in (200, 201)
        edges = []
        for name in ("edge-a", "edge-b"):
            d = dirs[name]
            sync = ["server", "sync", "--data-dir", str(d), "--redis-url", redis.url]
            follower = Background(sync, tmp_path / f"{name}-sync.log")
            follower.start()
            stack.callback(follower.kill)
            deadline = time.monotonic() + 20
            while not (d / "snapshots").exists():
                assert time.monotonic() < deadline, f"sync did not create {name}'s LMDB"
                time.sleep(0.05)
            port = free_port()
            args = ["server", "serve", "--data-dir", str(d), "--port", str(port), "--workers", "1"]
            stack.enter_context(process(args, f"http://127.0.0.1:{port}/health", tmp_path / f"{name}.log"))
            edges.append(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10))
        client_key = keys["client"]
        for edge in edges:  # both edges serve the starting state
            deadline = time.monotonic() + 20
            while not all(_served(edge, client_key, f, "start") for f in (flags[0], flags[-1])):
                assert time.monotonic() < deadline, "edges never served the starting state"
                time.sleep(0.05)

        stop, watching = threading.Event(), threading.Event()
        versions = Versions([dirs["edge-a"], dirs["edge-b"]], watching)
        versions.start()
        writers = [Writer(i, urls, auth, stop) for i in range(WRITERS)]
        for w in writers:
            w.start()
        time.sleep(BEFORE_KILL)
        before = sum(w.writes for w in writers)
        with psycopg.connect(postgres_url, autocommit=True) as db:
            row = db.execute("SELECT publisher FROM publish_state WHERE id = 1").fetchone()
            assert row is not None
            leader = row[0]
        # kill -9 the publishing replica (its whole process group: granian's worker too).
        killed_at = time.monotonic()
        os.killpg(replicas[0].pid, signal.SIGKILL)
        # Asked of PostgreSQL, not of the standby's /ready: that answer queues behind the writes
        # that all go to the standby now.
        with psycopg.connect(postgres_url, autocommit=True) as db:
            while True:
                row = db.execute("SELECT publisher FROM publish_state WHERE id = 1").fetchone()
                if row is not None and row[0] != leader:
                    break
                assert time.monotonic() - killed_at < TAKEOVER_BOUND, "the standby did not take over"
                time.sleep(0.01)
        takeover = time.monotonic() - killed_at
        version_at_kill = max(max(s) for s in versions.seen)
        while versions.readers[0].version() <= version_at_kill:
            assert time.monotonic() - killed_at < TAKEOVER_BOUND + 5, "no new version reached the edges"
            time.sleep(0.01)
        first_new_version = time.monotonic() - killed_at
        time.sleep(AFTER_KILL)
        stop.set()
        for w in writers:
            w.join(60)
        acked = sum(w.writes for w in writers)

        # Every acknowledged write is served by both edges, which end on one version.
        standby = httpx.Client(base_url=urls[1], timeout=60)
        ready = standby.get("/ready").json()["publish"]
        assert ready["role"] == "leader", ready
        final = ready["version"]
        deadline = time.monotonic() + 20
        lost: list[str] = []
        for edge in edges:
            for w in writers:
                assert w.acked is not None
                while not _served(edge, client_key, w.flag, w.acked):
                    if time.monotonic() > deadline:
                        lost.append(f"{w.flag}={w.acked}")
                        break
                    time.sleep(0.02)
        assert not lost, f"acknowledged writes not served: {lost[:10]}"
        deadline = time.monotonic() + 10
        while {r.version() for r in versions.readers} != {final}:
            assert time.monotonic() < deadline, "the edges did not converge on the final version"
            time.sleep(0.02)
        watching.set()
        versions.join(5)
        assert not versions.backwards, versions.backwards
        print(
            f"\nreplicas: {acked} writes acknowledged ({before} before the kill, "
            f"{sum(w.retries for w in writers)} retried on the other replica); takeover {takeover * 1000:.0f} ms, "
            f"first new version on edge A {first_new_version * 1000:.0f} ms after kill -9; final version {final}"
        )
