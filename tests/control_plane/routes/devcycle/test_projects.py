"""Contract tests of the DevCycle project routes (seed 002)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from control_plane.routes.devcycle.common import merge_settings
from control_plane.routes.devcycle.views import PROJECT_SETTINGS_DEFAULTS
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import Project, fields, member, project

PROJECT_FIELDS = {
    "_id",
    "_organization",
    "_createdBy",
    "name",
    "key",
    "description",
    "color",
    "settings",
    "createdAt",
    "updatedAt",
    "readonly",
    "hasJiraIntegration",
    "hasReceivedCodeUsages",
    "hasUserConfigFetch",
    "jiraBaseUrl",
    "vercelEdgeConfigConnections",
}


def error_without_id(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return {k: v for k, v in body.items() if k != "request_id"}


def test_create_project_shape_and_settings(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    body: dict[str, Any] = {
        "name": "Delivery App",
        "key": "delivery-app",
        "description": "A web app to manage outbound deliveries",
        "color": "#4073FF",
        "settings": {
            "edgeDB": {"enabled": True},
            "disablePassthroughRollouts": True,
            "optIn": {"enabled": False, "title": "Beta", "colors": {"primary": "#fff"}},
        },
    }
    r = api.client.post("/v1/projects", json=body, headers=owner.auth)
    assert r.status_code == 201, r.text
    p = r.json()
    assert set(p) == PROJECT_FIELDS
    assert p["name"] == "Delivery App" and p["key"] == "delivery-app" and p["color"] == "#4073FF"
    # Stored settings over DevCycle's defaults: every settings object is there.
    assert p["settings"] == merge_settings(PROJECT_SETTINGS_DEFAULTS, cast(dict[str, Any], body["settings"]))
    assert set(p["settings"]) == set(PROJECT_SETTINGS_DEFAULTS)
    assert p["_createdBy"] == owner.user_id
    assert p["createdAt"].endswith("Z") and p["updatedAt"] == p["createdAt"]
    assert len(p["_id"]) == 24
    r = api.client.get("/v1/projects/delivery-app", headers=owner.auth)
    assert r.status_code == 200 and r.json() == p
    r = api.client.get(f"/v1/projects/{p['_id']}", headers=owner.auth)
    assert r.status_code == 200 and r.json() == p


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "key": "Bad Key"}, "key"),
        ({"name": "X"}, "key"),
        ({"key": "x"}, "name"),
        ({"name": "", "key": "x"}, "name"),
        ({"name": "X", "key": "x", "color": "red"}, "color"),
        ({"name": "X", "key": "x", "unknown": 1}, "unknown"),
        ({"name": "X", "key": "x", "settings": {"nope": True}}, "settings.nope"),
        ({"name": "X" * 101, "key": "x"}, "name"),
    ],
)
def test_create_project_validation(api: Api, body: dict[str, Any], field: str) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    r = api.client.post("/v1/projects", json=body, headers=owner.auth)
    assert_error(r, 400, "validation_failed")
    assert field in fields(r)


def test_create_project_key_conflict_is_per_organisation(api: Api) -> None:
    p = project(api)
    r = api.client.post("/v1/projects", json={"name": "Again", "key": "app"}, headers=p.h)
    assert_error(r, 409, "conflict")
    other = api.signup()
    api.organisation(other, "globex")
    r = api.client.post("/v1/projects", json={"name": "App", "key": "app"}, headers=other.auth)
    assert r.status_code == 201, r.text


def test_create_project_organisation_resolution(api: Api) -> None:
    owner = api.signup()
    r = api.client.post("/v1/projects", json={"name": "A", "key": "a"}, headers=owner.auth)
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["x-organisation"]
    api.organisation(owner, "acme")
    api.organisation(owner, "globex")
    r = api.client.post("/v1/projects", json={"name": "A", "key": "a"}, headers=owner.auth)
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["x-organisation"]
    r = api.client.post("/v1/projects", json={"name": "A", "key": "a"}, headers=owner.org("globex"))
    assert r.status_code == 201, r.text
    with_org = r.json()["_organization"]
    # An organisation the caller is not in looks like a missing one.
    stranger = api.signup()
    api.organisation(stranger, "initech")
    r = api.client.post("/v1/projects", json={"name": "B", "key": "b"}, headers=owner.org("initech"))
    assert_error(r, 404, "not_found")
    # An API key works in its own organisation without the header.
    key = api.api_key(owner, "acme", "admin")
    r = api.client.post("/v1/projects", json={"name": "K", "key": "k"}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    assert r.json()["_organization"] != with_org


def test_create_project_needs_admin(api: Api) -> None:
    p = project(api)
    writer = member(p, "write")
    r = api.client.post("/v1/projects", json={"name": "W", "key": "w"}, headers=writer.org("acme"))
    assert_error(r, 403, "forbidden")
    key = api.api_key(p.owner, "acme", "write")
    r = api.client.post("/v1/projects", json={"name": "W", "key": "w"}, headers={"Authorization": f"Bearer {key}"})
    assert_error(r, 403, "forbidden")
    assert_error(api.client.post("/v1/projects", json={"name": "W", "key": "w"}), 401, "unauthorized")


def test_list_projects_pagination_sort_search(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    for key in ("charlie", "alpha", "bravo", "delta-app"):
        r = api.client.post("/v1/projects", json={"name": key.title(), "key": key}, headers=owner.auth)
        assert r.status_code == 201
    r = api.client.get("/v1/projects", headers=owner.auth)
    assert r.status_code == 200
    assert [p["key"] for p in r.json()] == ["delta-app", "bravo", "alpha", "charlie"]  # createdAt desc
    r = api.client.get("/v1/projects", params={"sortBy": "key", "sortOrder": "asc"}, headers=owner.auth)
    assert [p["key"] for p in r.json()] == ["alpha", "bravo", "charlie", "delta-app"]
    r = api.client.get(
        "/v1/projects", params={"sortBy": "name", "sortOrder": "asc", "perPage": 2, "page": 2}, headers=owner.auth
    )
    assert [p["key"] for p in r.json()] == ["charlie", "delta-app"]
    r = api.client.get("/v1/projects", params={"perPage": 2, "page": 3}, headers=owner.auth)
    assert r.json() == []
    r = api.client.get("/v1/projects", params={"search": "ALP"}, headers=owner.auth)
    assert [p["key"] for p in r.json()] == ["alpha"]
    r = api.client.get("/v1/projects", params={"search": "a_p"}, headers=owner.auth)
    assert r.json() == []  # LIKE wildcards are literal
    r = api.client.get("/v1/projects", params={"createdBy": owner.user_id}, headers=owner.auth)
    assert len(r.json()) == 4
    r = api.client.get("/v1/projects", params={"createdBy": "someone-else"}, headers=owner.auth)
    assert r.json() == []
    for params, field in [
        ({"search": "al"}, "query.search"),
        ({"perPage": 0}, "query.perPage"),
        ({"perPage": 1001}, "query.perPage"),
        ({"page": 0}, "query.page"),
        ({"page": "x"}, "query.page"),
        ({"sortBy": "size"}, "query.sortBy"),
        ({"sortBy": "propertyKey"}, "query.sortBy"),
        ({"sortOrder": "up"}, "query.sortOrder"),
    ]:
        r = api.client.get("/v1/projects", params=params, headers=owner.auth)
        assert_error(r, 400, "validation_failed")
        assert fields(r) == [field], params


def test_list_projects_only_the_callers(api: Api) -> None:
    p = project(api)
    other = api.signup()
    api.organisation(other, "globex")
    api.client.post("/v1/projects", json={"name": "G", "key": "g"}, headers=other.auth)
    api.organisation(p.owner, "second")
    api.client.post("/v1/projects", json={"name": "S", "key": "s"}, headers=p.owner.org("second"))
    keys = [x["key"] for x in api.client.get("/v1/projects", headers=p.h).json()]
    assert sorted(keys) == ["app", "s"]
    keys = [x["key"] for x in api.client.get("/v1/projects", headers=p.owner.org("second")).json()]
    assert keys == ["s"]
    key = api.api_key(p.owner, "acme", "read")
    keys = [x["key"] for x in api.client.get("/v1/projects", headers={"Authorization": f"Bearer {key}"}).json()]
    assert keys == ["app"]
    submit = api.api_key(p.owner, "acme", "submit")
    assert api.client.get("/v1/projects", headers={"Authorization": f"Bearer {submit}"}).json() == []


def test_project_cross_organisation_is_not_found(api: Api) -> None:
    p = project(api)
    stranger = api.signup()
    api.organisation(stranger, "globex")
    missing = api.client.get("/v1/projects/nope", headers=stranger.auth)
    foreign = api.client.get("/v1/projects/app", headers=stranger.auth)
    assert_error(missing, 404, "not_found")
    assert_error(foreign, 404, "not_found")
    assert error_without_id(missing) == error_without_id(foreign)
    assert_error(api.client.get(f"/v1/projects/{p.get().json()['_id']}", headers=stranger.auth), 404, "not_found")
    assert_error(api.client.patch("/v1/projects/app", json={"name": "X"}, headers=stranger.auth), 404, "not_found")
    assert_error(api.client.delete("/v1/projects/app", headers=stranger.auth), 404, "not_found")


def test_update_project(api: Api) -> None:
    p = project(api)
    before = p.get().json()
    r = api.client.patch(
        "/v1/projects/app",
        json={"name": "Renamed", "color": "#abc", "settings": {"edgeDB": {"enabled": True}}},
        headers=p.h,
    )
    assert r.status_code == 200, r.text
    r = api.client.patch("/v1/projects/app", json={"settings": {"obfuscation": {"enabled": True}}}, headers=p.h)
    after = r.json()
    assert after["name"] == "Renamed" and after["color"] == "#abc" and after["key"] == "app"
    assert after["settings"] == merge_settings(
        PROJECT_SETTINGS_DEFAULTS, {"edgeDB": {"enabled": True}, "obfuscation": {"enabled": True}}
    )
    assert after["createdAt"] == before["createdAt"] and after["updatedAt"] >= before["updatedAt"]
    api.client.post("/v1/projects", json={"name": "Other", "key": "other"}, headers=p.h)
    assert_error(api.client.patch("/v1/projects/app", json={"key": "other"}, headers=p.h), 409, "conflict")
    r = api.client.patch("/v1/projects/app", json={"key": "new-key"}, headers=p.h)
    assert r.status_code == 200 and r.json()["key"] == "new-key"
    assert_error(api.client.get("/v1/projects/app", headers=p.h), 404, "not_found")
    r = api.client.patch("/v1/projects/new-key", json={"key": "BAD"}, headers=p.h)
    assert_error(r, 400, "validation_failed")


def test_project_roles(api: Api) -> None:
    p = project(api)
    reader, writer, admin = member(p, "read"), member(p, "write"), member(p, "admin")
    assert p.get(user=reader).status_code == 200
    for user in (reader, writer):
        assert_error(api.client.patch("/v1/projects/app", json={"name": "X"}, headers=user.auth), 403, "forbidden")
        assert_error(api.client.delete("/v1/projects/app", headers=user.auth), 403, "forbidden")
    r = api.client.patch("/v1/projects/app", json={"name": "By admin"}, headers=admin.auth)
    assert r.status_code == 200


def test_delete_project(api: Api) -> None:
    p = project(api)
    p.feature()
    r = api.client.delete("/v1/projects/app", headers=p.h)
    assert r.status_code == 204 and r.content == b""
    assert_error(p.get(), 404, "not_found")
    assert_error(api.client.delete("/v1/projects/app", headers=p.h), 404, "not_found")
    with p.store().read() as db:
        assert db.execute("SELECT COUNT(*) FROM features").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM sdk_keys").fetchone()[0] == 0


def test_project_writes_are_audited_with_change_reason(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    r = api.client.post("/v1/projects", json={"name": "A", "key": "a", "change_reason": "launch"}, headers=owner.auth)
    assert r.status_code == 201
    with Project(api, owner, "acme", "a").store().read() as db:
        row = db.execute("SELECT * FROM audit_log WHERE action = 'project.create'").fetchone()
    assert row["change_reason"] == "launch" and row["target"] == "project:a"
