"""The edge's one route table (server/routes.py): the Starlette routes, the hot path, the load
shedder's exemptions, the CORS headers and the error shape of a path all derive from it."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

from server.app import create_app
from server.errors import AIRBORNE, ENVELOPE, OFREP
from server.routes import CORS_ALLOW_HEADERS, HOT_SHAPES, NEVER_SHED, ROUTES, shape_for
from server.settings import EdgeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SERVER = Path(__file__).resolve().parents[2] / "server"


def test_never_shed_are_the_probes_and_both_streams() -> None:
    assert {"/health", "/ready", "/metrics", "/features/stream", "/ofrep/v1/stream"} == NEVER_SHED


def test_the_hot_path_serves_the_polling_routes() -> None:
    assert HOT_SHAPES == {"/features/evaluated": ENVELOPE, "/features/enabled": ENVELOPE}


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


def test_the_app_has_exactly_the_routes_of_the_table(tmp_path: Path) -> None:
    app = create_app(EdgeSettings(data_dir=tmp_path))
    assert [r.path for r in app.routes] == [api.path for api in ROUTES]  # type: ignore[attr-defined]


def test_cors_preflight_allows_the_reflag_sdk_version_header(tmp_path: Path) -> None:
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path))) as client:
        pre = client.options(
            "/features/events",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,reflag-sdk-version",
            },
        )
        assert pre.status_code == 200


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
    for path in SERVER.glob("*.py"):
        if path.name in {"app.py", "__main__.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "server.app", path.name
