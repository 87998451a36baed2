"""Contract tests of the Airborne dimension routes; the role and other-organisation checks also
cover the cohort routes."""

from __future__ import annotations

from typing import Any

from tests.control_plane.airborne_support import make_app
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.airborne.support import D, checkpoint, cohort_app, fields

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
    assert fields(create({"dimension": "x"})) == ["schema"]
    assert fields(create({"dimension": "x", "schema": {"type": "str"}})) == ["schema"]
    assert fields(create({"dimension": "x", "schema": {"type": "string"}, "depends_on": "platform"})) == ["depends_on"]
    assert fields(create({"dimension": "x", "dimension_type": "cohort"})) == ["depends_on"]
    assert fields(create({"dimension": "x", "dimension_type": "cohort", "depends_on": "nope"})) == ["depends_on"]
    assert fields(create({"dimension": "x", "dimension_type": "cohort", "depends_on": "pc"})) == ["depends_on"]
    assert fields(
        create({"dimension": "x", "dimension_type": "cohort", "depends_on": "platform", "schema": {"type": "string"}})
    ) == ["schema"]
    assert fields(create({"dimension": "list", "schema": {"type": "string"}})) == ["dimension"]
    assert_error(create({"dimension": "bad name", "schema": {}}), 400, "validation_failed")
    assert_error(create({"dimension": "x", "dimension_type": "other", "schema": {}}), 400, "validation_failed")
    no_description = api.client.post(f"{D}/create", json={"dimension": "x", "schema": {}}, headers=app.h)
    assert fields(no_description) == ["description"]


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
    assert fields(api.client.put(f"{D}/c", json={"position": 4, "change_reason": "x"}, headers=app.h)) == ["position"]
    assert fields(api.client.put(f"{D}/c", json={"position": 1}, headers=app.h)) == ["change_reason"]
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


def test_snapshot_dimensions_and_touch(api: Api) -> None:
    app = cohort_app(api)
    touched = app.record_touches()
    checkpoint(app, "v1", "1.0.0", "semver_ge")
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


def test_roles_and_other_organisation(api: Api) -> None:
    app = cohort_app(api)
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
