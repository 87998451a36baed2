"""DevCycle's own SDKs, unmodified, against our edge (issue 12 acceptance).

A real control plane holds a DevCycle project made through its DevCycle management API
(``bench.devcycle_data``: every target kind, variables of every type, a feature hidden from
client SDKs); a real edge serves it. The real ``@devcycle/nodejs-server-sdk`` (local bucketing,
and cloud bucketing), the real ``@devcycle/js-client-sdk`` (under Node) and
``@devcycle/bucketing`` (the reference) run from npm (``devcycle_sdk/package-lock.json``) with only
their base-URL options pointed at the edge, for 1,000 generated users. They must serve exactly
what our own routes serve for the same users: ``/features/evaluated`` and OFREP. Their events
must arrive in the control plane, and the server SDK must take a change over our realtime
stream, long before its polling interval.
"""

from __future__ import annotations

import json
import select
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import devcycle_data
from bench.processes import bootstrap_project, free_port, process
from bench.stack import wait_devcycle

SDK_DIR = Path(__file__).parent / "devcycle_sdk"
USERS = 1000
FEATURES = 2 * len(devcycle_data.KINDS)


@dataclass(frozen=True)
class Edge:
    url: str
    keys: dict[str, str]
    data_dir: Path
    admin: httpx.Client
    auth: dict[str, str]


@pytest.fixture(scope="module")
def sdk_ready() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are required for this end-to-end test"
    if not (SDK_DIR / "node_modules" / "@devcycle" / "nodejs-server-sdk").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR, check=True, timeout=300, capture_output=True
        )
    return SDK_DIR


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    data = tmp_path_factory.mktemp("devcycle")
    cp_port, edge_port = free_port(), free_port()
    with process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp_port)],
        f"http://127.0.0.1:{cp_port}/health",
        data / "cp.log",
    ):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=60)
        auth, keys = bootstrap_project(admin)
        devcycle_data.load(admin, auth, "shop", "prod", FEATURES)
        url = f"http://127.0.0.1:{edge_port}"
        args = ["server", "serve", "--data-dir", str(data), "--port", str(edge_port), "--workers", "2"]
        with process([*args, "--public-url", url], f"{url}/ready", data / "edge.log"):
            wait_devcycle(url, keys["server"], FEATURES, timeout=60)
            yield Edge(url, keys, data, admin, auth)
        admin.close()


def variables_of(kind: str) -> set[str]:
    """The variables of the features of one ``devcycle_data`` kind."""
    features = devcycle_data.features(FEATURES, "prod")
    return {v["key"] for i, f in enumerate(features) if devcycle_data.kind_of(i) == kind for v in f["variables"]}


def without(keys: set[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in keys} for row in rows]


def ofrep_context(user: dict[str, Any]) -> dict[str, Any]:
    """The flat OpenFeature context DevCycle's provider turns back into ``user``."""
    fields = {k: v for k, v in user.items() if k not in ("user_id", "customData")}
    return {"targetingKey": user["user_id"], **fields, **user["customData"]}


def evaluated_params(user: dict[str, Any]) -> dict[str, str]:
    """``/features/evaluated`` query parameters of a DevCycle user (query strings carry text)."""
    params = {"context.user.id": user["user_id"]}
    for name in ("email", "country", "appVersion"):
        if name in user:
            params[f"context.user.{name}"] = user[name]
    for name, value in user["customData"].items():
        params[f"context.user.customData.{name}"] = json.dumps(value) if not isinstance(value, str) else value
    return params


def run_sdks(sdk_dir: Path, edge: Edge, users: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "users.json").write_text(json.dumps(users))
    run = subprocess.run(
        ["node", "compare.mjs", edge.url, edge.keys["server"], edge.keys["client"], str(tmp_path / "users.json")],
        cwd=sdk_dir,
        capture_output=True,
        timeout=600,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    out: dict[str, Any] = json.loads(run.stdout)
    return out


def first_difference(name: str, users: list[dict[str, Any]], got: list[Any], expected: list[Any]) -> str:
    wrong = [(u, g, e) for u, g, e in zip(users, got, expected, strict=True) if g != e]
    if not wrong:
        return ""
    user, g, e = wrong[0]
    diff = {k: (g.get(k), e.get(k)) for k in set(g) | set(e) if g.get(k) != e.get(k)}
    return f"{name}: {len(wrong)} of {len(users)} users differ; first {user}: (got, expected) {diff}"


def test_devcycle_sdks_serve_what_the_edge_serves(sdk_ready: Path, edge: Edge, tmp_path: Path) -> None:
    users = devcycle_data.users(USERS)
    out = run_sdks(sdk_ready, edge, users, tmp_path)
    reference = [r["variables"] for r in out["reference"]]
    hidden = variables_of(devcycle_data.HIDDEN_KIND)
    assert hidden and all(hidden <= set(v) for v in reference[:10])  # server SDKs see them
    with httpx.Client(base_url=edge.url, timeout=30) as http:
        ofrep = []
        for user in users:
            r = http.post(
                "/ofrep/v1/evaluate/flags",
                json={"context": ofrep_context(user)},
                headers={"Authorization": f"Bearer {edge.keys['server']}"},
            )
            assert r.status_code == 200, r.text
            ofrep.append({f["key"]: f["value"] for f in r.json()["flags"]})
        evaluated = []
        for user in users:
            # The server key, as the server SDK: it sees the features hidden from client SDKs.
            r = http.get(
                "/features/evaluated",
                params=evaluated_params(user),
                headers={"Authorization": f"Bearer {edge.keys['server']}"},
            )
            assert r.status_code == 200, r.text
            evaluated.append(
                {k: f["config"]["key"] for k, f in r.json()["features"].items() if f.get("config") is not None}
            )
    # The WASM of the server SDK's local bucketing interpolates running linear stages differently
    # from @devcycle/bucketing (devcycle_data.INTERPOLATING); everywhere else it must agree.
    interpolating = variables_of(devcycle_data.INTERPOLATING)
    local = [r["variables"] for r in out["local"]]
    problems = [
        # The edge's own routes, each against the reference over the config the edge serves.
        first_difference("cloud bucketing API", users, [r["variables"] for r in out["cloud"]], reference),
        first_difference("OFREP", users, ofrep, reference),
        first_difference("client SDK", users, [r["variables"] for r in out["client"]], without(hidden, reference)),
        first_difference("/features/evaluated", users, evaluated, [r["features"] for r in out["reference"]]),
        # The server SDK's local bucketing over the config the edge serves.
        first_difference("local bucketing", users, without(interpolating, local), without(interpolating, reference)),
    ]
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)
    # Every variable was served to someone.
    assert {k for vs in reference for k in vs} == {
        v["key"] for f in devcycle_data.features(FEATURES, "prod") for v in f["variables"]
    }


def stored_events(data_dir: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{data_dir / 'control_plane.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM events WHERE type = 'devcycle-event'").fetchall()
    finally:
        db.close()


def test_sdk_events_arrive_in_the_control_plane(sdk_ready: Path, edge: Edge, tmp_path: Path) -> None:
    users = devcycle_data.users(20, seed=3)
    run_sdks(sdk_ready, edge, users, tmp_path)
    wanted = {"e2e-local": "server", "e2e-cloud": "server", "e2e-client": "client"}
    deadline = time.monotonic() + 30
    names: dict[str, str] = {}
    while time.monotonic() < deadline:
        rows = stored_events(edge.data_dir)
        names = {r["name"]: r["key_kind"] for r in rows if r["name"] in wanted}
        if names == wanted and any(r["name"] and r["name"].startswith("dvc-") for r in rows):
            break
        time.sleep(0.5)
    assert names == wanted
    rows = stored_events(edge.data_dir)
    # The SDKs' own evaluation events came too (aggregated by the server SDK, per variable).
    evaluations = [json.loads(r["payload"]) for r in rows if (r["name"] or "").startswith("dvc-")]
    assert {e["type"] for e in evaluations} & {"aggVariableEvaluated", "variableEvaluated"}
    assert {r["user_id"] for r in rows if r["name"] == "e2e-client"} == {users[0]["user_id"]}


def test_the_server_sdk_takes_a_change_over_the_realtime_stream(sdk_ready: Path, edge: Edge) -> None:
    """Polling every 10 minutes: only the edge's stream can bring the change within seconds."""
    feature = devcycle_data.features(FEATURES, "prod")[0]
    variable = feature["variables"][0]["key"]
    node = subprocess.Popen(
        ["node", "realtime.mjs", edge.url, edge.keys["server"], variable],
        cwd=sdk_ready,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert node.stdout is not None and node.stdin is not None
        first = json.loads(read_line(node, 60))
        assert first["value"] in ("blue", "red") and first["sse"] is True
        everyone_third = {"status": "active", "targets": [devcycle_data.everyone("third")]}
        r = edge.admin.patch(
            f"/v1/projects/shop/features/{feature['key']}/configurations",
            params={"environment": "prod"},
            json=everyone_third,
            headers=edge.auth,
        )
        assert r.status_code == 200, r.text
        changed = time.monotonic()
        node.stdin.write("changed\n")
        node.stdin.flush()
        second = json.loads(read_line(node, 30))
        assert second["value"] == "green", second
        assert time.monotonic() - changed < 15
    finally:
        node.kill()
        node.wait(10)


def read_line(node: subprocess.Popen[str], timeout: float) -> str:
    assert node.stdout is not None
    ready, _, _ = select.select([node.stdout], [], [], timeout)
    if not ready:
        node.kill()
        _, err = node.communicate(timeout=10)
        raise AssertionError(f"no answer from the SDK within {timeout} s: {err[-3000:]}")
    line = node.stdout.readline()
    assert line, node.stderr.read() if node.stderr else "the SDK exited"
    return line
