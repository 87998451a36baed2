"""The dashboard's second pass (issue 20) in headless Chromium, through the real control plane
and edge: with the project's approval workflow on (turned on in the page by the owner), a direct
production targeting change is refused (412) and offered as a change request, which the owner
submits to a publisher; the publisher, signed in in the browser, approves and applies it, and the
edge then serves it; the audit page shows the change with its before/after diff. On the way: an
audience edited in place, the features list's staleness filter, a webhook created in the page and
its delivery history, the feature's evaluation counts from the edge's own counters, the
publisher's self-targeting override served by the edge, and a read-only member who sees the
workflow's requests but no control to act on them.

``dashboard/drive_flow.mjs`` drives the page and prints what each step saw; this test checks those
and asks the edge itself. (``test_dashboard.py`` covers the first pass.)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from bench.processes import command, free_port, process
from tests.e2e.sdk_support import lines_of, npm_fixture

DASHBOARD_DIR = Path(__file__).parent / "dashboard"
SHOTS = DASHBOARD_DIR / "screenshots"
PROVIDER = Path(__file__).parent / "oidc_provider"


def drive(script: str, args: list[str]) -> dict[str, dict[str, Any]]:
    """Run a driver script; its steps by name (fails on its "failed" step)."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (apt-get install chromium; ./dev test installs it)"
    steps: dict[str, dict[str, Any]] = {}
    driver = subprocess.Popen(
        ["node", script, *args],
        cwd=DASHBOARD_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CHROMIUM": chromium},
    )
    try:
        lines = lines_of(driver)
        while "done" not in steps and "failed" not in steps:
            line = lines.get(timeout=180)
            step: dict[str, Any] = json.loads(line) if line.startswith("{") else {"step": "?", "line": line}
            assert step["step"] != "failed", json.dumps(step, indent=1)
            steps[step["step"]] = step
        assert driver.wait(30) == 0
    finally:
        driver.kill()
        driver.wait(10)
    return steps


def test_approval_workflow_audit_and_settings(tmp_path: Path) -> None:
    npm_fixture(DASHBOARD_DIR, "playwright-core")
    cp_port, edge_port = free_port(), free_port()
    cp, edge_url = f"http://127.0.0.1:{cp_port}", f"http://127.0.0.1:{edge_port}"
    with (
        process(
            ["control_plane", "serve", "--data-dir", str(tmp_path), "--port", str(cp_port), "--edge-urls", edge_url],
            f"{cp}/health",
            tmp_path / "cp.log",
            # The test's webhook receiver listens on loopback.
            env={"FLAGEDGE_WEBHOOK_ALLOW_PRIVATE": "true"},
        ),
        process(
            [
                "server",
                "serve",
                "--data-dir",
                str(tmp_path),
                "--port",
                str(edge_port),
                "--workers",
                "1",
                "--evaluation-counts-interval",
                "1",
            ],
            f"{edge_url}/health",
            tmp_path / "edge.log",
        ),
        httpx.Client(base_url=edge_url, timeout=10) as edge,
    ):
        steps = drive("drive_flow.mjs", [cp, edge_url, str(SHOTS)])
        client_key = steps["setup"]["clientKey"]

        # No OIDC issuer: no identity-provider button. The webhook's secret is shown once.
        assert steps["settings"] == {"step": "settings", "oidcButtons": 0, "secretShown": True}

        lists = steps["lists"]
        assert lists["audienceValues"] == ["@beta.example", "@acme.com"]
        assert lists["notStale"] == ["one-click"] and lists["stalenessCell"] == "fresh"

        # The direct save was refused by the workflow and became a pending change request that
        # its author cannot approve; nothing changed at the edge meanwhile.
        proposed = steps["proposed"]
        assert proposed["refusedStatus"] == 412
        assert "protected by the project's approval workflow" in proposed["refusal"]
        assert proposed["proposed"]["status"] == "pending" and proposed["proposed"]["ownerSeesApprove"] == 0
        assert "targets[0].audience.filters.filters[0]._audiences[0]" in proposed["proposed"]["diffPaths"]
        assert proposed["servedBefore"] is False

        # Approved and applied by the publisher: the edge serves the beta tester, not a stranger.
        applied = steps["applied"]
        assert applied["served"] is True and applied["stranger"] is False
        assert applied["publisherWorkflowForm"] == 0  # the workflow is an owner's setting
        ask = {"publishableKey": client_key, "context.user.id": "b-2", "context.user.email": "bo@beta.example"}
        r = edge.get("/features/evaluated", params=ask)
        assert r.status_code == 200 and r.json()["features"]["one-click"]["isEnabled"] is True

        # The audit log: the applied change with its diff (no targets before, the beta target
        # after) and the change request's life.
        audit = steps["audit"]
        assert audit["actions"][:4] == [
            "configuration.update",
            "change_request.approved",
            "change_request.submit",
            "change_request.create",
        ]
        diff = {path: (before, after) for path, before, after in audit["diff"]}
        assert diff["targets[0].name"] == ("absent", '"Beta first"')
        assert "targets" not in diff  # the empty list before is said by the rows of the new target
        # Project-wide: the apply itself too, and the settings, webhook and audience changed in the page.
        assert audit["projectActions"][:2] == ["change_request.apply", "configuration.update"]
        assert {"project.settings_protected", "webhook.create", "audience.update"} <= set(audit["projectActions"])

        delivered = steps["delivered"]
        assert {"event": "modifiedTargeting", "signature": True} in delivered["received"]
        assert "delivered" in delivered["delivered"] and "modifiedTargeting" in delivered["delivered"]
        assert delivered["evaluations"] >= 1

        # The publisher's override serves their SDK user id, who is in no target.
        assert steps["self-targeting"]["overridden"] is True

        # A read-only member sees the pending request, and no control to review, apply, cancel,
        # change the workflow or webhooks, save targeting or edit an audience.
        reader = steps["reader"]
        assert reader["readerSeesRequest"] == "pending"
        for page, controls in reader["readerControls"].items():
            assert controls == [], page

        assert steps["done"]["problems"] == []
    shots = sorted(p.name for p in SHOTS.glob("*.png"))
    assert {"11-settings.png", "12-change-request.png", "13-audit.png"} <= set(shots), shots


def test_oidc_sign_in_in_the_browser(tmp_path: Path) -> None:
    """Sign in with the local OpenID provider of test_airborne_oidc (panva/oidc-provider): no
    account yet (said on the page), signup through the provider, a later login, a forged return."""
    npm_fixture(DASHBOARD_DIR, "playwright-core")
    npm_fixture(PROVIDER, "oidc-provider")
    op_port, cp_port = free_port(), free_port()
    issuer, cp = f"http://127.0.0.1:{op_port}", f"http://127.0.0.1:{cp_port}"
    redirect = f"{cp}/dashboard/"  # the dashboard finishes the login from ?code=…&state=…
    secret = "s3cret-" + secrets.token_hex(16)
    with (
        command(
            ["node", "provider.mjs"],
            f"{issuer}/.well-known/openid-configuration",
            tmp_path / "provider.log",
            env={
                "PORT": str(op_port),
                "CLIENT_ID": "flagedge-dashboard",
                "CLIENT_SECRET": secret,
                "REDIRECT_URI": redirect,
            },
            cwd=PROVIDER,
        ),
        process(
            ["control_plane", "serve", "--data-dir", str(tmp_path), "--port", str(cp_port)],
            f"{cp}/health",
            tmp_path / "cp.log",
            env={
                "FLAGEDGE_OIDC_ISSUER": issuer,
                "FLAGEDGE_OIDC_CLIENT_ID": "flagedge-dashboard",
                "FLAGEDGE_OIDC_CLIENT_SECRET": secret,
                "FLAGEDGE_OIDC_REDIRECT_URL": redirect,
                "FLAGEDGE_OIDC_SIGNUP": "true",
            },
        ),
    ):
        steps = drive("drive_oidc.mjs", [cp, str(SHOTS)])
    oidc = steps["oidc"]
    assert oidc["providerUrl"].startswith(f"{issuer}/")
    assert "no account is linked to this identity" in oidc["noAccount"]
    assert oidc["afterSignup"] == {"url": f"{cp}/dashboard/#/", "session": True}
    assert oidc["me"] == 200
    assert "not started from this tab" in oidc["forged"]
    assert steps["done"]["problems"] == []
