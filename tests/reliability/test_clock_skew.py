"""Clock skew between hosts, and a control-plane clock that jumps, during traffic.

Snapshot versions are ordered by the control plane's counter, never by a wall clock: the
publisher writes ``meta/version`` + 1 inside the LMDB write transaction, ``sync`` applies change
set N+1 only after N and refuses anything not newer than what it holds, and edges compare
versions as integers. The only clock the distribution path reads is the monotonic one (timers,
backoff); Redis expiry is Redis's own. This test proves it with real skew (libfaketime, installed
with apt-get when missing):

* the control plane (host A) runs with its clock 2 days behind, host B's ``sync`` and edge
  1 day ahead; then the control plane restarts with its clock 3 days ahead, and again 5 days
  behind (a clock stepped backwards across a restart);
* every write gets a higher version than the one before, whatever the clocks say;
* host B serves the writes in commit order (a flag written later never shows up at a lower
  version than an earlier one, nor before it), never an older version after a newer one, and
  ends on host A's version.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import (
    Answer,
    Background,
    Traffic,
    assert_no_failures,
    assert_versions_never_go_back,
    control_plane,
    create_flags,
    edge,
    login,
    ready,
    skewed,
    traffic,
    wait_until,
)
from tests.support.redis_server import RedisServer

CLOCKS = ["-2d", "+3d", "-5d"]  # the control plane's clock, one per (re)start
HOST_B = "+1d"


def _log_time(log: Path, marker: str) -> datetime:
    """The asctime of the first log line containing ``marker`` (logging reads the wall clock)."""
    line = next(x for x in log.read_text().splitlines() if marker in x)
    return datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _first_seen(answers: list[Answer], flag: str) -> Answer:
    return next(a for a in answers if a.ok and flag in a.enabled)


def test_clock_skew_does_not_reorder_versions(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", free_port())
    redis.start()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    sync = Background(
        ["server", "sync", "--data-dir", str(b), "--redis-url", redis.url], tmp_path / "sync.log", env=skewed(HOST_B)
    )
    written: list[tuple[str, int]] = []  # flag, store version right after its write
    eb = free_port()
    try:
        sync.start()
        started = datetime.now(UTC)
        cp = free_port()
        with control_plane(a, cp, "--redis-url", redis.url, env=skewed(CLOCKS[0]), log="cp-first.log"):
            admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
            _, keys = bootstrap_project(admin)
        wait_until(lambda: (b / "snapshots").exists(), "sync to create host B's LMDB")
        with edge(b, eb, env=skewed(HOST_B)):
            url = f"http://127.0.0.1:{eb}"
            wait_until(lambda: ready(url)[0] == 200, "edge B ready")
            with traffic(Traffic(url, keys["client"], threads=2)) as (load,):
                n = 0
                for i, clock in enumerate(CLOCKS):
                    cp = free_port()
                    with control_plane(a, cp, "--redis-url", redis.url, env=skewed(clock), log=f"cp-{i}.log"):
                        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
                        auth = login(admin)
                        for _ in range(3):
                            n += 1
                            assert create_flags(admin, auth, [f"c-{n}"]).status_code == 201
                            written.append((f"c-{n}", int(admin.get("/ready").json()["publish"]["version"])))
                        last = f"c-{n}"
                        load.wait_for(lambda x: x.ok and last in x.enabled, f"{last} on host B")  # noqa: B023
                time.sleep(0.5)
            answers = load.snapshot()
            a_version = written[-1][1]
            wait_until(lambda: ready(url)[1]["version"] == a_version, "host B on host A's version")
        edge_log = b.parent / f"{b.name}-edge.log"
    finally:
        sync.kill()
        redis.kill()

    # The clocks really were skewed.
    with sqlite3.connect(a / "control_plane.sqlite3") as db:
        stamps = [row[0] for row in db.execute("SELECT at FROM audit_log WHERE action = 'feature.create' ORDER BY id")]
    skews = [datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) - started for s in stamps]
    expected = [timedelta(days=-2)] * 3 + [timedelta(days=3)] * 3 + [timedelta(days=-5)] * 3
    assert len(skews) == len(expected)
    for got, want in zip(skews, expected, strict=True):
        assert abs(got - want) < timedelta(minutes=10), (got, want)
    for log in (tmp_path / "sync.log", edge_log):
        assert abs(_log_time(log, "serving snapshot version") - started - timedelta(days=1)) < timedelta(minutes=10)

    # Versions follow commit order, not clocks.
    versions = [v for _, v in written]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), written
    first = [_first_seen(answers, flag) for flag, _ in written]
    seen_versions = [f.version or 0 for f in first]
    assert seen_versions == sorted(seen_versions), list(zip(written, seen_versions, strict=True))
    for earlier, later in itertools.pairwise(written):
        # Once a later flag is served, the earlier one is always there with it.
        for x in answers:
            if x.ok and later[0] in x.enabled:
                assert earlier[0] in x.enabled, (earlier, later, x)
    assert_versions_never_go_back(answers, "edge B")
    assert_no_failures(answers, "edge B traffic")
    print(
        f"clock skew: control plane at {CLOCKS} (restarts), host B at {HOST_B}; store versions {versions} "
        f"in commit order; host B served them in that order at flag versions {seen_versions}, ended on v{a_version}"
    )
