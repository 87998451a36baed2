"""Airborne organisations, applications and members: contract, roles, isolation; also idempotency,
audit and the OpenAPI route list."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.routing import Route

from control_plane.dashboard.serve import dashboard_routes
from tests.control_plane.conftest import Api, assert_error


def test_create_list_delete_organisation(api: Api) -> None:
    owner = api.signup()
    r = api.client.post("/organisations/create", json={"name": "acme"}, headers=owner.auth)
    assert r.status_code == 200
    assert r.json() == {"name": "acme", "applications": [], "access": ["owner"]}
    assert_error(api.client.post("/organisations/create", json={"name": "acme"}, headers=owner.auth), 409, "conflict")
    assert_error(
        api.client.post("/organisations/create", json={"name": "x" * 51}, headers=owner.auth), 400, "validation_failed"
    )
    api.application(owner, "acme", "checkout")
    listed = api.client.get("/organisations", headers=owner.auth).json()
    assert listed == [
        {
            "name": "acme",
            "access": ["owner"],
            "applications": [{"application": "checkout", "organisation": "acme", "access": ["owner"]}],
        }
    ]
    deleted = api.client.delete("/organisations/acme", headers=owner.auth)
    assert deleted.status_code == 200 and "Success" in deleted.json()
    assert api.client.get("/organisations", headers=owner.auth).json() == []


def test_application_create(api: Api) -> None:
    owner = api.signup()
    api.organisation(owner, "acme")
    r = api.client.post("/organisations/applications/create", json={"application": "app"}, headers=owner.org("acme"))
    assert r.json() == {"application": "app", "organisation": "acme", "access": ["owner"]}
    again = api.client.post(
        "/organisations/applications/create", json={"application": "app"}, headers=owner.org("acme")
    )
    assert_error(again, 409, "conflict")
    for bad_name in ("a/b", " padded", "tab\there", ""):
        bad = api.client.post(
            "/organisations/applications/create", json={"application": bad_name}, headers=owner.org("acme")
        )
        assert_error(bad, 400, "validation_failed")
    no_header = api.client.post("/organisations/applications/create", json={"application": "b"}, headers=owner.auth)
    assert_error(no_header, 400, "validation_failed")


def test_members_lifecycle(api: Api) -> None:
    owner, bob = api.signup(), api.signup()
    api.organisation(owner, "acme")
    h = owner.org("acme")
    r = api.client.post("/organisation/user/create", json={"user": bob.email, "access": "write"}, headers=h)
    assert r.status_code == 200 and r.json()["success"] is True
    assert_error(
        api.client.post("/organisation/user/create", json={"user": bob.email, "access": "read"}, headers=h),
        409,
        "conflict",
    )
    assert_error(
        api.client.post("/organisation/user/create", json={"user": "ghost@example.com", "access": "read"}, headers=h),
        404,
        "not_found",
    )
    users = api.client.get("/organisation/user/list", headers=h).json()["users"]
    assert {(u["email"], tuple(u["roles"])) for u in users} == {(owner.email, ("owner",)), (bob.email, ("write",))}
    r = api.client.post("/organisation/user/update", json={"user": bob.email, "access": "admin"}, headers=h)
    assert r.status_code == 200
    # The last owner cannot leave or be demoted.
    assert_error(
        api.client.post("/organisation/user/update", json={"user": owner.email, "access": "read"}, headers=h),
        409,
        "conflict",
    )
    assert_error(api.client.post("/organisation/user/remove", json={"user": owner.email}, headers=h), 409, "conflict")
    # An admin cannot hand out ownership.
    assert_error(
        api.client.post(
            "/organisation/user/update", json={"user": bob.email, "access": "owner"}, headers=bob.org("acme")
        ),
        403,
        "forbidden",
    )
    r = api.client.post("/organisation/user/remove", json={"user": bob.email}, headers=h)
    assert r.status_code == 200
    assert_error(api.client.get("/organisation/user/list", headers=bob.org("acme")), 404, "not_found")


def test_roles_are_enforced(api: Api) -> None:
    owner, reader, writer = api.signup(), api.signup(), api.signup()
    api.organisation(owner, "acme")
    api.member(owner, "acme", reader, "read")
    api.member(owner, "acme", writer, "write")
    assert api.client.get("/organisation/user/list", headers=reader.org("acme")).status_code == 200
    for user in (reader, writer):
        assert_error(
            api.client.post("/organisations/applications/create", json={"application": "x"}, headers=user.org("acme")),
            403,
            "forbidden",
        )
        assert_error(api.client.delete("/organisations/acme", headers=user.auth), 403, "forbidden")
        assert_error(
            api.client.post(
                "/organisation/user/create", json={"user": owner.email, "access": "read"}, headers=user.org("acme")
            ),
            403,
            "forbidden",
        )


def test_foreign_organisations_look_missing(api: Api) -> None:
    owner, stranger = api.signup(), api.signup()
    api.organisation(owner, "acme")
    api.organisation(stranger, "globex")
    existing = api.client.get("/organisation/user/list", headers=stranger.org("acme"))
    missing = api.client.get("/organisation/user/list", headers=stranger.org("does-not-exist"))
    assert existing.status_code == missing.status_code == 404
    assert existing.json()["error"]["message"] == missing.json()["error"]["message"]
    assert_error(api.client.delete("/organisations/acme", headers=stranger.auth), 404, "not_found")
    assert_error(
        api.client.post("/organisations/applications/create", json={"application": "x"}, headers=stranger.org("acme")),
        404,
        "not_found",
    )


def test_idempotency_key_replays(api: Api) -> None:
    owner = api.signup()
    h = {**owner.auth, "Idempotency-Key": "create-acme-1"}
    first = api.client.post("/organisations/create", json={"name": "acme"}, headers=h)
    second = api.client.post("/organisations/create", json={"name": "acme"}, headers=h)
    assert first.status_code == second.status_code == 200
    assert first.json()["replayed"] is False and second.json()["replayed"] is True
    assert {k: v for k, v in first.json().items() if k != "replayed"} == {
        k: v for k, v in second.json().items() if k != "replayed"
    }


def test_audit_records_change_reason(api: Api) -> None:
    owner = api.signup()
    api.client.post("/organisations/create", json={"name": "acme", "change_reason": "new customer"}, headers=owner.auth)
    store = api.client.app.state.services.store  # type: ignore[attr-defined]
    rows = store.all("SELECT action, change_reason FROM audit_log WHERE action = 'organisation.create'")
    assert [tuple(r) for r in rows] == [("organisation.create", "new customer")]


def test_openapi_lists_every_route(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    app = api.client.app
    assert isinstance(app, Starlette)
    # Starlette spells converters (`{file_key:path}`); OpenAPI has plain `{file_key}`.
    served = {
        (re.sub(r"{(\w+):\w+}", r"{\1}", r.path), m)
        for r in app.routes
        if isinstance(r, Route)
        for m in r.methods or ()
        if m != "HEAD"
    }
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    # The dashboard's pages and redirects are the browser UI, not API operations.
    ui = {(r.path, m) for r in dashboard_routes() if isinstance(r, Route) for m in r.methods or () if m != "HEAD"}
    assert ui
    assert documented == served - {("/openapi.json", "GET"), ("/health", "GET"), ("/ready", "GET")} - ui
