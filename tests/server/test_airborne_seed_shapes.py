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

from tests.control_plane.airborne_support import make_app
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


def test_non_airborne_routes_keep_the_envelope(s: Stack) -> None:
    assert_error(s.api.client.get("/v1/projects"), 401, "unauthorized", shape="envelope")
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
