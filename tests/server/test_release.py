"""``GET /release/{organisation}/{application}`` on the edge, over data the real control plane published.

Every test builds its Airborne application through the control-plane API (in-process, writing the
LMDB snapshot on a temp dir) and queries the edge app reading that snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import evaluator
from contract import airborne_release as release
from contract.airborne_release import ReleaseCache, compile_cohort, compile_release, parse_dimensions
from tests.control_plane.airborne_support import App, make_app
from tests.control_plane.conftest import assert_error
from tests.server.stack import Stack, stack

D = "/organisations/applications/dimension"
URL = "/release/acme/shop"
SERVE_KEYS = {"version", "config", "package", "resources"}


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as st:
        yield st


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _base_app(s: Stack) -> App:
    app = make_app(s.api)
    app.file("index.jsa", url="https://cdn.example.com/index.jsa", size=10, checksum="a" * 64)
    app.file("main.js")
    app.file("lazy.js")
    app.file("img/hero.png")
    app.package("index.jsa", ["main.js", "lazy.js"])
    return app


def _release(app: App, which: str, dimensions: dict[str, Any] | None = None, **extra: Any) -> str:
    """A release whose config property ``which`` names it; returns its id (not concluded)."""
    payload: dict[str, Any] = {"config": {"properties": {"which": which}}, **extra}
    if dimensions is not None:
        payload["dimensions"] = dimensions
    rid: str = _ok(app.api.client.post("/releases", json=payload, headers=app.h))["id"]
    return rid


def _post(app: App, path: str, body: dict[str, Any]) -> None:
    _ok(app.api.client.post(path, json=body, headers=app.h))


def _live(app: App, which: str, dimensions: dict[str, Any] | None = None) -> str:
    rid = _release(app, which, dimensions)
    detail = _ok(app.api.client.get(f"/releases/{rid}", headers=app.h))
    if detail["status"] != "CONCLUDED":
        _post(app, f"/releases/{rid}/conclude", {"chosen_variant": "experimental"})
    return rid


def _which(s: Stack, dims: str | None = None, **params: Any) -> str:
    headers = {"x-dimensions": dims} if dims is not None else {}
    body = _ok(s.edge.get(URL, headers=headers, params=params))
    which: str = body["config"]["properties"]["which"]
    return which


def _cohort_app(s: Stack) -> App:
    """Dimensions in position order: platform, app_version, versions (cohort), user_id, segment (cohort)."""
    app = _base_app(s)
    app.dimension("platform", {"type": "string", "enum": ["android", "ios"]})
    app.dimension("app_version")
    app.dimension("versions", dimension_type="cohort", depends_on="app_version")
    app.dimension("user_id")
    app.dimension("segment", dimension_type="cohort", depends_on="user_id")
    for name, value in (("legacy", "1.0.0"), ("modern", "2.0.0"), ("next", "3.0.0")):
        _post(app, f"{D}/versions/cohort/checkpoint", {"name": name, "value": value, "comparator": "semver_ge"})
    _post(app, f"{D}/segment/cohort/group", {"name": "beta", "members": ["u1", "u2"]})
    _post(app, f"{D}/segment/cohort/group", {"name": "vip", "members": ["u2", "u3"]})  # evaluated first
    _live(app, "base")
    _live(app, "modern", {"versions": "modern"})
    _live(app, "legacy", {"versions": "legacy"})
    _live(app, "old", {"versions": "otherwise"})
    _live(app, "android-modern", {"platform": "android", "versions": "modern"})
    _live(app, "beta", {"segment": "beta"})
    _live(app, "vip", {"segment": "vip"})
    s.sync()
    return app


def _verified(path: str, tag: str = "latest") -> dict[str, Any]:
    """The checksum and size a verified file is served with (the made-up content of ``App.file``)."""
    content = f"{path}@{tag}".encode()
    return {"checksum": hashlib.sha256(content).hexdigest(), "size": len(content)}


# ---------------------------------------------------------------------------------------------


def test_response_shape_is_the_seeds(s: Stack) -> None:
    app = _base_app(s)
    _post(app, "/organisations/applications/config/create", {"config": {"version": "2.1.0", "boot_timeout": 3000}})
    _release(app, "base", package={"important": ["main.js@version:1"]}, resources=["img/hero.png"])
    s.sync()
    r = s.edge.get(URL)
    body = _ok(r)
    assert set(body) == SERVE_KEYS
    assert body["version"] == "2.1.0"
    assert body["config"] == {
        "version": 1,
        "boot_timeout": 3000,
        "package_timeout": 4000,
        "properties": {"which": "base"},
    }
    assert body["package"] == {
        "version": 1,
        "index": "https://cdn.example.com/index.jsa",
        "properties": {},
        "important": [{"url": "https://cdn.example.com/main.js", "file_path": "main.js", **_verified("main.js")}],
        "lazy": [{"url": "https://cdn.example.com/lazy.js", "file_path": "lazy.js", **_verified("lazy.js")}],
    }
    assert body["resources"] == [
        {"url": "https://cdn.example.com/img/hero.png", "file_path": "img/hero.png", **_verified("img/hero.png")}
    ]
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-cache" and "x-dimensions" in r.headers["vary"]
    assert r.headers["x-request-id"]


def test_etag_and_if_none_match(s: Stack) -> None:
    app = _base_app(s)
    rid = _release(app, "base")
    s.sync()
    first = s.edge.get(URL)
    etag = first.headers["etag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = s.edge.get(URL, headers={"If-None-Match": sent})
        assert again.status_code == 304, sent
        assert again.content == b"" and again.headers["etag"] == etag and again.headers["x-request-id"]
    assert s.edge.get(URL, headers={"If-None-Match": '"other"'}).status_code == 200

    # An unrelated publish (another application) keeps the content and therefore the ETag.
    s.api.application(app.owner, "acme", "other")
    assert s.sync() > 0
    assert s.edge.get(URL, headers={"If-None-Match": etag}).status_code == 304
    # New content, new ETag.
    second = _release(app, "second")
    _post(app, f"/releases/{second}/conclude", {"chosen_variant": "experimental"})
    s.sync()
    changed = s.edge.get(URL, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["config"]["properties"]["which"] == "second" and rid != second


def test_unknown_organisation_or_application_and_no_release(s: Stack) -> None:
    app = _base_app(s)
    # A dimension is the first write that publishes: with nothing loaded the edge would answer
    # 503 (it cannot tell an unknown application from one it has not loaded yet).
    app.dimension("platform", {"type": "string", "enum": ["android", "ios"]})
    s.sync()
    assert_error(s.edge.get(URL), 404, "not_found")  # the application exists but has no release yet
    _release(app, "android-only", {"platform": "android"})  # the first release goes live at once
    s.sync()
    assert _which(s, '{"platform": "android"}') == "android-only"
    assert_error(s.edge.get(URL, headers={"x-dimensions": '{"platform": "ios"}'}), 404, "not_found")
    assert_error(s.edge.get(URL), 404, "not_found")
    assert_error(s.edge.get("/release/acme/nope"), 404, "not_found")
    assert_error(s.edge.get("/release/nope/shop"), 404, "not_found")
    assert_error(s.edge.get("/release/acme"), 404, "not_found")


def test_cohorts_checkpoints_groups_priority_and_otherwise(s: Stack) -> None:
    app = _cohort_app(s)
    cases = {
        '{"app_version": "2.5.0"}': "modern",
        '{"app_version": "2.0.0"}': "modern",
        '{"app_version": "1.9.9"}': "legacy",
        '{"app_version": "1.0.0"}': "legacy",
        '{"app_version": "0.9.0"}': "old",  # below every checkpoint: otherwise
        '{"app_version": "garbage"}': "old",
        "{}": "old",  # no app_version: the versions cohort is otherwise
        '{"app_version": "3.0.0"}': "base",  # cohort next has no release: the least specific one serves
        '{"app_version": "3.0.0-rc.1"}': "modern",  # a prerelease is below 3.0.0
        '{"app_version": "2.5.0", "platform": "android"}': "android-modern",  # more specific wins
        '{"app_version": "2.5.0", "platform": "ios"}': "modern",
        '{"app_version": "2.5.0", "user_id": "u1"}': "beta",  # segment has a higher position
        '{"app_version": "2.5.0", "user_id": "u2"}': "vip",  # in both groups: vip has priority 0
        '{"app_version": "2.5.0", "user_id": "u3"}': "vip",
        '{"app_version": "2.5.0", "user_id": "u9"}': "modern",  # segment otherwise
        '{"app_version": "0.1.0", "versions": "modern"}': "old",  # cohorts are computed, not taken
    }
    for dims, expected in cases.items():
        assert _which(s, dims) == expected, dims

    _ok(
        s.api.client.put(
            f"{D}/segment/cohort/group/priority", json={"priority_map": {"beta": 0, "vip": 1}}, headers=app.h
        )
    )
    s.sync()
    assert _which(s, '{"app_version": "2.5.0", "user_id": "u2"}') == "beta"
    assert _which(s, '{"app_version": "2.5.0", "user_id": "u3"}') == "vip"


def test_compiled_cohorts_agree_with_the_full_rule(s: Stack) -> None:
    app = _cohort_app(s)
    snapshot = app.snapshot()
    samples = ["u1", "u2", "u3", "u9", "", "2.0.0", "1.0.0", "3.0.0", "0.1", "3.0.0-rc.1", "x", None]
    for entry in snapshot["dimensions"]:
        if entry["dimension_type"] != "cohort":
            continue
        compiled = compile_cohort(entry, evaluator)
        if entry["name"] == "segment":
            assert compiled.members == {"u2": "vip", "u3": "vip", "u1": "beta"} and compiled.residual == "otherwise"
        for value in samples:
            context = {} if value is None else {entry["depends_on"]: value}
            assert compiled.value(context) == evaluator.jsonlogic_apply(entry["rule"], context), (entry["name"], value)
            assert compiled.value(context) == evaluator.jsonlogic_apply(entry["rule"], context)  # memoized


def test_header_forms(s: Stack) -> None:
    _cohort_app(s)
    same = [
        '{"platform": "android", "app_version": "2.5.0"}',
        "platform=android;app_version=2.5.0",
        " platform = android ; app_version=2.5.0 ; ",
        "platform=andr%6Fid;app_version=2.5.0%2Bbuild.7",  # URL-decoded; build metadata is ignored
        "platform=android;app_version=2.5.0+build.7",  # a plus stays a plus
        '{"platform": "android", "app_version": 2.5}',  # numbers compare in their JSON spelling
        '{"platform": "android", "app_version": "2.5.0", "user_id": null}',
    ]
    for dims in same:
        assert _which(s, dims) == "android-modern", dims
    assert _ok(s.edge.get(URL, headers={"x-dimension": "platform=android;app_version=2.5.0"}))["config"][
        "properties"
    ] == {"which": "android-modern"}
    assert _which(s, "") == "old" and _which(s, "  ") == "old"

    malformed = [
        "platform",
        "=android",
        "platform=android;oops",
        '{"platform": ',
        "[1, 2]",
        '{"platform": {"os": "android"}}',
        '{"platform": ["android"]}',
        "a=%FF",
        '{"k": "' + "v" * 9000 + '"}',
        ";".join(f"d{i}=1" for i in range(65)),
        "k" * 65 + "=1",
        "k=" + "v" * 257,
    ]
    for dims in malformed:
        r = s.edge.get(URL, headers={"x-dimensions": dims})
        body = assert_error(r, 400, "validation_failed", shape="airborne")
        assert body["details"][0]["field"].startswith("x-dimensions"), dims
    assert_error(s.edge.get(URL, params={"toss": "t" * 257}), 400, "validation_failed")


def test_parse_dimensions() -> None:
    assert parse_dimensions(None) == {}
    assert parse_dimensions('{"a": true, "b": 1, "c": 1.5, "d": null, "e": "x"}') == {
        "a": "true",
        "b": "1",
        "c": "1.5",
        "e": "x",
    }
    assert parse_dimensions("a=1;a=2;b=%20x%3Dy") == {"a": "2", "b": " x=y"}
    assert parse_dimensions("name=Jos%C3%A9") == {"name": "José"}
    # Header values arrive as latin-1 text: raw UTF-8 bytes are read as UTF-8.
    assert parse_dimensions('{"name": "José"}'.encode().decode("latin-1")) == {"name": "José"}


def _in_set(s: Stack, ids: list[str]) -> set[str]:
    """The ids the edge serves the experiment to (``which`` == ``next``)."""
    got: set[str] = set()
    for i, (status, body) in zip(ids, s.get_many(URL, [f"toss={i}" for i in ids]), strict=True):
        assert status == 200, body
        which = orjson.loads(body)["config"]["properties"]["which"]
        assert which in ("base", "next")
        if which == "next":
            got.add(i)
    return got


def test_ramp_keeps_everyone_in_and_conclude_moves_everyone(s: Stack) -> None:
    app = _base_app(s)
    _live(app, "base")
    rid = _release(app, "next")
    s.sync()
    ids = [f"device-{i}" for i in range(10_000)]
    assert _in_set(s, ids[:200]) == set()  # CREATED: no traffic yet

    _post(app, f"/releases/{rid}/ramp", {"traffic_percentage": 10})
    s.sync()
    at_10 = _in_set(s, ids)
    assert 900 <= len(at_10) <= 1100, len(at_10)
    assert at_10 == {i for i in ids if release.bucket(evaluator, rid, i) < 1000}
    assert _which(s) == "base"  # no identifier: the baseline until 100%
    inside = sorted(at_10)[0]
    assert _which(s, f'{{"toss": "{inside}"}}') == "next"  # the toss dimension buckets like ?toss=
    assert _which(s, f"toss={inside}") == "next"

    _post(app, f"/releases/{rid}/ramp", {"traffic_percentage": 20})
    s.sync()
    at_20 = _in_set(s, ids)
    assert at_10 <= at_20
    assert 1850 <= len(at_20) <= 2150, len(at_20)

    _post(app, f"/releases/{rid}/conclude", {"chosen_variant": f"{rid}-experimental"})
    s.sync()
    assert _in_set(s, ids[:500]) == set(ids[:500])
    assert _which(s) == "next"


def test_full_ramp_and_conclude_with_control(s: Stack) -> None:
    app = _base_app(s)
    _live(app, "base")
    rid = _release(app, "next")
    _post(app, f"/releases/{rid}/ramp", {"traffic_percentage": 50})
    s.sync()
    half = _in_set(s, [f"u{i}" for i in range(400)])
    assert 120 < len(half) < 280
    _post(app, f"/releases/{rid}/ramp", {"traffic_percentage": 100})
    s.sync()
    assert _which(s) == "next"  # 100% reaches clients without an identifier too
    _post(app, f"/releases/{rid}/conclude", {"chosen_variant": "control"})
    s.sync()
    assert _in_set(s, [f"u{i}" for i in range(200)]) == set()
    assert _which(s) == "base"


def test_experiment_on_a_cohort_context(s: Stack) -> None:
    app = _cohort_app(s)
    rid = _release(app, "next", {"versions": "modern"})
    _post(app, f"/releases/{rid}/ramp", {"traffic_percentage": 30})
    s.sync()
    ids = [f"d{i}" for i in range(1000)]
    answers = s.get_many(URL, [f"toss={i}" for i in ids], {"x-dimensions": '{"app_version": "2.2.0"}'})
    served = {i: orjson.loads(body)["config"]["properties"]["which"] for i, (_, body) in zip(ids, answers, strict=True)}
    assert served["d7"] == _which(s, '{"app_version": "2.2.0", "toss": "d7"}')
    assert {i for i, w in served.items() if w == "next"} == {i for i in ids if release.bucket(evaluator, rid, i) < 3000}
    assert set(served.values()) == {"next", "modern"}  # the rest keep the context's baseline
    assert _which(s, '{"app_version": "1.2.0", "toss": "d1"}') == "legacy"  # other contexts are untouched


def test_compiled_once_per_release_value(s: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    original = release.compile_release

    def counting(value: Any, engine: release.Engine) -> Any:
        calls.append(value)
        return original(value, engine)

    monkeypatch.setattr(release, "compile_release", counting)
    app = _base_app(s)
    _live(app, "base")
    s.sync()
    for _ in range(5):
        assert _which(s) == "base"
    assert len(calls) == 1
    s.api.application(app.owner, "acme", "other")  # a new version; this application's value is equal
    s.sync()
    assert _which(s) == "base" and len(calls) == 1
    rid = _release(app, "next")
    _post(app, f"/releases/{rid}/ramp", {"traffic_percentage": 100})
    s.sync()
    assert _which(s) == "next" and _which(s) == "next"
    assert len(calls) == 2


def _value(which: str = "base", **overrides: Any) -> dict[str, Any]:
    content = {
        "config": {"version": "1", "config_number": 1, "boot_timeout": 1, "package_timeout": 1, "properties": {}},
        "package": {"version": 1, "index": {"url": "u", "file_path": "i"}, "important": [], "lazy": []},
        "resources": [],
    }
    content["config"]["properties"] = {"which": which}  # type: ignore[index]
    return {
        "format": 1,
        "dimensions": [],
        "live": [{"id": "r1", "dimensions": {}, "weight": 0, **content}],
        "experiments": [],
        **overrides,
    }


def test_bad_release_data_keeps_the_last_good_version() -> None:
    cache = ReleaseCache(evaluator)
    good = _value()
    first = cache.get("o/a", good, {"o/a": good})
    assert first is not None and first.resolve({}, None) is not None
    broken_values: list[Any] = [
        _value(format=2),
        _value(live=[{"id": "r1"}]),
        _value(dimensions=[{"name": "c", "dimension_type": "cohort", "depends_on": "v", "rule": {"nope": [1]}}]),
        [],
    ]
    for broken in broken_values:
        assert cache.get("o/a", broken, {"o/a": broken}) is first
        assert cache.failed["o/a"].source is broken
    assert cache.get("new/app", _value(format=9), {}) is None
    newer = _value("newer")
    fresh = cache.get("o/a", newer, {"o/a": newer})
    assert fresh is not None and fresh is not first and "o/a" not in cache.failed
    assert compile_release(newer, evaluator).chain[0].served.body == fresh.chain[0].served.body
