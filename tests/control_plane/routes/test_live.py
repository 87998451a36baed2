"""The dashboard's live-state routes: the published version and the configured edges' /ready
(an edge that does not answer is reported, not an error), flag checks per environment, and the
release an edge serves a dimension context (or that no edge is configured or answers)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from control_plane.app import create_app
from control_plane.settings import Settings, parse_urls
from control_plane.store import new_id, now_iso
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import member, project
from tests.support.redis_server import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def api_with_edges(tmp_path: Path, unreachable: str) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path, jwt_secret="test-secret-" + "x" * 32, edge_urls=(unreachable,))
    with TestClient(create_app(settings)) as client:
        yield Api(client)


def test_edges_are_probed_and_an_unreachable_one_is_reported(api_with_edges: Api, unreachable: str) -> None:
    owner = api_with_edges.signup()
    r = api_with_edges.client.get("/live/edges", headers=owner.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["controlPlane"]["ok"] is True and isinstance(body["controlPlane"]["version"], int)
    [edge] = body["edges"]
    assert (edge["url"], edge["reachable"], edge["ready"]) == (unreachable, False, False) and edge["error"]
    assert_error(api_with_edges.client.get("/live/edges"), 401, "unauthorized")


def test_no_edges_configured(api: Api) -> None:
    owner = api.signup()
    assert api.client.get("/live/edges", headers=owner.auth).json()["edges"] == []
    api.organisation(owner, "acme")
    api.application(owner, "acme", "shop")
    r = api.client.get("/live/release", params={"dimensions": "os=ios"}, headers=owner.org("acme", "shop"))
    assert r.status_code == 200, r.text
    assert r.json() == {"edge": None, "reachable": False, "error": "no edge is configured (--edge-urls)"}


def test_which_release_needs_read_access_and_an_edge_that_answers(api_with_edges: Api) -> None:
    c = api_with_edges.client
    owner = api_with_edges.signup()
    api_with_edges.organisation(owner, "acme")
    api_with_edges.application(owner, "acme", "shop")
    r = c.get("/live/release", params={"dimensions": "os=ios"}, headers=owner.org("acme", "shop"))
    assert r.status_code == 200, r.text
    assert r.json()["reachable"] is False and r.json()["error"]
    stranger = api_with_edges.signup()
    assert_error(c.get("/live/release", headers=stranger.org("acme", "shop")), 404, "not_found")
    assert_error(c.get("/live/release", headers=owner.org("acme")), 400, "validation_failed")
    too_long = c.get("/live/release", params={"dimensions": "x" * 5000}, headers=owner.org("acme", "shop"))
    assert_error(too_long, 400, "validation_failed")


def test_flag_checks_per_environment(api: Api) -> None:
    p = project(api)
    p.environment("production", "production")
    p.feature()
    assert p.configure("new-dash", "production", {"status": "active"}).status_code == 200
    # Rows as the events consumer stores SDK check events (control_plane/events_consumer.py).
    env_id = p.env_id("production")
    with p.store().transaction() as db:
        for flag, n in (("new-dash", 3), ("old-flag", 1)):
            for _ in range(n):
                db.execute(
                    "INSERT INTO events (id, environment_id, type, name, payload, received_at, stored_at)"
                    " VALUES (?, ?, 'feature-flag-event', ?, ?, ?, ?)",
                    (new_id(), env_id, flag, orjson.dumps({}).decode(), now_iso(), now_iso()),
                )
    reader = member(p, "read")
    r = api.client.get(f"{p.url}/live", headers=reader.auth)
    assert r.status_code == 200, r.text
    envs = {e["key"]: e for e in r.json()["environments"]}
    assert envs["development"] == {"key": "development", "name": "Development", "activeFeatures": 0, "flagChecks": []}
    checks = [(c["flag"], c["count"]) for c in envs["production"]["flagChecks"]]
    assert envs["production"]["activeFeatures"] == 1 and checks == [("new-dash", 3), ("old-flag", 1)]
    assert_error(api.client.get(f"{p.url}/live", headers=api.signup().auth), 404, "not_found")


def test_edge_urls_setting() -> None:
    assert parse_urls(" http://a:8090/, https://b ") == ("http://a:8090", "https://b")
    assert parse_urls("") == ()
    with pytest.raises(ValueError):
        parse_urls("ftp://x")
