"""Writes against publishes on a publishing control-plane replica (PostgreSQL): a burst of admin
writes, each acknowledged once a version holding it is published, and how many versions that
took (control_plane/replication.py drains its outbox in batches).

Starts one control plane on loopback with ``--database-url`` (an empty database: it is migrated
and written), creates ``--writers`` flags in one commit, then runs that many closed-loop writers
for ``--seconds``, each flipping its own flag. Prints acknowledged writes, versions published,
writes per second and the write latency.

    python -m bench.publish_batches --database-url postgresql://…/empty [--writers 20] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.processes import bootstrap_project, create_flags, free_port, patch_flag, process
from bench.propagation import percentile


def run(database_url: str, writers: int, seconds: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="flagedge-batches-"))
    port = free_port()
    args = ["control_plane", "serve", "--data-dir", str(tmp), "--port", str(port)]
    args += ["--database-url", database_url, "--jwt-secret", "batches-" + "x" * 32]
    args += ["--key-encryption-secret", "batches-key-" + "y" * 32]
    base = f"http://127.0.0.1:{port}"
    with process(args, f"{base}/health", tmp / "control-plane.log"):
        admin = httpx.Client(base_url=base, timeout=60)
        auth, _ = bootstrap_project(admin)
        keys = [f"burst{i}" for i in range(writers)]
        assert create_flags(admin, auth, keys).status_code in (200, 201)
        before = admin.get("/ready").json()["publish"]["version"]
        stop = threading.Event()
        latencies: list[float] = []
        lock = threading.Lock()

        def write(key: str) -> None:
            client = httpx.Client(base_url=base, timeout=60)
            enabled = False
            while not stop.is_set():
                started = time.perf_counter()
                r = patch_flag(client, auth, key, enabled)
                assert r.status_code == 200, r.text
                with lock:
                    latencies.append(time.perf_counter() - started)
                enabled = not enabled

        threads = [threading.Thread(target=write, args=(key,), daemon=True) for key in keys]
        started = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(60)
        took = time.perf_counter() - started
        versions = admin.get("/ready").json()["publish"]["version"] - before
    return {
        "writers": writers,
        "writes": len(latencies),
        "versions": versions,
        "writes_per_version": round(len(latencies) / max(1, versions), 2),
        "writes_per_second": round(len(latencies) / took, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p95": round(percentile(latencies, 0.95) * 1000, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    print(json.dumps(run(args.database_url, args.writers, args.seconds), indent=2))


if __name__ == "__main__":
    main()
