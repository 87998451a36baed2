"""One set of real processes for the whole security suite (started once, ~5 s).

* a real ``redis-server`` (the fixture class of ``tests/sync/conftest.py``);
* host A: ``python -m control_plane serve`` and ``python -m server serve --workers 2`` sharing
  data dir A (the control plane also publishes to Redis);
* host B: ``python -m server sync`` following Redis into data dir B, and a second
  ``python -m server serve --workers 2`` on it.

Everything logs to files under the session's temporary directory (``World.logs``), which
``test_secrets_in_logs.py`` searches for every secret the suite handled (``World.secrets``).
The owner ``ops`` of organisation ``acme`` has project ``shop`` with environment ``prod`` and a few
flags; tests that change keys or add hostile rules do it in environments or projects of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import REPO, bootstrap_project, free_port, process
from control_plane.demo import seed
from tests.security.rawhttp import children, wait_until
from tests.support.redis_server import RedisServer

PASSWORD = "correct-horse"  # bootstrap_project's password for ``ops``
BODY_TIMEOUT = 2.0
# Load shedding (503 once a worker's loop lags) is another suite's subject; on this shared, noisy
# machine it would turn "never a 5xx" assertions into flakes, so these edges never shed.
# Likewise the intake's rate limit per client address (every test here comes from 127.0.0.1 and
# the fuzzers post events back to back): tests/reliability/test_intake_flood.py is its suite.
EDGE_ENV = {"FLAGEDGE_EDGE_SHED_QUEUE_DELAY": "0", "FLAGEDGE_EDGE_INTAKE_RATE_PER_ADDRESS": "0"}


def edge_args(data_dir: Path, port: int, workers: int = 2) -> list[str]:
    """``python -m server serve`` on ``data_dir``: short ``waitForVersion`` waits (fuzzed values
    must not stall the suite) and a short body deadline (the slow-body test waits for it)."""
    return [
        *("server", "serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", str(workers)),
        *("--wait-for-version-max", "0.3", "--body-timeout", str(BODY_TIMEOUT)),
    ]


@dataclass(repr=False)
class World:
    tmp: Path
    redis: RedisServer
    admin: httpx.Client
    auth: dict[str, str]
    keys: dict[str, str]
    cp_port: int
    edge_port: int
    edge_b_port: int
    edge_proc: subprocess.Popen[bytes]
    edge_b_proc: subprocess.Popen[bytes]
    cp_proc: subprocess.Popen[bytes]
    logs: list[Path]
    # control_plane.demo.seed(): organisation ``demo`` with a release, a widget, mixed-dialect flags.
    demo: dict[str, Any] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)

    def __repr__(self) -> str:
        return f"World(cp={self.cp_port}, edge={self.edge_port}, edge_b={self.edge_b_port})"  # no secrets

    @cached_property
    def edge(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.edge_port}", timeout=20)

    @cached_property
    def edge_b(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.edge_b_port}", timeout=20)

    def workers(self, proc: subprocess.Popen[bytes] | None = None) -> list[int]:
        """The granian worker pids of an edge (host A's by default)."""
        return children((proc or self.edge_proc).pid)

    def remember(self, *values: str) -> None:
        """Secrets that must never show up in a log."""
        self.secrets.update(v for v in values if v)

    def signup(self, name: str, password: str = PASSWORD) -> dict[str, str]:
        """A new user; their Authorization header."""
        r = self.admin.post(
            "/users/create",
            json={"name": name, "password": password, "first_name": "F", "last_name": "L", "email": f"{name}@ex.com"},
        )
        assert r.status_code == 200, r.text
        token = r.json()["user_token"]
        self.remember(password, token["access_token"], token["refresh_token"])
        return {"Authorization": f"Bearer {token['access_token']}"}

    def environment(self, project: str, key: str, auth: dict[str, str] | None = None) -> dict[str, str]:
        """A new environment of ``project``; its SDK keys by kind."""
        r = self.admin.post(
            f"/v1/projects/{project}/environments",
            json={"name": key, "key": key, "type": "development"},
            headers=auth or self.auth,
        )
        assert r.status_code == 201, r.text
        keys = {kind: items[0]["key"] for kind, items in r.json()["sdkKeys"].items()}
        self.remember(*keys.values())
        return keys

    def flag(
        self, project: str, key: str, env: str, rules: list[Any], auth: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = auth or self.auth
        if self.admin.get(f"/v1/projects/{project}/features/{key}", headers=headers).status_code == 404:
            r = self.admin.post(f"/v1/projects/{project}/features", json={"key": key, "name": key}, headers=headers)
            assert r.status_code == 201, r.text
        return self.admin.patch(
            f"/v1/projects/{project}/features/{key}/configurations",
            params={"environment": env},
            json={"status": "active", "targeting": {"rules": rules}},
            headers=headers,
        )


def _seed_flags(world: World) -> None:
    context: dict[str, Any] = {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]}
    rollout: dict[str, Any] = {"type": "rolloutPercentage", "key": "company.id", "partialRolloutThreshold": 50_000}
    rollout["partialRolloutAttribute"] = "company.id"
    logic: dict[str, Any] = {"type": "jsonLogic", "rule": {"in": [{"var": "user.country"}, ["DE", "FR"]]}}
    for name, rule in (("plan", context), ("half", rollout), ("logic", logic)):
        r = world.flag("shop", name, "prod", [{"filter": rule}])
        assert r.status_code == 200, r.text


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from tests.support.redis_server import free_port as redis_port

    tmp = tmp_path_factory.mktemp("security")
    a, b = tmp / "a", tmp / "b"
    a.mkdir()
    b.mkdir()
    redis = RedisServer(tmp / "redis", redis_port())
    redis.start()
    sync_log = tmp / "sync.log"
    with open(sync_log, "ab") as out:
        sync = subprocess.Popen(
            [sys.executable, "-m", "server", "sync", "--data-dir", str(b), "--redis-url", redis.url],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    cp, ea, eb = free_port(), free_port(), free_port()
    logs = [tmp / "cp.log", tmp / "edge-a.log", tmp / "edge-b.log", sync_log, tmp / "redis" / "redis.log"]
    try:
        with process(
            ["control_plane", "serve", "--data-dir", str(a), "--port", str(cp), "--redis-url", redis.url],
            f"http://127.0.0.1:{cp}/health",
            logs[0],
        ) as cp_proc:
            admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
            auth, keys = bootstrap_project(admin)
            wait_until(lambda: (b / "snapshots").exists(), "sync to create host B's LMDB")
            with (
                process(edge_args(a, ea), f"http://127.0.0.1:{ea}/ready", logs[1], env=EDGE_ENV) as edge_proc,
                process(edge_args(b, eb), f"http://127.0.0.1:{eb}/ready", logs[2], env=EDGE_ENV) as edge_b_proc,
            ):
                world = World(tmp, redis, admin, auth, keys, cp, ea, eb, edge_proc, edge_b_proc, cp_proc, logs)
                world.remember(PASSWORD, auth["Authorization"].removeprefix("Bearer "), *keys.values())
                world.remember((a / "jwt_secret").read_text().strip())
                world.remember((a / "key_encryption_secret").read_text().strip())
                _seed_flags(world)
                world.demo = seed(admin)
                world.remember(world.demo["login"]["password"])
                for kinds in world.demo["environments"].values():
                    world.remember(*kinds.values())
                for port in (ea, eb):
                    wait_until(
                        lambda p=port: httpx.get(f"http://127.0.0.1:{p}/release/demo/demo-app").status_code == 200,
                        "the demo release on both edges",
                    )
                wait_until(lambda: len(world.workers()) == 2, "two edge workers")
                try:
                    yield world
                finally:
                    for client in (admin, world.edge, world.edge_b):
                        client.close()
    finally:
        if sync.poll() is None:
            os.killpg(sync.pid, signal.SIGKILL)
            sync.wait(10)
        redis.kill()
