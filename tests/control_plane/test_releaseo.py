"""Contract tests of the Releaseo dashboard APIs: widget config and segments (seed 000, conventions of seed 003)."""

from __future__ import annotations

import re
from typing import Any, cast

import orjson
import pytest
from starlette.applications import Starlette

from control_plane.http import Services
from control_plane.widget_snapshot import widget_project_key, widget_snapshot
from tests.control_plane.conftest import Api, User, assert_error

WIDGET = "/projects/{}/widget-config"
SEGMENTS = "/projects/{}/segments"
PRO = {
    "type": "group",
    "operator": "and",
    "filters": [{"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}],
}
BETA = {"type": "context", "field": "company.tier", "operator": "IS_NOT", "values": ["free"]}
PROJECT_KEY = re.compile(r"^rp_[A-Za-z0-9_-]{24,}$")


def services(api: Api) -> Services:
    return cast(Services, cast(Starlette, api.client.app).state.services)


def setup(api: Api, org: str = "acme", project: str = "app") -> User:
    owner = api.signup()
    api.organisation(owner, org)
    api.application(owner, org, project)
    return owner


def member(api: Api, owner: User, role: str, org: str = "acme") -> User:
    user = api.signup()
    api.member(owner, org, user, role)
    return user


def create_segment(
    api: Api, user: User, name: str, definition: Any = None, project: str = "app", headers: dict[str, str] | None = None
) -> Any:
    return api.client.post(
        SEGMENTS.format(project),
        json={"name": name, "definition": definition or PRO},
        headers={**user.auth, **(headers or {})},
    )


def segment_id(api: Api, user: User, name: str, definition: Any = None, project: str = "app") -> str:
    r = create_segment(api, user, name, definition, project)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def detail_fields(response: Any) -> list[str]:
    return [d["field"] for d in response.json()["error"]["details"]]


# ---------------------------------------------------------------------------------------------
# Widget config


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


# ---------------------------------------------------------------------------------------------
# Segments: contract


def test_segment_crud_contract(api: Api) -> None:
    owner = setup(api)
    base = SEGMENTS.format("app")
    r = api.client.post(
        base, json={"name": "Pro users", "description": "paying", "definition": PRO}, headers=owner.auth
    )
    assert r.status_code == 201, r.text
    seg = r.json()
    assert set(seg) == {
        "id",
        "projectId",
        "name",
        "description",
        "definition",
        "createdAt",
        "updatedAt",
        "published",
        "hasUnpublishedChanges",
    }
    assert seg["name"] == "Pro users" and seg["description"] == "paying" and seg["definition"] == PRO
    assert seg["published"] is None and seg["hasUnpublishedChanges"] is True
    assert "replayed" not in seg

    url = f"{base}/{seg['id']}"
    r = api.client.get(url, headers=owner.auth)
    assert r.status_code == 200 and r.json() == seg

    r = api.client.patch(url, json={"name": "Pro", "definition": BETA}, headers=owner.auth)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["name"] == "Pro" and patched["definition"] == BETA and patched["description"] == "paying"
    assert patched["createdAt"] == seg["createdAt"]
    r = api.client.patch(url, json={"description": None}, headers=owner.auth)
    assert r.status_code == 200 and r.json()["description"] == ""

    r = api.client.post(f"{url}/publish", headers=owner.auth)
    assert r.status_code == 200, r.text
    published = r.json()
    assert published["published"]["version"] == 1
    assert published["published"]["definition"] == BETA and published["published"]["name"] == "Pro"
    assert published["published"]["publishedAt"].endswith("Z")
    assert published["hasUnpublishedChanges"] is False

    r = api.client.get(SEGMENTS.format("app"), headers=owner.auth)
    assert r.status_code == 200
    assert r.json() == {"items": [published], "next_cursor": None}

    r = api.client.delete(url, headers=owner.auth)
    assert r.status_code == 200 and r.json() == {"id": seg["id"], "deleted": True}
    assert_error(api.client.get(url, headers=owner.auth), 404, "not_found")
    with services(api).store.read() as db:
        assert db.execute("SELECT COUNT(*) FROM releaseo_segment_versions").fetchone()[0] == 0
        actions = [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE action LIKE 'segment.%'")]
    assert actions == ["segment.create", "segment.update", "segment.update", "segment.publish", "segment.delete"]


def test_segment_unknown_is_404(api: Api) -> None:
    owner = setup(api)
    api.application(owner, "acme", "other")
    other_project_segment = segment_id(api, owner, "elsewhere", project="other")
    for sid in ("does-not-exist", other_project_segment):
        url = f"{SEGMENTS.format('app')}/{sid}"
        assert_error(api.client.get(url, headers=owner.auth), 404, "not_found")
        assert_error(api.client.patch(url, json={"name": "x"}, headers=owner.auth), 404, "not_found")
        assert_error(api.client.post(f"{url}/publish", headers=owner.auth), 404, "not_found")
        assert_error(api.client.delete(url, headers=owner.auth), 404, "not_found")
    assert_error(api.client.get(SEGMENTS.format("nope"), headers=owner.auth), 404, "not_found")
    assert_error(create_segment(api, owner, "x", project="nope"), 404, "not_found")


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (
            {
                "type": "group",
                "operator": "and",
                "filters": [{"type": "context", "field": "user.plan", "operator": "BOGUS", "values": ["pro"]}],
            },
            "definition.filters[0].operator",
        ),
        (
            {
                "type": "group",
                "operator": "and",
                "filters": [
                    {"type": "constant", "value": True},
                    {"type": "group", "operator": "or", "filters": [{"type": "weird"}]},
                ],
            },
            "definition.filters[1].filters[0].type",
        ),
        ({"type": "nope"}, "definition.type"),
    ],
)
def test_segment_invalid_definition_names_the_node(api: Api, definition: dict[str, Any], field: str) -> None:
    owner = setup(api)
    r = create_segment(api, owner, "bad", definition)
    assert_error(r, 400, "validation_failed")
    detail = r.json()["error"]["details"][0]
    assert detail["field"] == field and detail["code"] == "invalid_rule" and detail["message"]
    assert api.client.get(SEGMENTS.format("app"), headers=owner.auth).json()["items"] == []


def test_segment_body_validation(api: Api) -> None:
    owner = setup(api)
    base = SEGMENTS.format("app")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"definition": PRO}, "name"),
        ({"name": "", "definition": PRO}, "name"),
        ({"name": "x" * 201, "definition": PRO}, "name"),
        ({"name": "x"}, "definition"),
        ({"name": "x", "definition": [PRO]}, "definition"),
        ({"name": "x", "definition": "group"}, "definition"),
        ({"name": "x", "definition": PRO, "unknown": 1}, "unknown"),
    ]
    for body, field in cases:
        r = api.client.post(base, json=body, headers=owner.auth)
        assert_error(r, 400, "validation_failed")
        assert field in detail_fields(r), (body, r.text)
    big = {
        "type": "group",
        "operator": "or",
        "filters": [
            {"type": "context", "field": "user.id", "operator": "IS", "values": [f"user-{i:06d}"]} for i in range(2000)
        ],
    }
    r = create_segment(api, owner, "huge", big)
    assert_error(r, 413, "payload_too_large")
    assert detail_fields(r) == ["definition"]

    sid = segment_id(api, owner, "ok")
    url = f"{base}/{sid}"
    for body, field in (
        ({}, "body"),
        ({"change_reason": "only"}, "body"),
        ({"name": None}, "name"),
        ({"definition": None}, "definition"),
        ({"name": ""}, "name"),
    ):
        r = api.client.patch(url, json=body, headers=owner.auth)
        assert_error(r, 400, "validation_failed")
        assert field in detail_fields(r), (body, r.text)
    r = api.client.patch(
        url, json={"definition": {"type": "group", "operator": "xor", "filters": []}}, headers=owner.auth
    )
    assert_error(r, 400, "validation_failed")
    assert detail_fields(r) == ["definition.operator"]
    assert api.client.get(url, headers=owner.auth).json()["definition"] == PRO


def test_segment_name_conflict(api: Api) -> None:
    owner = setup(api)
    segment_id(api, owner, "pro")
    second = segment_id(api, owner, "beta")
    assert_error(create_segment(api, owner, "pro"), 409, "conflict")
    url = f"{SEGMENTS.format('app')}/{second}"
    assert_error(api.client.patch(url, json={"name": "pro"}, headers=owner.auth), 409, "conflict")
    # Renaming to its own name is not a conflict; the same name in another project is fine.
    assert api.client.patch(url, json={"name": "beta"}, headers=owner.auth).status_code == 200
    api.application(owner, "acme", "other")
    segment_id(api, owner, "pro", project="other")


# ---------------------------------------------------------------------------------------------
# Segments: publishing


def test_publish_freezes_immutable_versions(api: Api) -> None:
    owner = setup(api)
    sid = segment_id(api, owner, "pro")
    url = f"{SEGMENTS.format('app')}/{sid}"

    v1 = api.client.post(f"{url}/publish", json={"change_reason": "first"}, headers=owner.auth).json()["published"]
    assert v1["version"] == 1 and v1["definition"] == PRO

    r = api.client.patch(url, json={"definition": BETA, "name": "beta"}, headers=owner.auth)
    assert r.status_code == 200
    seg = api.client.get(url, headers=owner.auth).json()
    assert seg["definition"] == BETA and seg["name"] == "beta"
    assert seg["published"] == v1
    assert seg["hasUnpublishedChanges"] is True

    r = api.client.post(f"{url}/publish", headers=owner.auth)
    v2 = r.json()["published"]
    assert v2["version"] == 2 and v2["definition"] == BETA and v2["name"] == "beta"
    assert r.json()["hasUnpublishedChanges"] is False

    api.client.patch(url, json={"definition": PRO}, headers=owner.auth)
    assert api.client.get(url, headers=owner.auth).json()["published"] == v2
    v3 = api.client.post(f"{url}/publish", headers=owner.auth).json()["published"]
    assert v3["version"] == 3

    with services(api).store.read() as db:
        rows = db.execute(
            "SELECT version, name, definition FROM releaseo_segment_versions WHERE segment_id = ? ORDER BY version",
            (sid,),
        ).fetchall()
    assert [(r["version"], r["name"], orjson.loads(r["definition"])) for r in rows] == [
        (1, "pro", PRO),
        (2, "beta", BETA),
        (3, "beta", PRO),
    ]


def test_publish_touches_project_and_replays(api: Api) -> None:
    owner = setup(api)
    published: list[set[str]] = []
    services(api).publish_projects = lambda ids, _documents: published.append(set(ids))
    sid = segment_id(api, owner, "pro")
    assert published == []  # drafts do not change anything served
    url = f"{SEGMENTS.format('app')}/{sid}/publish"
    headers = {**owner.auth, "Idempotency-Key": "publish-1"}
    first = api.client.post(url, headers=headers)
    again = api.client.post(url, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["published"]["version"] == first.json()["published"]["version"] == 1
    assert len(published) == 1
    assert api.client.post(url, headers=owner.auth).json()["published"]["version"] == 2


# ---------------------------------------------------------------------------------------------
# Segments: pagination and idempotent create


def test_cursor_pagination_over_several_pages(api: Api) -> None:
    owner = setup(api)
    created = [segment_id(api, owner, f"segment-{i:02d}") for i in range(23)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        r = api.client.get(SEGMENTS.format("app"), params=params, headers=owner.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 5
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor not in created
    assert pages == 5
    assert seen == list(reversed(created))  # newest first, no duplicates, no gaps

    # Exactly one page's worth: no empty trailing page.
    r = api.client.get(SEGMENTS.format("app"), params={"limit": 23}, headers=owner.auth)
    assert len(r.json()["items"]) == 23 and r.json()["next_cursor"] is None
    # Default limit is 50.
    assert len(api.client.get(SEGMENTS.format("app"), headers=owner.auth).json()["items"]) == 23


def test_pagination_is_stable_under_writes(api: Api) -> None:
    owner = setup(api)
    ids = [segment_id(api, owner, f"s{i}") for i in range(12)]
    first = api.client.get(SEGMENTS.format("app"), params={"limit": 4}, headers=owner.auth).json()
    assert [i["id"] for i in first["items"]] == ids[::-1][:4]
    # A segment created after the first page and one deleted from later pages shift nothing.
    segment_id(api, owner, "newer")
    api.client.delete(f"{SEGMENTS.format('app')}/{ids[5]}", headers=owner.auth)
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        page = api.client.get(SEGMENTS.format("app"), params={"limit": 4, "cursor": cursor}, headers=owner.auth).json()
        rest += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert rest == [i for i in ids[::-1][4:] if i != ids[5]]


def test_pagination_query_validation(api: Api) -> None:
    owner = setup(api)
    for params, field in (
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"cursor": "garbage!"}, "query.cursor"),
        ({"cursor": "c2VnOng"}, "query.cursor"),
        ({"cursor": "x" * 201}, "query.cursor"),
    ):
        r = api.client.get(SEGMENTS.format("app"), params=params, headers=owner.auth)
        assert_error(r, 400, "validation_failed")
        assert detail_fields(r) == [field], r.text


def test_idempotent_create(api: Api) -> None:
    owner = setup(api)
    headers = {"Idempotency-Key": "create-pro-1"}
    first = create_segment(api, owner, "pro", headers=headers)
    again = create_segment(api, owner, "pro", headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert first.json()["id"] == again.json()["id"]
    # The body field of seed 003 works the same way.
    body = {"name": "beta", "definition": BETA, "client_dedup_id": "form-submit-7"}
    a = api.client.post(SEGMENTS.format("app"), json=body, headers=owner.auth)
    b = api.client.post(SEGMENTS.format("app"), json=body, headers=owner.auth)
    assert a.status_code == b.status_code == 201
    assert b.json()["replayed"] is True and a.json()["id"] == b.json()["id"]
    items = api.client.get(SEGMENTS.format("app"), headers=owner.auth).json()["items"]
    assert sorted(i["name"] for i in items) == ["beta", "pro"]
    # Another caller's key is its own namespace.
    writer = member(api, owner, "write")
    r = create_segment(api, writer, "writer's", headers=headers)
    assert r.status_code == 201 and r.json()["replayed"] is False and r.json()["id"] != first.json()["id"]


# ---------------------------------------------------------------------------------------------
# Roles and organisations


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


def test_api_key_scopes(api: Api) -> None:
    owner = setup(api)
    read_key = {"X-API-Key": api.api_key(owner, "acme", "read")}
    write_key = {"Authorization": f"Bearer {api.api_key(owner, 'acme', 'write')}"}
    submit_key = {"X-API-Key": api.api_key(owner, "acme", "submit")}
    assert api.client.get(SEGMENTS.format("app"), headers=read_key).status_code == 200
    r = api.client.post(SEGMENTS.format("app"), json={"name": "k", "definition": PRO}, headers=read_key)
    assert_error(r, 403, "forbidden")
    r = api.client.post(SEGMENTS.format("app"), json={"name": "k", "definition": PRO}, headers=write_key)
    assert r.status_code == 201
    assert_error(api.client.delete(f"{SEGMENTS.format('app')}/{r.json()['id']}", headers=write_key), 403, "forbidden")
    assert_error(api.client.get(SEGMENTS.format("app"), headers=submit_key), 404, "not_found")


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


def test_same_project_key_in_two_organisations(api: Api) -> None:
    owner = setup(api)
    api.organisation(owner, "second")
    api.application(owner, "second", "app")
    assert_error(api.client.get(SEGMENTS.format("app"), headers=owner.auth), 409, "conflict")
    r = create_segment(api, owner, "pro", headers={"x-organisation": "second"})
    assert r.status_code == 201
    items = api.client.get(SEGMENTS.format("app"), headers=owner.org("acme")).json()["items"]
    assert items == []
    items = api.client.get(SEGMENTS.format("app"), headers=owner.org("second")).json()["items"]
    assert [i["id"] for i in items] == [r.json()["id"]]


def test_openapi_documents_releaseo_routes(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert set(paths["/projects/{projectId}/widget-config"]) == {"get", "put", "delete"}
    assert set(paths["/projects/{projectId}/segments"]) == {"get", "post"}
    assert set(paths["/projects/{projectId}/segments/{id}"]) == {"get", "patch", "delete"}
    assert set(paths["/projects/{projectId}/segments/{id}/publish"]) == {"post"}
