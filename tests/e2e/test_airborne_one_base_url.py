"""One base URL is enough (issue 14, item 8): ``GET /release/{org}/{app}`` answers on the control
plane's port with the edge's answer, over the real processes.

A matrix of requests (dimension header forms, cohort contexts, experiments being ramped,
malformed headers, unknown applications, conditional requests) goes to both ports; status, body
bytes, ETag, cache headers and error bodies must be the same. Before item 8 the control plane
answered 404 ``no such route`` to every one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.airborne_support import AirborneApp, Owner, fleet, ok, sign_up
from tests.support import services

COHORT = "/organisations/applications/dimension/versions/cohort"
COMPARED_HEADERS = ("etag", "cache-control", "content-type", "retry-after")


@dataclass
class System:
    admin: httpx.Client
    edge: httpx.Client
    owner: Owner


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("data")
    with services.control_plane(data) as admin:
        owner = sign_up(admin)
        ok(admin.post("/organisations/create", json={"name": "one"}, headers=owner.headers("one")))
        with services.edge(data) as edge:
            yield System(admin, edge, owner)


def _same(system: System, app: AirborneApp, path: str, headers: dict[str, str], params: dict[str, str]) -> int:
    """Ask both ports; everything a client reads must be equal. Returns the status."""
    wait = {"waitForVersion": str(app.version())}
    sent = {**headers, "X-Request-Id": "same-request"}
    edge = system.edge.get(path, headers=sent, params={**params, **wait})
    cp = system.admin.get(path, headers=sent, params=params)
    assert (cp.status_code, cp.content) == (edge.status_code, edge.content), (path, headers, params, edge.text)
    for name in COMPARED_HEADERS:
        assert cp.headers.get(name) == edge.headers.get(name), name
    # The edge's CORS layer (for browser SDKs) adds Origin; the answer varies on the same headers.
    assert cp.headers.get("vary") == _without_origin(edge.headers.get("vary"))
    assert cp.headers["x-request-id"] == edge.headers["x-request-id"] == "same-request"
    return edge.status_code


def _without_origin(vary: str | None) -> str | None:
    if vary is None:
        return None
    return ", ".join(v.strip() for v in vary.split(",") if v.strip().lower() != "origin") or None


def test_the_control_plane_port_answers_as_the_edge(system: System) -> None:
    app = AirborneApp(system.owner, system.edge, "one", "shop")
    for name in ("os", "app_version"):
        app.dimension(name)
    cohort_dimension = ok(
        system.admin.post(
            "/organisations/applications/dimension/create",
            json={
                "dimension": "versions",
                "description": "app version cohorts",
                "dimension_type": "cohort",
                "depends_on": "app_version",
            },
            headers=app.h,
        )
    )
    for cohort, value in (("legacy", "1.0.0"), ("modern", "2.0.0")):
        ok(
            system.admin.post(
                f"{COHORT}/checkpoint", json={"name": cohort, "value": value, "comparator": "semver_ge"}, headers=app.h
            )
        )
    app.positions["versions"] = int(cohort_dimension["position"])
    app.files()
    path = "/release/one/shop"
    devices = fleet(120, os=["ios", "android", "web"], app_version=["0.9.0", "1.5.0", "2.3.1"])

    def matrix() -> dict[int, int]:
        statuses: dict[int, int] = {}
        for d in devices:
            headers, query = d.request()
            status = _same(system, app, path, headers, query)
            statuses[status] = statuses.get(status, 0) + 1
        return statuses

    # Only a segment release: most contexts have no release (404 in Airborne's shape on both).
    app.live("ios-only", {"os": "ios"})
    assert matrix() == {200: 40, 404: 80}
    app.live("base")
    app.live("modern", {"versions": "modern"})
    experiment = app.release("next", {"os": "android"})
    ok(app.ramp(experiment, 30))
    assert matrix() == {200: 120}
    ok(app.ramp(experiment, 70))
    assert matrix() == {200: 120}

    # Conditional requests: the same ETag is honoured by both ports.
    etag = system.edge.get(path, params={"waitForVersion": str(app.version())}).headers["etag"]
    for sent in (etag, f"W/{etag}", "*", '"other"'):
        _same(system, app, path, {"If-None-Match": sent}, {})
    assert _same(system, app, path, {"If-None-Match": etag}, {}) == 304

    # Refusals, in Airborne's error shape, byte for byte.
    for headers, params in (
        ({"x-dimensions": "{not json"}, {}),
        ({"x-dimensions": "[1, 2]"}, {}),
        ({"x-dimensions": '{"os": {"nested": 1}}'}, {}),
        ({"x-dimension": "os"}, {}),
        ({"x-dimensions": "{}"}, {"toss": "t" * 300}),
    ):
        assert _same(system, app, path, headers, params) == 400
    assert _same(system, app, "/release/one/nothing-here", {}, {}) == 404
    assert _same(system, app, f"/release/{quote('no such org')}/shop", {}, {}) == 404
