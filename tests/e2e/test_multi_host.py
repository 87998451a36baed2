"""Two hosts on one machine: the control plane and edge A share data dir A; host B runs
``sync`` (following a real redis-server) and edge B on data dir B. Admin changes reach both
edges, on every route, and both keep answering while the control plane is dead. kill -9 of
sync, of Redis and of an edge worker, during traffic, are in ``tests/reliability``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import REPO, bootstrap_project, free_port, process
from tests.support.redis_server import RedisServer


def _wait(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Hosts:
    def __init__(self, tmp: Path, redis: RedisServer) -> None:
        self.tmp, self.redis = tmp, redis
        self.a, self.b = tmp / "a", tmp / "b"
        self.b.mkdir(parents=True, exist_ok=True)
        self.sync: subprocess.Popen[bytes] | None = None

    def start_sync(self) -> None:
        log = open(self.tmp / "sync.log", "ab")  # noqa: SIM115 - closed with the process
        self.sync = subprocess.Popen(
            [sys.executable, "-m", "server", "sync", "--data-dir", str(self.b), "--redis-url", self.redis.url],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_sync(self) -> None:
        if self.sync is not None and self.sync.poll() is None:
            os.killpg(self.sync.pid, signal.SIGKILL)
            self.sync.wait(10)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[Hosts, httpx.Client, dict[str, str], httpx.Client, httpx.Client, str]]:
    from tests.support.redis_server import free_port as redis_port

    redis = RedisServer(tmp_path / "redis", redis_port())
    redis.start()
    h = Hosts(tmp_path, redis)
    h.a.mkdir(parents=True)
    cp, ea, eb = free_port(), free_port(), free_port()
    try:
        h.start_sync()
        with process(
            ["control_plane", "serve", "--data-dir", str(h.a), "--port", str(cp), "--redis-url", redis.url],
            f"http://127.0.0.1:{cp}/health",
            tmp_path / "cp.log",
        ):
            admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
            auth, keys = bootstrap_project(admin)
            key = keys["client"]
            _wait(lambda: (h.b / "snapshots").exists(), "sync to create host B's LMDB")
            with (
                process(
                    ["server", "serve", "--data-dir", str(h.a), "--port", str(ea), "--workers", "2"],
                    f"http://127.0.0.1:{ea}/health",
                    tmp_path / "edge-a.log",
                ),
                process(
                    ["server", "serve", "--data-dir", str(h.b), "--port", str(eb), "--workers", "2"],
                    f"http://127.0.0.1:{eb}/health",
                    tmp_path / "edge-b.log",
                ),
            ):
                yield (
                    h,
                    admin,
                    auth,
                    httpx.Client(base_url=f"http://127.0.0.1:{ea}", timeout=10),
                    httpx.Client(base_url=f"http://127.0.0.1:{eb}", timeout=10),
                    key,
                )
    finally:
        h.kill_sync()
        redis.kill()


def _flag(admin: httpx.Client, auth: dict[str, str], key: str, plan: str) -> None:
    if admin.get(f"/v1/projects/shop/features/{key}", headers=auth).status_code == 404:
        assert admin.post("/v1/projects/shop/features", json={"key": key, "name": key}, headers=auth).status_code == 201
    rule = {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": [plan]}}
    r = admin.patch(
        f"/v1/projects/shop/features/{key}/configurations",
        params={"environment": "prod"},
        json={"status": "active", "targeting": {"rules": [rule]}},
        headers=auth,
    )
    assert r.status_code == 200, r.text


def _enabled(edge: httpx.Client, client_key: str, flag: str, plan: str) -> bool | None:
    try:
        r = edge.get("/features/evaluated", params={"publishableKey": client_key, "context.company.plan": plan})
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    f = r.json()["features"].get(flag)
    return None if f is None else bool(f["isEnabled"])


def test_edges_serve_while_the_control_plane_is_dead(hosts: Any) -> None:
    h, admin, auth, edge_a, edge_b, key = hosts
    _flag(admin, auth, "g1", "pro")
    for edge in (edge_a, edge_b):
        _wait(lambda e=edge: _enabled(e, key, "g1", "pro") is True, "g1 on both hosts")
    found = subprocess.run(["pgrep", "-f", f"control_plane serve --data-dir {h.a}"], capture_output=True, text=True)
    for pid in found.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(httpx.HTTPError):
        admin.get("/health")
    for edge in (edge_a, edge_b):
        assert [_enabled(edge, key, "g1", "pro") for _ in range(20)] == [True] * 20


def test_demo_project_is_served_by_every_route_on_both_hosts(hosts: Any) -> None:
    """The demo (features with mixed dialects, a widget and a release), created through the
    running control plane, answers on every edge route of both hosts."""
    from control_plane.demo import seed

    _, admin, _, edge_a, edge_b, _ = hosts
    info = seed(admin)
    prod = info["environments"]["production"]
    context = {
        "context.company.plan": "enterprise",
        "context.company.id": "c1",
        "context.user.id": "u1",
        "context.user.email": "ada@acme.com",
        "context.user.country": "DE",
        "context.user.appVersion": "2.1.0",
    }
    for edge in (edge_a, edge_b):

        def evaluated(e: httpx.Client = edge) -> Any:
            return e.get("/features/evaluated", params={"publishableKey": prod["client"], **context})

        # The release is the demo's last write: wait for that snapshot version on this host.
        _wait(
            lambda e=edge: (
                e.get("/release/demo/demo-app", headers={"x-dimensions": "platform=android"}).status_code == 200
            ),
            "the demo release",
        )
        features = evaluated().json()["features"]
        assert features["huddle"]["isEnabled"] is True
        assert features["huddle"]["config"]["key"] == "wide"
        assert features["dark-mode"]["isEnabled"] is True
        enabled = edge.get("/features/enabled", params={"publishableKey": prod["client"], **context}).json()
        assert set(enabled["features"]) <= set(features) and "huddle" in enabled["features"]
        definitions = edge.get("/features", headers={"Authorization": f"Bearer {prod['server']}"})
        # dark-mode uses DevCycle and JSON Logic nodes: remote evaluation only for Reflag SDKs.
        assert [f["key"] for f in definitions.json()["features"]] == ["huddle", "new-checkout"]
        assert [f["key"] for f in definitions.json()["remoteEvaluationOnly"]] == ["dark-mode"]
        assert edge.get("/features", params={"publishableKey": prod["server"]}).status_code == 403
        assert edge.get("/features/evaluated").status_code == 401
        # Releaseo widget config, with ETag and 304.
        config = edge.get("/sdk/config", params={"key": info["releaseoProjectKey"]})
        assert config.status_code == 200 and config.json()["settings"]["theme"] == "light"
        assert config.headers["cache-control"] == "no-cache"  # revalidated on every load (seed 000)
        again = edge.get(
            "/sdk/config", params={"key": info["releaseoProjectKey"]}, headers={"If-None-Match": config.headers["etag"]}
        )
        assert again.status_code == 304
        # Releaseo's board and roadmap (the `boards` table, through Redis and sync on host B).
        key = {"key": info["releaseoProjectKey"]}
        board = edge.get("/sdk/feature-requests", params=key).json()
        assert sorted(i["title"] for i in board["items"]) == ["Export to CSV", "Slack notifications"]
        roadmap = edge.get("/sdk/roadmap/snapshot", params=key).json()
        assert [i["title"] for i in roadmap["items"]] == ["Public API"]
        assert [e["title"] for e in roadmap["changelog"]] == ["Dark mode is here"]
        pro = edge.get("/sdk/roadmap/snapshot", params={**key, "userId": "u1", "context.user.plan": "pro"}).json()
        assert [i["title"] for i in pro["items"]] == ["Public API", "Pro analytics"]
        # Airborne release.
        release = edge.get("/release/demo/demo-app", headers={"x-dimensions": "platform=android"})
        assert release.json()["package"]["index"], release.text
        assert edge.get("/release/demo/nope").status_code == 404
        # OFREP.
        ofrep = edge.post(
            "/ofrep/v1/evaluate/flags/huddle",
            headers={"Authorization": f"Bearer {prod['server']}"},
            json={"context": {"targetingKey": "u1", "company": {"plan": "enterprise", "id": "c1"}}},
        )
        assert ofrep.status_code == 200 and ofrep.json()["value"] is True and "variant" in ofrep.json()
        # Events are accepted (queued for the control plane).
        event = edge.post(
            "/event", params={"publishableKey": prod["client"]}, json={"event": "clicked", "userId": "u1"}
        )
        assert event.status_code == 200, event.text
        feedback = edge.post("/feedback", params={"publishableKey": prod["client"]}, json={"key": "huddle"})
        assert feedback.status_code == 400

    login = admin.post("/users/login", json=info["login"]).json()
    demo = {"Authorization": f"Bearer {login['user_token']['access_token']}", "x-organisation": "demo"}
    # An audience (DevCycle filters) used by a DevCycle target through audienceMatch.
    germany = {
        "operator": "and",
        "filters": [{"type": "user", "subType": "country", "comparator": "=", "values": ["DE"]}],
    }
    r = admin.post(
        "/v1/projects/demo-app/audiences", json={"name": "Germany", "key": "germany", "filters": germany}, headers=demo
    )
    assert r.status_code == 201, r.text
    feature = {
        "key": "de-banner",
        "name": "DE banner",
        "variables": [{"key": "banner", "type": "String"}],
        "variations": [{"key": "on", "name": "On", "variables": {"banner": "hallo"}}],
    }
    assert admin.post("/v1/projects/demo-app/features", json=feature, headers=demo).status_code == 201
    target = {
        "audience": {
            "name": "DE",
            "filters": {
                "operator": "and",
                "filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["germany"]}],
            },
        },
        "distribution": [{"_variation": "on", "percentage": 1}],
    }
    r = admin.patch(
        "/v1/projects/demo-app/features/de-banner/configurations",
        params={"environment": "production"},
        json={"status": "active", "targets": [target]},
        headers=demo,
    )
    assert r.status_code == 200, r.text

    def banner(e: httpx.Client, country: str) -> Any:
        body = e.get(
            "/features/evaluated",
            params={"publishableKey": prod["client"], "context.user.id": "u1", "context.user.country": country},
        ).json()
        return body["features"].get("de-banner", {}).get("isEnabled")

    for edge in (edge_a, edge_b):
        _wait(lambda e=edge: banner(e, "DE") is True, "the audience-targeted feature")
        assert banner(edge, "FR") is False

    # A widget change is visible on the next request after its snapshot version.
    r = admin.put("/projects/demo-app/widget-config", json={"settings": {"theme": "dark"}}, headers=demo)
    assert r.status_code == 200, r.text
    for edge in (edge_a, edge_b):
        _wait(
            lambda e=edge: (
                e.get("/sdk/config", params={"key": info["releaseoProjectKey"]}).json()["settings"] == {"theme": "dark"}
            ),
            "the new widget settings",
        )
