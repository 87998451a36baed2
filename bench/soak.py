"""Soak and overload runs against a real edge serving W2 (DESIGN.md §6, issue 6).

``python -m bench.soak [--minutes 10] [--overload]`` loads W2 (350 flags) through the control
plane, starts the edge pinned to core 0 and drives it with wrk pinned to core 1, one unique
context per request:

* **peak**: closed-loop wrk at 64 connections, the edge's measured throughput;
* **soak**: ``--minutes`` at 50 % of that peak (a fixed rate: wrk's ``delay()`` spaces each
  connection's requests), reported window by window: requests, statuses, p50/p99 and every
  worker's RSS. It passes with zero errors, RSS flat (growth after the first window within
  noise) and p99 flat (no upward trend);
* **overload** (``--overload``): first an offered load of twice the peak (open-ish: 1,024
  connections spaced by ``delay()``), then far more connections than the edge can serve
  (closed-loop 2,048); the edge must answer the excess with a fast ``503`` + ``Retry-After``
  (:mod:`server.overload`) and not queue, then serve everything again at 50 % load.

* **faults** (``--faults [--fault-interval 120]``, :mod:`bench.soak_faults`): two hosts (control
  plane + edge A; ``sync`` + edge B, through a real redis-server), wrk at 50 % of edge A's peak
  on A and a lighter load on B, keep-alive version checkers on both edges, an admin write every
  1.5 s, and in rotation every interval a kill -9 of an edge worker (A, then B), of ``sync`` and
  of Redis. Passes with 0 acknowledged writes lost (both edges serve every flag's last
  acknowledged state after the faults), 0 versions going backwards on any connection, every
  fault recovered, no failed request away from a fault, and every process's RSS slope after
  the warm-up within ``--rss-tolerance`` MB/min. The 30-minute run of issue 11 is
  ``python -m bench.soak --faults --minutes 30``.

The suite ``tests/reliability/test_soak_overload.py`` runs a shortened version of the same
functions on every ``./dev test`` (``tests/reliability/test_soak_faults.py`` the faults mode).
Prints a JSON report (and, for ``--faults``, a short summary on stderr); ``--out FILE`` also
writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from bench.datasets import evaluated_script
from bench.paced_wrk import Load, peak, wrk
from bench.processes import rss_mb, worker_pids
from bench.stack import Stack, running


@dataclass(frozen=True)
class Window:
    index: int
    load: Load
    # RSS of every edge worker (MB) at the end of the window.
    rss_mb: list[float]


@dataclass
class SoakReport:
    rate: float
    connections: int
    windows: list[Window] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(w.load.failed for w in self.windows)

    @property
    def requests(self) -> int:
        return sum(w.load.requests for w in self.windows)

    def rss_growth_mb(self) -> float:
        """Largest growth of any worker's RSS from the first window to the last."""
        first, last = self.windows[0].rss_mb, self.windows[-1].rss_mb
        return max(b - a for a, b in zip(first, last, strict=True))

    def p99_trend(self) -> float:
        """Median p99 of the last third of the windows over that of the first third (1 = flat)."""
        third = max(1, len(self.windows) // 3)
        early = median(w.load.p99_ms for w in self.windows[:third])
        late = median(w.load.p99_ms for w in self.windows[-third:])
        return late / early if early else 1.0


def worker_rss(edge_pid: int) -> list[float]:
    return [rss_mb(p) for p in worker_pids(edge_pid)]


def soak(
    url: str, script: str, edge_pid: int, rate: float, seconds: float, window_s: float, connections: int = 64
) -> SoakReport:
    """``seconds`` of load at ``rate`` req/s, in windows of ``window_s``; RSS sampled after each."""
    report = SoakReport(rate=rate, connections=connections)
    windows = max(2, round(seconds / window_s))
    for i in range(windows):
        load = wrk(url, script, connections, window_s, rate=rate)
        report.windows.append(Window(i, load, worker_rss(edge_pid)))
        print(f"soak window {i + 1}/{windows}: {load.line()} rss {report.windows[-1].rss_mb}", flush=True)
    return report


@dataclass(frozen=True)
class OverloadReport:
    peak_rps: float
    # Twice the peak rate offered over 1,024 connections (open-loop pacing).
    double_rate: Load
    # Closed-loop, far more connections than the edge can serve: 1,024 and 2,048.
    closed_1024: Load
    flood: Load
    # Back at 50 % of the peak afterwards.
    recovery: Load


def overload(url: str, script: str, peak_rps: float, seconds: float, flood_connections: int = 2048) -> OverloadReport:
    double = wrk(url, script, 1024, seconds, rate=2 * peak_rps)
    print(f"2x peak offered: {double.line()}", flush=True)
    closed = wrk(url, script, 1024, seconds)
    print(f"closed-loop: {closed.line()}", flush=True)
    flood = wrk(url, script, flood_connections, seconds)
    print(f"closed-loop: {flood.line()}", flush=True)
    time.sleep(1)
    recovery = wrk(url, script, 64, seconds, rate=peak_rps / 2)
    print(f"recovery at 50 %: {recovery.line()}", flush=True)
    return OverloadReport(peak_rps, double, closed, flood, recovery)


def stack_script(stack: Stack) -> str:
    return evaluated_script(stack.client_key, "w2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="soak length (default 10)")
    parser.add_argument("--window", type=float, default=30, help="seconds per reported window (default 30)")
    parser.add_argument("--overload", action="store_true", help="also run the overload and recovery phases")
    parser.add_argument("--overload-seconds", type=float, default=15, help="seconds per overload phase")
    parser.add_argument("--workers", type=int, help="edge workers (default 1, on core 0; 2 per edge with --faults)")
    faults = parser.add_argument_group("faults mode")
    faults.add_argument("--faults", action="store_true", help="two hosts, writes and kill -9 faults (issue 11)")
    faults.add_argument("--fault-interval", type=float, default=120, help="seconds between faults (default 120)")
    faults.add_argument(
        "--warmup", type=float, default=5, help="minutes of RSS warm-up excluded from the slopes (default 5)"
    )
    faults.add_argument("--rss-tolerance", type=float, default=0.5, help="largest flat RSS slope, MB/min (default 0.5)")
    faults.add_argument(
        "--work-dir", type=Path, help="keep the processes' data dirs and logs here (default: a temporary dir)"
    )
    parser.add_argument(
        "--shed-queue-delay",
        type=float,
        help="the edge's --shed-queue-delay (0 = no load shedding, to compare); default: the edge's own",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    ns = parser.parse_args(argv)
    if ns.shed_queue_delay is not None:
        os.environ["FLAGEDGE_EDGE_SHED_QUEUE_DELAY"] = str(ns.shed_queue_delay)
    if ns.faults:
        return _faults_main(ns)
    with running("w2", workers=ns.workers or 1) as stack:
        script = stack_script(stack)
        top = peak(stack.edge_url, script)
        print(f"peak: {top.line()}", flush=True)
        report: dict[str, Any] = {"peak": asdict(top)}
        ok = True
        if ns.minutes > 0:
            s = soak(stack.edge_url, script, stack.edge_pid, top.rps / 2, ns.minutes * 60, ns.window)
            report["soak"] = {
                "rate": s.rate,
                "requests": s.requests,
                "errors": s.errors,
                "rss_growth_mb": round(s.rss_growth_mb(), 1),
                "p99_trend": round(s.p99_trend(), 2),
                "windows": [asdict(w) for w in s.windows],
            }
            ok = ok and s.errors == 0 and s.rss_growth_mb() < 16 and s.p99_trend() < 2
        if ns.overload:
            o = overload(stack.edge_url, script, top.rps, ns.overload_seconds)
            report["overload"] = asdict(o)
            ok = ok and o.flood.socket_errors == 0 and o.recovery.failed == 0
            ok = ok and set(o.flood.statuses) <= {200, 503} and o.flood.no_retry_after == 0
            ok = ok and (ns.shed_queue_delay == 0 or o.flood.count(503) > 0)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if ns.out is not None:
        ns.out.write_text(text)
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


def _faults_main(ns: argparse.Namespace) -> int:
    # Imported here: bench.soak_faults builds on this module's wrk() and peak().
    from bench.soak_faults import FaultsConfig, run

    config = FaultsConfig(
        seconds=ns.minutes * 60,
        window_s=ns.window,
        fault_interval=ns.fault_interval,
        # Two workers per edge, so that killing one leaves the other serving.
        workers=ns.workers or 2,
        warmup_s=ns.warmup * 60,
        rss_tolerance=ns.rss_tolerance,
    )
    if ns.work_dir is not None:
        ns.work_dir.mkdir(parents=True, exist_ok=True)
    top, faults = run(config, ns.work_dir)
    text = json.dumps({"peak": asdict(top), "faults": faults.as_dict()}, indent=2, default=str)
    print(text)
    if ns.out is not None:
        ns.out.write_text(text)
    print(faults.summary(), file=sys.stderr)
    print("PASS" if faults.ok else "FAIL", file=sys.stderr)
    return 0 if faults.ok else 1


if __name__ == "__main__":
    sys.exit(main())
