"""Contract tests of the Airborne cohort routes (checkpoints, groups, priorities, alias paths) and
the cohort rules they compile."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import evaluator
from control_plane import releases_snapshot as rs
from tests.control_plane.airborne_support import App, cohort_of, compare_versions, make_app, parse_version
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.airborne.support import D, checkpoint, cohort_app, fields


def _group(app: App, name: str, members: list[str], dim: str = "version_cohort") -> Any:
    return app.api.client.post(f"{D}/{dim}/cohort/group", json={"name": name, "members": members}, headers=app.h)


def test_cohort_checkpoints_order_and_semantics(api: Api) -> None:
    app = cohort_app(api)
    get = api.client.get(f"{D}/version_cohort/cohort", headers=app.h)
    assert get.json() == {"type": "string", "enum": ["otherwise"], "definitions": {}}
    r = checkpoint(app, "v1", "1.0.0", "semver_ge")
    assert r.status_code == 200 and r.json() == {"name": "v1", "value": "1.0.0", "comparator": "semver_ge"}
    assert checkpoint(app, "v3", "3.0", "semver_ge").status_code == 200
    assert checkpoint(app, "v2", "v2.1.0", "semver_gt").status_code == 200
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
    assert checkpoint(app, "new", "m", "str_ge", "builds").status_code == 200
    assert checkpoint(app, "old", "a", "str_gt", "builds").status_code == 200
    snap = app.snapshot()
    assert cohort_of(snap, "builds", {"build": "n"}) == "new"
    assert cohort_of(snap, "builds", {"build": "m"}) == "new"
    assert cohort_of(snap, "builds", {"build": "b"}) == "old"
    assert cohort_of(snap, "builds", {"build": "a"}) == "otherwise"
    assert cohort_of(snap, "builds", {}) == "otherwise"  # a missing value is not the string "null"


def test_checkpoint_errors(api: Api) -> None:
    app = cohort_app(api)
    app.dimension("plain")
    assert checkpoint(app, "v1", "1.0.0", "semver_ge").status_code == 200
    bad_version = checkpoint(app, "v9", "1.0.x", "semver_gt")
    assert_error(bad_version, 400, "validation_failed")
    assert fields(bad_version) == ["value"]
    assert fields(checkpoint(app, "s", "abc", "str_gt")) == ["comparator"]  # no mixing semver and str
    assert_error(checkpoint(app, "v1", "2.0.0", "semver_ge"), 409, "conflict")
    assert_error(checkpoint(app, "again", "1.0", "semver_ge"), 409, "conflict")  # same precedence
    assert checkpoint(app, "strict", "1.0.0", "semver_gt").status_code == 200  # same value, other comparator
    assert fields(checkpoint(app, "otherwise", "5.0.0", "semver_ge")) == ["name"]
    assert_error(checkpoint(app, "x", "1.0.0", "semver_lt"), 400, "validation_failed")
    assert_error(
        api.client.post(f"{D}/version_cohort/cohort/checkpoint", json={"name": "x"}, headers=app.h),
        400,
        "validation_failed",
    )
    assert fields(checkpoint(app, "x", "1.0.0", "semver_ge", dim="plain")) == ["cohort_dimension_name"]
    assert_error(checkpoint(app, "x", "1.0.0", "semver_ge", dim="nope"), 404, "not_found")
    enum = api.client.get(f"{D}/version_cohort/cohort", headers=app.h).json()["enum"]
    assert enum == ["strict", "v1", "otherwise"]  # gt before ge at one value
    assert_error(api.client.get(f"{D}/plain/cohort", headers=app.h), 400, "validation_failed")


def test_groups_priority_and_first_match_wins(api: Api) -> None:
    app = make_app(api)
    app.dimension("user_id")
    app.dimension("segment", dimension_type="cohort", depends_on="user_id")
    assert checkpoint(app, "late", "u5", "str_ge", "segment").status_code == 200
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
    app = cohort_app(api)
    assert _group(app, "a", ["x"]).status_code == 200
    assert _group(app, "b", ["y"]).status_code == 200
    assert_error(_group(app, "a", ["z"]), 409, "conflict")
    assert fields(_group(app, "c", ["z", "q", "z"])) == ["members[2]"]
    assert_error(_group(app, "c", []), 400, "validation_failed")
    assert_error(_group(app, "c", [""]), 400, "validation_failed")
    assert fields(_group(app, "otherwise", ["z"])) == ["name"]

    def put(priority_map: Any) -> Any:
        return api.client.put(
            f"{D}/version_cohort/cohort/group/priority", json={"priority_map": priority_map}, headers=app.h
        )

    assert fields(put({"nope": 0})) == ["priority_map.nope"]
    assert fields(put({"a": 2})) == ["priority_map.a"]
    assert fields(put({"a": 0, "b": 0})) == ["priority_map.b"]
    assert_error(put({"a": -1}), 400, "validation_failed")
    assert_error(put([]), 400, "validation_failed")
    assert api.client.get(f"{D}/version_cohort/cohort/group/priority", headers=app.h).json() == {
        "priority_map": {"b": 0, "a": 1}
    }


def test_alias_paths_without_cohort_segment(api: Api) -> None:
    app = cohort_app(api)
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
    app = cohort_app(api)

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
    assert r.json()["details"] == [
        {"field": "definitions.big.in[1]", "code": "invalid_rule", "message": "list too large"}
    ]
    monkeypatch.undo()
    assert api.client.get(f"{D}/version_cohort/cohort", headers=app.h).json()["enum"] == ["otherwise"]
    assert app.audit("cohort.group.create") == []


def test_generated_rules_compile(api: Api) -> None:
    app = cohort_app(api)
    checkpoint(app, "v1", "1.0.0", "semver_ge")
    _group(app, "g", ["1.2.3"])
    with app.store().read() as db:
        row = db.execute("SELECT * FROM ab_dimensions WHERE name = 'version_cohort'").fetchone()
        rs.validate_cohort_dimension(db, row)  # raises ApiError when the evaluator rejects a rule
    entry = app.snapshot()["dimensions"][1]
    assert entry["rule"] == {"if": [entry["cohorts"][0]["rule"], "g", entry["cohorts"][1]["rule"], "v1", "otherwise"]}


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
