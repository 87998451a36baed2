"""End to end on one host: the real control plane and edge processes sharing a data dir.

An admin change made over HTTP reaches the edge through LMDB; the edge answers SDK reads with
it, read-your-writes works with ``waitForVersion``, and a revoked SDK key fails on the next
request.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import bootstrap_project, free_port, process


@dataclass
class System:
    admin: httpx.Client
    edge: httpx.Client
    auth: dict[str, str]
    client_key: str
    server_key: str


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("data")
    cp_port, edge_port = free_port(), free_port()
    with process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp_port)],
        f"http://127.0.0.1:{cp_port}/health",
        data / "control_plane.log",
    ):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=10)
        auth, keys = bootstrap_project(admin)
        with process(
            ["server", "serve", "--data-dir", str(data), "--port", str(edge_port)],
            f"http://127.0.0.1:{edge_port}/ready",
            data / "edge.log",
        ):
            edge = httpx.Client(base_url=f"http://127.0.0.1:{edge_port}", timeout=10)
            yield System(admin, edge, auth, keys["client"], keys["server"])


def _set_rule(s: System, flag: str, plan: str) -> None:
    rule = {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": [plan]}}
    r = s.admin.patch(
        f"/v1/projects/shop/features/{flag}/configurations",
        params={"environment": "prod"},
        json={"status": "active", "targeting": {"rules": [rule]}},
        headers=s.auth,
    )
    assert r.status_code == 200, r.text


def _evaluated(s: System, plan: str, **params: Any) -> dict[str, Any]:
    r = s.edge.get(
        "/features/evaluated", params={"publishableKey": s.client_key, "context.company.plan": plan, **params}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_admin_change_is_served_by_the_edge(system: System) -> None:
    r = system.admin.post("/v1/projects/shop/features", json={"key": "beta", "name": "Beta"}, headers=system.auth)
    assert r.status_code == 201, r.text
    _set_rule(system, "beta", "pro")
    deadline = time.monotonic() + 5
    while "beta" not in _evaluated(system, "pro")["features"]:
        assert time.monotonic() < deadline, "the edge never served the new flag"
        time.sleep(0.02)
    body = _evaluated(system, "pro")
    assert body["success"] is True and body["features"]["beta"]["isEnabled"] is True
    assert _evaluated(system, "free")["features"]["beta"]["isEnabled"] is False
    definitions = system.edge.get("/features", headers={"Authorization": f"Bearer {system.server_key}"}).json()
    assert [f["key"] for f in definitions["features"]] == ["beta"]
    assert isinstance(definitions["flagStateVersion"], int)


def test_read_your_writes_with_wait_for_version(system: System) -> None:
    system.admin.post("/v1/projects/shop/features", json={"key": "ryw", "name": "RYW"}, headers=system.auth)
    latencies = []
    for i in range(10):
        plan = f"plan-{i}"
        started = time.monotonic()
        _set_rule(system, "ryw", plan)
        deadline = time.monotonic() + 5
        while not _evaluated(system, plan)["features"].get("ryw", {}).get("isEnabled"):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        latencies.append(time.monotonic() - started)
    # DESIGN.md section 6 targets p99 ≤ 100 ms (measured by bench/); this bounds it loosely so a
    # loaded CI machine does not flake, while a broken notification path (seconds) still fails.
    assert statistics.median(latencies) < 0.5, latencies


def test_wait_for_version_is_bounded(system: System) -> None:
    current = _evaluated(system, "x")["flagStateVersion"]
    started = time.monotonic()
    body = _evaluated(system, "x", waitForVersion=str(current + 10_000))
    assert body["flagStateVersion"] >= current
    assert time.monotonic() - started < 10


def test_key_rules(system: System) -> None:
    edge = system.edge
    assert edge.get("/features").status_code == 401
    assert edge.get("/features", headers={"Authorization": f"Bearer {system.client_key}"}).status_code == 403
    assert edge.get("/features/evaluated", params={"publishableKey": system.server_key}).status_code == 403
    assert edge.get("/features", params={"publishableKey": system.server_key}).status_code == 403
    assert edge.get("/features", params={"publishableKey": system.client_key}).status_code == 403
    assert edge.get("/features/evaluated", params={"publishableKey": "client-nope-" + "x" * 30}).status_code == 403
    bad = edge.get("/features/evaluated", params={"publishableKey": system.client_key, "waitForVersion": "abc"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_failed"


def test_etag_and_304(system: System) -> None:
    params = {"publishableKey": system.client_key, "context.company.plan": "pro"}
    first = system.edge.get("/features/evaluated", params=params)
    again = system.edge.get("/features/evaluated", params=params, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_invalidated_key_fails_on_the_next_request(system: System) -> None:
    env = system.admin.post(
        "/v1/projects/shop/environments", json={"name": "Stage", "key": "stage", "type": "staging"}, headers=system.auth
    ).json()
    key = env["sdkKeys"]["client"][0]["key"]
    deadline = time.monotonic() + 5
    while system.edge.get("/features/evaluated", params={"publishableKey": key}).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = system.admin.put(f"/v1/projects/shop/environments/stage/keys/{key}/invalidate", headers=system.auth)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 5
    while system.edge.get("/features/evaluated", params={"publishableKey": key}).status_code != 403:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.02)


def test_ready_and_metrics(system: System) -> None:
    ready = system.edge.get("/ready").json()
    assert ready["ready"] is True and ready["environments"] >= 1
    metrics = system.edge.get("/metrics").text
    assert "flagedge_snapshot_version" in metrics


def test_data_dir_layout(tmp_path: Path) -> None:
    # The snapshots live beside the SQLite store in one data dir (DESIGN.md section 1).
    from contract.store import snapshot_dir

    assert snapshot_dir(tmp_path) == tmp_path / "snapshots"


def test_sse_stream_announces_changes(system: System) -> None:
    import threading

    events: list[str] = []
    got_two = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=str(system.edge.base_url), timeout=30) as c,
            c.stream("GET", "/features/stream", params={"publishableKey": system.client_key}) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    if len(events) >= 2:
                        got_two.set()
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.5)
    system.admin.post("/v1/projects/shop/features", json={"key": "sse", "name": "SSE"}, headers=system.auth)
    _set_rule(system, "sse", "pro")
    assert got_two.wait(10), events
    first, second = (int(e.split(":")[1].strip(" }")) for e in events[:2])
    assert second > first
    # A reconnect that already saw the latest version gets no stale event first.
    with (
        httpx.Client(base_url=str(system.edge.base_url), timeout=5) as c,
        c.stream(
            "GET",
            "/features/stream",
            params={"publishableKey": system.client_key},
            headers={"Last-Event-ID": str(second)},
        ) as r,
    ):
        assert r.status_code == 200
