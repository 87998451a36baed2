"""Change requests hold any of the feature PATCHes the workflow guards (v1 and v2 feature PATCH,
status, static configuration, configurations), and the variation and variable routes that change
what a feature serves are refused in a workflow project like a feature PATCH is."""

from __future__ import annotations

from typing import Any

import pytest

from tests.control_plane.conftest import Api, User, assert_error
from tests.control_plane.devcycle_support import BOOL_FEATURE, Project, member, project, target

WORKFLOW = {"featureApprovalWorkflow": {"enabled": True, "allowPublisherBypass": False, "defaultReviewers": []}}
V2 = "/v2/projects/app/features/new-dash"


def _refused(r: Any) -> None:
    """412 in DevCycle's shape, naming the protected environment and the way through."""
    assert r.status_code == 412, r.text
    body = r.json()
    assert (body["statusCode"], body["error"]) == (412, "Precondition Failed"), body
    assert "approval workflow" in body["message"] and body["details"][0]["code"] == "approval_required", body


def _workflow_project(api: Api) -> tuple[Project, User, User]:
    """A project with production serving ``on`` to everyone, the workflow on; a writer and a publisher."""
    p = project(api)
    p.environment("production", "production")
    p.feature(BOOL_FEATURE)
    assert p.configure("new-dash", "production", {"status": "active", "targets": [target()]}).status_code == 200
    assert p.patch("/settings/protected", {"settings": WORKFLOW}).status_code == 200
    return p, member(p, "write"), member(p, "admin")


def _through_review(p: Project, writer: User, publisher: User, path: str, body: Any) -> dict[str, Any]:
    """Propose ``PATCH path`` as the writer, approve it as the publisher, apply it: the applied feature."""
    c = p.api.client
    r = c.post(V2 + "/change-requests", json={"path": path, "method": "PATCH", "body": body}, headers=writer.auth)
    assert r.status_code == 201, r.text
    url = f"{V2}/change-requests/{r.json()['_id']}"
    r = c.patch(url + "/submit", json={"description": "d", "reviewers": [publisher.user_id]}, headers=writer.auth)
    assert r.status_code == 200, r.text
    r = c.patch(url + "/review", json={"action": "approved", "comment": "ok"}, headers=publisher.auth)
    assert r.status_code == 200, r.text
    r = c.patch(url + "/apply", json={"description": "go", "action": "applied"}, headers=writer.auth)
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    feature: dict[str, Any] = p.get("/features/new-dash").json()
    return feature


def test_v2_feature_patch_is_refused_directly_and_applied_through_review(api: Api) -> None:
    p, writer, publisher = _workflow_project(api)
    change = {"variations": [{"key": "on", "name": "On", "variables": {"show-new-dashboard": False}}]}
    _refused(api.client.patch(V2, json=change, headers=writer.auth))
    applied = _through_review(p, writer, publisher, V2, change)
    assert [v["variables"] for v in applied["variations"]] == [{"show-new-dashboard": False}]


def test_v2_status_and_static_configuration_through_review(api: Api) -> None:
    p, writer, publisher = _workflow_project(api)
    complete = {"status": "complete", "staticVariation": "off"}
    _refused(api.client.patch(V2 + "/status", json=complete, headers=writer.auth))
    assert _through_review(p, writer, publisher, V2 + "/status", complete)["status"] == "complete"
    static = {"variables": {"show-new-dashboard": True}}
    url = V2 + "/static-configuration"
    _refused(api.client.patch(url, json=static, headers=writer.auth))
    _through_review(p, writer, publisher, url, static)
    r = api.client.get(url, headers=p.h)
    assert r.status_code == 200 and r.json()["variables"] == {"show-new-dashboard": True}, r.text


def test_a_path_no_write_stands_for_is_refused(api: Api) -> None:
    _p, writer, _ = _workflow_project(api)
    for path in (V2 + "/summary", V2 + "/configurations?environment=production", "/v1/projects/app/variables/x"):
        r = api.client.post(
            V2 + "/change-requests", json={"path": path, "method": "PATCH", "body": {}}, headers=writer.auth
        )
        assert_error(r, 400, "validation_failed")


VARIATION = "/features/new-dash/variations"
SERVED_CHANGES: list[tuple[str, str, Any]] = [
    ("POST", VARIATION, {"key": "third", "name": "Third", "variables": {"show-new-dashboard": True}}),
    ("PATCH", VARIATION + "/off", {"variables": {"show-new-dashboard": True}}),
    ("DELETE", VARIATION + "/off", None),
    ("PATCH", "/variables/show-new-dashboard", {"key": "renamed"}),
    ("PATCH", "/variables/show-new-dashboard/status", {"status": "archived"}),
    ("DELETE", "/variables/show-new-dashboard", None),
]


@pytest.mark.parametrize(("method", "path", "body"), SERVED_CHANGES)
def test_variation_and_variable_writes_are_guarded(api: Api, method: str, path: str, body: Any) -> None:
    p, writer, publisher = _workflow_project(api)
    before = p.get("/features/new-dash").json()
    for who in (writer, publisher):
        r = api.client.request(method, p.url + path, json=body, headers=who.auth)
        _refused(r)
    assert p.get("/features/new-dash").json() == before
    # With the publisher bypass on, a publisher writes directly (a writer still cannot).
    bypass = {"featureApprovalWorkflow": {**WORKFLOW["featureApprovalWorkflow"], "allowPublisherBypass": True}}
    assert p.patch("/settings/protected", {"settings": bypass}).status_code == 200
    _refused(api.client.request(method, p.url + path, json=body, headers=writer.auth))
    r = api.client.request(method, p.url + path, json=body, headers=publisher.auth)
    assert r.status_code in (200, 201, 204), r.text


def test_without_the_workflow_variation_writes_are_direct(api: Api) -> None:
    p = project(api)
    p.environment("production", "production")
    p.feature(BOOL_FEATURE)
    writer = member(p, "write")
    r = api.client.patch(p.url + VARIATION + "/off", json={"name": "Off!"}, headers=writer.auth)
    assert r.status_code == 200, r.text
