"""Contract tests of DevCycle features v2, static configuration, staleness, summary and the
feature audit log (seed 002; paths from DevCycle's public API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from control_plane.evaluation_counts import hour_of
from control_plane.events_consumer import _store
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import BOOL_FEATURE, Project, target
from tests.control_plane.routes.devcycle.support import FEATURE_FIELDS, record, setup

V2_FIELDS = FEATURE_FIELDS  # v1 and v2 answer the same Feature


def v2(p: Project, method: str, path: str = "", body: Any = None, **params: Any) -> Any:
    url = f"/v2/projects/{p.key}/features{path}"
    return p.api.client.request(method, url, json=body, params=params or None, headers=p.h)


def test_v2_create_get_patch_status(api: Api) -> None:
    p = setup(api)
    r = v2(p, "POST", "", BOOL_FEATURE)
    assert r.status_code == 201, r.text
    f = r.json()
    assert set(f) == V2_FIELDS
    assert f["changeRequests"] == [] and f["staleness"]["stale"] is False and f["staleness"]["key"] == "new-dash"
    assert f["latestUpdate"]["changes"][0]["action"] == "feature.create"
    got = v2(p, "GET", "/new-dash").json()
    assert got["latestUpdate"]["date"] == f["latestUpdate"]["date"] and got["_id"] == f["_id"]
    r = v2(p, "PATCH", "/new-dash", {"name": "Renamed"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    assert r.json()["latestUpdate"]["changes"][0]["action"] == "feature.update"
    p.configure("new-dash", "production", {"status": "active", "targets": [target()]})
    assert v2(p, "GET", "/new-dash").json()["prodTargetingUpdatedAt"]
    r = v2(p, "PATCH", "/new-dash/status", {"status": "complete", "staticVariation": "on"})
    assert r.status_code == 200 and r.json()["status"] == "complete"
    assert_error(v2(p, "GET", "/nope"), 404, "not_found", shape="devcycle")
    assert_error(v2(p, "POST", "", BOOL_FEATURE), 409, "conflict", shape="devcycle")
    r = v2(p, "POST", "", {"key": "BAD KEY", "name": "x"})
    assert r.status_code == 400 and isinstance(r.json()["message"], list)


def test_v2_list_filters(api: Api) -> None:
    p = setup(api)
    for key, type_ in (("alpha", "release"), ("beta", "ops"), ("gamma", "release")):
        assert v2(p, "POST", "", {"key": key, "name": key.title(), "type": type_}).status_code == 201

    def keys(r: Any) -> list[str]:
        return sorted(f["key"] for f in r.json())

    assert keys(v2(p, "GET", "", keys=["alpha", "beta"])) == ["alpha", "beta"]  # repeated
    assert keys(v2(p, "GET", "", keys="alpha,gamma")) == ["alpha", "gamma"]  # CSV
    assert keys(v2(p, "GET", "", type="ops")) == ["beta"]
    assert keys(v2(p, "GET", "", search="amm")) == ["gamma"]
    assert [f["key"] for f in v2(p, "GET", "", sortBy="key", sortOrder="asc", perPage=2, page=2).json()] == ["gamma"]
    listed = v2(p, "GET", "").json()
    assert all("latestUpdate" not in f for f in listed)
    assert all(f["latestUpdate"] for f in v2(p, "GET", "", includeLatestUpdate="true").json())
    assert keys(v2(p, "GET", "", staleness="notStale")) == ["alpha", "beta", "gamma"]
    assert v2(p, "GET", "", staleness="all").json() == []
    assert_error(v2(p, "GET", "", staleness="old"), 400, "validation_failed", shape="devcycle")
    assert_error(v2(p, "GET", "", search="ab"), 400, "validation_failed", shape="devcycle")


def test_static_configuration_v1_and_v2(api: Api) -> None:
    p = setup(api)
    v2(p, "POST", "", BOOL_FEATURE)
    for prefix in (f"/v1/projects/{p.key}/features", f"/v2/projects/{p.key}/features"):
        r = api.client.get(f"{prefix}/new-dash/static-configuration", headers=p.h)
        assert r.status_code == 412 and r.json()["error"] == "Precondition Failed"
    v2(p, "PATCH", "/new-dash/status", {"status": "complete", "staticVariation": "on"})
    r = v2(p, "GET", "/new-dash/static-configuration")
    assert r.status_code == 200, r.text
    assert r.json()["variables"] == {"show-new-dashboard": True}
    assert r.json()["environments"] == {"development": {"status": "inactive"}, "production": {"status": "inactive"}}
    r = api.client.patch(
        f"/v1/projects/{p.key}/features/new-dash/static-configuration",
        json={
            "name": "Static",
            "variables": {"show-new-dashboard": False},
            "environments": {"production": {"status": "active"}},
        },
        headers=p.h,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Static" and body["variables"] == {"show-new-dashboard": False}
    assert body["environments"]["production"] == {"status": "active"}
    bad = v2(p, "PATCH", "/new-dash/static-configuration", {"variables": {"show-new-dashboard": "yes"}})
    assert_error(bad, 400, "validation_failed", shape="devcycle")


def test_staleness_kinds_and_silencing(api: Api) -> None:
    p = setup(api)
    v2(p, "POST", "", BOOL_FEATURE)
    v2(
        p,
        "POST",
        "",
        {
            **BOOL_FEATURE,
            "key": "used",
            "variables": [{"key": "used-var", "type": "Boolean"}],
            "variations": [{"key": "on", "name": "On", "variables": {"used-var": True}}],
        },
    )
    p.configure("new-dash", "production", {"status": "active", "targets": [target()]})
    assert v2(p, "GET", "/new-dash/staleness").json()["stale"] is False
    # Everything about it is 8 days old: released (production serves one variation to everyone).
    old = (datetime.now(UTC) - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with p.store().transaction() as db:
        db.execute("UPDATE features SET created_at = ?, updated_at = ?", (old, old))
        db.execute("UPDATE feature_configurations SET updated_at = ?", (old,))
        db.execute("UPDATE audit_log SET at = ?", (old,))
    s = v2(p, "GET", "/new-dash/staleness").json()
    assert (s["stale"], s["reason"]) == (True, "released")
    assert [f["key"] for f in v2(p, "GET", "", staleness="released").json()] == ["new-dash"]
    assert [e["key"] for e in p.get("/staleness").json()] == ["new-dash"]
    # Unused, from the evaluation counts: with none at all in the project, nothing is unused ...
    p.configure("new-dash", "production", {"status": "inactive", "targets": []})
    with p.store().transaction() as db:
        db.execute("UPDATE feature_configurations SET updated_at = ?", (old,))
        db.execute("UPDATE audit_log SET at = ?", (old,))
    assert v2(p, "GET", "/new-dash/staleness").json()["stale"] is False
    assert v2(p, "GET", "/used/staleness").json()["stale"] is False
    # ... once the edge reports counts, the feature evaluated this hour is in use and the other,
    # not evaluated for the last 7 days (counts 8 days old do not count), is unused.
    now_ms = datetime.now(UTC).timestamp() * 1000
    counts = [
        ({"hour": hour_of(now_ms), "counts": [{"feature": "used", "variation": "on", "count": 3}]}),
        (
            {
                "hour": hour_of(now_ms - 8 * 86_400_000),
                "counts": [{"feature": "new-dash", "variation": "on", "count": 9}],
            }
        ),
    ]
    with p.store().transaction() as db:
        _store(db, [record(n, p.env_id("production"), "evaluation-counts", c) for n, c in enumerate(counts)])
    s = v2(p, "GET", "/new-dash/staleness").json()
    assert (s["stale"], s["reason"]) == (True, "unused")
    assert v2(p, "GET", "/used/staleness").json()["stale"] is False
    assert [f["key"] for f in v2(p, "GET", "", staleness="unused").json()] == ["new-dash"]
    # Snoozed: not stale, listed only with includeSilenced.
    until = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    r = v2(p, "PATCH", "/new-dash/staleness", {"snoozedUntil": until, "metaData": {"why": "demo"}})
    assert r.status_code == 200, r.text
    assert r.json()["stale"] is False and r.json()["metaData"] == {"why": "demo"} and r.json()["snoozedUntil"]
    assert p.get("/staleness").json() == []
    assert [e["key"] for e in p.get("/staleness", includeSilenced="true").json()] == ["new-dash"]
    # The project turns a kind off.
    v2(p, "PATCH", "/new-dash/staleness", {"snoozedUntil": None})
    assert p.patch("", {"settings": {"staleness": {"unused": {"enabled": False}}}}).status_code == 200
    assert v2(p, "GET", "/new-dash/staleness").json()["stale"] is False
    assert_error(v2(p, "PATCH", "/new-dash/staleness", {"disabled": "no"}), 400, "validation_failed")


def test_summary(api: Api) -> None:
    p = setup(api)
    v2(p, "POST", "", BOOL_FEATURE)
    summary = {"maintainers": ["a@example.com"], "links": [{"url": "https://x", "title": "spec"}], "markdown": "# x"}
    r = v2(p, "PATCH", "/new-dash/summary", summary)
    assert r.status_code == 200 and r.json() == summary
    assert v2(p, "GET", "/new-dash").json()["summary"] == summary
    assert_error(v2(p, "PATCH", "/new-dash/summary", {"links": [{"title": "no url"}]}), 400, "validation_failed")


def test_feature_audit_log(api: Api) -> None:
    p = setup(api)
    v2(p, "POST", "", BOOL_FEATURE)
    v2(p, "POST", "", {"key": "new_dash", "name": "Other"})  # "_" is not a wildcard
    p.configure("new-dash", "production", {"status": "active", "targets": [target()]})
    api.client.patch(
        f"/v2/projects/{p.key}/features/new-dash", json={"name": "N2"}, headers={**p.h, "x-change-reason": "rename"}
    )
    log = p.get("/features/new-dash/audit").json()
    assert [e["changes"][0]["action"] for e in log] == ["feature.update", "configuration.update", "feature.create"]
    assert log[0]["changes"][0]["changeReason"] == "rename" and log[0]["a0_user"].startswith("user:")
    assert set(log[0]) == {"date", "a0_user", "changes"}
    prod = p.get("/features/new-dash/audit", environment="production").json()
    assert [e["changes"][0]["target"] for e in prod] == ["feature:new-dash/environment:production"]
    asc = p.get("/features/new-dash/audit", sortOrder="asc", perPage=1, page=2).json()
    assert [e["changes"][0]["action"] for e in asc] == ["configuration.update"]
    assert p.get("/features/new-dash/audit", a0_user="user:nobody").json() == []
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert p.get("/features/new-dash/audit", startDate=later).json() == []
    assert_error(p.get("/features/new-dash/audit", startDate="yesterday"), 400, "validation_failed")
    assert_error(p.get("/features/nope/audit"), 404, "not_found", shape="devcycle")
