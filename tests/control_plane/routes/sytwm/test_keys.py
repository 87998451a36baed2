"""/admin/api-keys: sytwm_sk_/sytwm_rk_ keys shown once, hashed at rest, revoked at once, sent as
Bearer or X-API-Key; the dashboard takes a user's token only; the two key families never cross."""

from __future__ import annotations

import hashlib

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.releaseo.support import services
from tests.control_plane.routes.sytwm.support import bearer, create_key, site
from tests.support.database import dump_text


def test_keys_are_shown_once_and_stored_as_hashes(api: Api) -> None:
    s = site(api)
    created = create_key(api, s.owner, s.org, "submit")
    assert created["key"].startswith("sytwm_sk_") and len(created["key"]) > 40
    assert created["prefix"] == created["key"][:13]
    assert set(created) == {"id", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at", "key"}
    read = create_key(api, s.owner, s.org, "read")
    assert read["key"].startswith("sytwm_rk_") and read["scope"] == "read"
    listed = api.client.get("/admin/api-keys", headers=s.h).json()
    assert {k["id"] for k in listed} >= {created["id"], read["id"]}
    assert all("key" not in k for k in listed)
    assert created["key"] not in str(listed)
    with services(api).store.read() as db:
        row = db.execute("SELECT key_hash, api FROM api_keys WHERE id = ?", (created["id"],)).fetchone()
    dump = dump_text(services(api).store)
    assert row["key_hash"] == hashlib.sha256(created["key"].encode()).hexdigest()
    assert row["api"] == "sytwm"
    assert created["key"] not in dump


def test_bearer_and_x_api_key_both_work_and_revocation_is_immediate(api: Api) -> None:
    s = site(api)
    key = create_key(api, s.owner, s.org, "read")
    c = api.client
    assert c.get("/api/v1/posts", headers=bearer(key["key"])).status_code == 200
    assert c.get("/api/v1/posts", headers={"X-API-Key": key["key"]}).status_code == 200
    r = c.delete(f"/admin/api-keys/{key['id']}", headers=s.h)
    assert r.status_code == 200 and r.json()["revoked_at"]
    for headers in (bearer(key["key"]), {"X-API-Key": key["key"]}):
        assert_error(c.get("/api/v1/posts", headers=headers), 401, "unauthorized")
    assert c.get("/api/v1/posts", headers=bearer(s.read)).status_code == 200  # other keys unaffected
    listed = {k["id"]: k for k in c.get("/admin/api-keys", headers=s.h).json()}
    assert listed[key["id"]]["revoked_at"] == r.json()["revoked_at"]
    assert_error(c.get("/api/v1/posts", headers=bearer("sytwm_rk_" + "x" * 43)), 401, "unauthorized")
    assert_error(c.get("/api/v1/posts"), 401, "unauthorized")


def test_dashboard_roles_and_organisation(api: Api) -> None:
    s = site(api)
    c = api.client
    members = {}
    for role in ("admin", "write", "read"):
        members[role] = api.signup()
        api.member(s.owner, s.org, members[role], role)
    h = {role: {**u.auth, "x-organisation": s.org} for role, u in members.items()}
    assert c.get("/admin/api-keys", headers=h["admin"]).status_code == 200
    assert c.post("/admin/api-keys", json={"name": "a", "scope": "read"}, headers=h["admin"]).status_code == 201
    for role in ("write", "read"):
        assert_error(c.get("/admin/api-keys", headers=h[role]), 403, "forbidden")
        assert_error(c.post("/admin/api-keys", json={"name": "a", "scope": "read"}, headers=h[role]), 403, "forbidden")
    outsider = api.signup()
    assert_error(c.get("/admin/api-keys", headers={**outsider.auth, "x-organisation": s.org}), 404, "not_found")
    r = assert_error(c.get("/admin/api-keys", headers=s.owner.auth), 400, "validation_failed")
    assert r["error"]["details"][0]["field"] == "x-organisation"
    bad = c.post("/admin/api-keys", json={"name": "a", "scope": "write"}, headers=s.h)
    assert assert_error(bad, 400, "validation_failed")["error"]["details"][0]["field"] == "scope"


def test_key_families_never_cross(api: Api) -> None:
    s = site(api)
    c = api.client
    fe_admin = api.api_key(s.owner, s.org, "admin")
    # An admin-API key, whatever its scope, opens neither the dashboard nor /api/v1.
    assert_error(c.get("/admin/api-keys", headers={**bearer(fe_admin), "x-organisation": s.org}), 403, "forbidden")
    assert_error(c.get("/api/v1/posts", headers=bearer(fe_admin)), 403, "forbidden")
    # A sytwm key opens no admin-API route and no dashboard route.
    for key in (s.submit, s.read):
        assert_error(c.get(f"/organisations/{s.org}/api-keys", headers=bearer(key)), 403, "forbidden")
        assert_error(c.get("/admin/posts", headers={**bearer(key), "x-organisation": s.org}), 403, "forbidden")
    # Each list shows its own family; the admin API's revoke does not reach a sytwm key.
    fe_listed = c.get(f"/organisations/{s.org}/api-keys", headers=s.owner.auth).json()
    assert {k["prefix"][:3] for k in fe_listed} == {"fe_"}
    sytwm_listed = c.get("/admin/api-keys", headers=s.h).json()
    assert {k["prefix"][:6] for k in sytwm_listed} == {"sytwm_"}
    r = c.delete(f"/organisations/{s.org}/api-keys/{sytwm_listed[0]['id']}", headers=s.owner.auth)
    assert_error(r, 404, "not_found")
    r = c.delete(f"/admin/api-keys/{fe_listed[0]['id']}", headers=s.h)
    assert_error(r, 404, "not_found")


def test_keys_see_only_their_organisation(api: Api) -> None:
    a, b = site(api), site(api)
    c = api.client
    h = {**a.h}
    r = c.post(
        "/admin/posts",
        json={"slug": "only-a", "title": "A", "definition": {"steps": [{"id": "x", "label": "X", "kind": "text"}]}},
        headers=h,
    )
    assert r.status_code == 201
    c.post("/admin/posts/only-a/publish", json={}, headers=h)
    assert {p["slug"] for p in c.get("/api/v1/posts", headers=bearer(a.read)).json()} == {"default", "only-a"}
    assert {p["slug"] for p in c.get("/api/v1/posts", headers=bearer(b.read)).json()} == {"default"}
    assert_error(c.get("/api/v1/posts/only-a", headers=bearer(b.read)), 404, "not_found")
    r = b.feedback({"post_slug": "only-a", "answers": []})
    assert_error(r, 404, "not_found")
    b_key = c.get("/admin/api-keys", headers=b.h).json()[0]["id"]
    assert_error(c.delete(f"/admin/api-keys/{b_key}", headers=a.h), 404, "not_found")
