"""Contract tests of DevCycle self-targeting (issue 18): ``userProfile/current`` and the
``overrides/current`` routes at DevCycle's paths, their shapes (``@devcycle/cli``'s zod schemas),
their errors, and the ``devcycleOverrides`` member they put in the environment snapshot."""

from __future__ import annotations

from typing import Any

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import member, project, target

PROFILE_FIELDS = {"_id", "_project", "a0_user", "dvcUserId", "createdAt", "updatedAt"}
OVERRIDE_FIELDS = {
    "_project",
    "_environment",
    "_feature",
    "_variation",
    "dvcUserId",
    "createdAt",
    "updatedAt",
    "a0_user",
}


def put(p: Any, feature: str, body: Any, user: Any = None) -> Any:
    return p.api.client.put(f"{p.url}/features/{feature}/overrides/current", json=body, headers=(user or p.owner).auth)


def test_user_profile_routes(api: Api) -> None:
    p = project(api)
    r = p.get("/userProfile/current")
    assert r.status_code == 200, r.text
    assert set(r.json()) == PROFILE_FIELDS and r.json()["dvcUserId"] is None
    r = p.patch("/userProfile/current", {"dvcUserId": "qa-1"})
    assert r.status_code == 200, r.text
    profile = r.json()
    assert set(profile) == PROFILE_FIELDS and profile["dvcUserId"] == "qa-1" and profile["_id"]
    assert p.get("/userProfile/current").json() == profile
    # Another member cannot claim the same SDK user id; a reader may have a profile of their own.
    reader = member(p, "read")
    assert_error(p.patch("/userProfile/current", {"dvcUserId": "qa-1"}, user=reader), 409, "conflict")
    assert p.patch("/userProfile/current", {"dvcUserId": "qa-2"}, user=reader).json()["dvcUserId"] == "qa-2"
    for bad in [{"dvcUserId": 7}, {"dvcUserId": ""}, {"other": 1}, {"dvcUserId": "x" * 201}]:
        assert_error(p.patch("/userProfile/current", bad), 400, "validation_failed")
    r = p.patch("/userProfile/current", {"dvcUserId": None})
    assert r.status_code == 200 and r.json()["dvcUserId"] is None
    assert_error(api.client.get("/v1/projects/nope/userProfile/current", headers=p.h), 404, "not_found")
    assert api.client.get(f"{p.url}/userProfile/current").status_code == 401


def test_override_routes_and_the_snapshot(api: Api) -> None:
    p = project(api)
    p.environment("production", "production")
    f = p.feature()
    assert p.configure("new-dash", "development", {"status": "active", "targets": [target()]}).status_code == 200
    assert p.patch("/userProfile/current", {"dvcUserId": "qa-1"}).status_code == 200
    r = put(p, "new-dash", {"environment": "development", "variation": "off"})
    assert r.status_code == 200, r.text
    o = r.json()
    off = next(v["_id"] for v in f["variations"] if v["key"] == "off")
    assert set(o) == OVERRIDE_FIELDS
    assert (o["_environment"], o["_feature"], o["_variation"], o["dvcUserId"]) == (
        p.env_id("development"),
        f["_id"],
        off,
        "qa-1",
    )
    # A second member overrides too: the feature's GET counts both, by environment key.
    other = member(p, "read")
    assert p.patch("/userProfile/current", {"dvcUserId": "qa-2"}, user=other).status_code == 200
    assert put(p, "new-dash", {"environment": "production", "variation": "on"}, other).status_code == 200
    listed = p.get("/features/new-dash/overrides", addMetadata="true").json()
    assert listed["uniqueTeamMembers"] == 2 and set(listed["overrides"]) == {"development", "production"}
    only = p.get("/features/new-dash/overrides", environment="production").json()
    assert list(only["overrides"]) == ["production"] and only["uniqueTeamMembers"] == 1
    # .../overrides/current is the caller's own, as the DevCycle CLI reads it.
    own = p.get("/features/new-dash/overrides/current").json()
    assert own == {"overrides": [{"_environment": p.env_id("development"), "_variation": off}]}
    assert p.get("/features/new-dash/overrides/current", environment="production").json() == {"overrides": []}
    mine = p.get("/overrides/current").json()
    assert mine == [
        {
            "_feature": f["_id"],
            "featureName": "New dashboard",
            "_environment": p.env_id("development"),
            "environmentName": "Development",
            "_variation": off,
            "variationName": "Off",
        }
    ]
    # The snapshot: the override is there for qa-1, and the compiled environment serves it.
    assert p.document()["devcycleOverrides"] == {"qa-1": {f["_id"]: off}}
    assert p.evaluate({"user": {"id": "qa-1"}})["new-dash"]["config"]["key"] == "off"
    assert p.evaluate({"user": {"id": "qa-3"}})["new-dash"]["config"]["key"] == "on"
    # Errors: unknown feature, environment, variation; bad bodies; DELETE without environment.
    assert_error(put(p, "nope", {"environment": "development", "variation": "on"}), 404, "not_found")
    assert_error(put(p, "new-dash", {"environment": "nope", "variation": "on"}), 404, "not_found")
    assert_error(put(p, "new-dash", {"environment": "development", "variation": "nope"}), 400, "validation_failed")
    for bad in [{}, {"environment": "development"}, {"environment": 1, "variation": "on"}]:
        assert_error(put(p, "new-dash", bad), 400, "validation_failed")
    assert_error(p.delete("/features/new-dash/overrides/current"), 400, "validation_failed")
    # DELETE removes only the caller's override in that environment.
    assert p.delete("/features/new-dash/overrides/current", environment="development").status_code == 204
    assert "devcycleOverrides" not in p.document()
    assert p.get("/features/new-dash/overrides").json()["uniqueTeamMembers"] == 1
    assert p.delete("/overrides/current", user=other).status_code == 204
    assert p.get("/features/new-dash/overrides").json() == {"overrides": {}, "uniqueTeamMembers": 0}
    assert p.get("/overrides/current").json() == []
