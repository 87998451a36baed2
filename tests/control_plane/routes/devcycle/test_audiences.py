"""Contract tests of DevCycle audiences and audience usages (seed 002)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import ALL, PRO, PRO_NODE, Project, fields, member, project, target
from tests.support.error_shapes import error_of

AUDIENCE_FIELDS = {
    "name",
    "key",
    "description",
    "_id",
    "_project",
    "filters",
    "source",
    "_createdBy",
    "createdAt",
    "updatedAt",
    "tags",
    "readonly",
    "hasUsage",
}


def audience(p: Project, key: str, filters: Any = None, **extra: Any) -> dict[str, Any]:
    r = p.post("/audiences", {"name": key.title(), "key": key, "filters": filters or ALL, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def match(*keys: str, comparator: str = "=") -> dict[str, Any]:
    return {
        "operator": "and",
        "filters": [{"type": "audienceMatch", "comparator": comparator, "_audiences": list(keys)}],
    }


def nest(leaf: dict[str, Any], levels: int) -> dict[str, Any]:
    for _ in range(levels):
        leaf = {"operator": "and", "filters": [leaf]}
    return leaf


def test_create_and_get_audience(api: Api) -> None:
    p = project(api)
    r = p.post(
        "/audiences",
        {
            "name": "Android Users",
            "key": "android-users",
            "description": "Users with android",
            "filters": PRO,
            "tags": ["mobile"],
        },
    )
    assert r.status_code == 201, r.text
    a = r.json()
    assert set(a) == AUDIENCE_FIELDS
    assert a["filters"] == PRO and a["tags"] == ["mobile"] and a["hasUsage"] is False
    assert a["source"] == "api" and a["_createdBy"] == p.owner.user_id and a["readonly"] is False
    assert p.get("/audiences/android-users").json() == a
    assert p.get(f"/audiences/{a['_id']}").json() == a
    assert_error(p.get("/audiences/ghost"), 404, "not_found")
    assert_error(p.post("/audiences", {"name": "Again", "key": "android-users", "filters": ALL}), 409, "conflict")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A", "key": "a"}, "filters"),
        ({"name": "A", "key": "A B", "filters": ALL}, "key"),
        ({"name": "", "key": "a", "filters": ALL}, "name"),  # optional (the document), but never empty
        ({"name": "A", "key": "a", "filters": []}, "filters"),
        ({"name": "A", "key": "a", "filters": {"operator": "nand", "filters": []}}, "filters.operator"),
        ({"name": "A", "key": "a", "filters": {"operator": "and", "filters": {}}}, "filters.filters"),
        ({"name": "A", "key": "a", "filters": {"filters": ["x"]}}, "filters.filters[0]"),
        ({"name": "A", "key": "a", "filters": {"filters": [{"type": 1}]}}, "filters.filters[0].type"),
        (
            {
                "name": "A",
                "key": "a",
                "filters": {
                    "filters": [
                        {"type": "user", "subType": "email", "comparator": "=", "values": ["x"], "dataKey": "k"}
                    ]
                },
            },
            "filters.filters[0].dataKey",
        ),
        (
            {
                "name": "A",
                "key": "a",
                "filters": {"filters": [{"type": "audienceMatch", "comparator": ">", "_audiences": ["x"]}]},
            },
            "filters.filters[0].comparator",
        ),
        (
            {"name": "A", "key": "a", "filters": {"filters": [{"type": "audienceMatch", "_audiences": []}]}},
            "filters.filters[0]._audiences",
        ),
        (
            {
                "name": "A",
                "key": "a",
                "filters": {
                    "filters": [
                        {
                            "type": "group",
                            "operator": "and",
                            "filters": [{"type": "context", "field": "x", "operator": "BETWEEN"}],
                        }
                    ]
                },
            },
            "filters.filters[0].filters[0].operator",
        ),
        (
            {"name": "A", "key": "a", "filters": {"filters": [{"type": "negation", "filter": {"type": "bogus"}}]}},
            "filters.filters[0].filter.type",
        ),
        (
            {
                "name": "A",
                "key": "a",
                "filters": {"filters": [{"type": "context", "field": "x", "operator": "IS", "values": [1]}]},
            },
            "filters.filters[0].values[0]",
        ),
    ],
)
def test_audience_validation(api: Api, body: dict[str, Any], field: str) -> None:
    p = project(api)
    r = p.post("/audiences", body)
    assert_error(r, 400, "validation_failed")
    assert fields(r) == [field], r.text
    assert p.get("/audiences").json() == []


def test_audience_filters_are_bounded(api: Api) -> None:
    p = project(api)
    deep: dict[str, Any] = {"type": "all"}
    for _ in range(70):
        deep = {"operator": "and", "filters": [deep]}
    assert_error(p.post("/audiences", {"name": "D", "key": "deep", "filters": deep}), 400, "validation_failed")
    wide = {"operator": "or", "filters": [{"type": "all"}] * 1001}
    assert_error(p.post("/audiences", {"name": "W", "key": "wide", "filters": wide}), 400, "validation_failed")


def test_audience_references_and_cycles(api: Api) -> None:
    p = project(api)
    a = audience(p, "a", PRO)
    b = audience(p, "b", match("a"))
    assert b["filters"]["filters"][0]["_audiences"] == [a["_id"]]  # keys are stored as ids
    c = audience(p, "c", match(b["_id"]))
    r = p.patch("/audiences/a", {"filters": match("c")})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["filters"]
    r = p.patch("/audiences/a", {"filters": match("a")})
    assert_error(r, 400, "validation_failed")
    assert p.get("/audiences/a").json()["filters"] == PRO
    usages = p.get("/audiences/a/usages").json()
    assert usages == {"features": [], "audiences": [{"key": "b", "name": "B", "id": b["_id"]}]}
    assert_error(p.delete("/audiences/a"), 409, "conflict")
    assert p.delete("/audiences/c").status_code == 204
    assert_error(p.get(f"/audiences/{c['_id']}"), 404, "not_found")


def test_audience_edits_that_break_a_configuration_are_rejected(api: Api) -> None:
    """Each audience compiles alone, but inlined into the configuration that uses them the tree is
    too deep: the edit is rejected and names the configuration; nothing changes."""
    p = project(api)
    p.feature({"key": "f", "name": "F"})
    audience(p, "a")
    audience(p, "b", nest({"type": "audienceMatch", "comparator": "=", "_audiences": ["a"]}, 30))
    r = p.configure(
        "f",
        "development",
        {
            "status": "active",
            "targeting": {"rules": [{"filter": {"type": "audienceMatch", "comparator": "=", "_audiences": ["b"]}}]},
        },
    )
    assert r.status_code == 200, r.text
    assert p.patch("/audiences/a", {"filters": nest({"type": "all"}, 5)}).status_code == 200
    r = p.patch("/audiences/a", {"filters": nest({"type": "all"}, 30)})
    body = assert_error(r, 400, "validation_failed")
    assert fields(r) == ["filters"]
    assert "feature 'f' in environment 'development'" in error_of(body)["message"]
    assert p.get("/audiences/a").json()["filters"] == nest({"type": "all"}, 5)
    assert p.snapshot()[0]["targeting"]["version"] == 2
    # Using the deep audience in a new configuration is rejected the same way.
    p.feature({"key": "g", "name": "G", "variations": [{"key": "on", "name": "On"}]})
    r = p.configure(
        "g",
        "development",
        {"targets": [target(nest({"type": "audienceMatch", "comparator": "=", "_audiences": ["b"]}, 29))]},
    )
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["targets"]


def test_list_audiences(api: Api) -> None:
    p = project(api)
    p.feature()
    for key in ("bravo", "alpha", "charlie"):
        audience(p, key)
    p.configure("new-dash", "development", {"targets": [target(match("alpha"))]})

    def keys(**q: Any) -> list[str]:
        return [a["key"] for a in p.get("/audiences", **q).json()]

    assert keys() == ["charlie", "alpha", "bravo"]
    assert keys(sortBy="key", sortOrder="asc") == ["alpha", "bravo", "charlie"]
    assert keys(sortBy="name", sortOrder="asc", perPage=2, page=2) == ["charlie"]
    assert keys(search="rav") == ["bravo"]
    listed = p.get("/audiences", includeUsage="true", sortBy="key", sortOrder="asc").json()
    assert [a["hasUsage"] for a in listed] == [True, False, False]
    assert all("hasUsage" not in a for a in p.get("/audiences").json())
    assert_error(p.get("/audiences", search="ab"), 400, "validation_failed")
    assert_error(p.get("/audiences", includeUsage="perhaps"), 400, "validation_failed")


def test_update_audience(api: Api) -> None:
    p = project(api)
    audience(p, "a")
    audience(p, "b")
    r = p.patch("/audiences/a", {"name": "Renamed", "description": "d", "tags": ["t"], "filters": PRO})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed" and r.json()["filters"] == PRO and r.json()["tags"] == ["t"]
    assert_error(p.patch("/audiences/a", {"key": "b"}), 409, "conflict")
    r = p.patch("/audiences/a", {"key": "a2"})
    assert r.json()["key"] == "a2"
    r = p.patch("/audiences/a2", {"filters": {"filters": [{"type": "user", "subType": "nope", "comparator": "="}]}})
    assert fields(r) == ["filters.filters[0].subType"]
    assert_error(p.patch("/audiences/ghost", {"name": "x"}), 404, "not_found")


def test_audience_usages_by_features(api: Api) -> None:
    p = project(api)
    p.environment("production", "production")
    f = p.feature()
    a = audience(p, "pro", PRO)
    p.configure("new-dash", "development", {"status": "active", "targets": [target(match("pro"))]})
    p.configure(
        "new-dash",
        "production",
        {
            "targeting": {
                "rules": [
                    {
                        "filter": {
                            "type": "group",
                            "operator": "or",
                            "filters": [{"type": "audienceMatch", "comparator": "!=", "_audiences": ["pro"]}],
                        }
                    }
                ]
            }
        },
    )
    r = p.get("/audiences/pro/usages")
    assert r.status_code == 200
    assert r.json() == {
        "features": [
            {
                "key": "new-dash",
                "name": "New dashboard",
                "id": f["_id"],
                "environments": {
                    "development": {"status": "active", "targetingVersion": 1},
                    "production": {"status": "inactive", "targetingVersion": 1},
                },
            }
        ],
        "audiences": [],
    }
    assert p.get("/audiences/pro").json()["hasUsage"] is True
    r = p.delete("/audiences/pro")
    assert_error(r, 409, "conflict")
    assert "new-dash" in r.json()["message"]
    p.configure("new-dash", "development", {"targets": []})
    p.configure("new-dash", "production", {"targets": []})
    assert p.get(f"/audiences/{a['_id']}/usages").json() == {"features": [], "audiences": []}
    assert p.delete("/audiences/pro").status_code == 204
    assert_error(p.get("/audiences/pro/usages"), 404, "not_found")


def test_audience_roles_and_cross_org(api: Api) -> None:
    p = project(api)
    audience(p, "a")
    reader, writer = member(p, "read"), member(p, "write")
    assert p.get("/audiences", user=reader).status_code == 200
    assert p.get("/audiences/a/usages", user=reader).status_code == 200
    assert_error(p.post("/audiences", {"name": "B", "key": "b", "filters": ALL}, reader), 403, "forbidden")
    assert_error(p.patch("/audiences/a", {"name": "x"}, reader), 403, "forbidden")
    assert_error(p.delete("/audiences/a", reader), 403, "forbidden")
    assert p.post("/audiences", {"name": "B", "key": "b", "filters": ALL}, writer).status_code == 201
    stranger = api.signup()
    api.organisation(stranger, "globex")
    for r in (
        p.get("/audiences", user=stranger),
        p.get("/audiences/a", user=stranger),
        p.get("/audiences/a/usages", user=stranger),
        p.delete("/audiences/a", stranger),
        p.post("/audiences", {"name": "C", "key": "c", "filters": ALL}, stranger),
    ):
        assert_error(r, 404, "not_found")
    # Audiences of another project are not found either, even by id.
    other = project(api, "globex", "other", owner=stranger)
    b = audience(other, "theirs")
    r = p.post("/audiences", {"name": "X", "key": "x", "filters": match(b["_id"])})
    assert fields(r) == ["filters.filters[0]._audiences[0]"]


def test_audience_filter_nodes_are_normalised(api: Api) -> None:
    p = project(api)
    # Structural checks happen before the evaluator sees the tree; the stored form is canonical.
    r = p.post("/audiences", {"name": "G", "key": "g", "filters": {"filters": [PRO_NODE]}})
    assert r.status_code == 201, r.text
    assert r.json()["filters"] == {"operator": "and", "filters": [PRO_NODE]}
