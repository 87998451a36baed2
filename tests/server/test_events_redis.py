"""SDK events through Redis: edge → stream ``flagedge:events`` → control-plane consumer → SQLite.

Against a real ``redis-server`` (``tests/sync/conftest.py``). The edge and control plane run
in-process on one data directory as in ``tests/server/stack.py``, with Redis configured.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from contract.intake import EVENTS_STREAM
from contract.store import SnapshotReader
from control_plane.app import create_app as create_control_plane
from control_plane.events_consumer import GROUP, RedisConsumer, consume_spool
from control_plane.publisher import Publisher
from control_plane.settings import Settings
from control_plane.store import Store
from server import settings as edge_settings
from server.app import create_app as create_edge
from server.events import RedisQueue
from server.settings import EdgeSettings
from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import Project, project
from tests.server.stack import Stack
from tests.support.redis_server import RedisServer, free_port

USER = {"userId": "u1", "attributes": {"plan": "pro"}}


@pytest.fixture
def rs(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)  # in case a test left it stopped
        server.kill()


@contextmanager
def redis_stack(data_dir: Path, *, edge_redis: str | None, control_redis: str | None) -> Iterator[Stack]:
    """``tests.server.stack.stack`` with Redis URLs for the edge and for the control plane."""
    control = create_control_plane(
        Settings(data_dir=data_dir, jwt_secret="test-secret-" + "x" * 32, redis_url=control_redis)
    )
    publisher: Publisher = control.state.services.publish_projects.__self__
    with TestClient(control) as cp:
        edge_app = create_edge(EdgeSettings(data_dir=data_dir, poll_interval=3600, redis_url=edge_redis))
        edge_app.state.edge.state.reader = SnapshotReader.over(publisher.writer)
        with TestClient(edge_app) as edge:
            s = Stack(Api(cp), edge, data_dir)
            s.sync()
            yield s
    publisher.writer.close()


def _client_key(s: Stack) -> tuple[Project, str]:
    p = project(s.api)
    s.sync()
    key: str = p.environments["development"]["sdkKeys"]["client"][0]["key"]
    return p, key


def _post(s: Stack, path: str, body: Any, key: str, **kwargs: Any) -> Any:
    return s.edge.post(path, params={"publishableKey": key}, json=body, **kwargs)


def _spooled(data_dir: Path) -> list[dict[str, Any]]:
    directory = data_dir / "events"
    if not directory.is_dir():
        return []
    lines = []
    for f in sorted(directory.glob("spool-*.jsonl")):
        lines += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return [line for line in lines if "spool" not in line]


def _stored(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in store.all("SELECT id, type, user_id, dedup_id FROM events ORDER BY user_id, id")]


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _pending(r: redis.Redis) -> int:
    info: Any = r.xpending(EVENTS_STREAM, GROUP)
    return int(info["pending"])


def test_edge_queues_the_spool_record_on_the_stream(tmp_path: Path, rs: RedisServer) -> None:
    with redis_stack(tmp_path, edge_redis=rs.url, control_redis=None) as s:
        p, key = _client_key(s)
        assert _post(s, "/user", {**USER, "client_dedup_id": "u-1"}, key).json() == {"success": True}
        bulk = [{"type": "event", "event": "clicked", "userId": "u2"}, {"type": "company", "companyId": "c1"}]
        r = _post(s, "/bulk", bulk, key, headers={"Idempotency-Key": "b-1"})
        assert r.status_code == 200 and r.headers["x-request-id"]
        entries: Any = rs.client().xrange(EVENTS_STREAM)
    assert _spooled(tmp_path) == []  # Redis took them all
    assert [set(fields) for _, fields in entries] == [{b"id", b"record"}] * 3
    records = [orjson.loads(fields[b"record"]) for _, fields in entries]
    assert [fields[b"id"].decode() for _, fields in entries] == [rec["id"] for rec in records]
    for rec in records:  # exactly a spool line
        assert set(rec) == {"id", "type", "environment", "project", "keyKind", "receivedAt", "dedupId", "event"}
        assert rec["environment"] == p.env_id("development") and rec["keyKind"] == "client"
    assert [rec["type"] for rec in records] == ["user", "event", "company"]
    assert [rec["dedupId"] for rec in records] == ["u-1", "b-1:0", "b-1:1"]
    assert records[0]["event"] == USER and records[0]["id"].startswith("d")


def test_events_reach_sqlite_through_redis_once(tmp_path: Path, rs: RedisServer) -> None:
    """The control plane's own consumer thread (lifespan, ``--redis-url``) stores them, duplicates once."""
    with redis_stack(tmp_path, edge_redis=rs.url, control_redis=rs.url) as s:
        _, key = _client_key(s)
        for _ in range(3):  # a client retrying the same event
            assert _post(s, "/user", {**USER, "client_dedup_id": "req-1"}, key).status_code == 200
        bulk = [{"type": "user", "userId": f"b{i}"} for i in range(20)]
        for _ in range(2):
            assert _post(s, "/bulk", bulk, key, headers={"Idempotency-Key": "batch"}).status_code == 200
        assert _post(s, "/event", {"event": "opened", "userId": "u9"}, key).status_code == 200
        _wait(lambda: len(_stored(s.store)) == 22, "22 distinct events in SQLite")
        r = rs.client()
        _wait(lambda: _pending(r) == 0 and r.xlen(EVENTS_STREAM) == 0, "acknowledged and removed from the stream")
        time.sleep(0.3)  # nothing else trickles in
        rows = _stored(s.store)
    assert len(rows) == 22 and len({row["id"] for row in rows}) == 22
    assert [row["user_id"] for row in rows if row["dedup_id"] == "req-1"] == ["u1"]
    assert sorted(row["dedup_id"] for row in rows if row["dedup_id"] and row["dedup_id"].startswith("batch")) == sorted(
        f"batch:{i}" for i in range(20)
    )
    assert _spooled(tmp_path) == []


def test_redis_down_falls_back_to_the_spool(tmp_path: Path, rs: RedisServer) -> None:
    with redis_stack(tmp_path, edge_redis=rs.url, control_redis=None) as s:
        _, key = _client_key(s)
        assert _post(s, "/user", {"userId": "before"}, key).status_code == 200
        rs.kill()  # refused connections
        started = time.monotonic()
        r = _post(s, "/user", {"userId": "down-1"}, key)
        assert r.status_code == 200 and r.json() == {"success": True}
        assert time.monotonic() - started < 0.5
        assert _post(s, "/bulk", [{"type": "user", "userId": "down-2"}], key).status_code == 200
        assert [e["event"]["userId"] for e in _spooled(tmp_path)] == ["down-1", "down-2"]

        rs.start()  # back, empty (no persistence)
        time.sleep(1.1)  # the edge retries Redis a second after a failure
        assert _post(s, "/user", {"userId": "after"}, key).status_code == 200
        entries: Any = rs.client().xrange(EVENTS_STREAM)
        assert [orjson.loads(f[b"record"])["event"]["userId"] for _, f in entries] == ["after"]
        assert len(_spooled(tmp_path)) == 2

        consumer = RedisConsumer(s.store, rs.url, consumer="test")
        try:
            assert consumer.setup() == 0 and consumer.poll() == 1
        finally:
            consumer.stop()
        consume_spool(tmp_path, s.store)  # (the control plane's spool thread may have been first)
        assert sorted(row["user_id"] for row in _stored(s.store)) == ["after", "down-1", "down-2"]


def test_hung_redis_never_stalls_a_request(tmp_path: Path, rs: RedisServer) -> None:
    """A Redis that accepts connections but does not answer (SIGSTOP): spooled within ~200 ms; the
    commands it later runs add copies of spooled events, which the consumer stores once."""
    assert rs.proc is not None
    with redis_stack(tmp_path, edge_redis=rs.url, control_redis=None) as s:
        _, key = _client_key(s)
        assert _post(s, "/user", {"userId": "warm"}, key).status_code == 200  # pooled connection
        os.kill(rs.proc.pid, signal.SIGSTOP)
        try:
            timings = []
            for i in range(3):
                started = time.monotonic()
                assert _post(s, "/user", {"userId": f"hung-{i}", "client_dedup_id": f"h{i}"}, key).status_code == 200
                timings.append(time.monotonic() - started)
        finally:
            os.kill(rs.proc.pid, signal.SIGCONT)
        assert max(timings) < 0.45, timings  # the first waits out the deadline, the next skip Redis
        assert sum(timings[1:]) < 0.2, timings
        assert [e["event"]["userId"] for e in _spooled(tmp_path)] == ["hung-0", "hung-1", "hung-2"]

        time.sleep(0.2)  # Redis catches up with what it was sent while stopped
        consumer = RedisConsumer(s.store, rs.url, consumer="test")
        try:
            consumer.setup()
            consumer.poll()
        finally:
            consumer.stop()
        consume_spool(tmp_path, s.store)
        users = sorted(row["user_id"] for row in _stored(s.store))
    # "warm" came through Redis; hung-0 may also have reached Redis after it woke up: stored once.
    assert users == ["hung-0", "hung-1", "hung-2", "warm"]


def test_consumer_restart_redelivers_unacknowledged_entries(
    tmp_path: Path, rs: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redis_stack(tmp_path, edge_redis=rs.url, control_redis=None) as s:
        _, key = _client_key(s)
        bulk = [{"type": "user", "userId": f"u{i}"} for i in range(5)]
        assert _post(s, "/bulk", bulk, key).status_code == 200
        r = rs.client()

        # A consumer that dies after the SQLite commit, before XACK.
        crashing = RedisConsumer(s.store, rs.url, consumer="cp-1")

        def crash(ids: list[bytes]) -> None:
            raise RuntimeError("killed before XACK")

        monkeypatch.setattr(crashing, "acknowledge", crash)
        assert crashing.setup() == 0
        with pytest.raises(RuntimeError, match="XACK"):
            crashing.poll()
        crashing.stop()
        assert len(_stored(s.store)) == 5 and _pending(r) == 5

        # The same consumer restarted: its own pending entries come again, stored once, acknowledged.
        restarted = RedisConsumer(s.store, rs.url, consumer="cp-1")
        try:
            assert restarted.setup() == 0
            assert _pending(r) == 0 and r.xlen(EVENTS_STREAM) == 0
        finally:
            restarted.stop()

        # Another crash, then a consumer of another name (another host) claims the stale entries.
        assert _post(s, "/bulk", [{"type": "user", "userId": f"v{i}"} for i in range(3)], key).status_code == 200
        crashing = RedisConsumer(s.store, rs.url, consumer="cp-1")
        monkeypatch.setattr(crashing, "acknowledge", crash)
        crashing.setup()
        with pytest.raises(RuntimeError):
            crashing.poll()
        crashing.stop()
        assert _pending(r) == 3
        fresh = RedisConsumer(s.store, rs.url, consumer="cp-2", claim_idle=0.2)
        try:
            assert fresh.setup() == 0 and _pending(r) == 3  # not stale yet: the owner might be alive
            time.sleep(0.25)
            assert fresh.claim_stale() == 0  # XAUTOCLAIM: delivered again, duplicates ignored
            assert _pending(r) == 0 and r.xlen(EVENTS_STREAM) == 0
        finally:
            fresh.stop()
        rows = _stored(s.store)
    assert sorted(row["user_id"] for row in rows) == [f"u{i}" for i in range(5)] + [f"v{i}" for i in range(3)]


def test_consumer_thread_survives_a_redis_restart(tmp_path: Path, rs: RedisServer) -> None:
    """Redis restarting empty (group gone) or briefly away: the thread reconnects and recreates the group."""
    with redis_stack(tmp_path, edge_redis=rs.url, control_redis=None) as s:
        _, key = _client_key(s)
        consumer = RedisConsumer(s.store, rs.url, consumer="cp", block=0.1)
        consumer.start()
        try:
            assert _post(s, "/user", {"userId": "a"}, key).status_code == 200
            _wait(lambda: len(_stored(s.store)) == 1, "the first event")
            rs.kill()
            time.sleep(0.3)
            rs.start()
            time.sleep(1.1)  # the edge's retry pause after a failure (it may have seen none)
            assert _post(s, "/user", {"userId": "b"}, key).status_code == 200
            _wait(lambda: len(_stored(s.store)) == 2, "the event after the restart")
        finally:
            consumer.stop()
        assert not consumer.is_alive()
        assert _spooled(tmp_path) == []


def test_stream_is_trimmed_approximately(rs: RedisServer) -> None:
    queue = RedisQueue(rs.url, maxlen=100)
    try:
        for chunk in range(10):
            queue.add([(f"e{chunk}-{i}", b"{}") for i in range(100)])
    finally:
        queue.close()
    length = rs.client().xlen(EVENTS_STREAM)
    assert 100 <= length < 300  # MAXLEN ~ trims whole macro nodes


def test_redis_url_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for _, env, _, _, _ in edge_settings.FIELDS:
        monkeypatch.setenv(edge_settings.ENV_PREFIX + env, "")
        monkeypatch.delenv(edge_settings.ENV_PREFIX + env)
    parser = argparse.ArgumentParser()
    edge_settings.add_arguments(parser)
    assert "FLAGEDGE_REDIS_URL" in parser.format_help()
    edge_settings.to_environ(parser.parse_args(["--data-dir", str(tmp_path), "--redis-url", "redis://h:1/0"]))
    assert edge_settings.from_environ().redis_url == "redis://h:1/0"
    edge_settings.to_environ(parser.parse_args(["--data-dir", str(tmp_path)]))
    assert edge_settings.from_environ().redis_url is None
    monkeypatch.setenv("FLAGEDGE_REDIS_URL", "redis://env:2/0")
    parser = argparse.ArgumentParser()
    edge_settings.add_arguments(parser)
    edge_settings.to_environ(parser.parse_args(["--data-dir", str(tmp_path)]))
    assert edge_settings.from_environ().redis_url == "redis://env:2/0"
