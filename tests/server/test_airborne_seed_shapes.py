"""The Airborne seed's own shapes (issue 14, item 6): errors on every Airborne route are the
document's ``{"error": "<message>"}`` (with our ``code``, ``details`` and ``request_id`` beside
it), and a release body as Airborne's CLI sends it (``config.release_config_timeout``,
``config.version``, ``package.name``) is accepted and served, on the control plane and the edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control_plane.airborne_support import App, make_app
from tests.control_plane.conftest import assert_error
from tests.server.stack import Stack, stack

# The seed's error examples: one key, "error", whose value is the message.
SEED_ERRORS = ({"error": "Unauthorized message"}, {"error": "Resource not found"}, {"error": "Resource already exists"})


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as st:
        yield st


def _seed_shaped(body: dict[str, Any]) -> None:
    """What a client written from the seed's examples reads: ``body["error"]`` is the message."""
    for example in SEED_ERRORS:
        assert type(body["error"]) is type(example["error"])
    assert body["error"]
    assert set(body) - {"error"} == {"code", "details", "request_id"}


def test_errors_on_airborne_routes_are_the_seeds_shape(s: Stack) -> None:
    app = make_app(s.api)
    c = s.api.client
    cases = [
        (c.get("/releases/nope", headers=app.h), 404, "not_found"),
        (c.get("/file", params={"file_key": "a.js@version:9"}, headers=app.h), 404, "not_found"),
        (c.post("/releases/nope/ramp", json={"traffic_percentage": 500}, headers=app.h), 400, "validation_failed"),
        (c.get("/packages/list", headers={"x-organisation": "acme", "x-application": "shop"}), 401, "unauthorized"),
        (
            c.post("/organisations/applications/dimension/create", json={"dimension": "x"}, headers=app.h),
            400,
            "validation_failed",
        ),
    ]
    app.dimension("os")
    cases.append(
        (
            c.post(
                "/organisations/applications/dimension/create",
                json={"dimension": "os", "description": "again", "schema": {"type": "string"}},
                headers=app.h,
            ),
            409,
            "conflict",
        )
    )
    s.sync()
    cases.append((s.edge.get("/release/acme/nope"), 404, "not_found"))
    cases.append((s.edge.get("/release/acme/shop", headers={"x-dimensions": "{bad"}), 400, "validation_failed"))
    for response, status, code in cases:
        body = assert_error(response, status, code, shape="airborne")
        _seed_shaped(body)


def test_non_airborne_routes_keep_their_own_shape(s: Stack) -> None:
    # DevCycle's routes answer in DevCycle's shape, ours and the edge's in the envelope.
    assert_error(s.api.client.get("/v1/projects"), 401, "unauthorized", shape="devcycle")
    assert_error(s.api.client.get("/user"), 401, "unauthorized", shape="envelope")
    assert_error(s.api.client.get("/organisations/acme/api-keys"), 401, "unauthorized", shape="envelope")
    assert_error(s.edge.get("/features/evaluated"), 401, "unauthorized", shape="envelope")


def test_a_release_as_airbornes_cli_sends_it(s: Stack) -> None:
    app = make_app(s.api)
    app.file("index.jsa")
    app.file("main.js")
    app.package("index.jsa", ["main.js"])
    body = {
        "config": {"release_config_timeout": 1500, "boot_timeout": 4000, "version": "2.1.0", "properties": {"a": 1}},
        "package": {"name": "shop-ns", "properties": {"p": True}, "important": ["main.js"], "lazy": []},
        "dimensions": {},
        "resources": [],
    }
    r = s.api.client.post("/releases", json=body, headers=app.h)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["config"]["release_config_timeout"] == 1500
    assert created["config"]["version"] == "2.1.0"
    assert created["package"]["name"] == "shop-ns"
    s.sync()
    served = s.edge.get("/release/acme/shop").json()
    assert served["version"] == "2.1.0"
    assert served["config"]["release_config_timeout"] == 1500
    assert served["config"]["boot_timeout"] == 4000
    assert served["package"]["name"] == "shop-ns"
    assert served["package"]["properties"] == {"p": True}
    unknown = s.api.client.post("/releases", json={"config": {"nope": 1}}, headers=app.h)
    assert_error(unknown, 400, "validation_failed", shape="airborne")


def test_names_as_the_document_allows_them(s: Stack) -> None:
    """An organisation name with spaces and an application name with capitals are accepted and
    echoed as given; the headers and the public route take the name (URL-encoded); names that
    map to one key are one application."""
    c = s.api.client
    owner = s.api.signup()
    created = c.post("/organisations/create", json={"name": "Acme Mobile Co"}, headers=owner.auth)
    assert created.status_code == 200, created.text
    assert created.json()["name"] == "Acme Mobile Co"
    org_h = owner.org("Acme Mobile Co")
    r = c.post("/organisations/applications/create", json={"application": "Shop App"}, headers=org_h)
    assert r.json() == {"application": "Shop App", "organisation": "Acme Mobile Co", "access": ["owner"]}
    for same_key in ("shop app", "Shop-App", "SHOP APP"):
        clash = c.post("/organisations/applications/create", json={"application": same_key}, headers=org_h)
        assert_error(clash, 409, "conflict", shape="envelope")
    unicode_name = c.post("/organisations/applications/create", json={"application": "Café Ünï"}, headers=org_h)
    assert unicode_name.status_code == 200, unicode_name.text
    listed = c.get("/organisations", headers=owner.auth).json()
    assert [a["application"] for a in listed[0]["applications"]] == ["Café Ünï", "Shop App"]

    app = App(s.api, owner, "Acme Mobile Co", "Shop App")
    app.file("index.jsa")
    app.package("index.jsa", [])
    # The documented name in x-application, and UTF-8 names in headers.
    created_release = c.post("/releases", json={"config": {"properties": {"which": "spaced"}}}, headers=app.h)
    assert created_release.status_code == 200, created_release.text
    assert c.get(f"/releases/{created_release.json()['id']}", headers=app.h).json()["app_id"] == "Shop App"
    # A UTF-8 name in a header (the bytes as a client sends them).
    utf8: dict[str, str | bytes] = {
        **owner.auth,
        "x-organisation": "Acme Mobile Co",
        "x-application": "Café Ünï".encode(),
    }
    assert c.get("/releases/list", headers=utf8).status_code == 200
    s.sync()
    for path in ("/release/Acme%20Mobile%20Co/Shop%20App", "/release/Acme%20Mobile%20Co/shop-app"):
        for client in (s.edge, c):
            served = client.get(path)
            assert served.status_code == 200, (path, served.text)
            assert served.json()["config"]["properties"] == {"which": "spaced"}
    assert_error(s.edge.get("/release/acme%20mobile%20co/Shop%20App"), 404, "not_found", shape="airborne")

    for bad in ("a/b", " lead", "trail ", "bell\a"):
        refused = c.post("/organisations/create", json={"name": bad}, headers=owner.auth)
        assert_error(refused, 400, "validation_failed")


def test_offset_and_limit_on_every_airborne_list(s: Stack) -> None:
    """``page``/``per_page``, ``pages``/``count`` and ``offset``/``limit`` on every Airborne list."""
    app = make_app(s.api)
    c = s.api.client
    for i in range(5):
        app.file(f"f{i}.js")
        app.dimension(f"d{i}")
    app.package("f0.js", [])
    for i in range(1, 5):
        app.package(f"f{i}.js", ["f0.js"])
    for i in range(5):
        assert (
            c.post(
                "/releases", json={"config": {"properties": {"i": i}}, "dimensions": {f"d{i}": "x"}}, headers=app.h
            ).status_code
            == 200
        )

    def items(path: str, **params: Any) -> list[Any]:
        r = c.get(path, params=params, headers=app.h)
        assert r.status_code == 200, r.text
        body = r.json()
        return [
            str(x.get("id", x.get("file_path", x.get("dimension", x.get("version")))))
            for x in body.get("data", body.get("files", []))
        ]

    for path in ("/file/list", "/packages/list", "/releases/list", "/organisations/applications/dimension/list"):
        everything = items(path, count=50)
        assert len(everything) == 5, path
        assert items(path, offset=1, limit=2) == everything[1:3], path
        assert items(path, offset=4, limit=10) == everything[4:], path
        assert items(path, page=2, per_page=2) == everything[2:4], path
        assert items(path, pages=3, count=2) == everything[4:], path
        assert items(path, offset=3) == everything[3:], path
        assert_error(c.get(path, params={"offset": -1}, headers=app.h), 400, "validation_failed", shape="airborne")
        assert_error(c.get(path, params={"limit": 0}, headers=app.h), 400, "validation_failed", shape="airborne")


def test_openapi_declares_the_airborne_headers_and_bodies(s: Stack) -> None:
    """Routes that refuse to run without ``x-organisation``/``x-application`` declare them
    required, and every Airborne route that answers a body documents it."""
    doc = s.api.client.get("/openapi.json").json()
    airborne = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if any(t.startswith("airborne-") for t in op["tags"])
    ]
    assert len(airborne) >= 29
    for path, method, op in airborne:
        headers = {p["name"]: p["required"] for p in op["parameters"] if p["in"] == "header"}
        if path.startswith("/release/"):
            assert headers == {"x-dimensions": False, "x-dimension": False}
        else:
            assert headers == {"x-organisation": True, "x-application": True}, (method, path)
        if not (method == "delete" and "/dimension/" in path):  # answers {}
            assert "schema" in op["responses"]["200"]["content"]["application/json"], (method, path)
    members = doc["paths"]["/organisation/user/list"]["get"]
    assert {p["name"]: p["required"] for p in members["parameters"] if p["in"] == "header"} == {"x-organisation": True}
    served = doc["components"]["schemas"]["ServedRelease"]
    assert set(served["required"]) == {"version", "config", "package", "resources"}
