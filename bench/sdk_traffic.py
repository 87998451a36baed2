"""Realistic SDK traffic against the real edge, with locust (``bench/locustfile.py``), and a failure-rate gate.

Starts a control plane and an edge on free loopback ports over a temporary data directory,
seeds the demo project through the control plane's admin API (``control_plane.demo.seed``),
writes the scenario's target JSON (SDK keys, organisation/application, widget project key, flag
keys) and runs locust headless against the edge: browser SDKs polling ``/features/evaluated``
with unique contexts and ETags, server SDKs fetching ``/features``, mobile apps calling
``/release/{org}/{app}`` with ``x-dimensions``, widgets loading ``/sdk/config`` and a trickle of
events. With two or more cores the edge runs on the first (``taskset -c 0``, inherited by its
workers) and locust on the second (``taskset -c 1``), as DESIGN.md §6 prescribes.

    python -m bench.sdk_traffic [--users 200] [--spawn-rate 50] [--duration 60] [--workers 1]
                                [--out DIR] [--max-failure-rate 0.001] [--wait-scale 1.0]

The summary (printed as JSON, and written to ``DIR/summary.json``) has, per route and in total:
requests, failures, failure rate, req/s (``rps``), median/p95/p99/max in ms and the status codes
seen (304s are the re-polls that an ETag saved). Latencies are locust's: it records response
times rounded to whole milliseconds (to 10 ms above 100 ms), so its percentiles cannot resolve
sub-millisecond latency — that comes from the wrk throughput runner. The wait times are those of
real clients (a browser re-polls every 1-3 s, a backend SDK refetches every 5-10 s, ...), so 200
users make light traffic (~90 req/s): this is a realism and correctness check of the mix, not a
throughput measure (``--wait-scale 0.1`` makes every client ten times busier).

Locust's CSV files (``DIR/sdk_traffic_*.csv``), an HTML report and the processes' logs are kept
in ``DIR``. Locust rewrites its ``_stats.csv`` once a second and not at the end, so it misses the
last second; the summary is read from ``_final_stats.csv`` (same columns), which the locustfile
writes when locust quits with every request counted.

The gate: the process exits 1 when the total failure rate (failed / all requests; a wrong answer
counts as failed) exceeds ``--max-failure-rate``, when a scenario raised an exception (locust's
exceptions table), or when no request was made at all.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.processes import REPO, can_pin, free_port, pinned, process
from bench.stack import EDGE_CPU, LOAD_CPU

LOCUSTFILE = REPO / "bench" / "locustfile.py"
TARGET_ENV = "FLAGEDGE_BENCH_TARGET"
CSV_PREFIX = "sdk_traffic"
# The request names of bench/locustfile.py: every scenario route.
ROUTES = (
    "/features/evaluated",
    "/features",
    "/release/{organisation}/{application}",
    "/sdk/config",
    "/features/events",
    "/event",
    "/user",
    "/company",
    "/feedback",
    "/bulk",
)


def _wait_served(edge: httpx.Client, info: dict[str, Any], timeout: float = 60.0) -> None:
    """Until the edge serves the whole demo (the release is the demo's last write)."""
    prod = info["environments"]["production"]
    checks = [
        ("/release/{}/{}".format(info["organisation"], info["application"]), {}, {"x-dimensions": "platform=android"}),
        ("/sdk/config", {"key": info["releaseoProjectKey"]}, {}),
        ("/features/evaluated", {"publishableKey": prod["client"]}, {}),
        ("/features", {}, {"Authorization": f"Bearer {prod['server']}"}),
    ]
    deadline = time.monotonic() + timeout
    for path, params, headers in checks:
        while True:
            try:
                if edge.get(path, params=params, headers=headers).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the edge does not serve the demo's {path} after {timeout:.0f} s")
            time.sleep(0.05)


def target_document(info: dict[str, Any], flags: list[str], wait_scale: float, status_path: Path) -> dict[str, Any]:
    envs = info["environments"]
    order = ["production", *sorted(k for k in envs if k != "production")]
    return {
        "publishableKeys": [envs[e]["client"] for e in order if e in envs],
        "serverKeys": [envs[e]["server"] for e in order if e in envs],
        "organisation": info["organisation"],
        "application": info["application"],
        "widgetProjectKey": info["releaseoProjectKey"],
        "flags": flags,
        "waitScale": wait_scale,
        "statusCountsPath": str(status_path),
    }


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None  # "N/A" for a route without requests


def _row(row: dict[str, str], statuses: dict[str, int]) -> dict[str, Any]:
    requests = int(row["Request Count"])
    failures = int(row["Failure Count"])
    return {
        "method": row["Type"] or None,
        "requests": requests,
        "failures": failures,
        "failure_rate": failures / requests if requests else 0.0,
        "rps": round(float(row["Requests/s"]), 2),
        "median_ms": _number(row["50%"]),
        "p95_ms": _number(row["95%"]),
        "p99_ms": _number(row["99%"]),
        "max_ms": round(float(row["Max Response Time"]), 2),
        "statuses": dict(sorted(statuses.items())),
    }


def parse_stats(stats_csv: Path, status_counts: dict[str, dict[str, int]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-route rows and the total (locust's ``Aggregated`` row) of a ``*_stats.csv``."""
    routes: dict[str, Any] = {}
    total: dict[str, Any] | None = None
    with open(stats_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                merged: dict[str, int] = {}
                for codes in status_counts.values():
                    for code, n in codes.items():
                        merged[code] = merged.get(code, 0) + n
                total = _row(row, merged)
            else:
                routes[row["Name"]] = _row(row, status_counts.get(row["Name"], {}))
    if total is None:
        raise RuntimeError(f"{stats_csv} has no Aggregated row")
    return routes, total


def parse_failures(failures_csv: Path, limit: int = 10) -> list[dict[str, Any]]:
    if not failures_csv.exists():
        return []
    with open(failures_csv, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: -int(r["Occurrences"]))
    return [{"route": r["Name"], "error": r["Error"], "occurrences": int(r["Occurrences"])} for r in rows[:limit]]


def parse_exceptions(exceptions_csv: Path, limit: int = 10) -> list[dict[str, Any]]:
    if not exceptions_csv.exists():
        return []
    with open(exceptions_csv, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: -int(r["Count"]))
    return [
        {"count": int(r["Count"]), "message": r["Message"], "traceback": r["Traceback"][-1500:]} for r in rows[:limit]
    ]


def run(
    users: int,
    spawn_rate: float,
    duration_s: int,
    workers: int,
    out_dir: Path,
    max_failure_rate: float,
    *,
    wait_scale: float = 1.0,
    target_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the SDK traffic scenarios once and return the summary (``summary["gate"]["passed"]``).

    ``wait_scale`` multiplies every user's wait time (below 1 = busier clients);
    ``target_overrides`` replaces entries of the target JSON (e.g. a wrong key, to see the gate fail).
    """
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{CSV_PREFIX}_*.csv"):
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="flagedge-sdk-traffic-"))
    data = tmp / "data"
    data.mkdir()
    status_path = out_dir / "status_counts.json"
    status_path.unlink(missing_ok=True)
    try:
        with ExitStack() as stack:
            cp = free_port()
            stack.enter_context(
                process(
                    ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp)],
                    f"http://127.0.0.1:{cp}/health",
                    out_dir / "control-plane.log",
                )
            )
            from control_plane.demo import FEATURES, seed

            with httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=60) as admin:
                info = seed(admin)
            ep = free_port()
            stack.enter_context(
                process(
                    ["server", "serve", "--data-dir", str(data), "--port", str(ep), "--workers", str(workers)],
                    f"http://127.0.0.1:{ep}/health",
                    out_dir / "edge.log",
                    cpu=EDGE_CPU,
                )
            )
            host = f"http://127.0.0.1:{ep}"
            with httpx.Client(base_url=host, timeout=10) as edge:
                _wait_served(edge, info)
            target = target_document(info, [str(f["key"]) for f in FEATURES], wait_scale, status_path)
            target.update(target_overrides or {})
            target_path = out_dir / "target.json"
            target_path.write_text(json.dumps(target, indent=2))
            prefix = out_dir / CSV_PREFIX
            command = [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "-u",
                str(users),
                "-r",
                str(spawn_rate),
                "-t",
                f"{duration_s}s",
                "--stop-timeout",
                "5",
                "--csv",
                str(prefix),
                "--html",
                str(out_dir / f"{CSV_PREFIX}.html"),
                "--only-summary",
                "--host",
                host,
            ]
            started = time.monotonic()
            with open(out_dir / "locust.log", "wb") as log:
                locust = subprocess.run(
                    pinned(command, LOAD_CPU),
                    cwd=REPO,
                    env={**os.environ, TARGET_ENV: str(target_path)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=duration_s + 180,
                    check=False,
                )
            elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # The locustfile's complete tables when locust quit; locust's own once-a-second file otherwise.
    stats_csv = next((p for p in (Path(f"{prefix}_final_stats.csv"), Path(f"{prefix}_stats.csv")) if p.exists()), None)
    failures_csv, exceptions_csv = (
        final if (final := Path(f"{prefix}_final_{name}.csv")).exists() else Path(f"{prefix}_{name}.csv")
        for name in ("failures", "exceptions")
    )
    if stats_csv is None:
        log_tail = (out_dir / "locust.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"locust exited with {locust.returncode} and wrote no {prefix}_stats.csv:\n{log_tail}")
    status_counts: dict[str, dict[str, int]] = json.loads(status_path.read_text()) if status_path.exists() else {}
    routes, total = parse_stats(stats_csv, status_counts)
    exceptions = parse_exceptions(exceptions_csv)
    # Exceptions are errors in the scenarios themselves (a user that could not start, say).
    passed = total["requests"] > 0 and total["failure_rate"] <= max_failure_rate and not exceptions
    summary = {
        "config": {
            "users": users,
            "spawn_rate": spawn_rate,
            "duration_s": duration_s,
            "edge_workers": workers,
            "wait_scale": wait_scale,
            "pinned": {"edge": EDGE_CPU, "locust": LOAD_CPU} if can_pin(LOAD_CPU) else None,
            "locust_wall_s": round(elapsed, 1),
            "locust_exit_code": locust.returncode,
        },
        "routes": routes,
        "missing_routes": [r for r in ROUTES if routes.get(r, {}).get("requests", 0) == 0],
        "total": total,
        "failures": parse_failures(failures_csv),
        "exceptions": exceptions,
        "gate": {
            "max_failure_rate": max_failure_rate,
            "failure_rate": total["failure_rate"],
            "exceptions": sum(e["count"] for e in exceptions),
            "passed": passed,
        },
        "files": {
            "stats_csv": str(stats_csv),
            "failures_csv": str(failures_csv),
            "locust_stats_csv": f"{prefix}_stats.csv",
            "exceptions_csv": str(exceptions_csv),
            "history_csv": f"{prefix}_stats_history.csv",
            "html": str(out_dir / f"{CSV_PREFIX}.html"),
            "target": str(out_dir / "target.json"),
            "summary": str(out_dir / "summary.json"),
        },
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def table(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (per route, then the total)."""

    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v:g}"

    lines = [
        "| Route | Requests | req/s | median ms | p95 ms | p99 ms | failures | 304s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*summary["routes"].items(), ("total", summary["total"])]
    for name, r in rows:
        method = f"{r['method']} " if r["method"] else ""
        lines.append(
            f"| {method}{name} | {r['requests']} | {r['rps']} | {ms(r['median_ms'])} | {ms(r['p95_ms'])} "
            f"| {ms(r['p99_ms'])} | {r['failures']} | {r['statuses'].get('304', 0)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sdk_traffic", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200, help="simulated SDK clients")
    parser.add_argument("--spawn-rate", type=float, default=50, help="clients started per second")
    parser.add_argument("--duration", type=int, default=60, help="seconds of traffic")
    parser.add_argument("--workers", type=int, default=1, help="edge worker processes")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sdk-traffic", help="output directory")
    parser.add_argument("--max-failure-rate", type=float, default=0.001, help="gate: highest total failure rate")
    parser.add_argument("--wait-scale", type=float, default=1.0, help="multiply every client's wait time")
    parser.add_argument(
        "--target-override",
        type=json.loads,
        default=None,
        metavar="JSON",
        help='replace target entries, e.g. \'{"publishableKeys": ["client-wrong"]}\' to see the gate fail',
    )
    args = parser.parse_args(argv)
    summary = run(
        args.users,
        args.spawn_rate,
        args.duration,
        args.workers,
        args.out,
        args.max_failure_rate,
        wait_scale=args.wait_scale,
        target_overrides=args.target_override,
    )
    print(json.dumps(summary, indent=2))
    print(table(summary), file=sys.stderr)
    gate = summary["gate"]
    if not gate["passed"]:
        print(
            f"gate failed: failure rate {gate['failure_rate']:.4%} (limit {gate['max_failure_rate']:.4%}),"
            f" {summary['total']['failures']} of {summary['total']['requests']} requests failed,"
            f" {gate['exceptions']} exceptions in the scenarios",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
