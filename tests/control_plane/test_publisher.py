"""The publisher writes a new snapshot version only when something the edges serve changed (on each
store: ``database_url``; on PostgreSQL the one replica publishes as the replication leader)."""

from __future__ import annotations

import warnings
from pathlib import Path

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.conftest import Api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _version(client: TestClient) -> int:
    # py-lmdb opens one environment once per process: ask the app's own writer.
    version: int = client.app.state.publisher.writer.version()  # type: ignore[attr-defined]
    return version


def test_restart_and_unserved_changes_publish_nothing(tmp_path: Path, database_url: str | None) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="s" * 40, database_url=database_url)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        owner = api.signup()
        api.organisation(owner, "acme")
        h = owner.org("acme")
        assert client.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=h).status_code == 201
        env = {"name": "Prod", "key": "prod", "type": "production"}
        assert client.post("/v1/projects/shop/environments", json=env, headers=h).status_code == 201
        served = _version(client)
    assert served > 0
    with TestClient(create_app(settings)) as client:
        # A restart republishes everything, but unchanged values are not written again. On
        # PostgreSQL the restart is a new publishing term, whose first publish is one version
        # above every version seen (fencing: a term never reuses an earlier term's versions).
        restarted = _version(client)
        assert restarted == (served if database_url is None else served + 1)
        login = client.post("/users/login", json={"name": owner.name, "password": "correct-horse"}).json()
        h = {"Authorization": f"Bearer {login['user_token']['access_token']}", "x-organisation": "acme"}
        # An inactive feature changes nothing the edges serve.
        assert client.post("/v1/projects/shop/features", json={"key": "f", "name": "F"}, headers=h).status_code == 201
        assert _version(client) == restarted
        rule = {"filter": {"type": "constant", "value": True}}
        r = client.patch(
            "/v1/projects/shop/features/f/configurations",
            params={"environment": "prod"},
            json={"status": "active", "targeting": {"rules": [rule]}},
            headers=h,
        )
        assert r.status_code == 200, r.text
        assert _version(client) == restarted + 1


def test_publish_diffs_against_what_lmdb_holds_not_its_memory(tmp_path: Path, database_url: str | None) -> None:
    """A value written behind the publisher's back (another writer) is seen by the next publish:
    a key the project no longer has is deleted, not kept because the publisher never wrote it."""
    from contract.store import ChangeSet

    settings = Settings(data_dir=tmp_path, jwt_secret="s" * 40, database_url=database_url)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        owner = api.signup()
        api.organisation(owner, "acme")
        h = owner.org("acme")
        project = client.post("/v1/projects", json={"name": "Shop", "key": "shop"}, headers=h).json()
        env = {"name": "Prod", "key": "prod", "type": "production"}
        assert client.post("/v1/projects/shop/environments", json=env, headers=h).status_code == 201
        publisher = client.app.state.publisher  # type: ignore[attr-defined]
        stray = {"environment": "gone", "kind": "server", "project": project["_id"]}
        publisher.writer.publish(ChangeSet(sdk_keys={"f" * 64: stray}))
        assert client.post("/v1/projects/shop/features", json={"key": "f", "name": "F"}, headers=h).status_code == 201
        publisher.publish_projects({project["_id"]})
        _, tables = publisher.writer.read_all()
        assert "f" * 64 not in tables["sdk_keys"]
