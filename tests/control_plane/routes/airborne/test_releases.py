"""Contract tests of the Airborne release routes: creation, ramp/conclude/discard state machine,
lists, the snapshot order, roles and idempotency."""

from __future__ import annotations

from typing import Any

from tests.control_plane.airborne_support import App, make_app
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.airborne.support import CONFIG, D, fields, ok, release_app

RELEASE_KEYS = {"id", "created_at", "config", "package", "resources", "dimensions", "experiment"}


EXPERIMENT_KEYS = {
    "experiment_id",
    "package_version",
    "config_version",
    "created_at",
    "traffic_percentage",
    "status",
    "variants",
    "chosen_variant",
    "concluded_at",
}


def _release(app: App, **payload: Any) -> Any:
    return app.api.client.post("/releases", json=payload, headers=app.h)


def test_first_release_goes_live_with_defaults(api: Api) -> None:
    app = release_app(api)
    body = ok(_release(app))
    assert set(body) == RELEASE_KEYS and set(body["experiment"]) == EXPERIMENT_KEYS
    rid = body["id"]
    assert body["config"] == {
        "version": "v1",
        "config_number": 0,
        "boot_timeout": 4000,
        "package_timeout": 4000,
        "properties": {},
    }
    package = body["package"]
    assert package["version"] == 1 and package["properties"] == {}
    assert package["index"] == {
        "file_id": "index.jsa@version:1",
        "file_path": "index.jsa",
        "url": "https://cdn.example.com/index.jsa",
        "checksum": "a" * 64,
        "size": 10,
    }
    assert [f["file_path"] for f in package["important"]] == ["main.js", "vendor.js", "fonts/a.ttf"]
    assert package["lazy"] == [] and body["resources"] == [] and body["dimensions"] == {}
    exp = body["experiment"]
    assert exp["experiment_id"] == rid and exp["status"] == "CONCLUDED" and exp["traffic_percentage"] == 100
    assert exp["chosen_variant"] == f"{rid}-experimental" and exp["package_version"] == 1
    assert exp["variants"] == [
        {"id": f"{rid}-control", "variant_type": "control"},
        {"id": f"{rid}-experimental", "variant_type": "experimental"},
    ]
    snap = app.snapshot()
    assert [r["id"] for r in snap["live"]] == [rid] and snap["experiments"] == []
    assert snap["live"][0]["package"] == package and snap["live"][0]["weight"] == 0


def test_release_with_config_package_split_resources_and_dimensions(api: Api) -> None:
    app = release_app(api)
    ok(
        api.client.post(
            CONFIG,
            json={
                "config": {"version": "2.0.0", "boot_timeout": 3000, "package_timeout": 9000},
                "properties": {"theme": "dark", "ads": True},
            },
            headers=app.h,
        )
    )
    ok(_release(app))
    body = ok(
        _release(
            app,
            package_id="version:1",
            config={"boot_timeout": 1500, "properties": {"ads": False}},
            package={"properties": {"entry": "main"}, "lazy": ["fonts/a.ttf@version:1"]},
            resources=["img/hero.png"],
            dimensions={"platform": "android", "versions": "modern"},
        )
    )
    assert body["config"] == {
        "version": "2.0.0",
        "config_number": 1,
        "boot_timeout": 1500,
        "package_timeout": 9000,
        "properties": {"theme": "dark", "ads": False},
    }
    assert [f["file_path"] for f in body["package"]["important"]] == ["main.js", "vendor.js"]
    assert [f["file_path"] for f in body["package"]["lazy"]] == ["fonts/a.ttf"]
    assert body["package"]["properties"] == {"entry": "main"}
    assert [f["file_id"] for f in body["resources"]] == ["img/hero.png@version:1"]
    assert body["dimensions"] == {"platform": "android", "versions": "modern"}
    exp = body["experiment"]
    assert (exp["status"], exp["traffic_percentage"], exp["chosen_variant"]) == ("CREATED", 0, None)
    assert exp["config_version"] == "2.0.0"
    only_important = ok(_release(app, package={"important": ["main.js"]}, dimensions={"platform": "ios"}))
    assert [f["file_path"] for f in only_important["package"]["lazy"]] == ["vendor.js", "fonts/a.ttf"]


def test_release_validation_errors(api: Api) -> None:
    app = release_app(api)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"package_id": "version:7"}, "package_id"),
        ({"package_id": "nonsense"}, "package_id"),
        ({"package": {"important": ["img/hero.png"]}}, "package.important[0]"),
        ({"package": {"important": ["main.js"], "lazy": ["main.js"]}}, "package.lazy[0]"),
        ({"package": {"important": ["main.js", "main.js@version:1"]}}, "package.important[1]"),
        ({"package": {"important": ["main.js"], "lazy": ["vendor.js"]}}, "package"),
        ({"package": {"lazy": ["nope.js"]}}, "package.lazy[0]"),
        ({"resources": ["main.js"]}, "resources[0]"),
        ({"resources": ["index.jsa"]}, "resources[0]"),
        ({"resources": ["nope.png"]}, "resources[0]"),
        ({"dimensions": {"nope": "x"}}, "dimensions.nope"),
        ({"dimensions": {"platform": "web"}}, "dimensions.platform"),
        ({"dimensions": {"platform": 3}}, "dimensions.platform"),
        ({"dimensions": {"versions": "ancient"}}, "dimensions.versions"),
    ]
    for payload, field in cases:
        r = _release(app, **payload)
        assert_error(r, 400, "validation_failed")
        assert fields(r) == [field], (payload, r.json())
    assert_error(_release(app, dimensions={"platform": {"nested": 1}}), 400, "validation_failed")
    assert_error(_release(app, config={"boot_timeout": "soon"}), 400, "validation_failed")
    assert_error(_release(app, unknown=1), 400, "validation_failed")
    assert app.snapshot()["live"] == []

    empty = make_app(api, "initech", "app")
    r = api.client.post("/releases", json={}, headers=empty.h)
    assert fields(r) == ["package_id"]


def test_ramp_rules(api: Api) -> None:
    app = release_app(api)
    ok(_release(app))
    rid = ok(_release(app, dimensions={"platform": "ios"}))["id"]

    def ramp(pct: Any, release_id: str = rid) -> Any:
        return api.client.post(f"/releases/{release_id}/ramp", json={"traffic_percentage": pct}, headers=app.h)

    zero = ok(ramp(0))
    assert zero == {
        "success": True,
        "message": "Release experiment ramped to 0% traffic",
        "experiment_id": rid,
        "traffic_percentage": 0,
    }
    detail = api.client.get(f"/releases/{rid}", headers=app.h).json()
    assert detail["status"] == "CREATED"  # 0% keeps it CREATED
    assert ok(ramp(20))["traffic_percentage"] == 20
    detail = api.client.get(f"/releases/{rid}", headers=app.h).json()
    assert (detail["status"], detail["traffic_percentage"]) == ("INPROGRESS", 20)
    assert ok(ramp(20))["traffic_percentage"] == 20
    assert ok(ramp(10))["traffic_percentage"] == 10  # ramping down is allowed
    assert app.snapshot()["experiments"][0]["traffic_percentage"] == 10
    assert ok(ramp(0))["traffic_percentage"] == 0
    detail = api.client.get(f"/releases/{rid}", headers=app.h).json()
    assert (detail["status"], detail["traffic_percentage"]) == ("INPROGRESS", 0)
    assert app.snapshot()["experiments"] == []  # 0% is not published: it shields nobody
    assert_error(ramp(101), 400, "validation_failed")
    assert_error(ramp(-1), 400, "validation_failed")
    assert_error(ramp("x"), 400, "validation_failed")
    assert_error(api.client.post(f"/releases/{rid}/ramp", json={}, headers=app.h), 400, "validation_failed")
    assert ok(ramp(100))["traffic_percentage"] == 100
    assert_error(ramp(100, "nope"), 404, "not_found")
    snap = app.snapshot()
    (exp,) = snap["experiments"]
    assert exp["id"] == rid and exp["status"] == "INPROGRESS" and exp["traffic_percentage"] == 100
    assert exp["dimensions"] == {"platform": "ios"} and exp["weight"] == 2
    assert [v["variant_type"] for v in exp["variants"]] == ["control", "experimental"]
    assert exp["experimental"]["package"]["version"] == 1
    assert [a["details"] for a in app.audit("release.ramp")][-1] == '{"from":0,"to":100}'


def test_conclude_and_discard_state_machine(api: Api) -> None:
    app = release_app(api)
    first = ok(_release(app))["id"]
    assert_error(
        api.client.post(f"/releases/{first}/ramp", json={"traffic_percentage": 50}, headers=app.h), 409, "conflict"
    )
    assert_error(api.client.post(f"/releases/{first}/discard", json={}, headers=app.h), 409, "conflict")

    second = ok(_release(app))["id"]
    assert_error(_release(app), 409, "conflict")  # one open release per dimension context
    android = ok(_release(app, dimensions={"platform": "android"}))
    assert android["experiment"]["status"] == "CREATED"
    bad = api.client.post(f"/releases/{second}/conclude", json={"chosen_variant": "nope"}, headers=app.h)
    assert_error(bad, 400, "validation_failed")
    assert fields(bad) == ["chosen_variant"]
    assert_error(api.client.post(f"/releases/{second}/conclude", json={}, headers=app.h), 400, "validation_failed")
    api.client.post(f"/releases/{second}/ramp", json={"traffic_percentage": 30}, headers=app.h)
    done = api.client.post(
        f"/releases/{second}/conclude",
        json={"chosen_variant": f"{second}-experimental", "change_reason": "metrics look good"},
        headers=app.h,
    )
    assert ok(done) == {
        "success": True,
        "message": f"Release experiment concluded with variant {second}-experimental",
        "experiment_id": second,
        "chosen_variant": f"{second}-experimental",
    }
    assert app.audit("release.conclude")[0]["change_reason"] == "metrics look good"
    assert_error(
        api.client.post(f"/releases/{second}/conclude", json={"chosen_variant": "control"}, headers=app.h),
        409,
        "conflict",
    )
    assert_error(
        api.client.post(f"/releases/{second}/ramp", json={"traffic_percentage": 100}, headers=app.h), 409, "conflict"
    )
    live = app.snapshot()["live"]
    assert [r["id"] for r in live] == [second]  # the newest concluded release serves the empty context

    ramped = android["id"]
    ok(api.client.post(f"/releases/{ramped}/ramp", json={"traffic_percentage": 30}, headers=app.h))
    assert ramped in [e["id"] for e in app.snapshot()["experiments"]]
    ok(api.client.post(f"/releases/{ramped}/discard", json={}, headers=app.h))  # a ramped release can be discarded
    assert api.client.get(f"/releases/{ramped}", headers=app.h).json()["status"] == "DISCARDED"
    assert ramped not in [e["id"] for e in app.snapshot()["experiments"]]

    third = ok(_release(app))["id"]
    discarded = ok(api.client.post(f"/releases/{third}/discard", json={"change_reason": "wrong build"}, headers=app.h))
    assert discarded == {"success": True, "message": "Release experiment discarded", "experiment_id": third}
    assert api.client.get(f"/releases/{third}", headers=app.h).json()["status"] == "DISCARDED"
    assert_error(
        api.client.post(f"/releases/{third}/conclude", json={"chosen_variant": "experimental"}, headers=app.h),
        409,
        "conflict",
    )
    assert_error(api.client.post(f"/releases/{third}/discard", json={}, headers=app.h), 409, "conflict")

    fourth = ok(_release(app))["id"]  # the context is free again
    ok(api.client.post(f"/releases/{fourth}/conclude", json={"chosen_variant": "control"}, headers=app.h))
    detail = api.client.get(f"/releases/{fourth}", headers=app.h).json()
    assert detail["status"] == "CONCLUDED" and detail["experiment"]["chosen_variant"] == f"{fourth}-control"
    assert [r["id"] for r in app.snapshot()["live"]] == [second]  # control kept the previous release


def test_get_and_list_releases(api: Api) -> None:
    app = release_app(api)
    first = ok(_release(app, resources=["img/hero.png"]))
    second = ok(_release(app, dimensions={"platform": "ios"}))
    detail = api.client.get(f"/releases/{first['id']}", headers=app.h).json()
    assert {k: detail[k] for k in RELEASE_KEYS} == first
    assert detail["experiment_id"] == first["id"] and detail["org_id"] == "acme" and detail["app_id"] == "shop"
    assert (detail["package_version"], detail["config_version"], detail["status"]) == (1, "v1", "CONCLUDED")
    assert detail["traffic_percentage"] == 100 and detail["variants"] == first["experiment"]["variants"]
    assert detail["configuration"] == {
        "package": {k: first["package"][k] for k in ("properties", "important", "lazy")},
        "resources": first["resources"],
    }
    assert_error(api.client.get("/releases/nope", headers=app.h), 404, "not_found")

    listed = api.client.get("/releases/list", headers=app.h).json()
    assert listed["total_items"] == 2 and listed["total_pages"] == 1
    assert [r["id"] for r in listed["data"]] == [second["id"], first["id"]]
    assert listed["data"][0] == second
    by_status = api.client.get("/releases/list", params={"status": "created"}, headers=app.h).json()
    assert [r["id"] for r in by_status["data"]] == [second["id"]]
    paged = api.client.get("/releases/list", params={"pages": 2, "count": 1}, headers=app.h).json()
    assert [r["id"] for r in paged["data"]] == [first["id"]] and paged["total_pages"] == 2
    assert len(api.client.get("/releases/list", params={"all": "true", "count": 1}, headers=app.h).json()["data"]) == 2
    bad = api.client.get("/releases/list", params={"status": "LIVE"}, headers=app.h)
    assert fields(bad) == ["query.status"]


def test_snapshot_orders_live_releases_by_specificity(api: Api) -> None:
    app = release_app(api)
    base = ok(_release(app))["id"]
    ios = ok(_release(app, dimensions={"platform": "ios"}))["id"]
    both = ok(_release(app, dimensions={"platform": "ios", "versions": "modern"}))["id"]
    for rid in (ios, both):
        ok(api.client.post(f"/releases/{rid}/conclude", json={"chosen_variant": "experimental"}, headers=app.h))
    snap = app.snapshot()
    assert [(r["id"], r["weight"]) for r in snap["live"]] == [(both, 2 + 8), (ios, 2), (base, 0)]
    assert snap["live"][0]["config"]["version"] == "v1"
    # a release context keeps its dimensions alive
    assert_error(api.client.delete(f"{D}/platform", headers=app.h), 409, "conflict")
    assert_error(api.client.delete(f"{D}/versions", headers=app.h), 409, "conflict")


def test_release_writes_touch_the_project(api: Api) -> None:
    app = release_app(api)
    touched = app.record_touches()
    ok(_release(app))
    rid = ok(_release(app, dimensions={"platform": "ios"}))["id"]
    api.client.post(f"/releases/{rid}/ramp", json={"traffic_percentage": 5}, headers=app.h)
    api.client.post(f"/releases/{rid}/conclude", json={"chosen_variant": "control"}, headers=app.h)
    rid2 = ok(_release(app, dimensions={"platform": "ios"}))["id"]
    api.client.post(f"/releases/{rid2}/discard", json={}, headers=app.h)
    api.client.get("/releases/list", headers=app.h)
    assert touched == [{app.project_id()}] * 6


def test_roles_and_other_organisation(api: Api) -> None:
    app = release_app(api)
    rid = ok(_release(app))["id"]
    open_id = ok(_release(app, dimensions={"platform": "ios"}))["id"]
    reader = api.signup()
    api.member(app.owner, app.organisation, reader, "read")
    writes: list[tuple[str, dict[str, Any]]] = [
        ("/releases", {}),
        (f"/releases/{open_id}/ramp", {"traffic_percentage": 10}),
        (f"/releases/{open_id}/conclude", {"chosen_variant": "control"}),
        (f"/releases/{open_id}/discard", {}),
        (CONFIG, {"config": {"version": "1"}}),
    ]
    for path, payload in writes:
        assert_error(api.client.post(path, json=payload, headers=app.headers(reader)), 403, "forbidden")
    assert api.client.get(f"/releases/{rid}", headers=app.headers(reader)).status_code == 200
    assert api.client.get("/releases/list", headers=app.headers(reader)).status_code == 200

    stranger = api.signup()
    api.organisation(stranger, "globex")
    api.application(stranger, "globex", "shop")
    theirs = app.headers(stranger)
    for path, payload in writes:
        assert_error(api.client.post(path, json=payload, headers=theirs), 404, "not_found")
    assert_error(api.client.get(f"/releases/{rid}", headers=theirs), 404, "not_found")
    # the release id is not reachable from the stranger's own application either
    assert_error(api.client.get(f"/releases/{rid}", headers=stranger.org("globex", "shop")), 404, "not_found")
    assert api.client.get("/releases/list", headers=stranger.org("globex", "shop")).json()["data"] == []
    assert api.client.get(f"/releases/{open_id}", headers=app.h).json()["status"] == "CREATED"


def test_idempotent_release_creation(api: Api) -> None:
    app = release_app(api)
    h = {**app.h, "Idempotency-Key": "release-1"}
    first = api.client.post("/releases", json={}, headers=h)
    again = api.client.post("/releases", json={}, headers=h)
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert first.json()["id"] == again.json()["id"]
    assert api.client.get("/releases/list", headers=app.h).json()["total_items"] == 1


def test_openapi_documents_airborne_release_routes(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in (
        "/releases",
        "/releases/{release_id}/ramp",
        "/releases/{release_id}/conclude",
        "/releases/{release_id}/discard",
        CONFIG,
    ):
        assert "post" in paths[path], path
    assert "get" in paths["/releases/list"] and "get" in paths["/releases/{release_id}"]
    assert {"put", "delete"} <= set(paths[f"{D}/{{dimension_name}}"])
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids))
