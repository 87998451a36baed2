"""An edge without a loaded snapshot: a fresh host before the first publish, and a store that
cannot be read.

Decision (DESIGN.md section 4): while a worker has no snapshot, any key may be valid, and an SDK
told "unknown or revoked" (403) may give up for good. So every SDK route answers 503 with
``Retry-After`` in its API's error shape (envelope, OFREP) until a snapshot is loaded, and
``/ready`` is 503, naming the store when it exists but cannot be read. The worker polls the store
and becomes ready on the first publish, without a restart and without a later write; from then
on an unknown key is 403 again (and an unknown widget or application 404).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.processes import REPO, bootstrap_project, free_port
from tests.reliability.support import control_plane, edge, ready, wait_until

UNKNOWN = "client-prod-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def sdk_answers(url: str, key: str) -> dict[str, httpx.Response]:
    """One request on every SDK route family, with ``key`` where the route takes one."""
    bearer = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=10) as c:
        return {
            "evaluated": c.get("/features/evaluated", params={"publishableKey": key}),
            "enabled": c.get("/features/enabled", headers=bearer),
            "features": c.get("/features", headers=bearer),
            "events": c.post("/event", json={"event": "clicked", "userId": "u1"}, headers=bearer),
            "ofrep-bulk": c.post("/ofrep/v1/evaluate/flags", json={"context": {}}, headers=bearer),
            "ofrep-one": c.post("/ofrep/v1/evaluate/flags/small", json={"context": {}}, headers=bearer),
            "ofrep-config": c.get("/ofrep/v1/configuration", headers=bearer),
            "sdk-config": c.get("/sdk/config", params={"key": "rp_unknown"}),
            "release": c.get("/release/acme/shop"),
        }


def assert_unavailable(answers: dict[str, httpx.Response]) -> None:
    """503 + Retry-After everywhere, in each route's shape, never 403/404."""
    for route, r in answers.items():
        assert r.status_code == 503, f"{route}: {r.status_code} {r.text}"
        assert r.headers.get("retry-after", "").isdigit(), f"{route}: no Retry-After"
        body: Any = r.json()
        if route.startswith("ofrep"):
            assert body["errorCode"] == "GENERAL" and "loaded yet" in body["errorDetails"], (route, body)
        elif route == "release":  # Airborne's shape: the message in "error", our code beside it
            assert body["code"] == "unavailable" and "loaded yet" in body["error"], (route, body)
        else:
            assert body["error"]["code"] == "unavailable" and "loaded yet" in body["error"]["message"], (route, body)


def loaded_answers(url: str, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/features/evaluated", params={"publishableKey": keys["client"]}).status_code == 200
        assert c.get("/features", headers={"Authorization": f"Bearer {keys['server']}"}).status_code == 200
        unknown = c.get("/features/evaluated", params={"publishableKey": UNKNOWN})
        assert unknown.status_code == 403 and unknown.json()["error"]["code"] == "forbidden", unknown.text
        ofrep = c.post("/ofrep/v1/evaluate/flags", json={"context": {}}, headers={"Authorization": f"Bearer {UNKNOWN}"})
        assert ofrep.status_code == 403 and ofrep.json()["errorCode"] == "GENERAL", ofrep.text
        assert c.get("/sdk/config", params={"key": "rp_unknown"}).status_code == 404
        assert c.get("/release/nobody/nothing").status_code == 404


def test_edge_started_before_the_first_publish(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    ep, cp = free_port(), free_port()
    url = f"http://127.0.0.1:{ep}"
    with edge(data, ep):
        status, body = ready(url)
        assert status == 503 and body["version"] == 0, body
        assert_unavailable(sdk_answers(url, UNKNOWN))
        with control_plane(data, cp):
            admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
            # Before the first publish a key that will be valid is not "revoked" either.
            assert_unavailable(sdk_answers(url, UNKNOWN))
            _, keys = bootstrap_project(admin)  # the first write: the first publish
            wait_until(lambda: ready(url)[0] == 200, "the edge ready on the first publish, with no later write")
            loaded_answers(url, keys)


def test_unreadable_store_answers_503_and_recovers(tmp_path: Path) -> None:
    data = tmp_path / "host"
    store = data / "snapshots"
    store.mkdir(parents=True)
    # A store that exists but is not LMDB (a half-copied restore, a disk that returned garbage).
    (store / "data.mdb").write_bytes(b"\x00garbage" * 4096)
    ep, cp = free_port(), free_port()
    url = f"http://127.0.0.1:{ep}"
    with edge(data, ep):
        wait_until(lambda: "store" in ready(url)[1]["notReady"], "/ready naming the unreadable store")
        status, body = ready(url)
        assert status == 503 and "refreshes failed" in body["problems"]["store"], body
        assert_unavailable(sdk_answers(url, UNKNOWN))
        # The operator replaces the store; the control plane rebuilds and publishes it.
        (store / "data.mdb").unlink()
        with control_plane(data, cp):
            admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
            _, keys = bootstrap_project(admin)
            wait_until(lambda: ready(url)[0] == 200, "the edge ready once the store can be read, without a restart")
            assert ready(url)[1]["notReady"] == []
            loaded_answers(url, keys)


def test_fresh_install_is_ready_after_demo(tmp_path: Path) -> None:
    """``demo`` publishes; an edge started afterwards is ready and answers with no further write."""
    data = tmp_path / "host"
    out = subprocess.run(
        [sys.executable, "-m", "control_plane", "demo", "--data-dir", str(data), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    demo = httpx.Response(200, content=out.stdout).json()
    keys = demo["environments"]["production"]
    ep = free_port()
    url = f"http://127.0.0.1:{ep}"
    with edge(data, ep):
        wait_until(lambda: ready(url)[0] == 200, "the edge ready after demo")
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("/features/evaluated", params={"publishableKey": keys["client"]}).status_code == 200
            assert c.get("/sdk/config", params={"key": demo["releaseoProjectKey"]}).status_code == 200
            assert c.get(f"/release/{demo['organisation']}/{demo['application']}").status_code != 503
