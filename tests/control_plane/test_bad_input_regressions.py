"""Regressions of the 500s and document errors the fuzz tests (test_fuzz_openapi.py) found.

* Airborne free-form JSON (file ``metadata``, dimension ``schema``, config ``properties`` and
  ``tenant_info``, release ``config``/``package`` properties) nested deeper than orjson encodes
  raised ``TypeError: Recursion limit reached`` inside the body validators: now a 400 naming the
  field, with an explicit limit of 32 levels.
* DevCycle rollout dates whose offset moves them outside years 1..9999 raised ``OverflowError``;
  dates before year 1000 were stored as ``999-01-01...`` (strftime does not zero-pad), which the
  snapshot build could not parse again. Now a 400, and ``0999-01-01T00:00:00.000Z``.
* The widget-config PUT documented its 200 (replace) as an error envelope.
* A Releaseo audience's ``segmentVersion`` beyond SQLite's 64-bit integers raised
  ``OverflowError`` in the look-up: now a 400 (at most 2**31 - 1).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from control_plane.app import ROUTERS
from tests.control_plane.airborne_support import make_app
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import project, target
from tests.support.error_shapes import error_of

D = "/organisations/applications/dimension"


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_text(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _fields(r: Any) -> list[str]:
    return [d["field"] for d in error_of(r.json())["details"]]


@pytest.mark.parametrize("depth", [33, 300, 1000])
def test_airborne_json_nested_too_deeply_is_a_400(api: Api, depth: int) -> None:
    app = make_app(api)
    h = {**app.h, "content-type": "application/json"}
    file = '{"file_path": "a.js", "url": "https://cdn.example.com/a.js", "tag": "latest", "metadata": DEEP}'
    templates = [
        ("/file", file, "metadata"),
        ("/file/bulk", '{"files": [' + file + '], "skip_duplicates": false}', "files.0.metadata"),
        (f"{D}/create", '{"dimension": "d", "description": "d", "schema": DEEP}', "schema"),
        ("/organisations/applications/config/create", '{"config": {"version": "1"}, "properties": DEEP}', "properties"),
        (
            "/organisations/applications/config/create",
            '{"config": {"version": "1"}, "tenant_info": DEEP}',
            "tenant_info",
        ),
        ("/releases", '{"config": {"properties": DEEP}}', "config.properties"),
        ("/releases", '{"package": {"properties": DEEP}}', "package.properties"),
    ]
    cases = [(path, body.replace("DEEP", deep_text(depth)), field) for path, body, field in templates]
    for path, body, field in cases:
        r = api.client.post(path, content=body, headers=h)
        assert_error(r, 400, "validation_failed")
        assert _fields(r) == [field], (path, r.text)


def test_airborne_json_at_the_depth_limit_is_stored(api: Api) -> None:
    app = make_app(api)
    created = app.file("a.js", metadata=deep(31))  # 32 levels with the metadata object itself
    assert created["metadata"] == deep(31)
    r = api.client.post(
        "/organisations/applications/config/create",
        json={"config": {"version": "1"}, "properties": deep(31)},
        headers=app.h,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("date", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_rollout_dates_out_of_range_are_a_400(api: Api, date: str) -> None:
    p = project(api)
    p.feature()
    r = p.configure("new-dash", "development", {"targets": [target(rollout={"type": "schedule", "startDate": date})]})
    assert_error(r, 400, "validation_failed")
    assert _fields(r) == ["targets[0].rollout.startDate"]
    stages = [{"type": "discrete", "date": date, "percentage": 1}]
    rollout = {"type": "stepped", "startPercentage": 0, "startDate": "2024-01-01T00:00:00Z", "stages": stages}
    r = p.configure("new-dash", "development", {"targets": [target(rollout=rollout)]})
    assert_error(r, 400, "validation_failed")
    assert _fields(r) == ["targets[0].rollout.stages[0].date"]


def test_rollout_dates_before_year_1000_round_trip(api: Api) -> None:
    p = project(api)
    p.feature()
    rollout = {"type": "schedule", "startDate": "0999-01-01T00:00:00+01:00"}
    r = p.configure("new-dash", "development", {"status": "active", "targets": [target(rollout=rollout)]})
    assert r.status_code == 200, r.text
    assert r.json()["targets"][0]["rollout"]["startDate"] == "0998-12-31T23:00:00.000Z"
    # A schedule that started long ago serves its target.
    assert p.evaluate({"user": {"id": "u"}})["new-dash"]["config"]["key"] == "on"


def test_openapi_documents_every_success_status_as_a_success(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    put = doc["paths"]["/projects/{projectId}/widget-config"]["put"]["responses"]
    assert put["201"] == {"description": "Created", "content": {"application/json": {}}}
    assert put["200"] == {"description": "OK", "content": {"application/json": {}}}
    assert "ErrorEnvelope" in put["413"]["content"]["application/json"]["schema"]["$ref"]
    shapes = {(s.method.lower(), re.sub(r":[^}]+}", "}", s.path)): s.shape for r in ROUTERS for s in r.specs}
    errors = {f"#/components/schemas/{n}" for n in ("AirborneError", "DevCycleError", "ErrorEnvelope")}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                schema = response["content"]["application/json"].get("schema")
                if int(status) < 400:
                    # No schema, or the route's success body (never an error body).
                    assert schema is None or schema["$ref"] not in errors, (method, path, status)
                else:
                    # Airborne and DevCycle routes document their seed's error shape, every other
                    # route the envelope.
                    name = {"airborne": "AirborneError", "devcycle": "DevCycleError"}.get(
                        shapes[(method, path)], "ErrorEnvelope"
                    )
                    assert schema == {"$ref": f"#/components/schemas/{name}"}, (method, path, status)


def test_segment_version_beyond_sqlite_integers_is_a_400(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    api.application(owner, "acme", "app")
    audience = {"mode": "segment", "segmentId": "s", "segmentVersion": 2**64 - 1}
    r = api.client.post("/projects/app/changelog", json={"title": "T", "audience": audience}, headers=owner.auth)
    assert_error(r, 400, "validation_failed")
    assert _fields(r) == ["audience.segmentVersion"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/projects", {"key": "nul", "name": "a\x00b"}, "body.name"),
        ("POST", "/v1/projects", {"key": "nul", "name": "n", "settings": {"x\x00": 1}}, "body.settings.x\x00"),
        ("GET", "/v1/projects?search=%00", None, "query.search"),
    ],
)
def test_text_with_nul_is_a_400_on_every_store(api: Api, method: str, path: str, body: Any, field: str) -> None:
    # PostgreSQL's text cannot hold NUL (it failed with a 500 there); SQLite refuses it alike.
    auth = {**project(api).owner.auth, "x-organisation": "acme"}
    r = api.client.request(method, path, json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert error_of(r.json())["details"][0]["field"] == field
    assert "nul" not in {p["key"] for p in api.client.get("/v1/projects", headers=auth).json()}
