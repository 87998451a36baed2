"""The admin dashboard in headless Chromium (issue 20), through the real control plane and edge:
sign in, create a project and a feature, target it to an audience with a 50% rollout and see the
edge's answer change for a matching context, ramp an Airborne release up and down, approve a
feature request and see it on the public board; then a read-only member sees no write control
and a write forged from the page with that member's token is refused (403).

The page is driven by ``dashboard/drive.mjs`` (playwright-core on Debian's chromium), which prints
what each step saw; this test checks those and asks the edge itself. Screenshots of the main pages
go to ``tests/e2e/dashboard/screenshots/`` (gitignored; a few are copied into ``docs/``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from bench.processes import free_port, process
from tests.e2e.sdk_support import lines_of, npm_fixture

DASHBOARD_DIR = Path(__file__).parent / "dashboard"
SHOTS = DASHBOARD_DIR / "screenshots"
FEATURE = "new-checkout"


def edge_enabled(edge: httpx.Client, key: str, user: dict[str, str]) -> bool:
    r = edge.get(
        "/features/evaluated",
        params={"publishableKey": key, "context.user.id": user["id"], "context.user.email": user["email"]},
    )
    assert r.status_code == 200, r.text
    return bool(r.json()["features"].get(FEATURE, {}).get("isEnabled", False))


def test_dashboard_acceptance(tmp_path: Path) -> None:
    npm_fixture(DASHBOARD_DIR, "playwright-core")
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (apt-get install chromium; ./dev test installs it)"
    cp_port, edge_port = free_port(), free_port()
    cp, edge_url = f"http://127.0.0.1:{cp_port}", f"http://127.0.0.1:{edge_port}"
    steps: dict[str, dict[str, Any]] = {}
    with (
        process(
            ["control_plane", "serve", "--data-dir", str(tmp_path), "--port", str(cp_port), "--edge-urls", edge_url],
            f"{cp}/health",
            tmp_path / "cp.log",
        ),
        process(
            ["server", "serve", "--data-dir", str(tmp_path), "--port", str(edge_port), "--workers", "1"],
            f"{edge_url}/health",
            tmp_path / "edge.log",
        ),
        httpx.Client(base_url=edge_url, timeout=10) as edge,
    ):
        driver = subprocess.Popen(
            ["node", "drive.mjs", cp, edge_url, str(SHOTS)],
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
                assert step["step"] != "failed", step
                steps[step["step"]] = step
            assert driver.wait(30) == 0
        finally:
            driver.kill()
            driver.wait(10)

        # Served by the control plane, with a CSP that allows nothing but this origin.
        served = steps["served"]
        assert served["url"] == f"{cp}/dashboard/"
        assert "default-src 'none'" in served["csp"] and "connect-src 'self'" in served["csp"]
        # A wrong password is refused on the page; the session lives in sessionStorage, no cookies.
        signed_in = steps["signed-in"]
        assert "invalid name or password" in signed_in["refused"]
        assert signed_in["sessionStorage"] == ["flagedge.session"] and signed_in["cookies"] == 0

        project = steps["project"]
        client_key = project["clientKey"]
        assert client_key.startswith("client-") and project["snippetHasKey"] and project["snippetHasEdge"]

        # Targeting: off before, on at the edge for a staff member inside the 50% rollout, off for
        # one outside it and for a non-staff context; the try-a-context panel said why.
        targeting = steps["targeting"]
        assert targeting["tags"] == ["release", "active", "checkout", "q4"]
        # The unsaved draft was evaluated (the feature was still off then, as saved).
        assert targeting["draft"] == {
            "draft": True,
            "status": "inactive",
            "explanation": "The feature is off in this environment: every context gets the default (not enabled).",
        }
        assert targeting["before"] is False and targeting["after"] is True
        assert targeting["current"] == "50%"
        inside, outside = targeting["inside"], targeting["outside"]
        assert inside["target"]["name"] == "Staff first" and "inside its rollout of 50%" in inside["explanation"]
        assert "outside its rollout (50% now)" in outside["explanation"]
        assert targeting["outsideAtEdge"] is False
        assert targeting["stranger"] == {
            "explanation": "Not enabled: the context is in no target's audience.",
            "enabled": False,
            "atEdge": False,
        }
        assert edge_enabled(edge, client_key, inside["user"]) is True
        assert edge_enabled(edge, client_key, outside["user"]) is False

        # Airborne: at 100% the android device got the experiment, iOS the live release; ramped
        # down to 20% the release is still in progress.
        airborne = steps["airborne"]
        assert airborne["android"] == {"which": "android-beta"} and airborne["ios"] == {"which": "stable"}
        assert airborne["traffic"] == "20%"
        ios = edge.get("/release/acme/shop", headers={"x-dimensions": "os=ios;toss=device-1"})
        assert ios.status_code == 200 and ios.json()["config"]["properties"] == {"which": "stable"}

        # Releaseo: hidden until approved, then on the public board.
        releaseo = steps["releaseo"]
        assert releaseo["hiddenBefore"] is True and releaseo["onBoard"] is True

        assert int(steps["live"]["published"]) > 0

        # The read-only member: no write control on any page, and the forged writes are refused.
        read_only = steps["read-only"]
        assert read_only["created"] == 200 and read_only["role"] == "read"
        for page, controls in read_only["writeControls"].items():
            assert controls == {"buttons": [], "switches": 0}, page
        assert read_only["forged"]["toggle"] == 403 and read_only["forged"]["create"] == 403
        # The forged toggle is a DevCycle route: refused in DevCycle's error shape (DESIGN.md 5b).
        forged = read_only["forged"]["body"]
        assert forged["statusCode"] == 403 and forged["error"] == "Forbidden", forged
        assert read_only["stillOn"] is True and edge_enabled(edge, client_key, inside["user"]) is True

        assert steps["done"]["problems"] == []
    shots = sorted(p.name for p in SHOTS.glob("*.png"))
    assert {"01-sign-in.png", "04-feature.png", "05-airborne.png", "10-read-only-feature.png"} <= set(shots), shots
