"""Helpers shared by the Airborne route tests: paths, error fields, and applications set up with
cohort dimensions or with everything a release needs."""

from __future__ import annotations

from typing import Any

from tests.control_plane.airborne_support import App, make_app
from tests.control_plane.conftest import Api
from tests.support.error_shapes import error_of

CONFIG = "/organisations/applications/config/create"
D = "/organisations/applications/dimension"


def fields(r: Any) -> list[str]:
    return [d["field"] for d in error_of(r.json())["details"]]


def cohort_app(api: Api) -> App:
    app = make_app(api)
    app.dimension("app_version")
    app.dimension("version_cohort", dimension_type="cohort", depends_on="app_version")
    return app


def checkpoint(app: App, name: str, value: str, comparator: str, dim: str = "version_cohort") -> Any:
    return app.api.client.post(
        f"{D}/{dim}/cohort/checkpoint", json={"name": name, "value": value, "comparator": comparator}, headers=app.h
    )


def release_app(api: Api) -> App:
    app = make_app(api)
    app.file("index.jsa", url="https://cdn.example.com/index.jsa", size=10, checksum="a" * 64)
    app.file("main.js")
    app.file("vendor.js")
    app.file("fonts/a.ttf")
    app.file("img/hero.png")
    app.package("index.jsa", ["main.js", "vendor.js", "fonts/a.ttf"], tag="v1")
    app.dimension("platform", {"type": "string", "enum": ["android", "ios"]})
    app.dimension("app_version")
    app.dimension("versions", dimension_type="cohort", depends_on="app_version")
    r = api.client.post(
        f"{D}/versions/cohort/checkpoint",
        json={"name": "modern", "value": "2.0.0", "comparator": "semver_ge"},
        headers=app.h,
    )
    assert r.status_code == 200
    return app


def ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
