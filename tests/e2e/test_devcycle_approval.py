"""The approval workflow over real processes (issue 18 acceptance): with the project's
``featureApprovalWorkflow`` on, a direct change of the production targeting is refused (412) and
the edge keeps serving the old one; the same change proposed as a change request, submitted,
approved by a publisher and applied is then served by the edge."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bench.processes import on_rule
from tests.e2e.sdk_support import running_flagedge

CONFIG_PATH = "/v1/projects/shop/features/beta/configurations?environment=prod"
CR = "/v2/projects/shop/features/beta/change-requests"


def _member(admin: httpx.Client, owner: dict[str, str], name: str, access: str) -> tuple[dict[str, str], str]:
    """A new user ``name`` with ``access`` in acme: their headers and user id."""
    r = admin.post(
        "/users/create",
        json={"name": name, "password": "correct-horse", "first_name": "A", "last_name": "B", "email": f"{name}@x.io"},
    )
    assert r.status_code == 200, r.text
    added = admin.post("/organisation/user/create", json={"user": f"{name}@x.io", "access": access}, headers=owner)
    assert added.status_code == 200, added.text
    token = r.json()["user_token"]["access_token"]
    return {"Authorization": f"Bearer {token}", "x-organisation": "acme"}, r.json()["user_id"]


def _served(edge: str, key: str) -> bool:
    r = httpx.get(f"{edge}/features/evaluated", params={"publishableKey": key})
    assert r.status_code == 200, r.text
    return bool(r.json()["features"]["beta"]["isEnabled"])


def _eventually_served(edge: str, key: str, expected: bool, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _served(edge, key) != expected:
        assert time.monotonic() < deadline, f"the edge never served beta={expected}"
        time.sleep(0.2)


def test_direct_production_change_refused_then_applied_after_review(tmp_path: Path) -> None:
    with running_flagedge(tmp_path, ["beta"]) as fe:
        admin, owner, client_key = fe.admin, fe.auth, fe.keys["client"]
        dev, dev_id = _member(admin, owner, "dev", "write")
        lead, lead_id = _member(admin, owner, "lead", "admin")
        _eventually_served(fe.edge, client_key, True)

        workflow = {"featureApprovalWorkflow": {"enabled": True, "allowPublisherBypass": False, "defaultReviewers": []}}
        # Protected settings are the owner's: a publisher is refused, on both settings routes.
        assert (
            admin.patch("/v1/projects/shop/settings/protected", json={"settings": workflow}, headers=lead).status_code
            == 403
        )
        assert admin.patch("/v1/projects/shop", json={"settings": workflow}, headers=lead).status_code == 403
        r = admin.patch("/v1/projects/shop/settings/protected", json={"settings": workflow}, headers=owner)
        assert r.status_code == 200, r.text
        assert r.json()["settings"]["featureApprovalWorkflow"]["enabled"] is True

        # A direct write of production targeting is refused, by a writer and by a publisher alike.
        for who in (dev, lead):
            r = admin.patch(CONFIG_PATH, json=on_rule(False), headers=who)
            assert r.status_code == 412, r.text
            assert "approval" in r.text
        _eventually_served(fe.edge, client_key, True)

        created = admin.post(CR, json={"path": CONFIG_PATH, "method": "PATCH", "body": on_rule(False)}, headers=dev)
        assert created.status_code == 201, created.text
        cr: dict[str, Any] = created.json()
        assert (cr["status"], cr["operation"], cr["_createdBy"]) == ("draft", "featureUpdate", dev_id)
        url = f"{CR}/{cr['_id']}"
        # Not approved yet: apply is refused.
        assert (
            admin.patch(f"{url}/apply", json={"description": "go", "action": "applied"}, headers=dev).status_code == 409
        )

        r = admin.patch(f"{url}/submit", json={"description": "turn beta off", "reviewers": [lead_id]}, headers=dev)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["reviewers"]) == ("pending", {"users": [lead_id]})
        # A writer is not an allowed reviewer, nor is the author.
        review = {"action": "approved", "comment": "ok"}
        assert admin.patch(f"{url}/review", json=review, headers=dev).status_code == 403
        r = admin.patch(f"{url}/review", json=review, headers=lead)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved"
        assert r.json()["reviews"][0]["_createdBy"] == lead_id
        _eventually_served(fe.edge, client_key, True)  # approved is not applied

        r = admin.patch(f"{url}/apply", json={"description": "go", "action": "applied"}, headers=dev)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "applied"
        _eventually_served(fe.edge, client_key, False)

        latest = admin.get(f"{CR}/latest", headers=dev)
        assert (latest.status_code, latest.json()["_id"], latest.json()["status"]) == (200, cr["_id"], "applied")
        listed = admin.get("/v2/projects/shop/change-requests", params={"reviewer": lead_id}, headers=dev).json()
        assert [(c["_id"], c["feature"]["key"]) for c in listed] == [(cr["_id"], "beta")]
        assert admin.get("/v2/projects/shop/change-requests", params={"status": "pending"}, headers=dev).json() == []
