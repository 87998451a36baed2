"""Several control-plane replicas on one PostgreSQL: one publishes what any of them committed, in
commit order; another takes over when it goes (control_plane/replication.py)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import orjson

from contract.framing import decode
from control_plane.app import create_app
from control_plane.replication import Replication
from control_plane.settings import Settings
from tests.control_plane.conftest import Api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "replicas-share-this-secret-" + "x" * 20


def _replica(data_dir: Path, url: str) -> TestClient:
    data_dir.mkdir()
    return TestClient(create_app(Settings(data_dir=data_dir, jwt_secret=SECRET, database_url=url)))


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - start


def _served_flags(client: TestClient) -> set[str]:
    """The flag keys of every environment the replica's LMDB holds (each flag a value of the
    ``flags`` table)."""
    writer = client.app.state.publisher.writer  # type: ignore[attr-defined]
    _, tables = writer.read_all()
    return {decode(raw)["definition"]["key"] for raw in tables["flags"].values()}


def test_one_replica_publishes_what_any_committed_and_another_takes_over(tmp_path: Path, postgres_url: str) -> None:
    a, b = _replica(tmp_path / "a", postgres_url), _replica(tmp_path / "b", postgres_url)
    with a, b:
        ra, rb = a.app.state.replication, b.app.state.replication  # type: ignore[attr-defined]
        assert ra.leader and not rb.leader
        assert b.get("/ready").json()["publish"]["role"] == "standby"
        # Sign up and write through the standby; log in on the leader with the same account.
        api_b = Api(b)
        owner = api_b.signup()
        api_b.organisation(owner, "acme")
        h = owner.org("acme")
        assert b.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=h).status_code == 201
        env = {"name": "Prod", "key": "prod", "type": "production"}
        assert b.post("/v1/projects/shop/environments", json=env, headers=h).status_code == 201
        assert a.get("/v1/projects/shop", headers=h).status_code == 200  # one database behind both
        for key in ("one", "two"):
            client = a if key == "one" else b
            assert (
                client.post("/v1/projects/shop/features", json={"key": key, "name": key}, headers=h).status_code == 201
            )
            r = client.patch(
                f"/v1/projects/shop/features/{key}/configurations",
                params={"environment": "prod"},
                json={"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}},
                headers=h,
            )
            assert r.status_code == 200, r.text
        # The leader published both (the standby's change within one drain); the standby nothing.
        _wait(lambda: _served_flags(a) >= {"one", "two"})
        assert b.app.state.publisher.writer.version() == 0  # type: ignore[attr-defined]
        store = a.app.state.services.store  # type: ignore[attr-defined]
        _wait(lambda: store.one("SELECT COUNT(*) FROM publish_outbox")[0] == 0)
        published = store.one("SELECT version FROM publish_state WHERE id = 1")[0]
        assert published == a.app.state.publisher.writer.version()  # type: ignore[attr-defined]
        leader_version = published
        # The leader goes; the standby takes over and republishes above its versions.
        a.__exit__(None, None, None)
        took = _wait(lambda: rb.leader, timeout=5.0)
        assert took < 2.0, took
        assert b.get("/ready").json()["publish"]["role"] == "leader"
        version_b = b.app.state.publisher.writer.version()  # type: ignore[attr-defined]
        assert version_b > leader_version
        assert _served_flags(b) >= {"one", "two"}
        # Its own writes now publish before it answers.
        assert b.post("/v1/projects/shop/features", json={"key": "three", "name": "3"}, headers=h).status_code == 201
        r = b.patch(
            "/v1/projects/shop/features/three/configurations",
            params={"environment": "prod"},
            json={"status": "active"},
            headers=h,
        )
        assert r.status_code == 200, r.text
        assert "three" in _served_flags(b)
        assert b.app.state.publisher.writer.version() > version_b  # type: ignore[attr-defined]


def test_outbox_rows_follow_commit_order(tmp_path: Path, postgres_url: str) -> None:
    """Each change that touches what edges serve queues its projects, in commit order."""
    with _replica(tmp_path / "a", postgres_url) as a:
        store = a.app.state.services.store  # type: ignore[attr-defined]
        replication = a.app.state.replication  # type: ignore[attr-defined]
        replication.stop()  # no publisher: the queue stays to be looked at
        api = Api(a)
        owner = api.signup()
        api.organisation(owner, "acme")
        h = owner.org("acme")
        env = {"name": "Prod", "key": "prod", "type": "production"}
        for key in ("p1", "p2", "p3"):
            assert a.post("/v1/projects", json={"name": key, "key": key}, headers=h).status_code == 201
            assert a.post(f"/v1/projects/{key}/environments", json=env, headers=h).status_code == 201
        rows = store.all("SELECT seq, projects FROM publish_outbox ORDER BY seq")
        ids = {r["id"]: r["key"] for r in store.all("SELECT id, key FROM projects")}
        queued = [ids[p] for r in rows for p in orjson.loads(r["projects"])]
        assert queued and [k for i, k in enumerate(queued) if i == 0 or queued[i - 1] != k] == ["p1", "p2", "p3"]
        # A successor takes the free lock and publishes the queue.
        successor = Replication(store, a.app.state.publisher)  # type: ignore[attr-defined]
        successor.start()
        try:
            assert successor.leader
            assert store.one("SELECT COUNT(*) FROM publish_outbox")[0] == 0
        finally:
            successor.stop()


def test_login_backoff_and_limits_hold_on_every_replica(tmp_path: Path, postgres_url: str) -> None:
    """A login backoff earned on one replica refuses the next attempt on the other."""
    with _replica(tmp_path / "a", postgres_url) as a, _replica(tmp_path / "b", postgres_url) as b:
        owner = Api(a).signup()
        for _ in range(5):  # the free failures, all on replica a
            r = a.post("/users/login", json={"name": owner.name, "password": "wrong-password"})
            assert r.status_code == 401, r.text
        r = a.post("/users/login", json={"name": owner.name, "password": "wrong-password"})
        assert r.status_code == 401  # the sixth failure earns a backoff
        r = b.post("/users/login", json={"name": owner.name, "password": "correct-horse"})
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
