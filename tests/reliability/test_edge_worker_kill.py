"""kill -9 of one granian worker of a ``--workers 2`` edge, during traffic.

granian respawns the worker (a new pid appears) and no request to the other worker fails.

Tolerance: the traffic opens a fresh TCP connection for every request (``Connection: close``),
so a connection belongs to the worker that accepted it for exactly one request. A request can
fail only if the worker holding its connection dies while serving it: those requests started
before the kill and ended after it. Each traffic thread has one request in flight at a time,
so at most one failure per thread is tolerated, and only one that overlaps the kill instant;
every request that starts after the kill (the survivor takes every new connection until the
replacement is up) must succeed, and so must every request before it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import (
    Traffic,
    assert_no_failures,
    children,
    control_plane,
    create_flags,
    edge,
    failures,
    ready,
    traffic,
    wait_until,
)

THREADS = 4
# Slack around the kill instant for clock reads on either side of os.kill.
SLACK = 0.05


def test_kill_one_edge_worker_during_traffic(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep = free_port(), free_port()
    with control_plane(data, cp):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, keys = bootstrap_project(admin)
        assert create_flags(admin, auth, ["alpha", "beta"]).status_code == 201
        with edge(data, ep, "--workers", "2") as proc:
            url = f"http://127.0.0.1:{ep}"
            wait_until(lambda: len(children(proc.pid)) == 2, "two edge workers")
            wait_until(lambda: ready(url)[0] == 200, "edge ready")
            with traffic(Traffic(url, keys["client"], threads=THREADS)) as (load,):
                load.wait_for(lambda a: a.ok and "alpha" in a.enabled, "alpha served")
                time.sleep(1.0)
                before = children(proc.pid)
                victim = min(before)
                killed_from = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                killed_at = time.monotonic()
                wait_until(
                    lambda: len(children(proc.pid) - before) == 1 and len(children(proc.pid)) == 2,
                    "granian to respawn the killed worker",
                    timeout=30,
                )
                respawned_at = time.monotonic()
                # Let the new worker load its snapshot and take connections.
                wait_until(lambda: ready(url)[0] == 200, "edge ready after the respawn")
                time.sleep(1.5)
            answers = load.stop()

    after = [a for a in answers if a.started > killed_at + SLACK]
    overlapping = [a for a in failures(answers) if a.started <= killed_at + SLACK and a.ended >= killed_from - SLACK]
    unexplained = [a for a in failures(answers) if a not in overlapping]
    assert not unexplained, f"requests failed that were not in flight on the killed worker: {unexplained[:5]}"
    assert len(overlapping) <= THREADS, overlapping
    assert_no_failures(after, "requests after the kill")
    assert_no_failures([a for a in answers if a.ended < killed_from], "requests before the kill")
    # Service never stopped: requests kept being answered right after the kill.
    during = [a for a in after if a.started < max(respawned_at, killed_at + 1.0)]
    assert during, "no request was answered in the second after the kill"
    assert all(a.enabled >= {"alpha", "beta"} for a in answers if a.ok)
    print(
        f"worker kill: {len(answers)} requests, {len(overlapping)} failed in flight on the killed worker "
        f"({[a.error for a in overlapping]}), respawn after {respawned_at - killed_at:.2f} s, "
        f"{len(during)} answered in the first second after it"
    )
