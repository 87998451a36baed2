"""The shareyourthoughtswith.me API against a real ``python -m control_plane serve`` (issue 17):
keys issued at /admin/api-keys, a published post read by both scopes, 10 concurrent identical
feedback submissions that make one entry, pages that neither skip nor repeat while feedback
arrives from other threads, telemetry, a 429 with Retry-After and the envelope once the
per-address limit is crossed (configured through its FLAGEDGE_ variable), and revocation."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.processes import free_port, process
from bench.telemetry_intake import bootstrap_site

# Generous enough for the flow, low enough to cross in a loop: 40 requests per key and address.
LIMITS = {"FLAGEDGE_API_V1_RATE_PER_ADDRESS": "0.5", "FLAGEDGE_API_V1_BURST_PER_ADDRESS": "40"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_sytwm_api_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["control_plane", "serve", "--data-dir", str(tmp_path), "--port", str(port)]
    with process(args, f"{base}/health", tmp_path / "cp.log", env=LIMITS), httpx.Client(base_url=base, timeout=30) as c:
        site = bootstrap_site(c)
        assert site.submit.startswith("sytwm_sk_") and site.read.startswith("sytwm_rk_")
        for key in (site.submit, site.read):
            posts = c.get("/api/v1/posts", headers={"X-API-Key": key})
            assert posts.status_code == 200 and [p["slug"] for p in posts.json()] == ["default"]

        body = {
            "post_slug": "default",
            "answers": [{"step_id": "tried", "answer": True}, {"step_id": "what_tried", "answer": "the script"}],
            "is_public": True,
            "client_dedup_id": "form-submit-1",
        }
        barrier = threading.Barrier(10)

        def submit(_: int) -> httpx.Response:
            with httpx.Client(base_url=base, timeout=30) as own:
                barrier.wait()
                return own.post("/api/v1/feedback", json=body, headers=_bearer(site.submit))

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(submit, range(10)))
        assert [r.status_code for r in answers] == [201] * 10, [r.text for r in answers]
        assert len({r.json()["id"] for r in answers}) == 1
        assert sorted(r.json()["replayed"] for r in answers) == [False] + [True] * 9

        # Pages while two other clients keep submitting.
        for _ in range(11):
            plain = {k: v for k, v in body.items() if k != "client_dedup_id"}
            assert c.post("/api/v1/feedback", json=plain, headers=_bearer(site.submit)).status_code == 201
        stop = threading.Event()
        arrived: list[str] = []

        def writer() -> None:
            with httpx.Client(base_url=base, timeout=30) as own:
                while not stop.is_set():
                    r = own.post(
                        "/api/v1/feedback", json={"post_slug": "default", "answers": []}, headers=_bearer(site.submit)
                    )
                    if r.status_code == 201:
                        arrived.append(r.json()["id"])
                    stop.wait(0.05)

        threads = [threading.Thread(target=writer) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            pages: list[list[dict[str, Any]]] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
                r = c.get("/api/v1/feedback", params=params, headers=_bearer(site.read))
                assert r.status_code == 200, r.text
                pages.append(r.json()["items"])
                cursor = r.json()["next_cursor"]
                if cursor is None:
                    break
                stop.wait(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        seen = [i["id"] for p in pages for i in p]
        assert len(seen) == len(set(seen))
        new_on_first_page = [i["id"] for i in pages[0] if i["id"] in arrived]
        assert [i for i in seen if i in arrived] == new_on_first_page
        assert len(seen) - len(new_on_first_page) == 12  # the deduplicated entry and the 11 after it
        labelled = next(i for p in pages for i in p if i["answers"])
        assert labelled["answers"][0] == {"step_id": "tried", "step_label": "Did you try it?", "answer": True}

        event = c.post("/api/v1/telemetry", json={"event_type": "page_hit"}, headers={"X-API-Key": site.submit})
        assert event.status_code == 201 and isinstance(event.json()["id"], int)
        assert c.get("/api/v1/telemetry", headers=_bearer(site.read)).json()["items"][0]["id"] == event.json()["id"]

        # Scope: a read key may not submit.
        refused = c.post("/api/v1/telemetry", json={"event_type": "x"}, headers=_bearer(site.read))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"

        # The per-address budget of this key runs out: 429, Retry-After, the envelope.
        limited = None
        for _ in range(60):
            r = c.post("/api/v1/telemetry", json={"event_type": "burst"}, headers=_bearer(site.submit))
            if r.status_code == 429:
                limited = r
                break
            assert r.status_code == 201, r.text
        assert limited is not None, "no 429 within 60 requests"
        assert int(limited.headers["retry-after"]) >= 1
        err = limited.json()["error"]
        assert err["code"] == "rate_limited" and err["request_id"] == limited.headers["x-request-id"]
        # The read key from the same address has its own bucket.
        assert c.get("/api/v1/telemetry", headers=_bearer(site.read)).status_code == 200

        keys = c.get("/admin/api-keys", headers=site.headers).json()
        read_id = next(k["id"] for k in keys if k["scope"] == "read")
        assert c.delete(f"/admin/api-keys/{read_id}", headers=site.headers).status_code == 200
        gone = c.get("/api/v1/posts", headers=_bearer(site.read))
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "unauthorized"

    with sqlite3.connect(tmp_path / "control_plane.sqlite3") as db:
        (dedup,) = db.execute("SELECT COUNT(*) FROM sytwm_feedback WHERE client_dedup_id = 'form-submit-1'").fetchone()
        (stored_keys,) = db.execute("SELECT COUNT(*) FROM api_keys WHERE key_hash = ?", (site.submit,)).fetchone()
    assert dedup == 1
    assert stored_keys == 0  # hashed at rest
