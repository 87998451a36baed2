"""DevCycle routes answer errors in DevCycle's (NestJS) shape, DESIGN.md 5b: ``statusCode``,
``message`` (a list of strings for validation errors), ``error`` (the reason phrase), plus our
``details`` and ``request_id``."""

from __future__ import annotations

from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import project


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
