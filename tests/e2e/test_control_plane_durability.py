"""The control plane under concurrent writers and kill -9 (issue 3 acceptance).

50 parallel writers patch the same feature configuration: no update is lost (every write bumps
``targetingVersion`` exactly once and is audited), and everything acknowledged survives a
SIGKILL and restart of the real process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.processes import bootstrap_project, free_port, process

WRITERS = 50


def _start(data: Path, port: int) -> Any:
    return process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
        data / f"cp-{port}.log",
    )


def test_parallel_writers_and_kill_9(tmp_path: Path) -> None:
    port = free_port()
    with _start(tmp_path, port) as proc:
        base = f"http://127.0.0.1:{port}"
        admin = httpx.Client(base_url=base, timeout=30)
        auth, _ = bootstrap_project(admin)
        assert admin.post("/v1/projects/shop/features", json={"key": "f", "name": "F"}, headers=auth).status_code == 201

        def write(i: int) -> int:
            rule = {"filter": {"type": "context", "field": "user.id", "operator": "IS", "values": [f"u{i}"]}}
            with httpx.Client(base_url=base, timeout=60) as c:
                r = c.patch(
                    "/v1/projects/shop/features/f/configurations",
                    params={"environment": "prod"},
                    json={"status": "active", "targeting": {"rules": [rule]}, "change_reason": f"w{i}"},
                    headers=auth,
                )
            return r.status_code

        with ThreadPoolExecutor(WRITERS) as pool:
            statuses = list(pool.map(write, range(WRITERS)))
        assert statuses == [200] * WRITERS
        before = admin.get("/v1/projects/shop/features/f/configurations", headers=auth).json()
        os.killpg(proc.pid, signal.SIGKILL)  # the main process and its worker, as a crash would
        proc.wait(10)

    with sqlite3.connect(tmp_path / "control_plane.sqlite3") as db:
        reasons = {r[0] for r in db.execute("SELECT change_reason FROM audit_log WHERE change_reason LIKE 'w%'")}
    assert reasons == {f"w{i}" for i in range(WRITERS)}

    port = free_port()
    with _start(tmp_path, port):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        login = admin.post("/users/login", json={"name": "ops", "password": "correct-horse"}).json()
        auth = {"Authorization": f"Bearer {login['user_token']['access_token']}", "x-organisation": "acme"}
        after = admin.get("/v1/projects/shop/features/f/configurations", headers=auth).json()
    assert after == before
    # The configuration starts at targetingVersion 0; each of the 50 writes bumped it exactly once.
    assert [c["targetingVersion"] for c in after] == [WRITERS]
