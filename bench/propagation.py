"""Propagation latency: admin change acknowledged → served by an edge (DESIGN.md §6).

Starts the real processes on loopback: a control plane, edge A on the same data dir (same
host), and — with ``--redis`` — a redis-server, ``sync`` and edge B on a second data dir (second
host). Each round changes one flag's rule to a new value and polls the edges until they serve
it; the time from the 200 of the admin write to the first matching edge answer is recorded.

    python -m bench.propagation [--changes 200] [--redis] [--database-url postgresql://…]

With ``--database-url`` the control plane keeps its source of truth in that PostgreSQL database
(an empty one: it is migrated and written) instead of SQLite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.processes import REPO, bootstrap_project, free_port, process


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _served(edge: httpx.Client, key: str, plan: str) -> bool:
    r = edge.get("/features/evaluated", params={"publishableKey": key, "context.company.plan": plan})
    return r.status_code == 200 and r.json()["features"].get("prop", {}).get("isEnabled") is True


def run(changes: int, with_redis: bool, database_url: str | None = None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="flagedge-prop-"))
    a, b = tmp / "a", tmp / "b"
    a.mkdir()
    b.mkdir()
    with ExitStack() as stack:
        redis_url = None
        if with_redis:
            port = free_port()
            redis = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp),
                ],
                stdout=subprocess.DEVNULL,
            )
            stack.callback(redis.kill)
            redis_url = f"redis://127.0.0.1:{port}/0"
            time.sleep(0.3)
            sync = subprocess.Popen(
                [sys.executable, "-m", "server", "sync", "--data-dir", str(b), "--redis-url", redis_url],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(sync.kill)
        cp = free_port()
        args = ["control_plane", "serve", "--data-dir", str(a), "--port", str(cp)]
        # Replicas on PostgreSQL share their secrets (given, not generated per data dir).
        if database_url:
            args += ["--database-url", database_url, "--jwt-secret", "propagation-" + "x" * 32]
            args += ["--key-encryption-secret", "propagation-key-" + "y" * 32]
        stack.enter_context(
            process(
                args + (["--redis-url", redis_url] if redis_url else []),
                f"http://127.0.0.1:{cp}/health",
                tmp / "cp.log",
            )
        )
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, keys = bootstrap_project(admin)
        key = keys["client"]
        admin.post("/v1/projects/shop/features", json={"key": "prop", "name": "prop"}, headers=auth)
        edges = {}
        ea = free_port()
        stack.enter_context(
            process(
                ["server", "serve", "--data-dir", str(a), "--port", str(ea)],
                f"http://127.0.0.1:{ea}/health",
                tmp / "edge-a.log",
            )
        )
        edges["same_host"] = httpx.Client(base_url=f"http://127.0.0.1:{ea}", timeout=10)
        if with_redis:
            deadline = time.monotonic() + 20
            while not (b / "snapshots").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            eb = free_port()
            stack.enter_context(
                process(
                    ["server", "serve", "--data-dir", str(b), "--port", str(eb)],
                    f"http://127.0.0.1:{eb}/health",
                    tmp / "edge-b.log",
                )
            )
            edges["second_host_via_sync"] = httpx.Client(base_url=f"http://127.0.0.1:{eb}", timeout=10)
        samples: dict[str, list[float]] = {name: [] for name in edges}
        for i in range(changes):
            plan = f"plan-{i}"
            rule = {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": [plan]}}
            r = admin.patch(
                "/v1/projects/shop/features/prop/configurations",
                params={"environment": "prod"},
                json={"status": "active", "targeting": {"rules": [rule]}},
                headers=auth,
            )
            acked = time.perf_counter()
            assert r.status_code == 200, r.text
            pending = dict(edges)
            while pending:
                for name, edge in list(pending.items()):
                    if _served(edge, key, plan):
                        samples[name].append((time.perf_counter() - acked) * 1000)
                        del pending[name]
                if time.perf_counter() - acked > 10:
                    raise RuntimeError(f"change {i} not served by {sorted(pending)} within 10 s")
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        name: {
            "changes": len(v),
            "p50_ms": round(statistics.median(v), 2),
            "p99_ms": round(percentile(v, 0.99), 2),
            "max_ms": round(max(v), 2),
        }
        for name, v in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--redis", action="store_true", help="also measure a second host through Redis + sync")
    parser.add_argument("--database-url", help="the control plane's store in this (empty) PostgreSQL database")
    args = parser.parse_args()
    print(json.dumps(run(args.changes, args.redis, args.database_url), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
