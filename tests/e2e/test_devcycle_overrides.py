"""Self-targeting end to end (issue 18): a team member names their SDK user id in their profile
and overrides a feature's variation in one environment; the real edge then serves that user id
the overridden variation on every route it evaluates (Reflag ``/features/evaluated``, OFREP, the
DevCycle bucketing API and client SDK config), and nobody else; removing the override (or the
profile's user id) gives the user the targeted variation back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import bootstrap_project
from tests.e2e.sdk_support import checkout_feature
from tests.support import services

QA = "qa-user-1"
OTHER = "someone-else"


@dataclass
class System:
    admin: httpx.Client
    edge: httpx.Client
    auth: dict[str, str]
    keys: dict[str, str]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data: Path = tmp_path_factory.mktemp("overrides")
    with services.control_plane(data) as admin:
        auth, keys = bootstrap_project(admin)
        r = admin.post("/v1/projects/shop/features", json=checkout_feature("abc", serves="a"), headers=auth)
        assert r.status_code == 201, r.text
        with services.edge(data, ready=True) as edge:
            yield System(admin, edge, auth, keys)


def reflag(s: System, user: str) -> str | None:
    r = s.edge.get(
        "/features/evaluated",
        params={"context.user.id": user},
        headers={"Authorization": f"Bearer {s.keys['client']}"},
    )
    assert r.status_code == 200, r.text
    f = r.json()["features"]["checkout"]
    return f["config"]["key"] if f["isEnabled"] else None


def ofrep(s: System, user: str) -> Any:
    r = s.edge.post(
        "/ofrep/v1/evaluate/flags/checkout-flow",
        json={"context": {"targetingKey": user}},
        headers={"Authorization": f"Bearer {s.keys['server']}"},
    )
    assert r.status_code == 200, r.text
    return r.json()["value"]


def bucketing_api(s: System, user: str) -> Any:
    r = s.edge.post(
        "/v1/variables/checkout-flow",
        json={"user_id": user},
        headers={"Authorization": s.keys["server"]},
    )
    assert r.status_code == 200, r.text
    return r.json()["value"], r.json().get("eval", {}).get("reason")


def client_config(s: System, user: str) -> Any:
    r = s.edge.get("/v1/sdkConfig", params={"sdkKey": s.keys["client"], "user_id": user})
    assert r.status_code == 200, r.text
    return r.json()["variables"]["checkout-flow"]["value"]


def answers(s: System, user: str) -> tuple[Any, ...]:
    return reflag(s, user), ofrep(s, user), bucketing_api(s, user)[0], client_config(s, user)


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the edge did not take the change"
        time.sleep(0.05)


TARGETED = ("a", "flow-a", "flow-a", "flow-a")
OVERRIDDEN = ("c", "flow-c", "flow-c", "flow-c")


def test_an_override_reaches_the_user_on_every_route_and_nobody_else(system: System) -> None:
    s = system
    assert answers(s, QA) == TARGETED
    r = s.admin.patch("/v1/projects/shop/userProfile/current", json={"dvcUserId": QA}, headers=s.auth)
    assert r.status_code == 200, r.text
    assert r.json()["dvcUserId"] == QA
    r = s.admin.put(
        "/v1/projects/shop/features/checkout/overrides/current",
        json={"environment": "prod", "variation": "c"},
        headers=s.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["dvcUserId"] == QA
    eventually(lambda: reflag(s, QA) == "c")
    assert answers(s, QA) == OVERRIDDEN
    assert bucketing_api(s, QA)[1] == "OVERRIDE"
    assert answers(s, OTHER) == TARGETED

    # Moving the profile to another SDK user id moves the override with it.
    r = s.admin.patch("/v1/projects/shop/userProfile/current", json={"dvcUserId": OTHER}, headers=s.auth)
    assert r.status_code == 200, r.text
    eventually(lambda: reflag(s, OTHER) == "c")
    assert answers(s, OTHER) == OVERRIDDEN
    assert answers(s, QA) == TARGETED

    r = s.admin.delete(
        "/v1/projects/shop/features/checkout/overrides/current", params={"environment": "prod"}, headers=s.auth
    )
    assert r.status_code == 204, r.text
    eventually(lambda: reflag(s, OTHER) == "a")
    assert answers(s, OTHER) == TARGETED


def test_the_server_config_carries_no_overrides(system: System) -> None:
    """DevCycle's local-bucketing SDKs get no overrides (their WASM takes none): nor do ours."""
    s = system
    assert s.admin.patch("/v1/projects/shop/userProfile/current", json={"dvcUserId": QA}, headers=s.auth).is_success
    r = s.admin.put(
        "/v1/projects/shop/features/checkout/overrides/current",
        json={"environment": "prod", "variation": "b"},
        headers=s.auth,
    )
    assert r.status_code == 200, r.text
    eventually(lambda: reflag(s, QA) == "b")
    config = s.edge.get(f"/config/v2/server/{s.keys['server']}.json")
    assert config.status_code == 200
    assert QA not in config.text and "overrides" not in config.json()
    assert s.admin.delete("/v1/projects/shop/overrides/current", headers=s.auth).status_code == 204
    eventually(lambda: reflag(s, QA) == "a")
