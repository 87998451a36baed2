"""Contract tests of the DevCycle environment routes (seed 002)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import fields, member, project
from tests.support.database import flush

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
    # Later reads by a member below admin show prefixes only ...
    writer = member(p, "write")
    for r in (p.get("/environments/staging-upcoming", user=writer), p.get(f"/environments/{env['_id']}", user=writer)):
        assert r.status_code == 200
        shown = r.json()
        assert all("key" not in k for kind in ("client", "server", "mobile") for k in shown["sdkKeys"][kind])
        assert not any(s in r.text for s in secrets.values())
    listed = p.get("/environments", user=writer).text
    assert not any(s in listed for s in secrets.values())
    # ... and admins read the full keys, as the DevCycle CLI does (sdkKeys[type][i].key).
    for r in (p.get("/environments/staging-upcoming"), p.get("/environments")):
        shown = r.json() if isinstance(r.json(), dict) else r.json()[0]
        assert {kind: shown["sdkKeys"][kind][0]["key"] for kind in secrets} == secrets
    # Stored as SHA-256 and AES-GCM ciphertext: the plaintext is nowhere in the database files.
    with p.store().read() as db:
        hashes = {
            r["kind"]: r["key_hash"]
            for r in db.execute("SELECT kind, key_hash FROM sdk_keys WHERE environment_id = ?", (env["_id"],))
        }
    flush(p.store())
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
