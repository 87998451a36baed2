"""Posts: the dashboard creates, edits (as a new version), publishes and unpublishes; /api/v1
shows the published version to both key scopes; definitions are validated per input kind."""

from __future__ import annotations

from typing import Any

import pytest

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.sytwm.support import DEFINITION, bearer, create_post, publish, site

TEXT_ONLY = {"steps": [{"id": "why", "label": "Why?", "kind": "text"}]}


def test_versions_publish_and_unpublish(api: Api) -> None:
    s = site(api)
    c = api.client
    r = create_post(api, s.h, "launch", TEXT_ONLY, title="Launch")
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["slug"], created["latest_version"], created["published_version"]) == ("launch", 1, None)
    # Defaults are spelled out in the stored definition.
    assert created["definition"] == {
        "steps": [{"id": "why", "label": "Why?", "kind": "text", "required": False, "max_length": 2000}]
    }
    public = {"key": bearer(s.read)}
    assert_error(c.get("/api/v1/posts/launch", headers=public["key"]), 404, "not_found")
    publish(api, s.h, "launch")
    assert c.get("/api/v1/posts/launch", headers=public["key"]).json() == {
        "slug": "launch",
        "title": "Launch",
        "version": 1,
        "definition": created["definition"],
    }
    r = c.post("/admin/posts/launch/versions", json={"definition": DEFINITION}, headers=s.h)
    assert r.status_code == 201, r.text
    assert (r.json()["latest_version"], r.json()["published_version"], r.json()["title"]) == (2, 1, "Launch")
    assert c.get("/api/v1/posts/launch", headers=public["key"]).json()["version"] == 1  # still the published one
    assert publish(api, s.h, "launch")["published_version"] == 2
    v2 = c.get("/api/v1/posts/launch", headers=bearer(s.submit)).json()  # both scopes read posts
    assert (v2["version"], [st["id"] for st in v2["definition"]["steps"]]) == (
        2,
        ["tried", "what_tried", "plan", "score"],
    )
    assert publish(api, s.h, "launch", 1)["published_version"] == 1  # roll back
    assert c.get("/api/v1/posts/launch", headers=public["key"]).json()["version"] == 1
    assert_error(c.post("/admin/posts/launch/publish", json={"version": 9}, headers=s.h), 404, "not_found")
    r = c.post("/admin/posts/launch/unpublish", json={"change_reason": "typo"}, headers=s.h)
    assert r.status_code == 200 and r.json()["published_version"] is None
    assert_error(c.get("/api/v1/posts/launch", headers=public["key"]), 404, "not_found")
    assert [p["slug"] for p in c.get("/api/v1/posts", headers=public["key"]).json()] == ["default"]
    full = c.get("/admin/posts/launch", headers=s.h).json()
    assert [v["version"] for v in full["versions"]] == [1, 2]
    assert {p["slug"] for p in c.get("/admin/posts", headers=s.h).json()} == {"default", "launch"}
    with api.client.app.state.services.store.read() as db:  # type: ignore[attr-defined]
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE target = 'post:launch' ORDER BY id")]
    assert actions == [
        "sytwm.post.create",
        "sytwm.post.publish",
        "sytwm.post.version",
        "sytwm.post.publish",
        "sytwm.post.publish",
        "sytwm.post.unpublish",
    ]


def test_slug_conflict_and_missing_posts(api: Api) -> None:
    s = site(api)
    c = api.client
    assert_error(create_post(api, s.h, "default"), 409, "conflict")
    huge = c.post("/admin/posts/default/publish", json={"version": 2**70}, headers=s.h)  # found by fuzzing: was a 500
    assert assert_error(huge, 400, "validation_failed")["error"]["details"][0]["field"] == "version"
    for path in ("/admin/posts/nope", "/admin/posts/nope/publish", "/admin/posts/nope/versions"):
        method = "GET" if path == "/admin/posts/nope" else "POST"
        body = {"definition": TEXT_ONLY} if path.endswith("versions") else {}
        r = c.request(method, path, json=body if method == "POST" else None, headers=s.h)
        assert_error(r, 404, "not_found")


def test_read_members_read_but_do_not_write(api: Api) -> None:
    s = site(api)
    reader = api.signup()
    api.member(s.owner, s.org, reader, "read")
    h = {**reader.auth, "x-organisation": s.org}
    assert api.client.get("/admin/posts", headers=h).status_code == 200
    assert_error(create_post(api, h, "mine", TEXT_ONLY), 403, "forbidden")
    assert_error(api.client.post("/admin/posts/default/unpublish", json={}, headers=h), 403, "forbidden")


def _step(**fields: Any) -> dict[str, Any]:
    return {"steps": [{"id": "s", "label": "S", **fields}]}


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (_step(kind="slider"), "definition.steps.0"),
        (_step(kind="choice"), "definition.steps.0.choice.options"),
        (_step(kind="choice", options=[]), "definition.steps.0.choice.options"),
        (_step(kind="choice", options=["a", "a"]), "definition.steps.0.choice"),
        (_step(kind="rating", min=5, max=5), "definition.steps.0.rating"),
        (_step(kind="text", max_length=0), "definition.steps.0.text.max_length"),
        (_step(kind="yes_no", colour="red"), "definition.steps.0.yes_no.colour"),
        ({"steps": []}, "definition.steps"),
        (
            {"steps": [{"id": "a", "label": "A", "kind": "text"}, {"id": "a", "label": "B", "kind": "text"}]},
            "definition",
        ),
        ({"steps": [{"id": "bad id", "label": "A", "kind": "text"}]}, "definition.steps.0.text.id"),
        ({"steps": [{"id": "a", "label": "", "kind": "text"}]}, "definition.steps.0.text.label"),
    ],
)
def test_bad_definitions_are_refused_with_the_field(api: Api, definition: Any, field: str) -> None:
    s = site(api)
    body = assert_error(create_post(api, s.h, "bad", definition), 400, "validation_failed")
    assert field in [d["field"] for d in body["error"]["details"]], body
    r = api.client.post("/admin/posts/default/versions", json={"definition": definition}, headers=s.h)
    assert_error(r, 400, "validation_failed")


def test_bad_slugs_are_refused(api: Api) -> None:
    s = site(api)
    for slug in ("", "Has Caps", "-lead", "x" * 65):
        body = assert_error(create_post(api, s.h, slug, TEXT_ONLY), 400, "validation_failed")
        assert body["error"]["details"][0]["field"] == "slug"
