"""DevCycle routes answer errors in DevCycle's (NestJS) shape, DESIGN.md 5b: ``statusCode``,
``message`` (a list of strings for validation errors), ``error`` (the reason phrase), plus our
``details`` and ``request_id``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import BOOL_FEATURE, Project, project


def test_validation_error_lists_messages(api: Api) -> None:
    p = project(api)
    r = p.post("/environments", {"name": "Dev", "key": "BAD KEY", "type": "development"})
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"statusCode", "message", "error", "details", "request_id"}
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    assert isinstance(body["message"], list) and all(isinstance(m, str) for m in body["message"])
    assert any(m.startswith("key: ") for m in body["message"]), body
    assert [d["field"] for d in body["details"]] == ["key"]
    assert body["request_id"] == r.headers["x-request-id"]


def test_not_found_and_conflict_messages_are_strings(api: Api) -> None:
    p = project(api)
    r = p.get("/environments/nope")
    assert r.status_code == 404
    assert r.json()["statusCode"] == 404 and r.json()["error"] == "Not Found"
    assert isinstance(r.json()["message"], str) and r.json()["message"]
    r = p.post("/environments", {"name": "Dev", "key": "development", "type": "development"})
    assert (r.status_code, r.json()["error"], r.json()["statusCode"]) == (409, "Conflict", 409)


def test_unauthenticated_devcycle_route(api: Api) -> None:
    r = api.client.get("/v1/projects", headers={"x-request-id": "abc123abc123"})
    assert r.status_code == 401
    assert r.json() == {
        "statusCode": 401,
        "message": r.json()["message"],
        "error": "Unauthorized",
        "details": [],
        "request_id": "abc123abc123",
    }


def test_openapi_documents_the_devcycle_shape(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    op = doc["paths"]["/v1/projects/{project}/environments"]["post"]
    assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DevCycleError"
    }
    assert "statusCode" in doc["components"]["schemas"]["DevCycleError"]["properties"]


# One bad request and one missing resource per route family of the workflow and self-targeting
# work (settings, webhooks, change requests, metrics, overrides and user profile): each answers
# in DevCycle's shape, as the rest of the DevCycle API does.
FAMILIES: dict[str, tuple[tuple[str, str, Any], tuple[str, str]]] = {
    "settings": (("PATCH", "/settings", {"settings": {"nope": 1}}), ("PATCH", "/v1/projects/nope/settings")),
    "protected settings": (
        ("PATCH", "/settings/protected", {"settings": {"staleness": "x"}}),
        ("PATCH", "/v1/projects/nope/settings/protected"),
    ),
    "webhooks": (("POST", "/webhooks", {"name": ""}), ("GET", "/webhooks/0123456789abcdef01234567")),
    "change requests": (
        ("POST", "/change-requests", {"path": "/x", "method": "PUT", "body": {}}),
        ("GET", "/change-requests/0123456789abcdef01234567"),
    ),
    "metrics": (("POST", "/metrics", {"name": "M", "type": "median"}), ("GET", "/metrics/nope")),
    "overrides": (
        ("PUT", "/features/new-dash/overrides/current", {"environment": "development"}),
        ("GET", "/features/nope/overrides/current"),
    ),
    "user profile": (
        ("PATCH", "/userProfile/current", {"dvcUserId": 3}),
        ("GET", "/v1/projects/nope/userProfile/current"),
    ),
}


def _url(p: Project, path: str) -> str:
    if path.startswith("/v1/"):
        return path
    if path.startswith("/change-requests"):
        return "/v2/projects/app/features/new-dash" + path
    return p.url + path


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_answers_in_devcycle_shape(api: Api, family: str) -> None:
    p = project(api)
    p.feature(BOOL_FEATURE)
    (method, path, body), (missing_method, missing_path) = FAMILIES[family]
    r = api.client.request(method, _url(p, path), json=body, headers=p.h)
    assert r.status_code == 400, r.text
    bad = r.json()
    assert set(bad) == {"statusCode", "message", "error", "details", "request_id"}, bad
    assert bad["statusCode"] == 400 and bad["error"] == "Bad Request"
    assert isinstance(bad["message"], list) and bad["message"] and all(isinstance(m, str) for m in bad["message"])
    assert bad["details"] and bad["request_id"] == r.headers["x-request-id"]
    # A body every 404 path takes (the settings routes check it first); GET ignores it.
    r = api.client.request(missing_method, _url(p, missing_path), json={"settings": {}}, headers=p.h)
    assert r.status_code == 404, r.text
    assert r.json()["statusCode"] == 404 and r.json()["error"] == "Not Found"
    assert isinstance(r.json()["message"], str) and r.json()["message"]
