"""The edge counts what it evaluates (issue 18): evaluations through the real edge (Reflag
``/features/evaluated``, OFREP, DevCycle's bucketing API and client SDK config) reach DevCycle's
``results/total-evaluations`` and ``results/evaluations`` through the control plane, per
variation, each evaluation once; counts still in a worker when it stops are flushed then."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import bootstrap_project, create_flags, free_port, patch_flag, process
from tests.e2e.sdk_support import checkout_feature
from tests.support import services

FLUSH = "0.3"


@dataclass
class System:
    data: Path
    admin: httpx.Client
    auth: dict[str, str]
    keys: dict[str, str]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data: Path = tmp_path_factory.mktemp("evaluation-counts")
    with services.control_plane(data) as admin:
        auth, keys = bootstrap_project(admin)
        r = admin.post("/v1/projects/shop/features", json=checkout_feature("ab", serves="b"), headers=auth)
        assert r.status_code == 201, r.text
        assert create_flags(admin, auth, ["banner", "retired"]).is_success
        assert patch_flag(admin, auth, "retired", enabled=False).is_success
        yield System(data, admin, auth, keys)


def edge(s: System, interval: str) -> tuple[AbstractContextManager[subprocess.Popen[bytes]], httpx.Client]:
    """An edge on the system's data dir flushing its counts every ``interval`` seconds."""
    port = free_port()
    return process(
        ["server", "serve", "--data-dir", str(s.data), "--port", str(port), "--evaluation-counts-interval", interval],
        f"http://127.0.0.1:{port}/ready",
        s.data / f"edge-{port}.log",
    ), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def evaluated(client: httpx.Client, s: System) -> dict[str, Any]:
    r = client.get("/features/evaluated", params={"context.user.id": "u1"}, headers=bearer(s.keys["client"]))
    assert r.status_code == 200, r.text
    features: dict[str, Any] = r.json()["features"]
    return features


def ofrep(client: httpx.Client, s: System, key: str) -> Any:
    r = client.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        json={"context": {"targetingKey": "u1"}},
        headers=bearer(s.keys["server"]),
    )
    assert r.status_code == 200, r.text
    return r.json()["value"]


def totals(s: System, feature: str, **params: str) -> dict[str, int]:
    """Evaluations of ``feature`` per variation over the last week, summed over its periods."""
    r = s.admin.get(f"/v1/projects/shop/features/{feature}/results/total-evaluations", params=params, headers=s.auth)
    assert r.status_code == 200, r.text
    out: dict[str, int] = {}
    for period in r.json()["result"]["evaluations"]:
        for variation, n in period["values"].items():
            out[variation] = out.get(variation, 0) + n
    return out


def project_total(s: System) -> int:
    r = s.admin.get("/v1/projects/shop/results/total-evaluations", params={"period": "day"}, headers=s.auth)
    assert r.status_code == 200, r.text
    return sum(int(p["value"]) for p in r.json()["result"]["evaluations"])


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the counts did not arrive"
        time.sleep(0.2)


def test_every_route_counts_each_evaluation_once(system: System) -> None:
    s = system
    running, client = edge(s, FLUSH)
    with running:
        for _ in range(3):
            features = evaluated(client, s)
            assert features["checkout"]["config"]["key"] == "b"
            assert features["banner"]["isEnabled"] and not features["retired"]["isEnabled"]
        # OFREP serves a DevCycle project's variables: one, then all of them (only checkout's).
        assert ofrep(client, s, "checkout-flow") == "flow-b"
        r = client.post(
            "/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "u1"}}, headers=bearer(s.keys["client"])
        )
        assert r.status_code == 200 and [f["key"] for f in r.json()["flags"]] == ["checkout-flow"], r.text
        for _ in range(2):
            r = client.post(
                "/v1/variables/checkout-flow", json={"user_id": "u1"}, headers={"Authorization": s.keys["server"]}
            )
            assert r.status_code == 200 and r.json()["value"] == "flow-b", r.text
        r = client.get("/v1/sdkConfig", params={"sdkKey": s.keys["client"], "user_id": "u1"})
        assert r.status_code == 200 and r.json()["features"]["checkout"]["variationKey"] == "b", r.text

        # checkout: 3 Reflag answers, 2 OFREP, 2 bucketing API calls and 1 client config.
        expected = {"checkout": {"b": 8}, "banner": {"on": 3}, "retired": {"off": 3}}
        eventually(lambda: {f: totals(s, f) for f in expected} == expected)
        # Several flushes later nothing was counted twice.
        time.sleep(4 * float(FLUSH) + 1.5)
        assert {f: totals(s, f) for f in expected} == expected
        assert totals(s, "checkout", sdkType="api", period="day") == {"b": 8}
        assert totals(s, "checkout", sdkType="client") == {}
        r = s.admin.get("/v1/projects/shop/features/checkout/results/evaluations", headers=s.auth)
        assert r.status_code == 200, r.text
        assert sum(p["values"].get("b", 0) for p in r.json()["result"]["evaluations"]) == 8
        assert project_total(s) == 14


def test_a_stopping_worker_flushes_what_it_counted(system: System) -> None:
    s = system
    before = totals(s, "banner").get("on", 0), totals(s, "retired").get("on", 0)
    running, client = edge(s, "3600")  # no periodic flush during the test
    polls = 0

    def retired_is_on() -> bool:
        nonlocal polls
        polls += 1
        return bool(evaluated(client, s)["retired"]["isEnabled"])

    with running as proc:
        for _ in range(4):
            assert evaluated(client, s)["banner"]["isEnabled"]
        # A publish replaces the snapshot that counted those: its counts are not lost.
        assert patch_flag(s.admin, s.auth, "retired", enabled=True).is_success
        eventually(retired_is_on)
        for _ in range(2):
            assert evaluated(client, s)["banner"]["isEnabled"]
        time.sleep(1)
        assert totals(s, "banner").get("on", 0) == before[0]
        proc.send_signal(signal.SIGTERM)  # granian stops its workers gracefully
        proc.wait(30)
    eventually(lambda: totals(s, "banner").get("on", 0) == before[0] + 4 + polls + 2)
    assert totals(s, "retired").get("on", 0) == before[1] + 1 + 2


def test_counting_can_be_turned_off(system: System) -> None:
    s = system
    before = totals(s, "banner").get("on", 0)
    running, client = edge(s, "0")
    with running as proc:
        for _ in range(3):
            assert evaluated(client, s)["banner"]["isEnabled"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    time.sleep(2.5)  # the consumer runs every second
    assert totals(s, "banner").get("on", 0) == before
