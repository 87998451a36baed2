"""Contract tests of the DevCycle variable routes and how variable changes reach features (seed 002)."""

from __future__ import annotations

from typing import Any

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import fields, target
from tests.control_plane.routes.devcycle.support import VARIABLE_FIELDS, setup


def test_variable_routes(api: Api) -> None:
    p = setup(api)
    f = p.feature()
    r = p.post(
        "/variables",
        {
            "key": "banner-text",
            "type": "String",
            "name": "Banner",
            "_feature": "new-dash",
            "description": "text",
            "tags": ["ui"],
            "persistent": True,
        },
    )
    assert r.status_code == 201, r.text
    v = r.json()
    assert set(v) == VARIABLE_FIELDS
    assert v["_feature"] == f["_id"] and v["type"] == "String" and v["status"] == "active" and v["persistent"] is True
    assert_error(p.post("/variables", {"key": "banner-text", "type": "String"}), 409, "conflict")
    r = p.post("/variables", {"key": "x", "type": "String", "_feature": "ghost"})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["_feature"]
    assert_error(p.post("/variables", {"key": "x", "type": "Text"}), 400, "validation_failed")
    assert_error(p.post("/variables", {"key": "x"}), 400, "validation_failed")
    p.post("/variables", {"key": "free-number", "type": "Number"})

    def keys(**q: Any) -> list[str]:
        return [x["key"] for x in p.get("/variables", **q).json()]

    assert keys(sortBy="key", sortOrder="asc") == ["banner-text", "free-number", "show-new-dashboard"]
    assert keys(feature="new-dash", sortBy="key", sortOrder="asc") == ["banner-text", "show-new-dashboard"]
    assert keys(feature=f["_id"], type="Boolean") == ["show-new-dashboard"]
    assert keys(type="Number") == ["free-number"]
    assert keys(search="banner") == ["banner-text"]
    assert keys(perPage=1, page=2, sortBy="key", sortOrder="asc") == ["free-number"]
    assert p.get("/variables/banner-text").json() == v
    assert p.get(f"/variables/{v['_id']}").json() == v
    assert_error(p.get("/variables/ghost"), 404, "not_found")
    # The new variable can now take values in the feature's variations.
    r = p.patch("/features/new-dash/variations/on", {"variables": {"show-new-dashboard": True, "banner-text": "Hi"}})
    assert r.status_code == 200, r.text
    p.configure("new-dash", "development", {"status": "active", "targets": [target()]})
    assert p.by_key()["new-dash"]["config"]["variants"][0]["payload"] == {
        "show-new-dashboard": True,
        "banner-text": "Hi",
    }
    # Renaming a variable renames its values.
    r = p.patch("/variables/banner-text", {"key": "banner", "description": "new"})
    assert r.status_code == 200 and r.json()["key"] == "banner"
    assert p.get("/features/new-dash/variations/on").json()["variables"] == {"show-new-dashboard": True, "banner": "Hi"}
    assert_error(p.patch("/variables/banner", {"key": "free-number"}), 409, "conflict")
    # A type the values contradict is rejected.
    r = p.patch("/variables/banner", {"type": "Number"})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["type"]
    # Archived variables are not served.
    r = p.patch("/variables/banner/status", {"status": "archived"})
    assert r.status_code == 200 and r.json()["status"] == "archived"
    assert p.by_key()["new-dash"]["config"]["variants"][0]["payload"] == {"show-new-dashboard": True}
    assert keys(status="archived") == ["banner"]
    assert_error(p.patch("/variables/banner/status", {"status": "deleted"}), 400, "validation_failed")
    p.patch("/variables/banner/status", {"status": "active"})
    # Deleting a variable removes its values.
    assert p.delete("/variables/banner").status_code == 204
    assert p.get("/features/new-dash/variations/on").json()["variables"] == {"show-new-dashboard": True}
    assert_error(p.get("/variables/banner"), 404, "not_found")


def test_variable_changes_bump_targeting_version(api: Api) -> None:
    p = setup(api)
    p.feature()
    p.configure("new-dash", "development", {"status": "active", "targets": [target()]})

    def version() -> int:
        return int(p.by_key()["new-dash"]["targeting"]["version"])

    assert version() == 1
    p.patch("/variables/show-new-dashboard", {"description": "only a description"})
    assert version() == 1
    p.patch("/features/new-dash/variations/on", {"variables": {"show-new-dashboard": False}})
    assert version() == 2
    p.patch("/variables/show-new-dashboard/status", {"status": "archived"})
    assert version() == 3
    p.patch("/features/new-dash", {"key": "renamed"})
    assert p.by_key()["renamed"]["targeting"]["version"] == 4
