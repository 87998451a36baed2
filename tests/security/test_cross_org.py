"""Another organisation's resources are indistinguishable from missing ones (real control plane).

Mallory owns organisation ``evil`` (project ``evilproj``). For each read and write route she asks
for organisation ``acme``'s project, feature, environment, audience, SDK key, API keys, widget
and Airborne application, and for the same path with names that exist nowhere: the status, the
whole body (with ``request_id`` taken out) and the ``WWW-Authenticate``/``Retry-After`` headers
are identical, acme's ids used under her own project are just unknown ids, and nothing of acme's
changes. Then the answer times of foreign vs missing resources are compared (interleaved,
medians): equal within noise, because both run the same membership-scoped query
(``control_plane/authz.py``) that finds no row either way.

Also covered (in process, every write route of the OpenAPI document, every role and API-key
scope): ``tests/control_plane/test_authorization_matrix.py``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from tests.security.conftest import World


@dataclass(frozen=True)
class Case:
    method: str
    foreign: str
    missing: str
    body: Any = None
    org: str | None = None  # x-organisation sent with the foreign path (the missing one gets "no-such-org")
    app: str | None = None


@dataclass
class Setup:
    mallory: dict[str, str]
    cases: list[Case]


def _comparable(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body: Any = orjson.loads(r.content) if r.content else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"].pop("request_id", None)
    elif isinstance(body, dict) and isinstance(body.get("error"), str):  # Airborne's shape
        body.pop("request_id", None)
    headers = {k: r.headers[k] for k in ("www-authenticate", "retry-after", "content-type") if k in r.headers}
    return r.status_code, body, headers


@pytest.fixture(scope="module")
def setup(world: World) -> Setup:
    admin, auth = world.admin, world.auth
    aud = {"name": "Germans", "key": "germans", "filters": {"operator": "and", "filters": [{"type": "all"}]}}
    assert admin.post("/v1/projects/shop/audiences", json=aud, headers=auth).status_code == 201
    feature = admin.get("/v1/projects/shop/features/plan", headers=auth).json()
    env = admin.get("/v1/projects/shop/environments/prod", headers=auth).json()
    r = admin.put("/projects/shop/widget-config", json={"settings": {"theme": "x"}}, headers=auth)
    assert r.status_code in (200, 201), r.text
    mallory = world.signup("mallory")
    assert admin.post("/organisations/create", json={"name": "evil"}, headers=mallory).status_code == 200
    mine = {**mallory, "x-organisation": "evil"}
    assert admin.post("/v1/projects", json={"name": "E", "key": "evilproj"}, headers=mine).status_code == 201
    key = world.keys["client"]
    config = {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}}
    cases = [
        Case("GET", "/v1/projects/shop", "/v1/projects/nope"),
        Case("GET", "/v1/projects/shop", "/v1/projects/nope", org="acme"),
        Case("GET", f"/v1/projects/{feature['_project']}", "/v1/projects/0123456789abcdef"),
        Case("GET", "/v1/projects/shop/features", "/v1/projects/nope/features"),
        Case("GET", "/v1/projects/shop/features/plan", "/v1/projects/nope/features/plan"),
        Case("GET", f"/v1/projects/evilproj/features/{feature['_id']}", "/v1/projects/evilproj/features/0123456789"),
        Case("GET", "/v1/projects/shop/environments/prod", "/v1/projects/nope/environments/prod"),
        Case("GET", f"/v1/projects/evilproj/environments/{env['_id']}", "/v1/projects/evilproj/environments/nope"),
        Case("GET", "/v1/projects/shop/audiences/germans", "/v1/projects/nope/audiences/germans"),
        Case("GET", "/v1/projects/shop/features/plan/configurations", "/v1/projects/nope/features/plan/configurations"),
        Case("GET", "/organisations/acme/api-keys", "/organisations/nope/api-keys"),
        Case("GET", "/projects/shop/widget-config", "/projects/nope/widget-config"),
        Case("GET", "/releases/list", "/releases/list", org="acme", app="shop"),
        Case("GET", "/file/list", "/file/list", org="demo", app="demo-app"),
        Case("PATCH", "/v1/projects/shop", "/v1/projects/nope", {"name": "pwned"}),
        Case("POST", "/v1/projects/shop/features", "/v1/projects/nope/features", {"key": "x", "name": "x"}),
        Case("PATCH", "/v1/projects/shop/features/plan/configurations?environment=prod",
             "/v1/projects/nope/features/plan/configurations?environment=prod", config),
        Case("PUT", f"/v1/projects/shop/environments/prod/keys/{key}/invalidate",
             f"/v1/projects/nope/environments/prod/keys/{key}/invalidate"),
        Case("POST", "/v1/projects/shop/environments/prod/keys", "/v1/projects/nope/environments/prod/keys",
             {"client": True}),
        Case("DELETE", "/v1/projects/shop/audiences/germans", "/v1/projects/nope/audiences/germans"),
        Case("DELETE", "/v1/projects/shop", "/v1/projects/nope"),
        Case("POST", "/organisations/acme/api-keys", "/organisations/nope/api-keys", {"name": "k", "scope": "admin"}),
        Case("PUT", "/projects/shop/widget-config", "/projects/nope/widget-config", {"settings": {"a": 1}}),
        Case("POST", "/organisation/user/create", "/organisation/user/create",
             {"user": "mallory@ex.com", "access": "owner"}, org="acme"),
    ]  # fmt: skip
    return Setup(mallory, cases)


def _send(world: World, setup: Setup, case: Case, foreign: bool) -> httpx.Response:
    headers = dict(setup.mallory)
    if case.org is not None:
        headers["x-organisation"] = case.org if foreign else "no-such-org"
    if case.app is not None:
        headers["x-application"] = case.app if foreign else "no-such-app"
    path = case.foreign if foreign else case.missing
    return world.admin.request(case.method, path, json=case.body, headers=headers)


def test_foreign_resources_answer_exactly_like_missing_ones(world: World, setup: Setup) -> None:
    for case in setup.cases:
        foreign, missing = _send(world, setup, case, True), _send(world, setup, case, False)
        assert foreign.status_code in (403, 404), (case, foreign.text)
        assert _comparable(foreign) == _comparable(missing), (case, foreign.text, missing.text)
    # Nothing of acme's changed: the project, its audience and its client key are all still there.
    assert world.admin.get("/v1/projects/shop", headers=world.auth).json()["name"] == "Shop"
    assert world.admin.get("/v1/projects/shop/audiences/germans", headers=world.auth).status_code == 200
    members = world.admin.get("/organisation/user/list", headers={**world.auth, "x-organisation": "acme"}).json()
    assert "mallory" not in str(members)
    r = world.edge.get("/features/evaluated", params={"publishableKey": world.keys["client"]})
    assert r.status_code == 200


def test_foreign_and_missing_take_the_same_time(world: World, setup: Setup) -> None:
    timed = [c for c in setup.cases if c.method == "GET" and c.org is None][:4]
    timed.append(next(c for c in setup.cases if c.method == "PATCH" and "configurations" in c.foreign))
    samples: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):  # warm-up
        for case in timed:
            _send(world, setup, case, True)
            _send(world, setup, case, False)
    for i in range(30):
        for case in timed:
            for foreign in (True, False) if i % 2 else (False, True):
                t0 = time.perf_counter()
                _send(world, setup, case, foreign)
                samples[foreign].append(time.perf_counter() - t0)
    a, b = statistics.median(samples[True]) * 1000, statistics.median(samples[False]) * 1000
    print(f"cross-org: foreign resource median {a:.2f} ms, missing resource median {b:.2f} ms")
    assert abs(a - b) < max(1.0, 0.3 * min(a, b)), (a, b)
