"""Contract tests of the Airborne package routes."""

from __future__ import annotations

from typing import Any

from tests.control_plane.airborne_support import make_app
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.airborne.support import fields


def test_packages(api: Api) -> None:
    app = make_app(api)
    app.file("index.jsa")
    app.file("a.js")
    app.file("b.js", tag="v1", url="https://cdn.example.com/b1.js")
    app.file("b.js", tag="v2", url="https://cdn.example.com/b2.js")
    p1 = app.package("index.jsa@tag:latest", ["a.js@version:1", "b.js@tag:v1"], tag="stable")
    assert p1 == {
        "index": "index.jsa@version:1",
        "tag": "stable",
        "version": 1,
        "files": ["a.js@version:1", "b.js@version:1"],
        "created_at": p1["created_at"],
    }
    p2 = app.package("index.jsa", ["a.js", "b.js@tag:v2"], tag="stable")
    assert p2["version"] == 2 and p2["files"] == ["a.js@version:1", "b.js@version:2"]
    p3 = app.package("index.jsa", [], tag="beta")
    assert p3["version"] == 3 and p3["files"] == []

    def get(key: str) -> Any:
        return api.client.get("/packages", params={"package_key": key}, headers=app.h)

    assert get("version:1").json() == p1
    assert get("tag:stable").json() == p2  # the newest package with the tag
    assert get("tag:beta").json()["version"] == 3
    assert_error(get("version:9"), 404, "not_found")
    assert_error(get("tag:nope"), 404, "not_found")
    assert_error(get("latest"), 400, "validation_failed")
    assert_error(api.client.get("/packages", headers=app.h), 400, "validation_failed")

    def create(payload: dict[str, Any]) -> Any:
        return api.client.post("/packages", json=payload, headers=app.h)

    missing = create({"index": "index.jsa", "tag": "x", "files": ["a.js", "zzz.js@version:1"]})
    assert_error(missing, 400, "validation_failed")
    assert fields(missing) == ["files[1]"]
    dup = create({"index": "index.jsa", "tag": "x", "files": ["b.js@tag:v1", "b.js@tag:v2"]})
    assert fields(dup) == ["files[1]"]
    idx = create({"index": "index.jsa", "tag": "x", "files": ["index.jsa"]})
    assert fields(idx) == ["files[0]"]
    assert fields(create({"index": "nope.jsa", "tag": "x", "files": []})) == ["index"]
    assert_error(create({"index": "index.jsa", "files": []}), 400, "validation_failed")

    listed = api.client.get("/packages/list", headers=app.h).json()
    assert listed["total_items"] == 3 and listed["total_pages"] == 1
    assert [p["version"] for p in listed["data"]] == [3, 2, 1]
    paged = api.client.get("/packages/list", params={"pages": 2, "count": 2}, headers=app.h).json()
    assert [p["version"] for p in paged["data"]] == [1] and paged["total_pages"] == 2
    everything = api.client.get("/packages/list", params={"all": "true", "count": 1}, headers=app.h).json()
    assert len(everything["data"]) == 3
    searched = api.client.get("/packages/list", params={"search": "INDEX"}, headers=app.h).json()
    assert searched["total_items"] == 3
    assert api.client.get("/packages/list", params={"search": "nothing"}, headers=app.h).json()["data"] == []
