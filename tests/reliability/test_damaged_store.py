"""A damaged LMDB file (``snapshots/data.mdb``) under a running ``--workers 2`` edge, during traffic.

Two kinds of damage, done behind every process's back while the control plane is down:

* ``truncated``: the file is cut to its two meta pages, as a full disk, a bad copy or an
  operator's ``truncate`` would leave it. Touching the mapped pages past the new end of the
  file is a SIGBUS, which used to kill every worker within milliseconds.
* ``unreadable-page``: the root page of the ``environments`` table is marked as the wrong page
  type (a bad sector, a stray write) and ``meta/version`` is bumped, so the edge reads it.
  LMDB answers ``MDB_CORRUPTED`` on every read of that table, which used to be logged as a
  traceback on every poll while ``/ready`` said 200.

For each, the test checks:

* no worker dies and no request fails: every worker keeps serving the last good compiled
  snapshot, unchanged; ``/ready`` answers 503 and names the store problem; each worker logs
  the problem once, not once per poll;
* a worker killed then (``kill -9``) is respawned and comes up not ready (answering 503 with
  ``Retry-After``, never 403), instead of crash-looping granian into stopping the healthy
  worker too;
* the control plane, started on the damaged file, moves it aside (``snapshots.damaged-*``) and
  republishes everything from SQLite above the old version: every worker serves it, ``/ready``
  is 200 again and no version number went backwards or was reused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from bench.processes import REPO, bootstrap_project, free_port
from tests.reliability.support import (
    Background,
    Traffic,
    children,
    control_plane,
    create_flags,
    edge,
    ready,
    traffic,
    wait_until,
)
from tests.support.redis_server import RedisServer

# Runs in its own process (py-lmdb opens an environment once per process): bump the store
# version in one write transaction, then, in the file, mark the root page of the environments
# table as an overflow page. LMDB's meta page layout (64-bit): page header 16 bytes, then
# magic, version, address, mapsize (24 bytes), the free DB's MDB_db (48 bytes, its md_pad holds
# the page size) and the main DB's MDB_db (48 bytes, md_root at +40), mm_last_pg, mm_txnid.
UNREADABLE_PAGE = r"""
import struct, sys
from pathlib import Path
from contract.store import META, open_env

data = Path(sys.argv[1])
env = open_env(data, readonly=False)
meta = env.open_db(META.encode())
with env.begin(write=True) as txn:
    version = int.from_bytes(txn.get(b"version", db=meta), "big") + 1
    txn.put(b"version", version.to_bytes(8, "big"), db=meta)
env.close()
path = data / "snapshots" / "data.mdb"
with open(path, "r+b") as f:
    raw = f.read(8192)
    psize = struct.unpack_from("<I", raw, 40)[0]
    metas = [raw[0:psize], (f.seek(psize), f.read(psize))[1]]
    current = max(metas, key=lambda m: struct.unpack_from("<Q", m, 144)[0])
    main_root = struct.unpack_from("<Q", current, 128)[0]
    f.seek(main_root * psize)
    page = f.read(psize)
    assert struct.unpack_from("<H", page, 10)[0] & 0x02, "the main DB root is not a leaf"
    lower = struct.unpack_from("<H", page, 12)[0]
    for ptr in range(16, lower, 2):
        node = struct.unpack_from("<H", page, ptr)[0]
        ksize = struct.unpack_from("<H", page, node + 6)[0]
        if page[node + 8 : node + 8 + ksize] == b"environments":
            root = struct.unpack_from("<Q", page, node + 8 + ksize + 40)[0]
            break
    else:
        raise SystemExit("no environments table")
    f.seek(root * psize + 10)
    f.write(struct.pack("<H", 0x04))
print(version)
"""


def _damage(data: Path, how: str) -> None:
    path = data / "snapshots" / "data.mdb"
    if how == "truncated":
        os.truncate(path, 8192)
        return
    out = subprocess.run(
        [sys.executable, "-c", UNREADABLE_PAGE, str(data)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def _log_lines(log: Path, since: int, needle: str) -> list[str]:
    return [line for line in log.read_bytes()[since:].decode(errors="replace").splitlines() if needle in line]


@pytest.mark.parametrize("how", ["truncated", "unreadable-page"])
def test_damaged_store_file_during_traffic(tmp_path: Path, how: str) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep = free_port(), free_port()
    edge_log = tmp_path / "host-edge.log"
    with ExitStack() as stack:
        admin_proc = stack.enter_context(control_plane(data, cp))
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, keys = bootstrap_project(admin)
        assert create_flags(admin, auth, ["alpha"]).status_code == 201
        proc = stack.enter_context(edge(data, ep, "--workers", "2"))
        url = f"http://127.0.0.1:{ep}"
        wait_until(lambda: len(children(proc.pid)) == 2, "two edge workers")
        wait_until(lambda: ready(url)[0] == 200, "edge ready")
        load = Traffic(url, keys["client"], threads=3)
        stack.enter_context(traffic(load))
        good = load.wait_for(lambda a: a.ok and "alpha" in a.enabled, "alpha served")
        # The control plane stops; the file is damaged while only the edge has it open.
        os.killpg(admin_proc.pid, signal.SIGTERM)
        admin_proc.wait(30)
        workers = children(proc.pid)
        log_from = edge_log.stat().st_size
        damaged_at = time.monotonic()
        _damage(data, how)

        # 1. Every worker keeps serving the last good snapshot; /ready names the problem.
        wait_until(lambda: ready(url)[0] == 503, "/ready to report the damaged store", timeout=10)
        time.sleep(2.0)
        assert proc.poll() is None, f"granian exited:\n{edge_log.read_text()[-3000:]}"
        assert children(proc.pid) == workers, "a worker died on the damaged file"
        status, body = ready(url)
        assert status == 503 and "store" in body["notReady"], body
        assert "data.mdb" in body["problems"]["store"] or "MDB_CORRUPTED" in body["problems"]["store"], body
        during = load.between(damaged_at)
        assert during and all(a.ok for a in during), [str(a) for a in during if not a.ok][:5]
        assert {(a.version, a.enabled) for a in during} == {(good.version, good.enabled)}
        # Logged once per worker while it lasts, not once per poll (every 20 ms).
        reported = _log_lines(edge_log, log_from, "snapshot store")
        assert 1 <= len(reported) <= 4, reported[:10]
        assert not _log_lines(edge_log, log_from, "Traceback"), edge_log.read_text()[-3000:]

        # 2. A worker killed now is respawned and comes up not ready instead of crash-looping.
        survivor, victim = max(workers), min(workers)
        killed_from = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: len(children(proc.pid) - workers) == 1, "granian to respawn the worker", timeout=30)
        respawned = children(proc.pid) - workers
        time.sleep(3.0)
        assert proc.poll() is None, f"granian exited:\n{edge_log.read_text()[-3000:]}"
        assert children(proc.pid) == {survivor} | respawned, "granian stopped or replaced a worker"
        after_kill = load.between(killed_at + 0.05)
        assert any(a.ok for a in after_kill), "the surviving worker stopped serving"
        refused = [a for a in after_kill if not a.ok]
        assert all(a.status == 503 and a.retry_after for a in refused), [str(a) for a in refused][:5]

        # 3. The control plane moves the damaged file aside and republishes above the old version.
        stack.enter_context(control_plane(data, cp, log="cp-restart.log"))
        moved = list(data.glob("snapshots.damaged-*"))
        assert len(moved) == 1, list(data.iterdir())
        assert create_flags(admin, auth, ["beta"]).status_code == 201
        fresh = load.wait_for(lambda a: a.ok and "beta" in a.enabled, "beta served after the rebuild")
        assert fresh.version is not None and good.version is not None and fresh.version > good.version
        # Ten 200s in a row: a /ready lands on either worker.
        wait_until(lambda: all(ready(url)[0] == 200 for _ in range(10)), "every worker ready after the rebuild")
        recovered_at = time.monotonic()
        time.sleep(0.5)
        answers = load.stop()
    # Versions never went backwards: the rebuilt store numbers above everything served before,
    # and no number was reused for other content. (Each worker adopts the rebuilt store on its
    # own poll, so for a few ms one worker may still answer the old version while the other
    # answers the new one, as with any publish.)
    assert good.version is not None
    served = {(a.version, a.enabled) for a in answers if a.ok and a.started >= good.started}
    assert all(v is not None and v >= good.version for v, _ in served), sorted(served, key=str)
    assert {e for v, e in served if v == good.version} == {good.enabled}, sorted(served, key=str)
    assert all(a.ok for a in answers if a.ended < killed_at), "a request failed before the worker kill"
    assert all(a.ok for a in answers if a.started > recovered_at), "a request failed after the rebuild"
    # Requests in flight on the killed worker die with it (at most one per traffic thread).
    in_flight = [a for a in answers if a.status is None and a.started <= killed_at + 0.05 and a.ended >= killed_from]
    assert len(in_flight) <= load.threads, [str(a) for a in in_flight]
    refused = [a for a in answers if not a.ok and a not in in_flight]
    assert all(a.status == 503 and a.retry_after for a in refused), [str(a) for a in refused][:5]
    print(
        f"{how}: {len(answers)} requests, {len(in_flight)} in flight on the killed worker, "
        f"{len(refused)} answered 503 by the respawned worker before the rebuild, "
        f"served v{good.version} throughout the damage, v{fresh.version} after the rebuild"
    )


@pytest.mark.parametrize("how", ["truncated", "unreadable-page"])
def test_sync_rebuilds_a_damaged_store_from_redis(tmp_path: Path, how: str, redis_server: RedisServer) -> None:
    """Host B's store is fed from Redis: ``python -m server sync`` started on a damaged file
    moves it aside and rebuilds it from Redis's full state; B's edge, which kept serving its last
    good snapshot meanwhile, adopts the rebuild and is ready again, at no older version."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cp, eb = free_port(), free_port()
    sync_args = ["server", "sync", "--data-dir", str(b), "--redis-url", redis_server.url]
    with ExitStack() as stack:
        stack.enter_context(control_plane(a, cp, "--redis-url", redis_server.url))
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, keys = bootstrap_project(admin)
        assert create_flags(admin, auth, ["alpha"]).status_code == 201
        sync = Background(sync_args, tmp_path / "sync.log")
        sync.start()
        stack.callback(sync.kill)
        wait_until(lambda: (b / "snapshots").exists(), "sync to create host B's store")
        stack.enter_context(edge(b, eb, "--workers", "1"))
        url = f"http://127.0.0.1:{eb}"
        load = Traffic(url, keys["client"], threads=2)
        stack.enter_context(traffic(load))
        good = load.wait_for(lambda x: x.ok and "alpha" in x.enabled, "alpha served on B")
        sync.kill()
        _damage(b, how)
        wait_until(lambda: ready(url)[0] == 503, "B's /ready to report the damaged store", timeout=10)

        sync = Background(sync_args, tmp_path / "sync-restarted.log")
        sync.start()
        stack.callback(sync.kill)
        wait_until(lambda: len(list(b.glob("snapshots.damaged-*"))) == 1, "sync to move the damaged store aside")
        wait_until(lambda: ready(url)[0] == 200, "B ready again on the rebuilt store", timeout=30)
        assert create_flags(admin, auth, ["beta"]).status_code == 201
        fresh = load.wait_for(lambda x: x.ok and "beta" in x.enabled, "beta served on B after the rebuild")
        answers = load.stop()
        admin.close()
    assert good.version is not None and fresh.version is not None and fresh.version > good.version
    after = [x for x in answers if x.started >= good.started]
    assert all(x.ok for x in after), [str(x) for x in after if not x.ok][:5]
    assert all(x.version is not None and x.version >= good.version for x in after)
    assert "SNAPSHOT STORE DAMAGED" in (tmp_path / "sync-restarted.log").read_text()
