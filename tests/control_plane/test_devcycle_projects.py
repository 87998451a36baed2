"""Contract tests of the DevCycle projects, environments and SDK key routes (seed 002)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

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
}
ENV_FIELDS = {
    "_id",
    "_project",
    "name",
    "key",
    "description",
    "color",
    "type",
    "_createdBy",
    "createdAt",
    "updatedAt",
    "sdkKeys",
    "settings",
    "readonly",
}


def error_without_id(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return {k: v for k, v in body.items() if k != "request_id"}


# ---------------------------------------------------------------------------------------------
# Projects


def test_create_project_shape_and_settings(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    body = {
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
    assert p["settings"] == body["settings"]
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
    assert after["settings"] == {"edgeDB": {"enabled": True}, "obfuscation": {"enabled": True}}
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


# ---------------------------------------------------------------------------------------------
# Environments


def test_create_environment_returns_each_sdk_key_once(api: Api, tmp_path: Path) -> None:
    p = project(api)
    r = p.post(
        "/environments",
        {
            "name": "Staging Upcoming",
            "key": "staging-upcoming",
            "type": "staging",
            "description": "Pre-production changes",
            "color": "#4073FF",
            "settings": {"appIconURI": "https://x/icon.png"},
        },
    )
    assert r.status_code == 201, r.text
    env = r.json()
    assert set(env) == ENV_FIELDS
    assert env["type"] == "staging" and env["_project"] == p.get().json()["_id"]
    assert env["settings"] == {"appIconURI": "https://x/icon.png"}
    secrets = {}
    for kind in ("client", "server", "mobile"):
        (entry,) = env["sdkKeys"][kind]
        assert set(entry) == {"key", "prefix", "createdAt", "compromised", "invalidatedAt"}
        assert entry["key"].startswith(f"{kind}-stag-") and len(entry["key"]) > 30
        assert entry["key"].startswith(entry["prefix"]) and entry["prefix"] != entry["key"]
        assert entry["compromised"] is False
        secrets[kind] = entry["key"]
    assert len(set(secrets.values())) == 3
    # Later reads show prefixes only.
    for r in (p.get("/environments/staging-upcoming"), p.get(f"/environments/{env['_id']}")):
        assert r.status_code == 200
        shown = r.json()
        assert all("key" not in k for kind in ("client", "server", "mobile") for k in shown["sdkKeys"][kind])
        assert not any(s in r.text for s in secrets.values())
    listed = p.get("/environments").text
    assert not any(s in listed for s in secrets.values())
    # Stored as SHA-256 only: the plaintext is nowhere in the database files.
    with p.store().read() as db:
        hashes = {
            r["kind"]: r["key_hash"]
            for r in db.execute("SELECT kind, key_hash FROM sdk_keys WHERE environment_id = ?", (env["_id"],))
        }
        db.execute("PRAGMA wal_checkpoint(FULL)")
    assert hashes == {k: hashlib.sha256(v.encode()).hexdigest() for k, v in secrets.items()}
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert files
    for f in files:
        data = f.read_bytes()
        assert not any(s.encode() in data for s in secrets.values()), f


def test_create_environment_validation_and_conflict(api: Api) -> None:
    p = project(api)
    assert_error(p.post("/environments", {"name": "D", "key": "development", "type": "development"}), 409, "conflict")
    for body, field in [
        ({"name": "X", "key": "x", "type": "qa"}, "type"),
        ({"name": "X", "key": "x"}, "type"),
        ({"name": "X", "key": "X y", "type": "staging"}, "key"),
        ({"key": "x", "type": "staging"}, "name"),
        ({"name": "X", "key": "x", "type": "staging", "settings": {"other": 1}}, "settings.other"),
        ({"name": "X", "key": "x", "type": "staging", "sdkKeys": {}}, "sdkKeys"),
    ]:
        r = p.post("/environments", body)
        assert_error(r, 400, "validation_failed")
        assert field in fields(r), body
    # Several environments may share a type.
    assert p.post("/environments", {"name": "Dev 2", "key": "dev-2", "type": "development"}).status_code == 201


def test_list_get_update_delete_environment(api: Api) -> None:
    p = project(api)
    p.environment("staging", "staging")
    p.environment("production", "production")
    r = p.get("/environments", sortBy="key", sortOrder="asc")
    assert [e["key"] for e in r.json()] == ["development", "production", "staging"]
    assert [e["key"] for e in p.get("/environments", search="prod").json()] == ["production"]
    assert [e["key"] for e in p.get("/environments", perPage=1, page=2, sortBy="name", sortOrder="asc").json()] == [
        "production"
    ]
    assert_error(p.get("/environments/nope"), 404, "not_found")
    r = p.patch("/environments/staging", {"name": "Staging 2", "type": "disaster_recovery", "color": "#123"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Staging 2" and r.json()["type"] == "disaster_recovery"
    assert_error(p.patch("/environments/staging", {"key": "production"}), 409, "conflict")
    assert_error(p.patch("/environments/staging", {"type": "qa"}), 400, "validation_failed")
    r = p.delete("/environments/staging")
    assert r.status_code == 204
    assert_error(p.get("/environments/staging"), 404, "not_found")
    assert_error(p.delete("/environments/staging"), 404, "not_found")


def test_environment_roles_and_cross_org(api: Api) -> None:
    p = project(api)
    reader, writer = member(p, "read"), member(p, "write")
    assert p.get("/environments", user=reader).status_code == 200
    assert p.get("/environments/development", user=reader).status_code == 200
    for user in (reader, writer):
        assert_error(p.post("/environments", {"name": "S", "key": "s", "type": "staging"}, user), 403, "forbidden")
        assert_error(p.patch("/environments/development", {"name": "x"}, user), 403, "forbidden")
        assert_error(p.delete("/environments/development", user), 403, "forbidden")
        assert_error(p.post("/environments/development/keys", {"client": True}, user), 403, "forbidden")
    stranger = api.signup()
    api.organisation(stranger, "globex")
    assert_error(p.get("/environments", user=stranger), 404, "not_found")
    assert_error(p.get("/environments/development", user=stranger), 404, "not_found")
    assert_error(p.post("/environments", {"name": "S", "key": "s", "type": "staging"}, stranger), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# SDK keys


def assert_not_stored(p: Project, data_dir: Path, secrets: list[str]) -> None:
    with p.store().read() as db:
        db.execute("PRAGMA wal_checkpoint(FULL)")
    for f in (f for f in data_dir.rglob("*") if f.is_file()):
        data = f.read_bytes()
        assert not any(s.encode() in data for s in secrets), f


def test_rotate_adds_keys_and_old_ones_keep_working(api: Api, tmp_path: Path) -> None:
    p = project(api)
    old = p.environments["development"]["sdkKeys"]
    r = p.post("/environments/development/keys", {"client": True, "server": True})
    assert r.status_code == 200, r.text
    keys = r.json()["sdkKeys"]
    assert_not_stored(p, tmp_path, [keys["client"][1]["key"], keys["server"][1]["key"]])
    assert len(keys["client"]) == 2 and len(keys["server"]) == 2 and len(keys["mobile"]) == 1
    assert "key" not in keys["client"][0] and "key" in keys["client"][1]
    assert keys["client"][1]["key"] != old["client"][0]["key"]
    assert "key" not in keys["mobile"][0]
    with p.store().read() as db:
        rows = db.execute(
            "SELECT kind, revoked_at FROM sdk_keys WHERE environment_id = ?", (p.env_id("development"),)
        ).fetchall()
    assert sorted(r["kind"] for r in rows) == ["client", "client", "mobile", "server", "server"]
    assert all(r["revoked_at"] is None for r in rows)
    r = p.post("/environments/development/keys", {"mobile": True})
    assert len(r.json()["sdkKeys"]["mobile"]) == 2
    r = p.post("/environments/development/keys", {})
    assert_error(r, 400, "validation_failed")
    assert_error(p.post("/environments/development/keys", {"client": "yes"}), 400, "validation_failed")
    assert_error(p.post("/environments/nope/keys", {"client": True}), 404, "not_found")


def test_rotation_is_not_replayed(api: Api) -> None:
    p = project(api)
    headers = {**p.h, "Idempotency-Key": "rotate-1"}
    first = api.client.post(p.url + "/environments/development/keys", json={"client": True}, headers=headers)
    second = api.client.post(p.url + "/environments/development/keys", json={"client": True}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert len(second.json()["sdkKeys"]["client"]) == 3  # generated again, never a replayed secret


def test_invalidate_key_immediately(api: Api) -> None:
    p = project(api)
    secret = p.environments["development"]["sdkKeys"]["server"][0]["key"]
    url = f"{p.url}/environments/development/keys/{secret}/invalidate"
    r = api.client.put(url, headers=p.h)
    assert r.status_code == 200, r.text
    (server,) = r.json()["sdkKeys"]["server"]
    assert server["compromised"] is True and server["invalidatedAt"].endswith("Z")
    assert all(not k["compromised"] for k in r.json()["sdkKeys"]["client"])
    with p.store().read() as db:
        row = db.execute(
            "SELECT revoked_at FROM sdk_keys WHERE key_hash = ?", (hashlib.sha256(secret.encode()).hexdigest(),)
        ).fetchone()
    assert row["revoked_at"] == server["invalidatedAt"]
    # Invalidating again keeps the first time.
    again = api.client.put(url, headers=p.h)
    assert again.json()["sdkKeys"]["server"][0]["invalidatedAt"] == server["invalidatedAt"]
    # By the displayed prefix.
    prefix = p.environments["development"]["sdkKeys"]["mobile"][0]["prefix"]
    r = api.client.put(f"{p.url}/environments/development/keys/{prefix}/invalidate", headers=p.h)
    assert r.status_code == 200 and r.json()["sdkKeys"]["mobile"][0]["compromised"] is True
    assert_error(
        api.client.put(f"{p.url}/environments/development/keys/client-nope/invalidate", headers=p.h), 404, "not_found"
    )
    # A key of another environment is not this environment's.
    staging = p.environment("staging", "staging")
    other = staging["sdkKeys"]["client"][0]["key"]
    assert_error(api.client.put(url.replace(secret, other), headers=p.h), 404, "not_found")


def test_invalidate_roles_and_cross_org(api: Api) -> None:
    p = project(api)
    secret = p.environments["development"]["sdkKeys"]["client"][0]["key"]
    url = f"{p.url}/environments/development/keys/{secret}/invalidate"
    writer = member(p, "write")
    assert_error(api.client.put(url, headers=writer.auth), 403, "forbidden")
    stranger = api.signup()
    api.organisation(stranger, "globex")
    assert_error(api.client.put(url, headers=stranger.auth), 404, "not_found")
    admin_key = api.api_key(p.owner, "acme", "admin")
    r = api.client.put(url, headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 200
    with p.store().read() as db:
        audit = db.execute("SELECT * FROM audit_log WHERE action = 'sdk_key.invalidate'").fetchall()
    assert len(audit) == 1 and secret not in audit[0]["details"]
