"""Edge worker memory (DESIGN.md §6, issue 21): the resident memory of one edge worker serving
``n`` flags, for this checkout and optionally a baseline checkout, on the same store.

For each flag count a store is written once, directly with the shared writer
(``contract.store.SnapshotWriter``), as the control plane publishes it: one environment whose
``scale-<n>`` flags (:func:`bench.datasets.scale_flags`) are stored apart, each with its order, in
the shape ``control_plane.features_snapshot`` gives definitions (targeting and config versions,
rollout keys). Loading 100,000 flags through the admin API takes minutes; the edge reads the
same values either way.

Then each checkout's ``python -m server serve --workers 1`` serves that data dir, pinned to one
core. Once ``/features/evaluated`` answers every flag, the worker's and the main process's VmRSS
are read (``loaded``), and again after a few ``/features/evaluated`` and OFREP bulk requests with
varied contexts (``served``): the figure the peers benchmark compares.

    python -m bench.memory --flags 10000 100000 --baseline /work/wt-mem-base
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.datasets import COUNTRIES, PLANS, scale_flags
from bench.processes import THIS, Checkout, free_port, process, rss_mb, worker_pids
from bench.stack import EDGE_CPU
from contract.store import ChangeSet, SnapshotWriter, flag_key
from control_plane.features_snapshot import with_rollout_keys

PROJECT = "p-bench"
ENVIRONMENT = "e-bench"
SERVER_KEY = "server-bench-memory"
CLIENT_KEY = "client-bench-memory"
REQUESTS = 8


def definition(flag: dict[str, Any]) -> dict[str, Any]:
    """A dataset flag as the control plane stores a Reflag-created feature's definition."""
    out: dict[str, Any] = {"key": flag["key"], "targeting": {"version": 1, **flag["targeting"]}}
    if "config" in flag:
        out["config"] = {"version": 1, **flag["config"]}
    return with_rollout_keys(out, flag["key"])


def write_store(data_dir: Path, n: int) -> None:
    """One published version holding the environment, its ``n`` flags and two SDK keys."""
    change = ChangeSet()
    change.environments[ENVIRONMENT] = {
        "project": PROJECT,
        "environment": "production",
        "document": {"customDataTypes": {}, "sdkVisibility": {}},
    }
    for i, flag in enumerate(scale_flags(n)):
        order = f"2026-12-05T00:00:00.{i:06d}Z/{hashlib.sha1(flag['key'].encode()).hexdigest()[:24]}"
        change.flags[flag_key(ENVIRONMENT, flag["key"])] = {
            "project": PROJECT,
            "order": order,
            "definition": definition(flag),
        }
    for secret, kind in ((SERVER_KEY, "server"), (CLIENT_KEY, "client")):
        digest = hashlib.sha256(secret.encode()).hexdigest()
        change.sdk_keys[digest] = {"environment": ENVIRONMENT, "kind": kind, "project": PROJECT}
    writer = SnapshotWriter(data_dir, map_size=4 << 30)
    try:
        writer.publish(change)
    finally:
        writer.close()


def _context(i: int) -> dict[str, str]:
    return {
        "context.user.id": f"u-{i}",
        "context.user.country": COUNTRIES[i % len(COUNTRIES)],
        "context.user.appVersion": f"{1 + i % 3}.{i % 10}.0",
        "context.company.id": f"c-{i % 13}",
        "context.company.plan": PLANS[i % len(PLANS)],
        "context.company.seats": str(i * 7 % 100),
    }


def _wait_all_flags(url: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{url}/features/evaluated", params={"publishableKey": CLIENT_KEY}, timeout=120)
        if r.status_code == 200 and len(r.json().get("features", {})) == n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the edge did not serve {n} flags: {r.status_code} {r.text[:200]}")
        time.sleep(0.5)


def _status_mb(pid: int) -> dict[str, float]:
    """VmRSS and its parts: anonymous memory (the heap) and mapped file pages (LMDB's map)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def _rss(main: int) -> dict[str, Any]:
    workers = worker_pids(main)
    return {"worker": _status_mb(workers[0]) if workers else {}, "main_mb": round(rss_mb(main), 1)}


def measure(checkout: Checkout, data_dir: Path, n: int, log: Path) -> dict[str, Any]:
    """RSS of one edge worker of ``checkout`` serving ``data_dir``, loaded and after requests."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["server", "serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", "1"]
    started = time.monotonic()
    with process(args, f"{url}/health", log, cpu=EDGE_CPU, timeout=120, checkout=checkout) as proc:
        _wait_all_flags(url, n, timeout=600)
        load_seconds = round(time.monotonic() - started, 1)
        time.sleep(1.0)  # the worker trims the freed compile heap after the swap
        loaded = _rss(proc.pid)
        bearer = {"Authorization": f"Bearer {SERVER_KEY}"}
        for i in range(REQUESTS):
            params = {"publishableKey": CLIENT_KEY, **_context(i)}
            httpx.get(f"{url}/features/evaluated", params=params, timeout=120).raise_for_status()
            body = {"context": {"targetingKey": f"u-{i}", "plan": PLANS[i % len(PLANS)]}}
            httpx.post(f"{url}/ofrep/v1/evaluate/flags", json=body, headers=bearer, timeout=120).raise_for_status()
        served = _rss(proc.pid)
    return {"flags": n, "load_seconds": load_seconds, "loaded": loaded, "served": served}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--flags", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--baseline", type=Path, help="another checkout (its evaluator built) to measure alike")
    parser.add_argument("--baseline-python", type=Path, default=THIS.python)
    ns = parser.parse_args(argv)
    sides = {"this": THIS}
    if ns.baseline is not None:
        sides["baseline"] = Checkout(ns.baseline.resolve(), ns.baseline_python)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for i, n in enumerate(ns.flags):
            data_dir = Path(tmp) / f"{i}-scale-{n}"
            data_dir.mkdir()
            write_store(data_dir, n)
            for name, checkout in sides.items():
                point = {"side": name, **measure(checkout, data_dir, n, Path(tmp) / f"{name}-{i}.log")}
                print(json.dumps(point), flush=True)
                results.append(point)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
