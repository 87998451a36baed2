"""Organisation API keys: create, list, scopes, revoke, and hashed storage."""

from __future__ import annotations

from tests.control_plane.conftest import Api, assert_error
from tests.support.database import dump_text


def test_api_keys(api: Api, tmp_path: object) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    api.application(owner, "acme", "app")
    r = api.client.post("/organisations/acme/api-keys", json={"name": "ci", "scope": "read"}, headers=owner.auth)
    assert r.status_code == 201
    key = r.json()["key"]
    assert key.startswith("fe_rk_") and len(key) > 40
    listed = api.client.get("/organisations/acme/api-keys", headers=owner.auth).json()
    assert "key" not in listed[0] and listed[0]["prefix"] == key[:10]
    read = {"Authorization": f"Bearer {key}", "x-organisation": "acme"}
    assert api.client.get("/organisation/user/list", headers=read).status_code == 200
    assert (
        api.client.get("/organisation/user/list", headers={"X-API-Key": key, "x-organisation": "acme"}).status_code
        == 200
    )
    assert_error(
        api.client.post("/organisations/applications/create", json={"application": "x"}, headers=read), 403, "forbidden"
    )
    admin_key = api.api_key(owner, "acme", "admin")
    admin = {"Authorization": f"Bearer {admin_key}", "x-organisation": "acme"}
    assert (
        api.client.post("/organisations/applications/create", json={"application": "y"}, headers=admin).status_code
        == 200
    )
    submit_key = api.api_key(owner, "acme", "submit")
    assert_error(
        api.client.get(
            "/organisation/user/list", headers={"Authorization": f"Bearer {submit_key}", "x-organisation": "acme"}
        ),
        404,
        "not_found",
    )
    key_id = listed[0]["id"]
    assert api.client.delete(f"/organisations/acme/api-keys/{key_id}", headers=owner.auth).status_code == 200
    assert_error(api.client.get("/organisation/user/list", headers=read), 401, "unauthorized")


def test_api_keys_are_stored_hashed(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    key = api.api_key(owner, "acme", "write")
    dump = dump_text(api.client.app.state.services.store)  # type: ignore[attr-defined]
    assert key not in dump and key[10:] not in dump
