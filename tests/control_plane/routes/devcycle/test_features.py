"""Contract tests of the DevCycle feature routes: create (one or several), list, get, update,
delete and status (seed 002)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import BOOL_FEATURE, fields, member, project, target
from tests.control_plane.routes.devcycle.support import FEATURE_FIELDS, VARIABLE_FIELDS, setup

FULL_FEATURE: dict[str, Any] = {
    "key": "new-dash",
    "name": "New Dashboard",
    "description": "New Dashboard",
    "type": "experiment",
    "tags": ["new", "dashboard"],
    "variables": [
        {
            "key": "show-new-dashboard",
            "type": "Boolean",
            "name": "Show New Dashboard",
            "description": "toggles the dashboard",
            "tags": ["new"],
        },
        {"key": "string-var", "type": "String"},
        {"key": "num-var", "type": "Number", "validationSchema": {"schemaType": "number", "description": "n"}},
        {"key": "json-var", "type": "JSON"},
    ],
    "variations": [
        {
            "key": "variation-1",
            "name": "With access",
            "variables": {
                "show-new-dashboard": True,
                "string-var": "hello world",
                "num-var": 99,
                "json-var": {"foo": "bar"},
            },
        },
        {
            "key": "variation-2",
            "name": "Without",
            "variables": {"show-new-dashboard": False, "string-var": "", "num-var": -1.5, "json-var": {}},
        },
    ],
    "controlVariation": "variation-2",
    "settings": {"publicName": "Dash", "publicDescription": "d", "optInEnabled": False},
    "sdkVisibility": {"mobile": False, "client": True, "server": True},
    "summary": {"maintainers": ["a@example.com"], "links": [{"url": "https://x", "title": "spec"}], "markdown": "#"},
}


def test_create_feature_shape(api: Api) -> None:
    p = setup(api)
    r = p.post("/features", FULL_FEATURE)
    assert r.status_code == 201, r.text
    f = r.json()
    assert set(f) == FEATURE_FIELDS
    assert f["key"] == "new-dash" and f["type"] == "experiment" and f["status"] == "active"
    assert f["source"] == "api" and f["readonly"] is False and f["_createdBy"] == p.owner.user_id
    assert f["tags"] == ["new", "dashboard"]
    assert [v["key"] for v in f["variations"]] == ["variation-1", "variation-2"]
    assert all(set(v) == {"_id", "key", "name", "variables"} for v in f["variations"])
    assert f["variations"][0]["variables"]["json-var"] == {"foo": "bar"}
    assert f["controlVariation"] == "variation-2" and f["staticVariation"] is None
    assert [v["key"] for v in f["variables"]] == ["show-new-dashboard", "string-var", "num-var", "json-var"]
    assert all(set(v) >= VARIABLE_FIELDS and v["_feature"] == f["_id"] for v in f["variables"])
    assert f["variables"][2]["validationSchema"] == {"schemaType": "number", "description": "n"}
    assert f["sdkVisibility"] == {"mobile": False, "client": True, "server": True}
    assert f["settings"]["publicName"] == "Dash"
    assert f["summary"]["links"] == [{"url": "https://x", "title": "spec"}]
    envs = {c["_environment"]: c for c in f["configurations"]}
    assert set(envs) == {p.env_id("development"), p.env_id("production")}
    assert all(c["status"] == "inactive" and c["targets"] == [] and c["targetingVersion"] == 0 for c in envs.values())
    assert p.get("/features/new-dash").json() == f
    assert p.get(f"/features/{f['_id']}").json() == f


def test_create_feature_defaults(api: Api) -> None:
    p = setup(api)
    f = p.feature({"key": "bare", "name": "Bare"})
    assert f["type"] == "release" and f["variations"] == [] and f["variables"] == [] and f["tags"] == []
    assert f["sdkVisibility"] == {"mobile": True, "client": True, "server": True}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(key="Not A Key"), "key"),
        (lambda b: b.pop("name"), "name"),
        (lambda b: b.update(type="flag"), "type"),
        (lambda b: b.update(extra=1), "extra"),
        (lambda b: b["variations"][0]["variables"].update({"num-var": "99"}), "variations[0].variables.num-var"),
        (lambda b: b["variations"][0]["variables"].update({"num-var": True}), "variations[0].variables.num-var"),
        (
            lambda b: b["variations"][1]["variables"].update({"show-new-dashboard": 0}),
            "variations[1].variables.show-new-dashboard",
        ),
        (lambda b: b["variations"][1]["variables"].update({"json-var": [1]}), "variations[1].variables.json-var"),
        (lambda b: b["variations"][1]["variables"].update({"string-var": 1}), "variations[1].variables.string-var"),
        (lambda b: b["variations"][0]["variables"].update({"nope": 1}), "variations[0].variables.nope"),
        (lambda b: b["variations"].append({"key": "variation-1", "name": "dup"}), "variations[2].key"),
        (lambda b: b["variables"].append({"key": "string-var", "type": "String"}), "variables[4].key"),
        (lambda b: b["variables"][0].update(type="Bool"), "variables.0.type"),
        (lambda b: b.update(controlVariation="missing"), "controlVariation"),
        (lambda b: b.update(configurations={"qa": {"status": "active"}}), "configurations.qa"),
        (lambda b: b.update(tags=["x" * 101]), "tags.0"),
    ],
)
def test_create_feature_validation(api: Api, mutate: Any, field: str) -> None:
    p = setup(api)
    body = copy.deepcopy(FULL_FEATURE)
    mutate(body)
    r = p.post("/features", body)
    assert_error(r, 400, "validation_failed")
    assert field in fields(r), r.text
    assert p.get("/features").json() == []
    with p.store().read() as db:
        assert db.execute("SELECT COUNT(*) FROM variables").fetchone()[0] == 0


def test_create_feature_conflicts(api: Api) -> None:
    p = setup(api)
    p.feature()
    assert_error(p.post("/features", BOOL_FEATURE), 409, "conflict")
    # A variable key belongs to one feature.
    r = p.post("/features", {**BOOL_FEATURE, "key": "other"})
    assert_error(r, 409, "conflict")
    # An unattached variable is adopted.
    assert p.post("/variables", {"key": "free-var", "type": "String"}).status_code == 201
    f = p.feature(
        {
            "key": "adopter",
            "name": "A",
            "variables": [{"key": "free-var", "type": "String"}],
            "variations": [{"key": "a", "name": "A", "variables": {"free-var": "x"}}],
        }
    )
    assert f["variables"][0]["key"] == "free-var" and f["variables"][0]["_feature"] == f["_id"]


def test_create_feature_with_configurations(api: Api) -> None:
    p = setup(api)
    f = p.feature(
        configurations={
            "development": {"status": "active", "targets": [target()]},
            "production": {"status": "inactive"},
        }
    )
    by_env = {c["_environment"]: c for c in f["configurations"]}
    dev = by_env[p.env_id("development")]
    assert dev["status"] == "active" and dev["targetingVersion"] == 1 and len(dev["targets"]) == 1
    assert dev["targets"][0]["distribution"] == [{"_variation": f["variations"][0]["_id"], "percentage": 1}]
    assert p.by_key()["new-dash"]["config"]["variants"][0]["payload"] == {"show-new-dashboard": True}
    assert p.by_key("production") == {}


def test_create_multiple_features(api: Api) -> None:
    p = setup(api)
    r = p.post("/features/multiple", [{"key": "a", "name": "A"}, {"key": "b", "name": "B", "type": "ops"}])
    assert r.status_code == 201, r.text
    assert [f["key"] for f in r.json()] == ["a", "b"]
    assert all(set(f) == FEATURE_FIELDS for f in r.json())
    # One bad feature rolls back all of them, naming its index.
    r = p.post("/features/multiple", [{"key": "c", "name": "C"}, {"key": "a", "name": "A again"}])
    assert_error(r, 409, "conflict")
    r = p.post("/features/multiple", [{"key": "c", "name": "C"}, {"key": "d", "name": "D", "controlVariation": "nope"}])
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["[1].controlVariation"]
    assert sorted(f["key"] for f in p.get("/features").json()) == ["a", "b"]
    assert_error(p.post("/features/multiple", []), 400, "validation_failed")
    assert_error(p.post("/features/multiple", {"key": "x", "name": "X"}), 400, "validation_failed")


def test_list_features_filters_pagination_sort(api: Api) -> None:
    p = setup(api)
    for key, kind in [("bravo", "release"), ("alpha", "ops"), ("charlie", "ops"), ("delta", "experiment")]:
        p.feature({"key": key, "name": key.title(), "type": kind})

    def keys(**q: Any) -> list[str]:
        return [f["key"] for f in p.get("/features", **q).json()]

    assert keys() == ["delta", "charlie", "alpha", "bravo"]
    assert keys(sortBy="key", sortOrder="asc") == ["alpha", "bravo", "charlie", "delta"]
    assert keys(sortBy="name", sortOrder="desc", perPage=3, page=1) == ["delta", "charlie", "bravo"]
    assert keys(sortBy="name", sortOrder="desc", perPage=3, page=2) == ["alpha"]
    assert keys(type="ops", sortBy="key", sortOrder="asc") == ["alpha", "charlie"]
    assert keys(search="arl") == ["charlie"]
    assert keys(keys="alpha,delta,nope", sortBy="key", sortOrder="asc") == ["alpha", "delta"]
    r = p.patch("/features/alpha/status", {"status": "archived"})
    assert r.status_code == 200
    assert keys(status="archived") == ["alpha"]
    assert keys(status="active", type="ops") == ["charlie"]
    for params in ({"type": "flag"}, {"status": "gone"}, {"search": "ab"}, {"sortBy": "propertyKey"}):
        assert_error(api.client.get(p.url + "/features", params=params, headers=p.h), 400, "validation_failed")


def test_feature_not_found_and_cross_org(api: Api) -> None:
    p = setup(api)
    f = p.feature()
    assert_error(p.get("/features/missing"), 404, "not_found")
    stranger = api.signup()
    api.organisation(stranger, "globex")
    for r in (
        p.get("/features", user=stranger),
        p.get(f"/features/{f['_id']}", user=stranger),
        p.patch("/features/new-dash", {"name": "x"}, stranger),
        p.delete("/features/new-dash", stranger),
        p.post("/features", {"key": "x", "name": "X"}, stranger),
        p.get("/features/new-dash/variations", user=stranger),
        p.get("/variables", user=stranger),
    ):
        assert_error(r, 404, "not_found")
    # Another organisation's project with the same key is a different project.
    q = project(api, "globex", "app", owner=stranger)
    assert_error(q.get("/features/new-dash"), 404, "not_found")


def test_feature_roles(api: Api) -> None:
    p = setup(api)
    p.feature()
    reader, writer = member(p, "read"), member(p, "write")
    assert p.get("/features", user=reader).status_code == 200
    assert p.get("/features/new-dash", user=reader).status_code == 200
    assert_error(p.post("/features", {"key": "x", "name": "X"}, reader), 403, "forbidden")
    assert_error(p.patch("/features/new-dash", {"name": "x"}, reader), 403, "forbidden")
    assert_error(p.delete("/features/new-dash", reader), 403, "forbidden")
    assert_error(p.patch("/features/new-dash/status", {"status": "archived"}, reader), 403, "forbidden")
    assert_error(p.post("/features/new-dash/variations", {"key": "v", "name": "V"}, reader), 403, "forbidden")
    assert_error(p.post("/variables", {"key": "v", "type": "String"}, reader), 403, "forbidden")
    assert p.post("/features", {"key": "x", "name": "X"}, writer).status_code == 201
    assert p.patch("/features/x", {"name": "Y"}, writer).status_code == 200
    read_key = api.api_key(p.owner, "acme", "read")
    r = api.client.post(
        p.url + "/features", json={"key": "k", "name": "K"}, headers={"Authorization": f"Bearer {read_key}"}
    )
    assert_error(r, 403, "forbidden")


def test_update_feature_fields_and_variations(api: Api) -> None:
    p = setup(api)
    f = p.feature(FULL_FEATURE)
    ids = {v["key"]: v["_id"] for v in f["variations"]}
    r = p.patch(
        "/features/new-dash",
        {
            "name": "Renamed",
            "tags": ["x"],
            "type": "ops",
            "variations": [
                {"_id": ids["variation-2"], "name": "Second first"},
                {"key": "variation-1", "variables": {"show-new-dashboard": False}},
                {"key": "variation-3", "name": "Third"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    g = r.json()
    assert g["name"] == "Renamed" and g["tags"] == ["x"] and g["type"] == "ops" and g["key"] == "new-dash"
    assert [(v["key"], v["_id"]) for v in g["variations"][:2]] == [
        ("variation-2", ids["variation-2"]),
        ("variation-1", ids["variation-1"]),
    ]
    assert g["variations"][0]["name"] == "Second first"
    assert g["variations"][1]["variables"] == {"show-new-dashboard": False}
    assert g["variations"][2]["variables"] == {}
    # Unknown ids, new variations without names, and wrong values are rejected.
    for body, field in [
        ({"variations": [{"_id": "nope"}]}, "variations[0]._id"),
        ({"variations": [{"key": "brand-new"}]}, "variations[0]"),
        (
            {"variations": [{"key": "variation-2"}, {"key": "variation-1", "variables": {"num-var": "x"}}]},
            "variations[1].variables.num-var",
        ),
        ({"controlVariation": "gone"}, "controlVariation"),
    ]:
        r = p.patch("/features/new-dash", body)
        assert_error(r, 400, "validation_failed")
        assert fields(r) == [field]
    # Renaming the key.
    r = p.patch("/features/new-dash", {"key": "dash"})
    assert r.status_code == 200 and r.json()["key"] == "dash"
    assert_error(p.get("/features/new-dash"), 404, "not_found")
    p.feature({"key": "other", "name": "Other"})
    assert_error(p.patch("/features/dash", {"key": "other"}), 409, "conflict")


def test_update_feature_variables_set(api: Api) -> None:
    p = setup(api)
    p.feature(FULL_FEATURE)
    r = p.patch(
        "/features/new-dash",
        {
            "variables": [
                {"key": "show-new-dashboard", "type": "Boolean", "name": "Renamed var"},
                {"key": "extra", "type": "Number"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    f = r.json()
    assert [v["key"] for v in f["variables"]] == ["show-new-dashboard", "extra"]
    assert f["variables"][0]["name"] == "Renamed var"
    # Dropped variables are detached and their values removed from the variations.
    assert f["variations"][0]["variables"] == {"show-new-dashboard": True}
    detached = p.get("/variables/string-var").json()
    assert detached["_feature"] is None
    # Changing a type that values contradict fails.
    r = p.patch("/features/new-dash", {"variables": [{"key": "show-new-dashboard", "type": "String"}]})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["variations[0].variables.show-new-dashboard"]


def test_removing_a_used_variation_conflicts(api: Api) -> None:
    p = setup(api)
    p.feature()
    assert p.configure("new-dash", "development", {"targets": [target(variation="off")]}).status_code == 200
    r = p.patch("/features/new-dash", {"variations": [{"key": "on"}]})
    assert_error(r, 409, "conflict")
    assert_error(p.delete("/features/new-dash/variations/off"), 409, "conflict")
    assert p.delete("/features/new-dash/variations/on").status_code == 204


def test_delete_feature(api: Api) -> None:
    p = setup(api)
    p.feature()
    p.feature(
        {**BOOL_FEATURE, "key": "second", "variables": [{"key": "second-var", "type": "Boolean"}], "variations": []}
    )
    r = p.delete("/features/new-dash")
    assert r.status_code == 204 and r.content == b""
    assert_error(p.get("/features/new-dash"), 404, "not_found")
    assert p.get("/variables/show-new-dashboard").json()["_feature"] is None
    assert p.delete("/features/second", deleteVariables="true").status_code == 204
    assert_error(p.get("/variables/second-var"), 404, "not_found")
    assert_error(p.delete("/features/second"), 404, "not_found")
    assert_error(p.delete("/features/x", deleteVariables="maybe"), 400, "validation_failed")


def test_feature_status(api: Api) -> None:
    p = setup(api)
    p.feature()
    p.configure("new-dash", "development", {"status": "active", "targets": [target(variation="off")]})
    r = p.patch("/features/new-dash/status", {"status": "complete"})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["staticVariation"]
    r = p.patch("/features/new-dash/status", {"status": "complete", "staticVariation": "nope"})
    assert_error(r, 400, "validation_failed")
    assert_error(p.patch("/features/new-dash/status", {"status": "done"}), 400, "validation_failed")
    assert_error(
        p.patch("/features/new-dash/status", {"status": "active", "staticVariation": "on"}), 400, "validation_failed"
    )
    r = p.patch("/features/new-dash/status", {"status": "complete", "staticVariation": "on"})
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["status"] == "complete" and f["staticVariation"] == "on"
    dev = next(c for c in f["configurations"] if c["_environment"] == p.env_id("development"))
    assert dev["hasStaticConfig"] is True and dev["targetingVersion"] == 2
    # A complete feature serves its static variation to everyone.
    served = p.by_key()["new-dash"]
    assert served["targeting"]["rules"] == [{"filter": {"type": "constant", "value": True}}]
    assert served["config"]["variants"] == [
        {"key": "on", "filter": {"type": "constant", "value": True}, "payload": {"show-new-dashboard": True}}
    ]
    evaluated = p.evaluate({"user": {"id": "u1"}})["new-dash"]
    assert evaluated["isEnabled"] is True and evaluated["config"]["payload"] == {"show-new-dashboard": True}
    # Archived features are not served.
    r = p.patch("/features/new-dash/status", {"status": "archived"})
    assert r.json()["staticVariation"] is None
    assert p.snapshot() == []
    r = p.patch("/features/new-dash/status", {"status": "active"})
    assert p.by_key()["new-dash"]["config"]["variants"][0]["key"] == "off"
