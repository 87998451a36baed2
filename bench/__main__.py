"""``python -m bench [--quick]``: the whole benchmark suite, then the report.
``python -m bench peers [...]``: ours against Unleash Edge, flagd and go-feature-flag
(:mod:`bench.peers`; ``python -m bench peers --help``), a separate run.

Phases: evaluator micro-benchmarks (criterion), peak throughput of the edge (W1, W2) and of
the granian ceiling with wrk, scale curves (flags 5 → 100k, workers), propagation latency
(same host and through Redis + ``sync``), the locust SDK traffic mix, the control plane's
telemetry intake (``POST /api/v1/telemetry``), Releaseo's public board and roadmap reads
(``bench.releaseo``), and the DevCycle routes and OFREP over a W2-sized DevCycle project beside
``/features/evaluated`` (``bench.devcycle``). Writes
``bench/results/<date>.json``, PNG plots and ``<date>.md``, and copies the Markdown to
``bench/REPORT.md`` (full runs). The full run takes about 12 minutes on 2 cores, ``--quick`` about 2.
A phase that fails is recorded in the report and makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    change_cost,
    devcycle,
    micro,
    propagation,
    releaseo,
    report,
    scale,
    sdk_traffic,
    telemetry_intake,
    throughput,
    wrk,
)
from bench.peers import run as peers
from bench.processes import REPO
from bench.stack import running


@dataclass(frozen=True)
class Plan:
    connections: list[int]
    seconds: float
    flags: list[int]
    workers: list[int]
    changes: int
    locust_users: int
    locust_seconds: int


FULL = Plan([16, 64, 256], 10, [5, 350, 1_000, 10_000, 100_000], [1, 2, 4], 200, 200, 60)
QUICK = Plan([32], 2, [5, 350, 10_000], [1, 2], 30, 20, 10)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _throughput(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {"ceiling": [r.as_dict() for r in throughput.ceiling(plan.connections, plan.seconds)]}
    for dataset in ("w1", "w2"):
        with running(dataset) as stack:
            out[dataset] = [r.as_dict() for r in throughput.edge(stack, plan.connections, plan.seconds)]
    return out


def _scale(plan: Plan) -> dict[str, Any]:
    connections = plan.connections[len(plan.connections) // 2]
    return {
        "connections": connections,
        "flags": scale.flags_curve(plan.flags, connections, plan.seconds),
        "workers": scale.workers_curve(plan.workers, connections, plan.seconds),
        # What one flag change costs at each size (write → served, edge CPU, memory).
        "changes": change_cost.curve([n for n in plan.flags if n >= 1000], changes=5),
    }


def _sdk_traffic(plan: Plan, out_dir: Path, stem: str) -> dict[str, Any]:
    return sdk_traffic.run(
        users=plan.locust_users,
        spawn_rate=max(1.0, plan.locust_users / 5),
        duration_s=plan.locust_seconds,
        workers=1,
        out_dir=out_dir / f"{stem}-locust",
        max_failure_rate=0.001,
    )


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["peers"]:
        return peers.main(args_in[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs and no 100k-flag point (≈ 2 min)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where results go")
    parser.add_argument("--skip", action="append", default=[], help="phase to skip (repeatable)")
    args = parser.parse_args(args_in)
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    stem = datetime.now(UTC).strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python -m bench" + (" --quick" if args.quick else ""),
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "wrk": wrk.version(),
            "plan": plan.__dict__,
        },
        "errors": {},
    }
    phases: list[tuple[str, Callable[[], Any]]] = [
        ("micro", lambda: micro.run(args.quick)),
        ("throughput", lambda: _throughput(plan)),
        ("scale", lambda: _scale(plan)),
        ("propagation", lambda: propagation.run(plan.changes, with_redis=True)),
        ("sdk_traffic", lambda: _sdk_traffic(plan, args.out, stem)),
        ("telemetry_intake", lambda: telemetry_intake.run(plan.seconds, plan.connections)),
        ("releaseo", lambda: releaseo.run(min(plan.seconds, 5), 16)),
        ("devcycle", lambda: devcycle.run(plan.connections[0], plan.seconds)),
    ]
    for name, phase in phases:
        if name in args.skip:
            continue
        t = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            results[name] = phase()
        except Exception as e:  # one failed phase must not lose the others' numbers
            results["errors"][name] = f"{type(e).__name__}: {e}"[:2000]
            print(f"   {name} FAILED: {e}", file=sys.stderr, flush=True)
        print(f"   {name}: {time.monotonic() - t:.0f} s", flush=True)
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    paths = report.write(results, args.out, stem)
    if not args.quick:  # the README links the last full run's summary
        shutil.copyfile(paths["markdown"], REPO / "bench" / "REPORT.md")
    print(paths["markdown"].read_text())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
