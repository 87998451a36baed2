"""Contract tests of the Releaseo widget config routes; the role, other-organisation and OpenAPI
checks also cover the segment routes."""

from __future__ import annotations

import re
from typing import Any

import orjson

from control_plane.widget_snapshot import widget_project_key, widget_snapshot
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.releaseo.support import (
    SEGMENTS,
    create_segment,
    detail_fields,
    member,
    segment_id,
    services,
    setup,
)

WIDGET = "/projects/{}/widget-config"


PROJECT_KEY = re.compile(r"^rp_[A-Za-z0-9_-]{24,}$")


def test_widget_create_get_update_remove_recreate(api: Api) -> None:
    owner = setup(api)
    url = WIDGET.format("app")
    r = api.client.put(url, json={"settings": {"theme": "dark", "position": {"x": 1}}}, headers=owner.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {"projectId", "project", "projectKey", "settings", "version", "createdAt", "updatedAt"}
    assert PROJECT_KEY.match(created["projectKey"])
    assert created["project"] == "app"
    assert created["settings"] == {"theme": "dark", "position": {"x": 1}}
    assert created["version"] == 1
    assert created["createdAt"].endswith("Z") and created["updatedAt"].endswith("Z")

    r = api.client.get(url, headers=owner.auth)
    assert r.status_code == 200
    assert r.json() == created

    r = api.client.put(url, json={"settings": {"theme": "light"}}, headers=owner.auth)
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["projectKey"] == created["projectKey"]
    assert updated["settings"] == {"theme": "light"}
    assert updated["version"] == 2
    assert updated["createdAt"] == created["createdAt"]

    # The project id works wherever the key does.
    r = api.client.get(WIDGET.format(created["projectId"]), headers=owner.auth)
    assert r.status_code == 200 and r.json() == updated

    r = api.client.delete(url, headers=owner.auth)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "projectId": created["projectId"],
        "project": "app",
        "projectKey": created["projectKey"],
        "deleted": True,
    }
    assert_error(api.client.get(url, headers=owner.auth), 404, "not_found")
    assert_error(api.client.delete(url, headers=owner.auth), 404, "not_found")

    # Re-creating keeps the public key and keeps the version increasing (no repeated ETag).
    r = api.client.put(url, json={"settings": {"theme": "blue"}}, headers=owner.auth)
    assert r.status_code == 201, r.text
    assert r.json()["projectKey"] == created["projectKey"]
    assert r.json()["version"] == 4


def test_widget_keys_differ_per_project(api: Api) -> None:
    owner = setup(api)
    api.application(owner, "acme", "other")
    a = api.client.put(WIDGET.format("app"), json={"settings": {}}, headers=owner.auth).json()["projectKey"]
    b = api.client.put(WIDGET.format("other"), json={"settings": {}}, headers=owner.auth).json()["projectKey"]
    assert a != b and PROJECT_KEY.match(a) and PROJECT_KEY.match(b)


def test_widget_snapshot_follows_writes(api: Api) -> None:
    owner = setup(api)
    url = WIDGET.format("app")
    store = services(api).store
    created = api.client.put(url, json={"settings": {"color": "red"}}, headers=owner.auth).json()
    project_id = created["projectId"]
    with store.read() as db:
        assert widget_snapshot(db, project_id) == {
            "projectKey": created["projectKey"],
            "settings": {"color": "red"},
            "version": 1,
            "updatedAt": created["updatedAt"],
        }
    updated = api.client.put(url, json={"settings": {"color": "green"}}, headers=owner.auth).json()
    with store.read() as db:
        snap = widget_snapshot(db, project_id)
        assert snap is not None and snap["settings"] == {"color": "green"} and snap["version"] == 2
        assert snap["updatedAt"] == updated["updatedAt"]
    api.client.delete(url, headers=owner.auth)
    with store.read() as db:
        assert widget_snapshot(db, project_id) is None
        assert widget_project_key(db, project_id) == created["projectKey"]
        assert widget_snapshot(db, "no-such-project") is None
        assert widget_project_key(db, "no-such-project") is None


def test_widget_writes_touch_the_project(api: Api) -> None:
    owner = setup(api)
    published: list[set[str]] = []
    services(api).publish_projects = lambda ids, _documents: published.append(set(ids))
    url = WIDGET.format("app")
    project_id = api.client.put(url, json={"settings": {"a": 1}}, headers=owner.auth).json()["projectId"]
    api.client.put(url, json={"settings": {"a": 2}}, headers=owner.auth)
    api.client.delete(url, headers=owner.auth)
    assert published == [{project_id}] * 3
    # A failed write publishes nothing.
    api.client.put(url, json={"settings": []}, headers=owner.auth)
    assert len(published) == 3


def test_widget_settings_validation(api: Api) -> None:
    owner = setup(api)
    url = WIDGET.format("app")
    for body, field in (
        ({"settings": ["not", "an", "object"]}, "settings"),
        ({"settings": "x"}, "settings"),
        ({}, "settings"),
        ({"settings": {}, "extra": 1}, "extra"),
    ):
        r = api.client.put(url, json=body, headers=owner.auth)
        assert_error(r, 400, "validation_failed")
        assert field in detail_fields(r), r.text
    r = api.client.put(url, content=b"{not json", headers={**owner.auth, "content-type": "application/json"})
    assert_error(r, 400, "validation_failed")

    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    r = api.client.put(url, json={"settings": deep}, headers=owner.auth)
    assert_error(r, 400, "validation_failed")
    assert r.json()["error"]["details"][0] == {
        "field": "settings",
        "code": "too_deep",
        "message": "settings is nested deeper than 32 levels",
    }

    r = api.client.put(url, json={"settings": {"blob": "x" * 70_000}}, headers=owner.auth)
    assert_error(r, 413, "payload_too_large")
    assert detail_fields(r) == ["settings"]
    r = api.client.put(url, json={"settings": {"blob": "x" * (2 << 20)}}, headers=owner.auth)
    assert_error(r, 413, "payload_too_large")
    # Nothing was stored by any of the rejected writes.
    assert_error(api.client.get(url, headers=owner.auth), 404, "not_found")


def test_widget_unknown_project_and_auth(api: Api) -> None:
    owner = setup(api)
    for r in (
        api.client.get(WIDGET.format("nope"), headers=owner.auth),
        api.client.put(WIDGET.format("nope"), json={"settings": {}}, headers=owner.auth),
        api.client.delete(WIDGET.format("nope"), headers=owner.auth),
    ):
        assert_error(r, 404, "not_found")
    assert_error(api.client.get(WIDGET.format("app")), 401, "unauthorized")
    assert_error(api.client.put(WIDGET.format("app"), json={"settings": {}}), 401, "unauthorized")


def test_widget_put_idempotency_and_audit(api: Api) -> None:
    owner = setup(api)
    url = WIDGET.format("app")
    headers = {**owner.auth, "Idempotency-Key": "w-1"}
    first = api.client.put(url, json={"settings": {"a": 1}, "change_reason": "launch"}, headers=headers)
    again = api.client.put(url, json={"settings": {"a": 1}, "change_reason": "launch"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert again.json()["version"] == 1
    with services(api).store.read() as db:
        rows = db.execute(
            "SELECT action, change_reason, details FROM audit_log WHERE action LIKE 'widget.%'"
        ).fetchall()
    assert [(r["action"], r["change_reason"]) for r in rows] == [("widget.create", "launch")]
    assert orjson.loads(rows[0]["details"])["projectKey"] == first.json()["projectKey"]


def test_roles(api: Api) -> None:
    owner = setup(api)
    sid = segment_id(api, owner, "pro")
    seg_url = f"{SEGMENTS.format('app')}/{sid}"
    api.client.put(WIDGET.format("app"), json={"settings": {}}, headers=owner.auth)

    reader = member(api, owner, "read")
    assert api.client.get(WIDGET.format("app"), headers=reader.auth).status_code == 200
    assert api.client.get(SEGMENTS.format("app"), headers=reader.auth).status_code == 200
    assert api.client.get(seg_url, headers=reader.auth).status_code == 200
    assert_error(api.client.put(WIDGET.format("app"), json={"settings": {}}, headers=reader.auth), 403, "forbidden")
    assert_error(create_segment(api, reader, "r"), 403, "forbidden")
    assert_error(api.client.patch(seg_url, json={"name": "r"}, headers=reader.auth), 403, "forbidden")
    assert_error(api.client.post(f"{seg_url}/publish", headers=reader.auth), 403, "forbidden")

    writer = member(api, owner, "write")
    assert api.client.put(WIDGET.format("app"), json={"settings": {"w": 1}}, headers=writer.auth).status_code == 200
    assert create_segment(api, writer, "w").status_code == 201
    assert api.client.patch(seg_url, json={"description": "w"}, headers=writer.auth).status_code == 200
    assert api.client.post(f"{seg_url}/publish", headers=writer.auth).status_code == 200
    assert_error(api.client.delete(WIDGET.format("app"), headers=writer.auth), 403, "forbidden")
    assert_error(api.client.delete(seg_url, headers=writer.auth), 403, "forbidden")

    admin = member(api, owner, "admin")
    assert api.client.delete(seg_url, headers=admin.auth).status_code == 200
    assert api.client.delete(WIDGET.format("app"), headers=admin.auth).status_code == 200


def test_other_organisation_gets_404(api: Api) -> None:
    owner = setup(api)
    created = api.client.put(WIDGET.format("app"), json={"settings": {"s": 1}}, headers=owner.auth).json()
    sid = segment_id(api, owner, "pro")
    stranger = setup(api, "beta", "mine")

    def same_as_missing(response: Any, missing: Any) -> None:
        assert_error(response, 404, "not_found")
        assert response.json()["error"]["message"] == missing.json()["error"]["message"]

    missing = api.client.get(WIDGET.format("no-such-project"), headers=stranger.auth)
    for project in ("app", created["projectId"]):
        same_as_missing(api.client.get(WIDGET.format(project), headers=stranger.auth), missing)
        same_as_missing(api.client.put(WIDGET.format(project), json={"settings": {}}, headers=stranger.auth), missing)
        same_as_missing(api.client.delete(WIDGET.format(project), headers=stranger.auth), missing)
        base = SEGMENTS.format(project)
        same_as_missing(api.client.get(base, headers=stranger.auth), missing)
        same_as_missing(create_segment(api, stranger, "x", project=project), missing)
        same_as_missing(api.client.get(f"{base}/{sid}", headers=stranger.auth), missing)
        same_as_missing(api.client.patch(f"{base}/{sid}", json={"name": "x"}, headers=stranger.auth), missing)
        same_as_missing(api.client.post(f"{base}/{sid}/publish", headers=stranger.auth), missing)
        same_as_missing(api.client.delete(f"{base}/{sid}", headers=stranger.auth), missing)
    # Another organisation's segment id under the stranger's own project is just unknown.
    assert_error(api.client.get(f"{SEGMENTS.format('mine')}/{sid}", headers=stranger.auth), 404, "not_found")
    # Nothing changed for the owner.
    assert api.client.get(WIDGET.format("app"), headers=owner.auth).json() == created
    assert api.client.get(f"{SEGMENTS.format('app')}/{sid}", headers=owner.auth).json()["name"] == "pro"


def test_openapi_documents_releaseo_routes(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert set(paths["/projects/{projectId}/widget-config"]) == {"get", "put", "delete"}
    assert set(paths["/projects/{projectId}/segments"]) == {"get", "post"}
    assert set(paths["/projects/{projectId}/segments/{id}"]) == {"get", "patch", "delete"}
    assert set(paths["/projects/{projectId}/segments/{id}/publish"]) == {"post"}
