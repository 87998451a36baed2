"""Releaseo's public reads on the edge, measured with the control plane stopped.

A W1-sized board (the issue's "W1-like sizes": a handful of everything) is loaded through the
control plane's API: 5 categories, 10 approved feature requests with 2 comments each (comments
arrive through the edge's intake and the consumer, as in production), 5 roadmap items (one
internal, one targeted at ``user.plan = pro``) and 3 changelog entries (one targeted). Then the
control plane is **stopped** and wrk drives, against the edge alone (pinned to core 0, wrk on
core 1):

* ``board``: ``GET /sdk/feature-requests?key=`` (the list a widget opens on);
* ``roadmap-anonymous``: ``GET /sdk/roadmap/snapshot?key=`` (no user: the pre-built answer);
* ``roadmap-identified``: the same with a unique ``userId`` and ``context.user.plan`` per request,
  so every request runs the targeted items' audiences through the evaluator;
* ``ceiling``: granian's bare app (``bench.ceiling_app``) for the ratio, as in ``bench.throughput``.

``python -m bench.releaseo [--seconds 5] [--connections 16]`` prints one JSON object. Every
request must answer 200 (wrk counts anything else as an error; load shedding is off, as this
measures capacity); a run with errors exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench import throughput, wrk
from bench.processes import bootstrap_project, free_port, process
from bench.stack import EDGE_CPU, LOAD_CPU
from bench.wrk import lua_string

PRO = {"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}

_PROLOGUE = r"""
local plans = {"free", "starter", "pro", "enterprise"}
local counter = 0
local prefix = %PREFIX%

function setup(thread)
  _G.thread_no = (_G.thread_no or 0) + 1
  thread:set("base", _G.thread_no * 100000000)
end

function init(args)
  base = base or 0
end
"""

_FIXED = r"""
function request()
  return wrk.format("GET", prefix)
end
"""

_IDENTIFIED = r"""
function request()
  counter = counter + 1
  local i = base + counter
  return wrk.format("GET", string.format("%s&userId=u-%d&context.user.plan=%s", prefix, i, plans[i % 4 + 1]))
end
"""


def script(path: str, identified: bool = False) -> str:
    return _PROLOGUE.replace("%PREFIX%", lua_string(path)) + (_IDENTIFIED if identified else _FIXED)


def load_board(admin: httpx.Client, auth: dict[str, str], edge: httpx.Client, key: str) -> None:
    """The W1-sized board, through the admin API and (comments) the edge's intake."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = admin.post(f"/projects/shop/{path}", json=body, headers=auth)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    categories = [post("feature-request-categories", {"name": f"Area {i}"})["id"] for i in range(5)]
    requests = [
        post("feature-requests", {"title": f"Request {i}", "description": "x" * 80, "categoryId": categories[i % 5]})
        for i in range(10)
    ]
    for i in range(5):
        body: dict[str, Any] = {"title": f"Item {i}", "description": "y" * 80}
        if i == 3:
            body["visibility"] = "internal_only"
        if i == 4:
            body |= {"visibility": "audience_targeted", "audience": {"mode": "condition", "filter": PRO}}
        post("roadmap", body)
    for i in range(3):
        body = {"title": f"Release {i}", "body": "z" * 200, "status": "published"}
        if i == 2:
            body["audience"] = {"mode": "condition", "filter": PRO}
        post("changelog", body)
    for request in requests:
        for j in range(2):
            r = edge.post(
                f"/sdk/feature-requests/{request['id']}/comments",
                params={"key": key},
                json={"userId": f"commenter-{j}", "body": "Me too", "authorName": f"User {j}"},
            )
            assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while True:  # the consumer applies the comments and republishes the board
        items = edge.get("/sdk/feature-requests", params={"key": key}).json()["items"]
        if sum(i["commentCount"] for i in items) == 20:
            return
        assert time.monotonic() < deadline, "the comments were never applied"
        time.sleep(0.1)


def run(seconds: float, connections: int) -> dict[str, Any]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flagedge-bench-releaseo-")))
        cp_port, edge_port = free_port(), free_port()
        cp_url, edge_url = f"http://127.0.0.1:{cp_port}", f"http://127.0.0.1:{edge_port}"
        control_plane = ExitStack()
        control_plane.enter_context(
            process(
                ["control_plane", "serve", "--data-dir", str(tmp), "--port", str(cp_port)],
                f"{cp_url}/health",
                tmp / "control_plane.log",
                cpu=LOAD_CPU,
            )
        )
        with control_plane, httpx.Client(base_url=cp_url, timeout=30) as admin:
            auth, _ = bootstrap_project(admin)
            r = admin.put("/projects/shop/widget-config", json={"settings": {"theme": "dark"}}, headers=auth)
            key = r.json()["projectKey"]
            stack.enter_context(
                process(
                    ["server", "serve", "--data-dir", str(tmp), "--port", str(edge_port)],
                    f"{edge_url}/ready",
                    tmp / "edge.log",
                    # Peak capacity, not overload behaviour: on a busy shared machine load shedding
                    # would answer some requests 503, which here must count as failures.
                    env={"FLAGEDGE_EDGE_SHED_QUEUE_DELAY": "0"},
                    cpu=EDGE_CPU,
                )
            )
            with httpx.Client(base_url=edge_url, timeout=30) as edge:
                load_board(admin, auth, edge, key)
        # The control plane is stopped from here on: the edge answers from its snapshot alone.
        with httpx.Client(base_url=edge_url, timeout=30) as edge:
            sizes = {
                "board": len(edge.get("/sdk/feature-requests", params={"key": key}).content),
                "roadmap": len(edge.get("/sdk/roadmap/snapshot", params={"key": key}).content),
            }
        routes = {
            "board": script(f"/sdk/feature-requests?key={key}"),
            "roadmap-anonymous": script(f"/sdk/roadmap/snapshot?key={key}"),
            "roadmap-identified": script(f"/sdk/roadmap/snapshot?key={key}", identified=True),
        }
        results: dict[str, Any] = {}
        for name, lua in routes.items():
            wrk.run(edge_url, lua, connections, 1, cpu=LOAD_CPU)  # warm-up
            results[name] = wrk.run(edge_url, lua, connections, seconds, cpu=LOAD_CPU).as_dict()
    (ceiling,) = throughput.ceiling([connections], seconds)
    results["ceiling"] = ceiling.as_dict()
    for name in routes:
        results[name]["vs_ceiling"] = round(results[name]["rps"] / ceiling.rps, 2) if ceiling.rps else None
    return {"control_plane": "stopped", "body_bytes": sizes, "connections": connections, "routes": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.releaseo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    ns = parser.parse_args(argv)
    out = run(ns.seconds, ns.connections)
    print(json.dumps(out, indent=2))
    return 1 if any(r["errors"] for r in out["routes"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
