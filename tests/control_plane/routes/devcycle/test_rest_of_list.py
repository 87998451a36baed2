"""Contract tests of the rest of issue 18's list: the semantic audience patch, audiences created
without name or key, Jira issue links and Dynatrace environments (stored records)."""

from __future__ import annotations

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import member, project, target

COUNTRIES = {
    "operator": "and",
    "filters": [
        {"type": "user", "subType": "country", "comparator": "=", "values": ["CA"]},
        {
            "operator": "or",
            "filters": [{"type": "user", "subType": "email", "comparator": "=", "values": ["a@x.io"]}],
        },
    ],
}


def test_semantic_patch_adds_and_removes_filter_values(api: Api) -> None:
    p = project(api)
    assert p.post("/audiences", {"name": "Countries", "key": "countries", "filters": COUNTRIES}).status_code == 201
    url = "/v1/semantic/projects/app/audiences/countries"
    body = {
        "instructions": [
            {"op": "addFilterValues", "action": {"filterIndex": "0", "values": ["US", "CA", "MX"]}},
            {"op": "addFilterValues", "action": {"filterIndex": "1.0", "values": ["b@x.io"]}},
            {"op": "removeFilterValues", "action": {"filterIndex": "0", "values": ["CA"]}},
        ]
    }
    r = api.client.patch(url, json=body, headers=p.h)
    assert r.status_code == 200, r.text
    filters = r.json()["filters"]["filters"]
    assert filters[0]["values"] == ["US", "MX"]
    assert filters[1]["filters"][0]["values"] == ["a@x.io", "b@x.io"]
    assert p.get("/audiences/countries").json()["filters"]["filters"][0]["values"] == ["US", "MX"]
    log = p.get("/features").json()  # the audience is unused: nothing else changed
    assert log == []
    bad_index = {"instructions": [{"op": "addFilterValues", "action": {"filterIndex": "7", "values": ["x"]}}]}
    r = api.client.patch(url, json=bad_index, headers=p.h)
    body_ = assert_error(r, 400, "validation_failed", shape="devcycle")
    assert body_["details"][0]["field"] == "instructions[0].action.filterIndex"
    bad_op = {"instructions": [{"op": "replace", "action": {"filterIndex": "0", "values": []}}]}
    assert_error(api.client.patch(url, json=bad_op, headers=p.h), 400, "validation_failed")
    assert_error(api.client.patch(url, json={"instructions": []}, headers=p.h), 400, "validation_failed")
    missing = "/v1/semantic/projects/app/audiences/nope"
    assert_error(api.client.patch(missing, json=body, headers=p.h), 404, "not_found")
    reader = member(p, "read")
    assert_error(api.client.patch(url, json=body, headers=reader.auth), 403, "forbidden")


def test_semantic_patch_recompiles_users(api: Api) -> None:
    """A patched audience in use recompiles its configurations (the values reach the snapshot)."""
    p = project(api)
    p.post("/audiences", {"name": "Countries", "key": "countries", "filters": COUNTRIES})
    p.feature()
    aud = {"operator": "and", "filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["countries"]}]}
    assert p.configure("new-dash", "development", {"status": "active", "targets": [target(aud)]}).status_code == 200
    before = p.document()
    body = {"instructions": [{"op": "addFilterValues", "action": {"filterIndex": "0", "values": ["FR"]}}]}
    assert api.client.patch("/v1/semantic/projects/app/audiences/countries", json=body, headers=p.h).status_code == 200
    assert "FR" in str(p.document()) and "FR" not in str(before)


def test_audience_create_without_name_or_key(api: Api) -> None:
    p = project(api)
    r = p.post("/audiences", {"name": "Beta Testers!", "filters": COUNTRIES})
    assert r.status_code == 201, r.text
    assert (r.json()["key"], r.json()["name"]) == ("beta-testers", "Beta Testers!")
    r = p.post("/audiences", {"name": "Beta Testers!", "filters": COUNTRIES})
    assert r.status_code == 201 and r.json()["key"].startswith("beta-testers-") and r.json()["key"] != "beta-testers"
    r = p.post("/audiences", {"key": "keyed", "filters": COUNTRIES})
    assert (r.status_code, r.json()["name"]) == (201, "keyed")
    r = p.post("/audiences", {"filters": COUNTRIES})
    assert r.status_code == 201 and r.json()["key"] == "audience"
    assert_error(p.post("/audiences", {"key": "keyed", "filters": COUNTRIES}), 409, "conflict")


def test_jira_issue_links(api: Api) -> None:
    p = project(api)
    p.feature()
    url = "/features/new-dash/integrations/jira/issues"
    r = p.post(url, {"issueId": "PROJ-1"})
    assert (r.status_code, r.json()) == (201, {"issueId": "PROJ-1"})
    p.post(url, {"issueId": "PROJ-2"})
    assert p.post(url, {"issueId": "PROJ-1"}).status_code == 201  # linking twice keeps one link
    assert p.get(url).json() == [{"issueId": "PROJ-1"}, {"issueId": "PROJ-2"}]
    r = p.delete(url + "/PROJ-1")
    assert (r.status_code, r.json()) == (200, {"issueId": "PROJ-1"})
    assert p.get(url).json() == [{"issueId": "PROJ-2"}]
    assert_error(p.delete(url + "/PROJ-1"), 404, "not_found", shape="devcycle")
    assert_error(p.post(url, {"issueId": ""}), 400, "validation_failed")
    assert_error(p.post(url, {}), 400, "validation_failed")
    assert_error(p.get("/features/nope/integrations/jira/issues"), 404, "not_found")
    log = p.get("/features/new-dash/audit").json()
    assert [e["changes"][0]["action"] for e in log][:2] == ["feature.jira_unlink", "feature.jira_link"]


def test_dynatrace_environments(api: Api) -> None:
    p = project(api)
    h = {**p.h, "x-organisation": "acme"}
    env = {"dynatraceEnvironmentId": "abc123", "accessToken": "dt0c01.SECRET", "environmentUrl": "https://abc.live"}
    r = api.client.post("/v1/integrations/dynatrace", json=env, headers=h)
    assert r.status_code == 201, r.text
    assert p.patch("", {"settings": {"dynatrace": {"enabled": True, "environmentMap": {"development": "abc123"}}}})
    listed = api.client.get("/v1/integrations/dynatrace", headers=h).json()
    (one,) = listed["environments"]
    assert {k: one[k] for k in env} == env and [pr["key"] for pr in one["projects"]] == ["app"]
    # The token is kept encrypted.
    with p.store().read() as db:
        stored = db.execute("SELECT access_token FROM dv_dynatrace_environments").fetchone()["access_token"]
    assert "SECRET" not in stored
    # Create or update by id.
    api.client.post("/v1/integrations/dynatrace", json={**env, "environmentUrl": "https://new.live"}, headers=h)
    (one,) = api.client.get("/v1/integrations/dynatrace", headers=h).json()["environments"]
    assert one["environmentUrl"] == "https://new.live"
    writer = member(p, "write")
    assert_error(
        api.client.get("/v1/integrations/dynatrace", headers={**writer.auth, "x-organisation": "acme"}),
        403,
        "forbidden",
    )
    assert_error(
        api.client.post("/v1/integrations/dynatrace", json={**env, "environmentUrl": "ftp://x"}, headers=h),
        400,
        "validation_failed",
        shape="devcycle",
    )
    assert api.client.delete("/v1/integrations/dynatrace/abc123", headers=h).status_code == 200
    assert api.client.get("/v1/integrations/dynatrace", headers=h).json() == {"environments": []}
    assert_error(api.client.delete("/v1/integrations/dynatrace/abc123", headers=h), 404, "not_found")
