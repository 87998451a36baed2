"""The real ``@reflag/browser-sdk`` in headless Chromium, in a page served from another origin
than the edge (issue 13): it reads its flags, its track, feedback, user, company and check calls
pass CORS and end up stored by the control plane, and it hears of an admin change over
``/sse/client`` (live updates)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.processes import set_flag
from tests.e2e.sdk_support import lines_of, npm_fixture, running_flagedge

BROWSER_DIR = Path(__file__).parent / "reflag_browser"
FLAG = "browser-flag"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_origin() -> Iterator[str]:
    """A static server for the fixture's page and the SDK's bundle: the page's origin, another
    port than the edge's."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(BROWSER_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def stored_events(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT type, key_kind, user_id, company_id, name, payload FROM events").fetchall()
    return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]


def wait_for_events(database: Path, expected: dict[str, int], timeout: float = 30) -> list[dict[str, Any]]:
    """The stored events once each type in ``expected`` has at least that many."""
    deadline = time.monotonic() + timeout
    while True:
        events = stored_events(database) if database.exists() else []
        counts = {kind: sum(e["type"] == kind for e in events) for kind in expected}
        if all(counts[kind] >= n for kind, n in expected.items()):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"stored events after {timeout:.0f} s: {counts}, wanted {expected}")
        time.sleep(0.1)


def test_browser_sdk_from_another_origin(tmp_path: Path, page_origin: str) -> None:
    npm_fixture(BROWSER_DIR, "playwright-core")
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (apt-get install chromium; ./dev test installs it)"
    with running_flagedge(tmp_path, [FLAG, "other-flag"]) as fe:
        driver = subprocess.Popen(
            ["node", "drive.mjs", f"{page_origin}/page.html", fe.edge, fe.keys["client"], FLAG],
            cwd=BROWSER_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "CHROMIUM": chromium},
        )
        try:
            lines = lines_of(driver)

            def step(name: str, timeout: float = 60) -> dict[str, Any]:
                line = lines.get(timeout=timeout)
                result: dict[str, Any] = json.loads(line) if line.startswith("{") else {"step": "?", "line": line}
                assert result["step"] == name, result
                return result

            ready = step("ready")
            assert ready["origin"] == page_origin and page_origin != fe.edge
            assert ready["flags"] == {FLAG: True, "other-flag": True} and ready["enabled"] is True
            assert (ready["track"], ready["feedback"], ready["bulk"]) == (200, 200, 200), ready

            started = time.monotonic()
            set_flag(fe.admin, fe.auth, FLAG, False)
            live = step("live", 20)
            latency = time.monotonic() - started
            assert live["enabled"] is False

            done = step("done")
            assert done["problems"] == [], done["problems"]
            answers = done["edgeAnswers"]
            assert "GET /sse/client 200" in answers and all(a.endswith(" 200") for a in answers), answers
            assert driver.wait(30) == 0
        finally:
            driver.kill()
            driver.wait(10)

        events = wait_for_events(
            tmp_path / "control_plane.sqlite3",
            {"user": 1, "company": 1, "event": 1, "feedback": 1, "feature-flag-event": 1},
        )
    assert {e["key_kind"] for e in events} == {"client"}
    by_type = {e["type"]: e for e in events}
    assert by_type["user"]["user_id"] == "u-browser"
    assert by_type["user"]["payload"]["attributes"] == {"name": "Ada", "plan": "pro"}
    assert by_type["company"]["company_id"] == "c-browser"
    assert by_type["company"]["payload"]["attributes"] == {"seats": 12}
    assert (by_type["event"]["name"], by_type["event"]["user_id"]) == ("clicked-buy", "u-browser")
    assert by_type["event"]["payload"]["attributes"] == {"amount": 3}
    feedback = by_type["feedback"]["payload"]
    assert (feedback["key"], feedback["score"], feedback["comment"]) == (FLAG, 4.5, "almost perfect")
    check = by_type["feature-flag-event"]
    assert (check["name"], check["payload"]["action"], check["payload"]["evalResult"]) == (
        FLAG,
        "check-is-enabled",
        True,
    )
    print(f"browser SDK: {len(events)} events stored; live update seen {latency * 1000:.0f} ms after the admin change")
