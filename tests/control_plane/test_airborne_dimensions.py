"""Airborne dimensions and cohorts: contract, compiled cohort rules, priority order, roles, isolation."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import evaluator
from control_plane import releases_snapshot as rs
from tests.control_plane.airborne_support import App, cohort_of, compare_versions, make_app, parse_version
from tests.control_plane.conftest import Api, assert_error

D = "/organisations/applications/dimension"
DIM_KEYS = {
    "dimension",
    "position",
    "schema",
    "description",
    "change_reason",
    "mandatory",
    "dimension_type",
    "depends_on",
}


def _fields(r: Any) -> list[str]:
    return [d["field"] for d in r.json()["error"]["details"]]


def _cohort_app(api: Api) -> App:
    app = make_app(api)
    app.dimension("app_version")
    app.dimension("version_cohort", dimension_type="cohort", depends_on="app_version")
    return app


def _checkpoint(app: App, name: str, value: str, comparator: str, dim: str = "version_cohort") -> Any:
    return app.api.client.post(
        f"{D}/{dim}/cohort/checkpoint", json={"name": name, "value": value, "comparator": comparator}, headers=app.h
    )


def _group(app: App, name: str, members: list[str], dim: str = "version_cohort") -> Any:
    return app.api.client.post(f"{D}/{dim}/cohort/group", json={"name": name, "members": members}, headers=app.h)


def test_create_standard_and_cohort_dimensions(api: Api) -> None:
    app = make_app(api)
    r = api.client.post(
        f"{D}/create",
        json={
            "dimension": "platform",
            "schema": {"type": "string", "enum": ["android", "ios"]},
            "description": "OS",
            "change_reason": "segment by OS",
        },
        headers=app.h,
    )
    assert r.status_code == 200
    assert r.json() == {
        "dimension": "platform",
        "position": 1,
        "schema": {"type": "string", "enum": ["android", "ios"]},
        "description": "OS",
        "change_reason": "segment by OS",
        "dimension_type": "standard",
        "depends_on": None,
    }
    cohort = api.client.post(
        f"{D}/create",
        json={
            "dimension": "platform_cohort",
            "dimension_type": "cohort",
            "depends_on": "platform",
            "description": "by platform",
        },
        headers=app.h,
    )
    assert cohort.status_code == 200
    body = cohort.json()
    assert body["position"] == 2 and body["dimension_type"] == "cohort" and body["depends_on"] == "platform"
    assert body["schema"] == {"type": "string", "enum": ["otherwise"], "definitions": {}}
    assert app.audit("dimension.create")[0]["change_reason"] == "segment by OS"


def test_create_dimension_errors(api: Api) -> None:
    app = make_app(api)
    app.dimension("platform")
    app.dimension("pc", dimension_type="cohort", depends_on="platform")

    def create(payload: dict[str, Any]) -> Any:
        return api.client.post(f"{D}/create", json={"description": "d", **payload}, headers=app.h)

    assert_error(create({"dimension": "platform", "schema": {"type": "string"}}), 409, "conflict")
    assert _fields(create({"dimension": "x"})) == ["schema"]
    assert _fields(create({"dimension": "x", "schema": {"type": "str"}})) == ["schema"]
    assert _fields(create({"dimension": "x", "schema": {"type": "string"}, "depends_on": "platform"})) == ["depends_on"]
    assert _fields(create({"dimension": "x", "dimension_type": "cohort"})) == ["depends_on"]
    assert _fields(create({"dimension": "x", "dimension_type": "cohort", "depends_on": "nope"})) == ["depends_on"]
    assert _fields(create({"dimension": "x", "dimension_type": "cohort", "depends_on": "pc"})) == ["depends_on"]
    assert _fields(
        create({"dimension": "x", "dimension_type": "cohort", "depends_on": "platform", "schema": {"type": "string"}})
    ) == ["schema"]
    assert _fields(create({"dimension": "list", "schema": {"type": "string"}})) == ["dimension"]
    assert_error(create({"dimension": "bad name", "schema": {}}), 400, "validation_failed")
    assert_error(create({"dimension": "x", "dimension_type": "other", "schema": {}}), 400, "validation_failed")
    no_description = api.client.post(f"{D}/create", json={"dimension": "x", "schema": {}}, headers=app.h)
    assert _fields(no_description) == ["description"]


def test_list_update_and_delete_dimensions(api: Api) -> None:
    app = make_app(api)
    for name in ("a", "b", "c"):
        app.dimension(name)
    listed = api.client.get(f"{D}/list", headers=app.h).json()
    assert listed["total_items"] == 3 and listed["total_pages"] == 1
    assert [d["dimension"] for d in listed["data"]] == ["a", "b", "c"]
    assert set(listed["data"][0]) == DIM_KEYS and listed["data"][0]["mandatory"] is False
    paged = api.client.get(f"{D}/list", params={"page": 2, "count": 2}, headers=app.h).json()
    assert [d["dimension"] for d in paged["data"]] == ["c"] and paged["total_pages"] == 2

    moved = api.client.put(f"{D}/c", json={"position": 1, "change_reason": "most specific"}, headers=app.h)
    assert moved.status_code == 200
    assert set(moved.json()) == DIM_KEYS
    assert moved.json()["position"] == 1 and moved.json()["change_reason"] == "most specific"
    order = [(d["dimension"], d["position"]) for d in api.client.get(f"{D}/list", headers=app.h).json()["data"]]
    assert order == [("c", 1), ("a", 2), ("b", 3)]
    assert _fields(api.client.put(f"{D}/c", json={"position": 4, "change_reason": "x"}, headers=app.h)) == ["position"]
    assert _fields(api.client.put(f"{D}/c", json={"position": 1}, headers=app.h)) == ["change_reason"]
    assert_error(
        api.client.put(f"{D}/c", json={"position": 0, "change_reason": "x"}, headers=app.h), 400, "validation_failed"
    )
    assert_error(api.client.put(f"{D}/zz", json={"change_reason": "x"}, headers=app.h), 404, "not_found")
    same = api.client.put(f"{D}/a", json={"change_reason": "note only"}, headers=app.h)
    assert same.json()["position"] == 2 and same.json()["change_reason"] == "note only"

    gone = api.client.delete(f"{D}/a", headers=app.h)
    assert gone.status_code == 200 and gone.json() == {}
    order = [(d["dimension"], d["position"]) for d in api.client.get(f"{D}/list", headers=app.h).json()["data"]]
    assert order == [("c", 1), ("b", 2)]
    assert_error(api.client.delete(f"{D}/a", headers=app.h), 404, "not_found")
    app.dimension("bc", dimension_type="cohort", depends_on="b")
    assert_error(api.client.delete(f"{D}/b", headers=app.h), 409, "conflict")
    assert api.client.delete(f"{D}/bc", headers=app.h).status_code == 200
    assert api.client.delete(f"{D}/b", headers=app.h).status_code == 200


def test_cohort_checkpoints_order_and_semantics(api: Api) -> None:
    app = _cohort_app(api)
    get = api.client.get(f"{D}/version_cohort/cohort", headers=app.h)
    assert get.json() == {"type": "string", "enum": ["otherwise"], "definitions": {}}
    r = _checkpoint(app, "v1", "1.0.0", "semver_ge")
    assert r.status_code == 200 and r.json() == {"name": "v1", "value": "1.0.0", "comparator": "semver_ge"}
    assert _checkpoint(app, "v3", "3.0", "semver_ge").status_code == 200
    assert _checkpoint(app, "v2", "v2.1.0", "semver_gt").status_code == 200
    cohorts = api.client.get(f"{D}/version_cohort/cohort", headers=app.h).json()
    assert cohorts["enum"] == ["v3", "v2", "v1", "otherwise"]  # highest checkpoint first
    var = {"var": "app_version"}
    assert cohorts["definitions"] == {
        "v3": {"jp_ver_ge": [var, "3.0"]},
        "v2": {"and": [{"jp_ver_gt": [var, "v2.1.0"]}, {"jp_ver_lt": [var, "3.0"]}]},
        "v1": {"and": [{"jp_ver_ge": [var, "1.0.0"]}, {"jp_ver_le": [var, "v2.1.0"]}]},
    }
    snap = app.snapshot()
    expectations = {
        "3.0.0": "v3",
        "10.0.0": "v3",
        "2.1.1": "v2",
        "2.1.0": "v1",
        "3.0.0-rc.1": "v2",
        "1.0.0": "v1",
        "0.9.9": "otherwise",
        "garbage": "otherwise",
    }
    for version, cohort in expectations.items():
        assert cohort_of(snap, "version_cohort", {"app_version": version}) == cohort, version
    assert cohort_of(snap, "version_cohort", {}) == "otherwise"
    assert len(app.audit("cohort.checkpoint.create")) == 3


def test_string_checkpoints_and_missing_dimension(api: Api) -> None:
    app = make_app(api)
    app.dimension("build")
    app.dimension("builds", dimension_type="cohort", depends_on="build")
    assert _checkpoint(app, "new", "m", "str_ge", "builds").status_code == 200
    assert _checkpoint(app, "old", "a", "str_gt", "builds").status_code == 200
    snap = app.snapshot()
    assert cohort_of(snap, "builds", {"build": "n"}) == "new"
    assert cohort_of(snap, "builds", {"build": "m"}) == "new"
    assert cohort_of(snap, "builds", {"build": "b"}) == "old"
    assert cohort_of(snap, "builds", {"build": "a"}) == "otherwise"
    assert cohort_of(snap, "builds", {}) == "otherwise"  # a missing value is not the string "null"


def test_checkpoint_errors(api: Api) -> None:
    app = _cohort_app(api)
    app.dimension("plain")
    assert _checkpoint(app, "v1", "1.0.0", "semver_ge").status_code == 200
    bad_version = _checkpoint(app, "v9", "1.0.x", "semver_gt")
    assert_error(bad_version, 400, "validation_failed")
    assert _fields(bad_version) == ["value"]
    assert _fields(_checkpoint(app, "s", "abc", "str_gt")) == ["comparator"]  # no mixing semver and str
    assert_error(_checkpoint(app, "v1", "2.0.0", "semver_ge"), 409, "conflict")
    assert_error(_checkpoint(app, "again", "1.0", "semver_ge"), 409, "conflict")  # same precedence
    assert _checkpoint(app, "strict", "1.0.0", "semver_gt").status_code == 200  # same value, other comparator
    assert _fields(_checkpoint(app, "otherwise", "5.0.0", "semver_ge")) == ["name"]
    assert_error(_checkpoint(app, "x", "1.0.0", "semver_lt"), 400, "validation_failed")
    assert_error(
        api.client.post(f"{D}/version_cohort/cohort/checkpoint", json={"name": "x"}, headers=app.h),
        400,
        "validation_failed",
    )
    assert _fields(_checkpoint(app, "x", "1.0.0", "semver_ge", dim="plain")) == ["cohort_dimension_name"]
    assert_error(_checkpoint(app, "x", "1.0.0", "semver_ge", dim="nope"), 404, "not_found")
    enum = api.client.get(f"{D}/version_cohort/cohort", headers=app.h).json()["enum"]
    assert enum == ["strict", "v1", "otherwise"]  # gt before ge at one value
    assert_error(api.client.get(f"{D}/plain/cohort", headers=app.h), 400, "validation_failed")


def test_groups_priority_and_first_match_wins(api: Api) -> None:
    app = make_app(api)
    app.dimension("user_id")
    app.dimension("segment", dimension_type="cohort", depends_on="user_id")
    assert _checkpoint(app, "late", "u5", "str_ge", "segment").status_code == 200
    r = _group(app, "beta", ["u1", "u2", "u9"], "segment")
    assert r.status_code == 200 and r.json() == {"name": "beta", "members": ["u1", "u2", "u9"]}
    assert _group(app, "vip", ["u2", "u3"], "segment").status_code == 200
    prio = api.client.get(f"{D}/segment/cohort/group/priority", headers=app.h)
    assert prio.json() == {"priority_map": {"vip": 0, "beta": 1}}  # a new group is evaluated first
    cohorts = api.client.get(f"{D}/segment/cohort", headers=app.h).json()
    assert cohorts["enum"] == ["vip", "beta", "late", "otherwise"]  # groups before checkpoints
    assert cohorts["definitions"]["beta"] == {"in": [{"var": "user_id"}, ["u1", "u2", "u9"]]}
    snap = app.snapshot()
    assert cohort_of(snap, "segment", {"user_id": "u2"}) == "vip"
    assert cohort_of(snap, "segment", {"user_id": "u9"}) == "beta"  # a member wins over the checkpoint
    assert cohort_of(snap, "segment", {"user_id": "u7"}) == "late"
    assert cohort_of(snap, "segment", {"user_id": "u0"}) == "otherwise"

    put = api.client.put(
        f"{D}/segment/cohort/group/priority", json={"priority_map": {"beta": 0, "vip": 1}}, headers=app.h
    )
    assert put.status_code == 200 and put.json() == {"priority_map": {"beta": 0, "vip": 1}}
    assert cohort_of(app.snapshot(), "segment", {"user_id": "u2"}) == "beta"
    assert _group(app, "staff", ["u3"], "segment").status_code == 200
    partial = api.client.put(f"{D}/segment/cohort/group/priority", json={"priority_map": {"staff": 2}}, headers=app.h)
    assert partial.json() == {"priority_map": {"beta": 0, "vip": 1, "staff": 2}}  # the others keep their order
    assert cohort_of(app.snapshot(), "segment", {"user_id": "u3"}) == "vip"
    assert [d["name"] for d in app.snapshot()["dimensions"][1]["cohorts"]] == ["beta", "vip", "staff", "late"]


def test_group_and_priority_errors(api: Api) -> None:
    app = _cohort_app(api)
    assert _group(app, "a", ["x"]).status_code == 200
    assert _group(app, "b", ["y"]).status_code == 200
    assert_error(_group(app, "a", ["z"]), 409, "conflict")
    assert _fields(_group(app, "c", ["z", "q", "z"])) == ["members[2]"]
    assert_error(_group(app, "c", []), 400, "validation_failed")
    assert_error(_group(app, "c", [""]), 400, "validation_failed")
    assert _fields(_group(app, "otherwise", ["z"])) == ["name"]

    def put(priority_map: Any) -> Any:
        return api.client.put(
            f"{D}/version_cohort/cohort/group/priority", json={"priority_map": priority_map}, headers=app.h
        )

    assert _fields(put({"nope": 0})) == ["priority_map.nope"]
    assert _fields(put({"a": 2})) == ["priority_map.a"]
    assert _fields(put({"a": 0, "b": 0})) == ["priority_map.b"]
    assert_error(put({"a": -1}), 400, "validation_failed")
    assert_error(put([]), 400, "validation_failed")
    assert api.client.get(f"{D}/version_cohort/cohort/group/priority", headers=app.h).json() == {
        "priority_map": {"b": 0, "a": 1}
    }


def test_alias_paths_without_cohort_segment(api: Api) -> None:
    app = _cohort_app(api)
    r = api.client.post(
        f"{D}/version_cohort/checkpoint",
        json={"name": "v2", "value": "2.0.0", "comparator": "semver_ge"},
        headers=app.h,
    )
    assert r.status_code == 200
    assert (
        api.client.post(
            f"{D}/version_cohort/group", json={"name": "g", "members": ["1.0.0"]}, headers=app.h
        ).status_code
        == 200
    )
    assert api.client.get(f"{D}/version_cohort/group/priority", headers=app.h).json() == {"priority_map": {"g": 0}}
    assert (
        api.client.put(f"{D}/version_cohort/group/priority", json={"priority_map": {"g": 0}}, headers=app.h).status_code
        == 200
    )
    assert api.client.get(f"{D}/version_cohort/cohort", headers=app.h).json()["enum"] == ["g", "v2", "otherwise"]


def test_rule_that_does_not_compile_is_rejected_and_rolled_back(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _cohort_app(api)

    def reject(rule: Any, data: Any = None) -> Any:
        if isinstance(rule, dict) and "in" in rule:
            err = evaluator.RuleError("bad operand")
            err.path = "$.in[1]"
            err.reason = "list too large"
            raise err
        return None

    monkeypatch.setattr(evaluator, "jsonlogic_apply", reject)
    r = _group(app, "big", ["a"])
    assert_error(r, 400, "validation_failed")
    assert r.json()["error"]["details"] == [
        {"field": "definitions.big.in[1]", "code": "invalid_rule", "message": "list too large"}
    ]
    monkeypatch.undo()
    assert api.client.get(f"{D}/version_cohort/cohort", headers=app.h).json()["enum"] == ["otherwise"]
    assert app.audit("cohort.group.create") == []


def test_generated_rules_compile(api: Api) -> None:
    app = _cohort_app(api)
    _checkpoint(app, "v1", "1.0.0", "semver_ge")
    _group(app, "g", ["1.2.3"])
    with app.store().read() as db:
        row = db.execute("SELECT * FROM ab_dimensions WHERE name = 'version_cohort'").fetchone()
        rs.validate_cohort_dimension(db, row)  # raises ApiError when the evaluator rejects a rule
    entry = app.snapshot()["dimensions"][1]
    assert entry["rule"] == {"if": [entry["cohorts"][0]["rule"], "g", entry["cohorts"][1]["rule"], "v1", "otherwise"]}


def test_snapshot_dimensions_and_touch(api: Api) -> None:
    app = _cohort_app(api)
    touched = app.record_touches()
    _checkpoint(app, "v1", "1.0.0", "semver_ge")
    api.client.put(f"{D}/version_cohort", json={"position": 1, "change_reason": "x"}, headers=app.h)
    api.client.get(f"{D}/list", headers=app.h)
    assert touched == [{app.project_id()}] * 2
    snap = app.snapshot()
    assert snap["organisation"] == "acme" and snap["application"] == "shop"
    assert [(d["name"], d["position"], d["dimension_type"]) for d in snap["dimensions"]] == [
        ("version_cohort", 1, "cohort"),
        ("app_version", 2, "standard"),
    ]
    assert snap["dimensions"][1]["schema"] == {"type": "string"}
    assert snap["dimensions"][0]["depends_on"] == "app_version"
    assert snap["live"] == [] and snap["experiments"] == []


def test_semver_parsing_matches_the_evaluator_rules() -> None:
    assert parse_version("1.2.3") == (1, 2, 3, ())
    assert parse_version("v1.2") == (1, 2, 0, ())
    assert parse_version("V7") == (7, 0, 0, ())
    assert parse_version("1.0.0-rc.1+build.5") == (1, 0, 0, ((1, "rc"), (0, 1)))
    for bad in ("", "01.0.0", "1.0.0-01", "1.0.0-", "1.2.3.4", "vv1", "1.x", "1.0.0+", "1..0"):
        assert parse_version(bad) is None, bad
        assert not rs.valid_version(bad), bad
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2",
    ]
    for x, y in itertools.pairwise(ordered):
        a, b = parse_version(x), parse_version(y)
        assert a is not None and b is not None and rs.valid_version(x)
        # The oracle and the evaluator (which checkpoint ordering uses) agree.
        assert compare_versions(a, b) == -1 and compare_versions(b, a) == 1
        assert rs.compare_values("semver_ge", x, y) == -1 and rs.compare_values("semver_ge", y, x) == 1
    assert compare_versions(parse_version("1.0.0+a") or (0, 0, 0, ()), (1, 0, 0, ())) == 0
    assert rs.compare_values("semver_gt", "1.0.0+a", "1.0.0") == 0


def test_roles_and_other_organisation(api: Api) -> None:
    app = _cohort_app(api)
    reader = api.signup()
    api.member(app.owner, app.organisation, reader, "read")
    rh = app.headers(reader)
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"{D}/create", {"dimension": "x", "schema": {"type": "string"}, "description": "d"}),
        ("PUT", f"{D}/app_version", {"position": 1, "change_reason": "x"}),
        ("DELETE", f"{D}/version_cohort", None),
        ("POST", f"{D}/version_cohort/cohort/checkpoint", {"name": "a", "value": "1.0.0", "comparator": "semver_ge"}),
        ("POST", f"{D}/version_cohort/cohort/group", {"name": "g", "members": ["1"]}),
        ("PUT", f"{D}/version_cohort/cohort/group/priority", {"priority_map": {}}),
    ]
    for method, path, payload in writes:
        assert_error(api.client.request(method, path, json=payload, headers=rh), 403, "forbidden")
    for path in (f"{D}/list", f"{D}/version_cohort/cohort", f"{D}/version_cohort/cohort/group/priority"):
        assert api.client.get(path, headers=rh).status_code == 200

    stranger = api.signup()
    api.organisation(stranger, "globex")
    theirs = app.headers(stranger)
    for method, path, payload in [*writes, ("GET", f"{D}/list", None), ("GET", f"{D}/version_cohort/cohort", None)]:
        assert_error(api.client.request(method, path, json=payload, headers=theirs), 404, "not_found")
    assert [d["dimension"] for d in api.client.get(f"{D}/list", headers=app.h).json()["data"]] == [
        "app_version",
        "version_cohort",
    ]
