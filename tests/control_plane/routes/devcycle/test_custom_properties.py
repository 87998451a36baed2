"""Contract tests of DevCycle custom properties and their usage by filters (seed 002)."""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.store import new_id, now_iso
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import fields, member, project

PROPERTY_FIELDS = {
    "name",
    "key",
    "_id",
    "_project",
    "_createdBy",
    "propertyKey",
    "type",
    "createdAt",
    "updatedAt",
    "hasUsage",
}


def test_custom_property_routes(api: Api) -> None:
    p = project(api)
    body = {
        "name": "Delivery App",
        "key": "delivery-app",
        "type": "String",
        "propertyKey": "Secret Agent Code",
        "schema": {
            "schemaType": "enum",
            "required": True,
            "enumSchema": {"allowedValues": [{"label": "Bond", "value": "007"}], "allowAdditionalValues": False},
        },
    }
    r = p.post("/customProperties", body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert set(c) == PROPERTY_FIELDS | {"schema"}
    assert c["propertyKey"] == "Secret Agent Code" and c["type"] == "String" and c["hasUsage"] is False
    assert c["schema"] == body["schema"]
    assert p.get("/customProperties/delivery-app").json() == c
    assert p.get(f"/customProperties/{c['_id']}").json() == c
    assert_error(p.post("/customProperties", {**body, "propertyKey": "other"}), 409, "conflict")
    assert_error(p.post("/customProperties", {**body, "key": "other"}), 409, "conflict")
    for bad, field in [
        ({**body, "type": "JSON"}, "type"),
        ({**body, "propertyKey": ""}, "propertyKey"),
        ({**body, "key": "No"}, "key"),
        ({**body, "schema": {"schemaType": "range"}}, "schema.schemaType"),
    ]:
        r = p.post("/customProperties", bad)
        assert_error(r, 400, "validation_failed")
        assert fields(r) == [field]
    r = p.patch("/customProperties/delivery-app", {"name": "Renamed", "type": "Number"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["type"] == "Number"
    assert_error(p.get("/customProperties/ghost"), 404, "not_found")
    assert p.delete("/customProperties/delivery-app").status_code == 204
    assert_error(p.get("/customProperties/delivery-app"), 404, "not_found")


def test_list_custom_properties(api: Api) -> None:
    p = project(api)
    for key, kind, prop in [("plan", "String", "zz-plan"), ("age", "Number", "aa-age"), ("beta", "Boolean", "mm")]:
        assert (
            p.post(
                "/customProperties", {"name": key.title(), "key": key, "type": kind, "propertyKey": prop}
            ).status_code
            == 201
        )

    def keys(**q: Any) -> list[str]:
        return [c["key"] for c in p.get("/customProperties", **q).json()]

    assert keys() == ["beta", "age", "plan"]
    assert keys(sortBy="propertyKey", sortOrder="asc") == ["age", "beta", "plan"]
    assert keys(type="Number") == ["age"]
    assert keys(search="zz-") == ["plan"]
    assert keys(perPage=1, page=3, sortBy="key", sortOrder="asc") == ["plan"]
    assert_error(p.get("/customProperties", type="JSON"), 400, "validation_failed")


def test_custom_property_usage(api: Api) -> None:
    p = project(api)
    p.post("/customProperties", {"name": "Plan", "key": "plan", "type": "String", "propertyKey": "plan"})
    p.post("/customProperties", {"name": "Age", "key": "age", "type": "Number", "propertyKey": "age"})
    # An audience filtering on customData `plan` (written directly: whether the evaluator build in
    # use compiles DevCycle user filters is not what this test is about).
    filters = {
        "operator": "and",
        "filters": [
            {
                "type": "user",
                "subType": "customData",
                "dataKey": "plan",
                "dataKeyType": "String",
                "comparator": "=",
                "values": ["pro"],
            }
        ],
    }
    with p.store().transaction() as db:
        project_id = db.execute("SELECT id FROM projects WHERE key = 'app'").fetchone()["id"]
        db.execute(
            "INSERT INTO audiences (id, project_id, key, name, filters, created_at, updated_at)"
            " VALUES (?, ?, 'custom', 'Custom', ?, ?, ?)",
            (new_id(), project_id, orjson.dumps(filters).decode(), now_iso(), now_iso()),
        )
    listed = {c["key"]: c["hasUsage"] for c in p.get("/customProperties", includeUsage="true").json()}
    assert listed == {"plan": True, "age": False}
    assert p.get("/customProperties/plan").json()["hasUsage"] is True
    assert_error(p.delete("/customProperties/plan"), 409, "conflict")
    assert_error(p.patch("/customProperties/plan", {"propertyKey": "tier"}), 409, "conflict")
    assert p.patch("/customProperties/plan", {"name": "Plan name"}).status_code == 200
    assert p.delete("/customProperties/age").status_code == 204


def test_custom_property_roles_and_cross_org(api: Api) -> None:
    p = project(api)
    body = {"name": "Plan", "key": "plan", "type": "String", "propertyKey": "plan"}
    reader = member(p, "read")
    assert_error(p.post("/customProperties", body, reader), 403, "forbidden")
    assert p.post("/customProperties", body).status_code == 201
    assert p.get("/customProperties", user=reader).status_code == 200
    assert_error(p.patch("/customProperties/plan", {"name": "x"}, reader), 403, "forbidden")
    assert_error(p.delete("/customProperties/plan", reader), 403, "forbidden")
    stranger = api.signup()
    api.organisation(stranger, "globex")
    assert_error(p.get("/customProperties/plan", user=stranger), 404, "not_found")
    assert_error(p.get("/customProperties", user=stranger), 404, "not_found")
    assert_error(p.patch("/customProperties/plan", {"name": "x"}, stranger), 404, "not_found")
