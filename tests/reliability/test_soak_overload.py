"""A shortened soak and an overload burst on a real edge serving W2 (350 flags loaded through the
control plane; unique contexts per request, built by wrk's Lua script). The full-length runs are
``python -m bench.soak --minutes 10 --overload`` (see :mod:`bench.soak`).

* **soak**: 25 s at 50 % of the measured peak, a fixed rate (open-loop pacing), in 5 s windows:
  zero errors, every worker's RSS flat (growth within noise), p99 not trending up;
* **overload**: twice the peak rate offered over 1,024 connections, then 2,048 closed-loop
  connections: the excess gets a fast ``503`` with ``Retry-After`` (no socket errors, no
  timeouts), the edge keeps answering far more requests than it can evaluate instead of letting
  them queue, its latency stays well below what queueing every connection would cost, and
  ``/health`` and ``/ready`` still answer 200; when the load drops to 50 % everything is
  answered 200 again.

Without load shedding (``--shed-queue-delay 0``) the same flood answers everything 200 but only
at the peak rate, so every request waits behind all the others: p99 ≥ connections / peak, and
it grows with every connection added (measured: 2,048 connections 315 ms, 4,096 774 ms; with
shedding 199 ms and 376 ms).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench import paced_wrk, soak
from bench.stack import running

SOAK_SECONDS = 25
WINDOW = 5
BURST = 6
FLOOD = 2048
# Allowed RSS growth of a worker over the soak (allocator noise is a few MB).
RSS_GROWTH_MB = 16


def test_short_soak_then_overload(tmp_path: Path) -> None:
    with running("w2", tmp=tmp_path) as stack:
        script = soak.stack_script(stack)
        top = paced_wrk.peak(stack.edge_url, script, seconds=4)
        print(f"peak: {top.line()}")
        assert top.rps > 200, top.line()

        report = soak.soak(stack.edge_url, script, stack.edge_pid, top.rps / 2, SOAK_SECONDS, WINDOW)
        for w in report.windows:
            assert w.load.failed == 0, f"window {w.index}: {w.load.line()}"
            assert w.load.rps > 0.8 * report.rate, f"window {w.index} below the soak rate: {w.load.line()}"
        assert report.rss_growth_mb() < RSS_GROWTH_MB, [w.rss_mb for w in report.windows]
        early = sorted(w.load.p99_ms for w in report.windows[:2])
        late = sorted(w.load.p99_ms for w in report.windows[-2:])
        # Flat p99: the later windows are not slower than the earlier ones (beyond noise on a
        # shared 2-core machine).
        assert late[0] <= 3 * early[-1] + 10, (early, late)

        queued_all_ms = 1000 * FLOOD / top.rps  # what every request would wait if all were queued
        double = paced_wrk.wrk(stack.edge_url, script, 1024, BURST, rate=2 * top.rps)
        print(f"2x peak offered: {double.line()}")
        with ThreadPoolExecutor(1) as pool:
            running_flood = pool.submit(paced_wrk.wrk, stack.edge_url, script, FLOOD, BURST)
            time.sleep(2)
            probes = []
            while not running_flood.done():
                for path in ("/health", "/ready"):
                    probes.append(httpx.get(stack.edge_url + path, timeout=30).status_code)
                time.sleep(0.3)
            flood = running_flood.result()
        print(f"flood: {flood.line()}; /health and /ready during it: {probes}")
        time.sleep(1)
        recovery = paced_wrk.wrk(stack.edge_url, script, 64, BURST, rate=top.rps / 2)
        print(f"recovery at 50 %: {recovery.line()}")

    for load in (double, flood):
        assert set(load.statuses) <= {200, 503}, load.line()
        assert load.count(503) > 0, f"nothing was shed: {load.line()}"
        assert load.count(200) > 0, f"nothing was served: {load.line()}"
        assert load.socket_errors == 0, load.line()
        assert load.no_retry_after == 0, load.line()
        assert load.p99_ms < queued_all_ms, f"p99 {load.p99_ms} ms, queueing all would be {queued_all_ms:.0f}"
    # The edge answered the doubled offered load instead of queueing it at the peak rate.
    assert double.rps > 1.2 * top.rps, (double.line(), top.line())
    assert flood.rps > 1.3 * top.rps, (flood.line(), top.line())
    assert probes and set(probes) == {200}, probes
    assert recovery.failed == 0, recovery.line()
    assert recovery.p99_ms < flood.p99_ms, (recovery.line(), flood.line())
    print(
        f"soak: {report.requests} requests at {report.rate:.0f} req/s, {report.errors} errors, RSS growth "
        f"{report.rss_growth_mb():.1f} MB, p99 per window {[w.load.p99_ms for w in report.windows]}"
    )
