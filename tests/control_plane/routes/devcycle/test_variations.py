"""Contract tests of the DevCycle variation routes (seed 002)."""

from __future__ import annotations

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import fields
from tests.control_plane.routes.devcycle.support import FEATURE_FIELDS, setup


def test_variation_routes(api: Api) -> None:
    p = setup(api)
    p.feature()
    r = p.post(
        "/features/new-dash/variations", {"key": "maybe", "name": "Maybe", "variables": {"show-new-dashboard": True}}
    )
    assert r.status_code == 201, r.text
    assert set(r.json()) == FEATURE_FIELDS
    assert [v["key"] for v in r.json()["variations"]] == ["on", "off", "maybe"]
    assert_error(p.post("/features/new-dash/variations", {"key": "maybe", "name": "again"}), 409, "conflict")
    r = p.post("/features/new-dash/variations", {"key": "bad", "name": "B", "variables": {"show-new-dashboard": "y"}})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["variables.show-new-dashboard"]
    r = p.post("/features/new-dash/variations", {"key": "bad", "name": "B", "variables": {"ghost": 1}})
    assert fields(r) == ["variables.ghost"]
    assert_error(p.post("/features/new-dash/variations", {"key": "bad"}), 400, "validation_failed")
    listed = p.get("/features/new-dash/variations").json()
    assert [v["key"] for v in listed] == ["on", "off", "maybe"]
    maybe = p.get("/features/new-dash/variations/maybe").json()
    assert maybe == listed[2] and set(maybe) == {"_id", "key", "name", "variables"}
    assert p.get(f"/features/new-dash/variations/{maybe['_id']}").json() == maybe
    assert_error(p.get("/features/new-dash/variations/none"), 404, "not_found")
    assert_error(p.get("/features/none/variations"), 404, "not_found")
    r = p.patch(
        "/features/new-dash/variations/maybe",
        {"name": "Perhaps", "key": "perhaps", "variables": {"show-new-dashboard": False}},
    )
    assert r.status_code == 200, r.text
    assert set(r.json()) == FEATURE_FIELDS
    assert r.json()["variations"][2] == {
        "_id": maybe["_id"],
        "key": "perhaps",
        "name": "Perhaps",
        "variables": {"show-new-dashboard": False},
    }
    assert_error(p.patch("/features/new-dash/variations/perhaps", {"key": "on"}), 409, "conflict")
    assert_error(
        p.patch("/features/new-dash/variations/perhaps", {"variables": {"show-new-dashboard": 1}}),
        400,
        "validation_failed",
    )
    assert p.delete("/features/new-dash/variations/perhaps").status_code == 204
    assert_error(p.get("/features/new-dash/variations/perhaps"), 404, "not_found")
