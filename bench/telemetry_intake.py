"""Telemetry intake rate of the shareyourthoughtswith.me API: ``POST /api/v1/telemetry``.

Starts a real control plane (pinned to CPU 0, its /api/v1 rate limits off so that the limit
measured is the intake's own), issues a submit key through ``/admin/api-keys`` and drives wrk
(pinned to CPU 1) with one event per request, each with its own session id. Every 201 is an event
committed to SQLite (``synchronous=FULL``); the run checks that the stored rows match the 201s.

    python -m bench.telemetry_intake [--seconds 10] [--connections 16 64]

Prints one JSON object: per connection count, requests/s, latency percentiles, errors and rows
stored, and the same process's ``GET /health`` rate at the first connection count (the ceiling of
this control plane on this machine at that moment: a loaded machine lowers both).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import wrk
from bench.processes import free_port, process

# Off, so the benchmark measures the intake, not the limiter (README: the defaults are 100/s per key).
UNLIMITED = {"FLAGEDGE_API_V1_RATE_PER_KEY": "0", "FLAGEDGE_API_V1_RATE_PER_ADDRESS": "0"}

SCRIPT = r"""
local n = 0
function request()
  n = n + 1
  local body = '{"event_type":"page_hit","post_slug":"default","step_id":"tried","session_id":"s-' .. n ..
    '","path":"/feedback/default","referrer":"https://news.example/post/123","payload":{"experiment":"homepage-A"}}'
  return wrk.format("POST", "/api/v1/telemetry",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %KEY%"}, body)
end
"""


@dataclass(frozen=True)
class Site:
    """An organisation with its owner's dashboard headers and a submit and a read key."""

    headers: dict[str, str]
    submit: str
    read: str


def bootstrap_site(client: httpx.Client, org: str = "acme") -> Site:
    """Through the API: sign up ``ops``, create ``org``, publish post ``default`` (one yes/no step
    ``tried``, one text step ``what_tried``) and issue a submit and a read key."""
    user = client.post(
        "/users/create",
        json={"name": "ops", "password": "correct-horse", "first_name": "O", "last_name": "P", "email": "ops@x.io"},
    )
    assert user.status_code == 200, user.text
    h = {"Authorization": f"Bearer {user.json()['user_token']['access_token']}", "x-organisation": org}
    assert client.post("/organisations/create", json={"name": org}, headers=h).status_code == 200
    steps = [
        {"id": "tried", "label": "Did you try it?", "kind": "yes_no"},
        {"id": "what_tried", "label": "What did you try?", "kind": "text"},
    ]
    post = {"slug": "default", "title": "Quick feedback", "definition": {"steps": steps}}
    assert client.post("/admin/posts", json=post, headers=h).status_code == 201
    assert client.post("/admin/posts/default/publish", json={}, headers=h).status_code == 200
    keys = {}
    for scope in ("submit", "read"):
        r = client.post("/admin/api-keys", json={"name": scope, "scope": scope}, headers=h)
        assert r.status_code == 201, r.text
        keys[scope] = r.json()["key"]
    return Site(h, keys["submit"], keys["read"])


def run(seconds: float, connections: list[int]) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="flagedge-telemetry-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["control_plane", "serve", "--data-dir", str(data), "--port", str(port)]
    results: list[dict[str, Any]] = []
    with process(args, f"{base}/health", data / "cp.log", env=UNLIMITED, cpu=0):
        with httpx.Client(base_url=base, timeout=30) as client:
            site = bootstrap_site(client)
        script = SCRIPT.replace("%KEY%", site.submit)
        health = wrk.run(f"{base}/health", "", connections[0], seconds, threads=1, cpu=1)
        stored = 0
        for c in connections:
            result = wrk.run(f"{base}/api/v1/telemetry", script, c, seconds, threads=1, cpu=1)
            with sqlite3.connect(data / "control_plane.sqlite3") as db:
                (total,) = db.execute("SELECT COUNT(*) FROM sytwm_telemetry").fetchone()
            results.append({**result.as_dict(), "stored": total - stored})
            stored = total
    return {
        "route": "POST /api/v1/telemetry",
        "seconds": seconds,
        "health_rps": health.rps,
        "results": [{**r, "vs_health": round(r["rps"] / health.rps, 3) if health.rps else None} for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry_intake", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk run per connection count")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    ns = parser.parse_args(argv)
    print(json.dumps(run(ns.seconds, ns.connections), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
