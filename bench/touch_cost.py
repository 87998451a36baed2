"""What a write that used to touch its project whole costs the control plane (issue 21): the
request time (request → 200: the build, validation and publish of the write) of a DevCycle
variable rename, a Releaseo widget update, a Releaseo changelog entry and a project description
change, on a project of ``--flags`` flags.

The ``scale-<n>`` dataset is loaded once through this checkout's control plane (as
``bench.change_cost`` does); every side (this checkout, and with ``--baseline`` another one)
starts from a copy of that database, adds one feature with a variable, makes one warm-up write
(after a start the first write may wait for the warm-up build), then times ``--writes`` of each.

    python -m bench.touch_cost --flags 10000 --writes 5 --baseline /work/main
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.change_cost import Loaded, _copy_database, load
from bench.processes import THIS, Checkout, free_port, process
from bench.stack import LOAD_CPU

ON = {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}}


def _timed(write: Callable[[int], httpx.Response], writes: int) -> dict[str, float]:
    times = []
    for i in range(writes):
        started = time.perf_counter()
        r = write(i)
        times.append((time.perf_counter() - started) * 1000)
        if r.status_code >= 300:
            raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1)}


def measure(loaded: Loaded, checkout: Checkout, tmp: Path, writes: int) -> dict[str, Any]:
    data = tmp / "cp"
    _copy_database(loaded, data, checkout)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["control_plane", "serve", "--data-dir", str(data), "--port", str(port)]
    with (
        process(args, f"{url}/health", tmp / "cp.log", cpu=LOAD_CPU, checkout=checkout, timeout=600),
        httpx.Client(base_url=url, timeout=600, headers=loaded.auth) as admin,
    ):
        feature = {
            "key": "touch-cost",
            "name": "touch-cost",
            "variables": [{"key": "tc-0", "type": "Boolean"}],
            "variations": [
                {"key": "on", "name": "On", "variables": {"tc-0": True}},
                {"key": "off", "name": "Off", "variables": {"tc-0": False}},
            ],
            "configurations": {"prod": ON},
        }
        for r in (
            admin.post("/v1/projects/shop/features", json=feature),
            admin.patch(
                "/v1/projects/shop/features/touch-cost/configurations", params={"environment": "prod"}, json=ON
            ),
        ):
            if r.status_code >= 300:
                raise RuntimeError(r.text)
        return {
            "variable_rename": _timed(
                lambda i: admin.patch(f"/v1/projects/shop/variables/tc-{i}", json={"key": f"tc-{i + 1}"}), writes
            ),
            "widget_update": _timed(
                lambda i: admin.put("/projects/shop/widget-config", json={"settings": {"theme": f"t{i}"}}), writes
            ),
            "changelog_entry": _timed(
                lambda i: admin.post("/projects/shop/changelog", json={"title": f"c{i}", "status": "published"}),
                writes,
            ),
            "project_description": _timed(
                lambda i: admin.patch("/v1/projects/shop", json={"description": f"d{i}"}), writes
            ),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.touch_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--flags", type=int, nargs="+", default=[10000])
    parser.add_argument("--writes", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured from the same database")
    args = parser.parse_args(argv)
    sides = {"this": THIS}
    if args.baseline is not None:
        root = args.baseline.resolve()
        sides = {"baseline": Checkout(root, root / ".venv" / "bin" / "python"), **sides}
    results = []
    for n in args.flags:
        with tempfile.TemporaryDirectory(prefix="touch-cost-") as tmp:
            (Path(tmp) / "load").mkdir()
            loaded = load(n, Path(tmp) / "load")
            for name, checkout in sides.items():
                side_tmp = Path(tmp) / name
                side_tmp.mkdir()
                row = {"flags": n, "side": name, **measure(loaded, checkout, side_tmp, args.writes)}
                print(json.dumps(row), flush=True)
                results.append(row)
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
