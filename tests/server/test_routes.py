"""The edge's one route table (server/routes.py): the Starlette routes, the hot path, the load
shedder's exemptions, the CORS headers and the error shape of a path all derive from it."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from server.app import create_app
from server.errors import AIRBORNE, DEVCYCLE, ENVELOPE, OFREP
from server.routes import CORS_ALLOW_HEADERS, HOT_SHAPES, NEVER_SHED, ROUTES, shape_for
from server.settings import EdgeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SERVER = Path(__file__).resolve().parents[2] / "server"
REFLAG_POSTS = ("/features/events", "/user", "/company", "/event", "/feedback", "/bulk")


def test_never_shed_are_the_probes_and_the_streams() -> None:
    streams = {"/features/stream", "/sse/server", "/sse/client", "/ofrep/v1/stream", "/v1/devcycle/stream/{key_hash}"}
    assert {"/health", "/ready", "/metrics", *streams} == NEVER_SHED


def test_the_hot_path_serves_the_polling_routes_and_ofrep_evaluation() -> None:
    assert HOT_SHAPES == {
        "/features/evaluated": ENVELOPE,
        "/features/enabled": ENVELOPE,
        "/ofrep/v1/evaluate/flags/{key:path}": OFREP,
        "/ofrep/v1/evaluate/flags": OFREP,
        "/v1/sdkConfig": DEVCYCLE,
        "/v1/mobileSDKConfig": DEVCYCLE,
    }


def test_cors_allows_every_header_the_routes_declare() -> None:
    lower = {h.lower() for h in CORS_ALLOW_HEADERS}
    before = {"authorization", "content-type", "if-none-match", "last-event-id", "x-api-key", "x-request-id"}
    assert before | {"x-dimensions", "x-dimension", "reflag-sdk-version"} <= lower
    assert all(h.lower() in lower for api in ROUTES for h in api.cors_headers)
    assert len(lower) == len(CORS_ALLOW_HEADERS)  # no duplicates


def test_error_shape_of_a_path() -> None:
    assert shape_for("/ofrep/v1/evaluate/flags/some/flag") == OFREP
    assert shape_for("/ofrep/v1/stream") == OFREP
    assert shape_for("/features/evaluated") == ENVELOPE
    assert shape_for("/release/acme/app") == AIRBORNE
    assert shape_for("/no/such/route") == ENVELOPE
    assert shape_for("/config/v2/server/server-key.json") == DEVCYCLE
    assert shape_for("/v1/variables/some-variable") == DEVCYCLE
    assert shape_for("/v1/events/batch") == DEVCYCLE


def test_the_app_has_exactly_the_routes_of_the_table(tmp_path: Path) -> None:
    app = create_app(EdgeSettings(data_dir=tmp_path))
    assert [r.path for r in app.routes] == [api.path for api in ROUTES]  # type: ignore[attr-defined]


# What each browser SDK sends that needs a preflight (read from the packages' sources; the route
# table's comment names the versions). The real @reflag/browser-sdk runs in Chromium in
# tests/e2e/test_reflag_browser_sdk.py.
SDK_PREFLIGHTS = [
    # @reflag/browser-sdk: events, user, company, feedback and the bulk queue.
    *(("POST", path, "authorization,content-type,reflag-sdk-version") for path in REFLAG_POSTS),
    # @openfeature/ofrep-web-provider: bulk evaluation with revalidation, key as either header.
    ("POST", "/ofrep/v1/evaluate/flags", "authorization,content-type,if-none-match"),
    ("POST", "/ofrep/v1/evaluate/flags", "content-type,if-none-match,x-api-key"),
    ("POST", "/ofrep/v1/evaluate/flags/some-flag", "authorization,content-type"),
    # EventSource reconnecting to the push streams.
    *(("GET", path, "last-event-id") for path in ("/sse/client", "/features/stream", "/ofrep/v1/stream")),
    # @devcycle/js-client-sdk: Authorization and Content-Type, nothing else.
    ("POST", "/features/events", "authorization,content-type"),
]


@pytest.mark.parametrize(("method", "path", "headers"), SDK_PREFLIGHTS)
def test_cors_preflights_of_the_sdk_routes_succeed(tmp_path: Path, method: str, path: str, headers: str) -> None:
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path))) as client:
        pre = client.options(
            path,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": headers,
            },
        )
        assert pre.status_code == 200, pre.text
        allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
        assert set(headers.split(",")) <= allowed
        assert method in pre.headers["access-control-allow-methods"]


def test_404_and_405_speak_the_shape_of_the_path(tmp_path: Path) -> None:
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path))) as client:
        assert client.get("/nope").json()["error"]["code"] == "not_found"
        assert client.post("/release/acme/app").json()["code"] == "method_not_allowed"
        wrong = client.get("/ofrep/v1/evaluate/flags")
        assert wrong.status_code == 405 and wrong.json() == {
            "errorCode": "GENERAL",
            "errorDetails": "method not allowed; use POST",
        }


def test_no_module_imports_the_wiring() -> None:
    """Only the entry point names server.app: route modules and the service depend on the
    service, never on the wiring (not even for type checking)."""
    for path in SERVER.rglob("*.py"):
        if path.name in {"app.py", "__main__.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "server.app", path.name
