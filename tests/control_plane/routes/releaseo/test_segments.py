"""Contract tests of the Releaseo segment routes: contract, invalid definitions, publishing,
cursor pagination, idempotent create, API key scopes and same-named projects."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.releaseo.support import (
    PRO,
    SEGMENTS,
    create_segment,
    detail_fields,
    member,
    segment_id,
    services,
    setup,
)

BETA = {"type": "context", "field": "company.tier", "operator": "IS_NOT", "values": ["free"]}


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
    assert published.pop("unchanged") is False
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
        # The published version outlives its segment (what targeted it stays explainable).
        assert db.execute("SELECT COUNT(*) FROM releaseo_segment_versions").fetchone()[0] == 1
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
    # The draft is unchanged: no new version (and nothing to publish).
    unchanged = api.client.post(url, headers=owner.auth).json()
    assert unchanged["published"]["version"] == 1 and unchanged["unchanged"] is True
    assert len(published) == 1


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
