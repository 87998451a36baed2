"""A replica that does not publish answers ``GET /release/{org}/{app}`` with what the publishing
replica published (control_plane/replication.py: ``published_releases``), not from its own LMDB,
which nobody writes; and it follows the next publish, and a takeover."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.conftest import Api
from tests.control_plane.routes.airborne.support import release_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "replicas-share-this-secret-" + "x" * 20
DEVICE = {"x-dimensions": "platform=android"}


def _replica(data_dir: Path, url: str) -> TestClient:
    data_dir.mkdir()
    return TestClient(create_app(Settings(data_dir=data_dir, jwt_secret=SECRET, database_url=url)))


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _release(client: TestClient) -> tuple[int, Any]:
    r = client.get("/release/acme/shop", headers=DEVICE)
    return r.status_code, r.json()


def test_a_standby_answers_the_release_route_with_what_was_published(tmp_path: Path, postgres_url: str) -> None:
    a, b = _replica(tmp_path / "a", postgres_url), _replica(tmp_path / "b", postgres_url)
    with a, b:
        assert a.app.state.replication.leader and not b.app.state.replication.leader  # type: ignore[attr-defined]
        app = release_app(Api(b))  # written through the standby
        r = b.post("/releases", json={}, headers=app.h)
        assert r.status_code == 200, r.text
        _wait(lambda: _release(a)[0] == 200)  # the leader published it
        _wait(lambda: _release(b) == _release(a))
        status, body = _release(b)
        assert status == 200 and "index.jsa" in str(body["package"])
        assert b.app.state.publisher.writer.version() == 0  # type: ignore[attr-defined]
        assert b.get("/release/acme/nope", headers=DEVICE).status_code == 404

        # The next publish reaches the standby's answer too: exactly the leader's LMDB value.
        key = "acme/shop"
        published = a.app.state.publisher.writer  # type: ignore[attr-defined]
        standby = b.app.state.services.releases  # type: ignore[attr-defined]
        before = standby.read(key)
        assert before == published.get("releases", key)
        r = a.post("/releases", json={}, headers=app.h)
        assert r.status_code == 200, r.text
        second = r.json()["id"]
        r = a.post(f"/releases/{second}/ramp", json={"traffic_percentage": 100}, headers=app.h)
        assert r.status_code == 200, r.text
        _wait(lambda: standby.read(key) == published.get("releases", key) != before)
        assert _release(b) == _release(a)

        # The leader goes; the standby publishes now and answers from its own LMDB.
        a.__exit__(None, None, None)
        _wait(lambda: b.app.state.replication.leader)  # type: ignore[attr-defined]
        assert b.app.state.publisher.writer.version() > 0  # type: ignore[attr-defined]
        assert b.app.state.services.releases.read(key) == b.app.state.publisher.writer.get("releases", key)  # type: ignore[attr-defined]
        assert _release(b)[0] == 200
