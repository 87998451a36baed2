"""Contract tests of the DevCycle SDK key routes: rotation and invalidation (seed 002)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import Project, member, project
from tests.support.database import flush


def assert_not_stored(p: Project, data_dir: Path, secrets: list[str]) -> None:
    flush(p.store())
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
    # The caller is an admin: every key reads in full (kept encrypted), old and new.
    assert keys["client"][0]["key"] == old["client"][0]["key"] and keys["client"][1]["key"]
    assert keys["client"][1]["key"] != old["client"][0]["key"]
    assert keys["mobile"][0]["key"] == old["mobile"][0]["key"]
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


def test_documented_sdk_key_paths(api: Api) -> None:
    """DevCycle's POST .../sdk-keys and DELETE .../sdk-keys/{key} (the CLI's paths)."""
    p = project(api)
    r = p.post("/environments/development/sdk-keys", {"server": True})
    assert r.status_code == 200, r.text
    server = r.json()["sdkKeys"]["server"]
    assert len(server) == 2 and all(k["key"] for k in server)
    r = p.delete(f"/environments/development/sdk-keys/{server[0]['key']}")
    assert r.status_code == 200, r.text
    assert [k["compromised"] for k in r.json()["sdkKeys"]["server"]] == [True, False]
    assert_error(p.delete("/environments/development/sdk-keys/server-nope"), 404, "not_found", shape="devcycle")
    writer = member(p, "write")
    assert_error(p.post("/environments/development/sdk-keys", {"client": True}, user=writer), 403, "forbidden")


def test_keys_from_before_encryption_show_redacted(api: Api) -> None:
    """A key stored only as a hash (before migration 0010) reads as its prefix with key null."""
    p = project(api)
    with p.store().transaction() as db:
        db.execute(
            "DELETE FROM dv_sdk_key_secrets WHERE key_hash IN (SELECT key_hash FROM sdk_keys WHERE kind = 'client')"
        )
    env = p.get("/environments/development").json()
    (client,) = env["sdkKeys"]["client"]
    assert client["key"] is None and client["prefix"]
    assert env["sdkKeys"]["server"][0]["key"].startswith("server-")
