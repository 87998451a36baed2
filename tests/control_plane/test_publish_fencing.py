"""Fencing of the publishing replica (control_plane/leadership.py, contract/redis_protocol.py): a
publisher whose term is over (its PostgreSQL session dropped while it was paused or cut off) but
that still reaches Redis publishes nothing, and no version goes backwards anywhere; Redis's rules
themselves, script by script."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from contract.framing import decode
from contract.redis_protocol import (
    BEHIND,
    CHANGE_SCRIPT,
    CLAIM_SCRIPT,
    DEPOSED,
    FULL_SCRIPT,
    STORED,
    RedisKeys,
    encode_change,
    encode_full,
    outcome,
)
from contract.store import ChangeSet
from control_plane.app import create_app
from control_plane.leadership import Deposed, Leadership
from control_plane.publisher import Publisher
from control_plane.settings import Settings
from control_plane.store import Store
from server.sync import Sync
from tests.control_plane.conftest import Api
from tests.support.redis_server import RedisServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "replicas-share-this-secret-" + "x" * 20
KEYS = RedisKeys()


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---- Redis's rules --------------------------------------------------------------------------------


def _change(conn: redis.Redis, version: int, epoch: int | str, marker: str) -> tuple[int, int]:
    blob = encode_change(version, ChangeSet(releases={marker: {"project": "p"}}))
    args = [version, epoch, blob, 3600, 1000, KEYS.change_prefix, KEYS.channel, 1 << 30]
    keys = [KEYS.term, KEYS.version, KEYS.full, KEYS.index, KEYS.change(version), KEYS.sizes]
    return outcome(conn.eval(CHANGE_SCRIPT, len(keys), *keys, *args))


def _full(conn: redis.Redis, version: int, epoch: int | str) -> tuple[int, int]:
    blob = encode_full(version, {})
    return outcome(conn.eval(FULL_SCRIPT, 3, KEYS.term, KEYS.version, KEYS.full, version, epoch, blob, KEYS.channel))


def _claim(conn: redis.Redis, epoch: int) -> tuple[int, int]:
    return outcome(conn.eval(CLAIM_SCRIPT, 3, KEYS.term, KEYS.version, KEYS.full, epoch))


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


def _stored_marker(conn: redis.Redis, version: int) -> str | None:
    raw = conn.get(KEYS.change(version))
    return None if raw is None else next(iter(decode(_as_bytes(raw))["releases"]))


def test_redis_refuses_lower_epochs_and_older_terms_versions(redis_server: RedisServer) -> None:
    conn = redis_server.client()
    assert _change(conn, 1, 1, "old-1") == (STORED, 1)
    assert _change(conn, 2, 1, "old-2") == (STORED, 2)
    # Term 2 claims: it must write above version 2; term 1 is refused from now on.
    assert _claim(conn, 2) == (STORED, 2)
    assert _change(conn, 3, 1, "stale-3") == (DEPOSED, 2)
    assert _full(conn, 3, 1) == (DEPOSED, 2)
    assert _claim(conn, 1)[0] == DEPOSED
    assert _stored_marker(conn, 3) is None and conn.get(KEYS.version) == b"2"
    # Term 2 may not reuse a version number term 1 wrote (a follower may hold term 1's).
    assert _change(conn, 2, 2, "new-2") == (BEHIND, 2)
    assert _stored_marker(conn, 2) == "old-2"
    assert _full(conn, 3, 2) == (STORED, 2) and conn.get(KEYS.version) == b"3"
    assert _change(conn, 4, 2, "new-4") == (STORED, 4)
    # A term that never claimed claims with its first write; below the announced version: refused.
    assert _change(conn, 4, 3, "three-4") == (BEHIND, 4)
    assert _change(conn, 5, 2, "late-5") == (DEPOSED, 4)  # term 3 holds now, even though refused
    assert _change(conn, 5, 3, "three-5") == (STORED, 5)
    # The announced version never goes backwards; an unfenced write (no epoch) is not checked.
    assert _change(conn, 3, "", "unfenced-3") == (STORED, 5)
    assert conn.get(KEYS.version) == b"5"


# ---- a deposed replica ----------------------------------------------------------------------------


def _replica(data_dir: Path, url: str, redis_url: str) -> TestClient:
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir, jwt_secret=SECRET, database_url=url, redis_url=redis_url)
    return TestClient(create_app(settings))


@contextmanager
def _following(data_dir: Path, redis_url: str) -> Iterator[Sync]:
    """A real ``sync`` into ``data_dir`` on a thread, as on an edge host."""
    sync = Sync(data_dir, redis_url, reconcile_interval=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield sync
    finally:
        stop.set()
        thread.join(10)
        sync.close()


def _feature(client: TestClient, h: dict[str, str], key: str) -> None:
    """A flag served in prod: a change every replica's publisher must publish."""
    r = client.post("/v1/projects/shop/features", json={"key": key, "name": key}, headers=h)
    assert r.status_code == 201, r.text
    rule = {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}}
    r = client.patch(
        f"/v1/projects/shop/features/{key}/configurations", params={"environment": "prod"}, json=rule, headers=h
    )
    assert r.status_code == 200, r.text


def _terminate(postgres_url: str, pid: int) -> None:
    """What a network partition or an operator does to the publisher's session."""
    with psycopg.connect(postgres_url, autocommit=True) as db:
        assert db.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_a_deposed_publisher_is_refused_and_no_version_goes_backwards(
    tmp_path: Path, postgres_url: str, redis_server: RedisServer
) -> None:
    conn = redis_server.client()
    # The old publisher: the production pieces a replica publishes with, driven by hand so that
    # it can be "paused" across its deposition.
    store = Store(postgres_url)
    old = Leadership(postgres_url, "old")
    epoch = old.try_acquire()
    assert epoch == 1
    (tmp_path / "old").mkdir()
    publisher = Publisher(tmp_path / "old", store, redis_server.url, fenced=True)
    publisher.fence = old.check
    try:
        assert publisher.redis is not None
        assert publisher.redis.begin_term(epoch) == 0
        b = _replica(tmp_path / "b", postgres_url, redis_server.url)
        edge = tmp_path / "edge"
        with b, _following(edge, redis_server.url) as sync:
            rb = b.app.state.replication  # type: ignore[attr-defined]
            assert not rb.leader  # the old publisher holds the lock
            api = Api(b)
            owner = api.signup()
            api.organisation(owner, "acme")
            h = owner.org("acme")
            assert b.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=h).status_code == 201
            env = {"name": "Prod", "key": "prod", "type": "production"}
            assert b.post("/v1/projects/shop/environments", json=env, headers=h).status_code == 201
            row = store.one("SELECT id FROM projects WHERE key = 'shop'")
            assert row is not None
            project_id = row[0]
            _feature(b, h, "one")
            with old.snapshot() as db:
                first = publisher.republish_all(db, fresh_term=True)
            assert publisher.redis.flush(5, full=True)
            _wait(lambda: sync.version() == first)

            # The old publisher's session drops (it is paused and does not notice): B takes over.
            pid = old.backend_pid
            assert pid is not None
            _terminate(postgres_url, pid)
            _wait(lambda: rb.leader)
            assert rb.leadership.epoch == 2
            _feature(b, h, "two")
            newest = b.app.state.publisher.writer.version()  # type: ignore[attr-defined]
            assert newest > first
            _wait(lambda: sync.version() == newest)
            _, served = sync.writer.read_all()

            # The old publisher resumes: its LMDB write is refused before it commits ...
            with pytest.raises(Deposed):
                publisher.publish_projects({project_id})
            assert publisher.writer.version() == first
            # ... and so is a change set it had already queued for Redis.
            stale = ChangeSet(releases={"stale/app": {"project": project_id}})
            publisher.redis.publish(first + 1, stale)
            _wait(lambda: publisher.redis is not None and publisher.redis.deposed)
            assert conn.get(KEYS.version) == str(newest).encode()
            raw = conn.get(KEYS.change(first + 1))
            assert raw is None or "stale/app" not in decode(_as_bytes(raw))["releases"]
            assert int(conn.hget(KEYS.term, "epoch") or 0) == 2
            # Nothing the old publisher did reached the edge, whose version only ever grew.
            time.sleep(0.3)
            assert sync.version() == newest and sync.writer.read_all()[1] == served
            # The new leader keeps publishing, and the edge follows.
            _feature(b, h, "three")
            latest = b.app.state.publisher.writer.version()  # type: ignore[attr-defined]
            _wait(lambda: sync.version() == latest)
            assert latest > newest
            assert "stale/app" not in sync.writer.read_all()[1]["releases"]
    finally:
        publisher.close()
        old.drop()
        store.close()
