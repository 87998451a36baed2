"""Contract tests of the Airborne file routes; the role and other-organisation checks and the
OpenAPI check also cover the package routes."""

from __future__ import annotations

from typing import Any

from tests.control_plane.airborne_support import make_app
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.airborne.support import fields

FILE_KEYS = {"id", "file_path", "url", "version", "tag", "size", "checksum", "metadata", "status", "created_at"}


SHA = "AB" * 32


def _without_request_id(r: Any) -> dict[str, Any]:
    err = dict(r.json())
    err.pop("request_id")
    return err


def test_create_file_contract(api: Api) -> None:
    app = make_app(api)
    r = api.client.post(
        "/file",
        json={
            "file_path": "js/main.jsa",
            "url": "https://cdn.example.com/main.jsa",
            "tag": "latest",
            "metadata": {"build": 7},
        },
        headers=app.h,
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == FILE_KEYS
    assert body["id"] == "js/main.jsa@version:1"
    assert (body["version"], body["tag"], body["size"], body["checksum"]) == (1, "latest", 0, "")
    assert body["status"] == "pending" and body["metadata"] == {"build": 7}
    assert body["created_at"].endswith("Z")
    ready = app.file("js/vendor.jsa", size=1234, checksum=SHA)
    assert ready["status"] == "ready" and ready["size"] == 1234 and ready["checksum"] == SHA.lower()
    assert [a["target"] for a in app.audit("file.create")] == [
        "file:js/main.jsa@version:1",
        "file:js/vendor.jsa@version:1",
    ]


def test_create_file_validation(api: Api) -> None:
    app = make_app(api)
    good = {"file_path": "a.js", "url": "https://x.example/a.js", "tag": "latest"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "size": 10}, "size and checksum"),
        ({**good, "checksum": SHA}, "size and checksum"),
        ({**good, "size": 10, "checksum": "xyz"}, "checksum"),
        ({**good, "size": 0, "checksum": SHA}, "size"),
        ({**good, "url": "ftp://x/a.js"}, "url"),
        ({**good, "tag": "bad tag"}, "tag"),
        ({**good, "file_path": "a@version:3"}, "file_path"),
        ({**good, "file_path": " a.js"}, "file_path"),
        ({**good, "file_path": "x" * 1025}, "file_path"),
        ({**good, "unknown": 1}, "unknown"),
        ({"file_path": "a.js", "url": "https://x.example/a.js"}, "tag"),
    ]
    for payload, _ in cases:
        assert_error(api.client.post("/file", json=payload, headers=app.h), 400, "validation_failed")
    r = api.client.post("/file", json={k: v for k, v in good.items() if k != "url"}, headers=app.h)
    assert fields(r) == ["url"]


def test_versions_count_per_path_and_tags_are_unique(api: Api) -> None:
    app = make_app(api)
    v1 = app.file("main.js", tag="v1", url="https://cdn.example.com/1/main.js")
    v2 = app.file("main.js", tag="v2", url="https://cdn.example.com/2/main.js")
    other = app.file("other.js", tag="v1")
    assert (v1["version"], v2["version"], other["version"]) == (1, 2, 1)
    same = app.file("main.js", tag="v1", url="https://cdn.example.com/1/main.js")
    assert same == v1
    clash = api.client.post(
        "/file", json={"file_path": "main.js", "url": "https://elsewhere.example/main.js", "tag": "v1"}, headers=app.h
    )
    assert_error(clash, 409, "conflict")


def test_get_file_by_version_tag_and_bare_path(api: Api) -> None:
    app = make_app(api)
    app.file("assets/logo.png", tag="stable", url="https://cdn.example.com/old.png")
    app.file("assets/logo.png", tag="latest", url="https://cdn.example.com/new.png")

    def get(key: str) -> Any:
        return api.client.get("/file", params={"file_key": key}, headers=app.h)

    assert get("assets/logo.png@version:1").json()["url"] == "https://cdn.example.com/old.png"
    assert get("assets/logo.png@tag:stable").json()["version"] == 1
    assert get("assets/logo.png@tag:latest").json()["version"] == 2
    assert get("assets/logo.png").json()["version"] == 2  # a bare path means @tag:latest
    assert_error(get("assets/logo.png@version:3"), 404, "not_found")
    assert_error(get("assets/logo.png@tag:beta"), 404, "not_found")
    assert_error(get("missing.png@version:1"), 404, "not_found")
    bad = get("assets/logo.png@version:x")
    assert_error(bad, 400, "validation_failed")
    assert fields(bad) == ["query.file_key"]
    assert_error(api.client.get("/file", headers=app.h), 400, "validation_failed")


def test_list_files_search_and_pagination(api: Api) -> None:
    app = make_app(api)
    for i in range(5):
        app.file(f"img/{i}.png", url=f"https://cdn.example.com/IMG{i}.png")
    app.file("js/app.js")
    listed = api.client.get("/file/list", headers=app.h).json()
    assert set(listed) == {"files", "total", "page", "per_page"}
    assert listed["total"] == 6 and listed["page"] == 1 and listed["per_page"] == 50
    assert listed["files"][0]["file_path"] == "js/app.js"  # newest first
    assert set(listed["files"][0]) == FILE_KEYS
    page2 = api.client.get("/file/list", params={"page": 2, "per_page": 4}, headers=app.h).json()
    assert (page2["total"], page2["page"], page2["per_page"], len(page2["files"])) == (6, 2, 4, 2)
    window = api.client.get("/file/list", params={"offset": 1, "limit": 2}, headers=app.h).json()
    assert [f["file_path"] for f in window["files"]] == ["img/4.png", "img/3.png"]
    assert (window["page"], window["per_page"]) == (1, 2)
    search = api.client.get("/file/list", params={"search": "img"}, headers=app.h).json()
    assert search["total"] == 5  # path or URL, case-insensitive
    assert api.client.get("/file/list", params={"search": "IMG3"}, headers=app.h).json()["total"] == 1
    clamped = api.client.get("/file/list", params={"per_page": 1000}, headers=app.h).json()
    assert clamped["per_page"] == 200
    assert_error(api.client.get("/file/list", params={"page": 0}, headers=app.h), 400, "validation_failed")
    assert_error(api.client.get("/file/list", params={"per_page": "x"}, headers=app.h), 400, "validation_failed")


def test_retag_file(api: Api) -> None:
    app = make_app(api)
    app.file("bundle/index.js", tag="v1", url="https://cdn.example.com/1.js")
    app.file("bundle/index.js", tag="v2", url="https://cdn.example.com/2.js")
    r = api.client.patch("/file/bundle/index.js@version:1", json={"tag": "stable"}, headers=app.h)
    assert r.status_code == 200
    assert set(r.json()) == FILE_KEYS and r.json()["tag"] == "stable" and r.json()["version"] == 1
    by_tag = api.client.get("/file", params={"file_key": "bundle/index.js@tag:stable"}, headers=app.h)
    assert by_tag.json()["version"] == 1
    r = api.client.patch("/file/bundle/index.js@tag:stable", json={"tag": "old"}, headers=app.h)
    assert r.json()["tag"] == "old"
    assert_error(api.client.patch("/file/bundle/index.js@tag:old", json={"tag": "v2"}, headers=app.h), 409, "conflict")
    same = api.client.patch("/file/bundle/index.js@tag:v2", json={"tag": "v2"}, headers=app.h)
    assert same.status_code == 200
    assert_error(
        api.client.patch("/file/bundle/index.js@version:9", json={"tag": "x"}, headers=app.h), 404, "not_found"
    )
    assert_error(
        api.client.patch("/file/bundle/index.js@version:1", json={"tag": ""}, headers=app.h), 400, "validation_failed"
    )
    assert_error(api.client.patch("/file/bundle/index.js@version:1", json={}, headers=app.h), 400, "validation_failed")
    assert next(a["details"] for a in app.audit("file.retag")) == '{"from":"v1","to":"stable"}'


def test_bulk_create_and_skip_duplicates(api: Api) -> None:
    app = make_app(api)
    app.file("a.js")
    files = [
        {"file_path": "a.js", "url": "https://cdn.example.com/a2.js", "tag": "latest"},
        {"file_path": "b.js", "url": "https://cdn.example.com/b.js", "tag": "latest"},
        {"file_path": "b.js", "url": "https://cdn.example.com/b.js", "tag": "latest"},
        {"file_path": "a.js", "url": "https://cdn.example.com/a2.js", "tag": "next", "size": 5, "checksum": SHA},
    ]
    r = api.client.post("/file/bulk", json={"files": files, "skip_duplicates": True}, headers=app.h)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"created_files", "skipped_files", "total_created", "total_skipped"}
    assert [f["id"] for f in body["created_files"]] == ["b.js@version:1", "a.js@version:2"]
    assert body["created_files"][1]["status"] == "ready"
    assert body["skipped_files"] == ["a.js", "b.js"]
    assert (body["total_created"], body["total_skipped"]) == (2, 2)

    strict = [{"file_path": "c.js", "url": "https://cdn.example.com/c.js", "tag": "latest"}, files[0]]
    fail = api.client.post("/file/bulk", json={"files": strict, "skip_duplicates": False}, headers=app.h)
    assert_error(fail, 409, "conflict")
    assert fields(fail) == ["files[1]"]
    missing_c = api.client.get("/file", params={"file_key": "c.js"}, headers=app.h)
    assert_error(missing_c, 404, "not_found")  # the whole bulk rolled back
    assert_error(api.client.post("/file/bulk", json={"files": files}, headers=app.h), 400, "validation_failed")
    assert_error(
        api.client.post("/file/bulk", json={"files": [], "skip_duplicates": True}, headers=app.h),
        400,
        "validation_failed",
    )
    bad_item = api.client.post(
        "/file/bulk", json={"files": [{"file_path": "d.js", "tag": "x"}], "skip_duplicates": True}, headers=app.h
    )
    assert fields(bad_item) == ["files.0.url"]


def test_roles_read_cannot_write(api: Api) -> None:
    app = make_app(api)
    app.file("a.js")
    reader, writer = api.signup(), api.signup()
    api.member(app.owner, app.organisation, reader, "read")
    api.member(app.owner, app.organisation, writer, "write")
    payload = {"file_path": "b.js", "url": "https://cdn.example.com/b.js", "tag": "latest"}
    assert_error(api.client.post("/file", json=payload, headers=app.headers(reader)), 403, "forbidden")
    assert_error(
        api.client.post("/file/bulk", json={"files": [payload], "skip_duplicates": True}, headers=app.headers(reader)),
        403,
        "forbidden",
    )
    assert_error(
        api.client.patch("/file/a.js@version:1", json={"tag": "x"}, headers=app.headers(reader)), 403, "forbidden"
    )
    assert_error(
        api.client.post("/packages", json={"index": "a.js", "tag": "t", "files": []}, headers=app.headers(reader)),
        403,
        "forbidden",
    )
    assert api.client.get("/file", params={"file_key": "a.js"}, headers=app.headers(reader)).status_code == 200
    assert api.client.get("/file/list", headers=app.headers(reader)).status_code == 200
    assert api.client.get("/packages/list", headers=app.headers(reader)).status_code == 200
    assert api.client.post("/file", json=payload, headers=app.headers(writer)).status_code == 200
    key = api.api_key(app.owner, app.organisation, "read")
    with_key = {"X-API-Key": key, "x-organisation": app.organisation, "x-application": app.application}
    assert api.client.get("/file/list", headers=with_key).status_code == 200
    assert_error(api.client.post("/file", json={**payload, "file_path": "c.js"}, headers=with_key), 403, "forbidden")


def test_other_organisation_gets_404_like_a_missing_application(api: Api) -> None:
    app = make_app(api)
    app.file("a.js")
    app.package("a.js", [])
    stranger = api.signup()
    api.organisation(stranger, "globex")
    api.application(stranger, "globex", "shop")
    theirs = app.headers(stranger)
    missing = {**app.h, "x-application": "nope"}
    for method, path, kwargs in [
        ("GET", "/file", {"params": {"file_key": "a.js"}}),
        ("GET", "/file/list", {}),
        ("POST", "/file", {"json": {"file_path": "b.js", "url": "https://cdn.example.com/b", "tag": "latest"}}),
        ("PATCH", "/file/a.js@version:1", {"json": {"tag": "x"}}),
        ("GET", "/packages", {"params": {"package_key": "version:1"}}),
        ("GET", "/packages/list", {}),
    ]:
        foreign = api.client.request(method, path, headers=theirs, **kwargs)
        absent = api.client.request(method, path, headers=missing, **kwargs)
        assert_error(foreign, 404, "not_found")
        assert _without_request_id(foreign) == _without_request_id(absent)
    # their own application of the same name is separate
    assert api.client.get("/file/list", headers=stranger.org("globex", "shop")).json()["total"] == 0
    assert_error(api.client.get("/file/list", headers=app.owner.org("acme")), 400, "validation_failed")
    assert_error(api.client.get("/file/list"), 401, "unauthorized")


def test_openapi_documents_airborne_file_routes(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"post", "get"} <= set(paths["/file"])
    assert "patch" in paths["/file/{file_key}"]
    assert "post" in paths["/file/bulk"] and "get" in paths["/file/list"]
    assert {"post", "get"} <= set(paths["/packages"]) and "get" in paths["/packages/list"]
