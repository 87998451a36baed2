"""What the dashboard's audit, change-request and sign-in pages read (issue 20, second pass): a
configuration's audit entry records the state before and after, the project-wide audit log, the
members' user ids (reviewers are named by them) and whether OIDC login is on."""

from __future__ import annotations

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import project, target


def test_configuration_entries_record_before_and_after(api: Api) -> None:
    p = project(api)
    p.feature()
    assert p.configure("new-dash", "development", {"status": "active", "targets": [target()]}).status_code == 200
    (entry,) = [
        e for e in p.get("/features/new-dash/audit").json() if e["changes"][0]["action"] == "configuration.update"
    ]
    details = entry["changes"][0]["details"]
    assert details["before"] == {"status": "inactive", "targets": []}
    assert details["after"]["status"] == "active"
    assert [t["distribution"][0]["percentage"] for t in details["after"]["targets"]] == [1]
    assert details["fields"] == ["status", "targets"]
    # A write that changes nothing records no diff.
    assert p.configure("new-dash", "development", {"status": "active"}).status_code == 200
    newest = p.get("/features/new-dash/audit").json()[0]["changes"][0]
    assert newest["action"] == "configuration.update" and "before" not in newest["details"]


def test_project_audit_log(api: Api) -> None:
    p = project(api)
    p.feature()
    p.environment("prod", "production")
    p.configure("new-dash", "prod", {"status": "active"})
    actions = [e["changes"][0]["action"] for e in p.get("/audit").json()]
    assert actions[:3] == ["configuration.update", "environment.create", "feature.create"]
    in_prod = p.get("/audit", environment="prod").json()
    assert [(e["changes"][0]["action"], e["changes"][0]["target"]) for e in in_prod] == [
        ("configuration.update", "feature:new-dash/environment:prod"),
        ("environment.create", "environment:prod"),
    ]
    assert [e["changes"][0]["action"] for e in p.get("/audit", perPage=1, page=2).json()] == ["environment.create"]
    assert_error(p.get("/audit", perPage=0), 400, "validation_failed")
    assert_error(api.client.get("/v1/projects/app/audit"), 401, "unauthorized")


def test_members_carry_user_ids_and_oauth_config_says_off(api: Api) -> None:
    p = project(api)
    members = api.client.get("/organisation/user/list", headers={**p.h, "x-organisation": "acme"}).json()["users"]
    assert [m["user_id"] for m in members] == [p.owner.user_id]
    r = api.client.get("/users/oauth/config")
    assert (r.status_code, r.json()) == (200, {"enabled": False, "signup": False})
