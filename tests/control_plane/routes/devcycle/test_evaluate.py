"""POST /v1/projects/{project}/features/{feature}/evaluate (the dashboard's "try a context"): the
answer is the compiled environment snapshot's (what the edge answers), and it says which target
served the context and why the others did not."""

from __future__ import annotations

from typing import Any

import orjson

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import PRO, Project, member, project, target

STAFF = {
    "operator": "and",
    "filters": [{"type": "user", "subType": "email", "comparator": "endWith", "values": ["@acme.com"]}],
}
HALF = {"type": "gradual", "startPercentage": 0.5, "startDate": "2020-01-01T00:00:00Z"}


def evaluate(p: Project, context: Any, environment: str = "development", **kw: Any) -> Any:
    params = {"environment": environment, "context": orjson.dumps(context).decode()}
    return p.api.client.get(f"{p.url}/features/new-dash/evaluate", params=params, **kw)


def tried(p: Project, context: dict[str, Any]) -> dict[str, Any]:
    r = evaluate(p, context, headers=p.h)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def staff_half_then_pro(api: Api) -> Project:
    p = project(api)
    p.feature()
    r = p.configure(
        "new-dash",
        "development",
        {"status": "active", "targets": [target(STAFF, rollout=HALF, name="Staff"), target(PRO, "off", name="Pro")]},
    )
    assert r.status_code == 200, r.text
    return p


def test_the_answer_is_the_edges_and_names_the_target(api: Api) -> None:
    p = staff_half_then_pro(api)
    snapshot = p.compiled()
    seen = set()
    for i in range(40):
        context = {"user": {"id": f"u{i}", "email": f"p{i}@acme.com", "plan": "pro"}}
        body = tried(p, context)
        edge = orjson.loads(snapshot.evaluate_all(context))["new-dash"]
        assert (body["enabled"], body["variation"]) == (edge["isEnabled"], edge["config"]["key"])
        assert body["variables"] == edge["config"]["payload"]
        staff, pro = body["targets"]
        assert (staff["name"], staff["audienceMatch"], staff["rolloutPercentage"]) == ("Staff", True, 0.5)
        assert (pro["name"], pro["audienceMatch"], pro["rolloutPercentage"]) == ("Pro", True, None)
        if staff["qualified"]:
            assert body["target"]["index"] == 0 and body["variation"] == "on"
            assert "qualified for target 1 (Staff), inside its rollout of 50%" in body["explanation"]
        else:
            # Outside the staff rollout, the next target (everyone on pro) serves "off".
            assert body["target"]["index"] == 1 and body["variation"] == "off"
            assert body["explanation"] == "Enabled: qualified for target 2 (Pro); variation 'off'."
        seen.add(staff["qualified"])
    assert seen == {True, False}  # 40 users fall on both sides of a 50% rollout


def test_why_not(api: Api) -> None:
    p = staff_half_then_pro(api)
    body = tried(p, {"user": {"id": "x", "email": "someone@example.com"}})
    assert (body["enabled"], body["target"], body["variation"], body["variables"]) == (False, None, None, None)
    assert [t["audienceMatch"] for t in body["targets"]] == [False, False]
    assert body["missingContextFields"] == ["user.plan"]
    assert body["explanation"] == "Not enabled: no target matched; the context lacks user.plan."
    body = tried(p, {"user": {"id": "x", "email": "someone@example.com", "plan": "free"}})
    assert body["explanation"] == "Not enabled: the context is in no target's audience."
    # In the staff audience but outside the rollout, and not on pro: said so.
    for i in range(40):
        body = tried(p, {"user": {"id": f"u{i}", "email": "a@acme.com", "plan": "free"}})
        if not body["enabled"]:
            assert body["explanation"] == "Not enabled: in the audience of target 1 but outside its rollout (50% now)."
            break
    else:
        raise AssertionError("no user outside a 50% rollout among 40")


def test_off_in_the_environment(api: Api) -> None:
    p = staff_half_then_pro(api)
    assert p.configure("new-dash", "development", {"status": "inactive"}).status_code == 200
    body = tried(p, {"user": {"id": "u1", "email": "a@acme.com"}})
    assert (body["status"], body["enabled"], body["reason"]) == ("inactive", False, "DISABLED")
    assert body["explanation"].startswith("The feature is off in this environment")


def test_reflag_rules(api: Api) -> None:
    p = project(api)
    p.feature()
    rule = {"filter": {"type": "context", "field": "company.id", "operator": "IS", "values": ["acme"]}}
    assert (
        p.configure("new-dash", "development", {"status": "active", "targeting": {"rules": [rule]}}).status_code == 200
    )
    body = tried(p, {"company": {"id": "acme"}})
    assert body["enabled"] is True and body["targets"][0]["audienceMatch"] is True and body["target"]["index"] == 0
    body = tried(p, {"company": {"id": "other"}})
    assert body["enabled"] is False and body["targets"][0]["qualified"] is False


def test_read_access_is_enough_and_bad_input_is_400(api: Api) -> None:
    p = staff_half_then_pro(api)
    reader = member(p, "read")
    assert evaluate(p, {"user": {"id": "u1"}}, headers=reader.auth).status_code == 200
    assert_error(evaluate(p, {"user": {"id": "u1"}}), 401, "unauthorized")
    outsider = api.signup()
    assert_error(evaluate(p, {}, headers=outsider.auth), 404, "not_found")
    missing = p.api.client.get(f"{p.url}/features/new-dash/evaluate", headers=p.h)
    assert_error(missing, 400, "validation_failed")
    assert_error(evaluate(p, {}, environment="nope", headers=p.h), 404, "not_found")
    for bad, code in (([1], "invalid_context"), ("nope", "invalid_context")):
        r = evaluate(p, bad, headers=p.h)
        assert r.json()["error"]["details"][0]["code"] == code, r.text
    not_json = p.api.client.get(
        f"{p.url}/features/new-dash/evaluate", params={"environment": "development", "context": "{"}, headers=p.h
    )
    assert assert_error(not_json, 400, "validation_failed")["error"]["details"][0]["field"] == "query.context"
    deep: dict[str, Any] = {"a": {}}
    for _ in range(100):
        deep = {"a": deep}
    assert_error(evaluate(p, deep, headers=p.h), 400, "validation_failed")
    long = p.api.client.get(
        f"{p.url}/features/new-dash/evaluate",
        params={"environment": "development", "context": "{" + " " * 7000 + "}"},
        headers=p.h,
    )
    assert_error(long, 400, "validation_failed")
    unknown = p.api.client.get(f"{p.url}/features/nope/evaluate", params={"environment": "development"}, headers=p.h)
    assert_error(unknown, 404, "not_found")


def test_a_draft_is_evaluated_as_saved_and_never_saved(api: Api) -> None:
    p = project(api)
    p.feature()
    reader = member(p, "read")
    url = f"{p.url}/features/new-dash/evaluate"
    draft = {"status": "active", "targets": [target(STAFF, name="Staff")]}
    staff = {"user": {"id": "u1", "email": "a@acme.com"}}
    r = api.client.post(
        url, params={"environment": "development"}, json={"context": staff, "configuration": draft}, headers=reader.auth
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["draft"], body["enabled"], body["variation"], body["target"]["name"]) == (True, True, "on", "Staff")
    # Nothing was saved: the saved configuration is still off, and no audit entry was written.
    saved = tried(p, staff)
    assert (saved["draft"], saved["status"], saved["enabled"]) == (False, "inactive", False)
    assert p.get("/features/new-dash/configurations", environment="development").json()[0]["targets"] == []
    with p.store().read() as db:
        assert db.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'configuration.update'").fetchone()[0] == 0
    # A draft that would not save is refused the same way, naming the field under configuration.
    bad = {
        "targets": [target({"operator": "and", "filters": [{"type": "user", "subType": "email", "comparator": "~"}]})]
    }
    r = api.client.post(url, params={"environment": "development"}, json={"configuration": bad}, headers=p.h)
    err = assert_error(r, 400, "validation_failed")["error"]
    assert err["details"][0]["field"].startswith("configuration.targets[0].audience.filters")
    # Without a configuration, POST evaluates the saved one.
    r = api.client.post(url, params={"environment": "development"}, json={"context": staff}, headers=p.h)
    assert r.status_code == 200 and r.json()["draft"] is False and r.json()["enabled"] is False
