"""Backup, more writes, restore into a new data dir: other hosts follow the restored control plane.

Host A runs the control plane and an edge on data dir A; host B runs ``python -m server sync``
(following a real redis-server) and an edge on data dir B. After a backup of A, more writes
raise the version further; then A's control plane stops, the backup is restored into a new data
dir and a control plane starts there with the same Redis. Its versions must continue above
every version Redis and B have seen (the backup carries the version high-water mark, the
publisher reads Redis's on start), or B ignores them all: a key revoked after the restore went
on answering 200 on B for good while both ``/ready`` said 200.

Checked: the restored control plane publishes above B's version and is ready; an SDK key revoked
through it answers 403 on B's edge within a few seconds; B's edge never served an older version
than one it had served before, across the whole run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.processes import REPO, bootstrap_project, free_port
from tests.reliability.support import (
    Background,
    Traffic,
    assert_versions_never_go_back,
    control_plane,
    create_flags,
    edge,
    ready,
    traffic,
    wait_until,
)
from tests.support.redis_server import RedisServer


def _cli(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "control_plane", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("redis_at_start", ["reachable", "unreachable"])
def test_restored_control_plane_reaches_other_hosts(tmp_path: Path, redis_at_start: str) -> None:
    """``unreachable``: Redis is stopped (SIGSTOP) while the restored control plane starts, so it
    cannot read the high-water mark then; once Redis answers, it must go above it by itself
    (it used to stay 503 ``versions_behind``, with B on the old snapshot, until the next write)."""
    redis = RedisServer(tmp_path / "redis", free_port())
    redis.start()
    a, b, restored, backup = tmp_path / "a", tmp_path / "b", tmp_path / "restored", tmp_path / "backup"
    a.mkdir()
    b.mkdir()
    sync = Background(["server", "sync", "--data-dir", str(b), "--redis-url", redis.url], tmp_path / "sync.log")
    cp, ea, eb = free_port(), free_port(), free_port()
    try:
        sync.start()
        with contextlib.ExitStack() as host_b:
            with control_plane(a, cp, "--redis-url", redis.url):
                admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
                auth, keys = bootstrap_project(admin)
                assert create_flags(admin, auth, ["before"]).status_code == 201
                wait_until(lambda: (b / "snapshots").exists(), "sync to create host B's LMDB")
                host_b.enter_context(edge(b, eb, "--workers", "1"))
                url_b = f"http://127.0.0.1:{eb}"
                wait_until(lambda: ready(url_b)[0] == 200, "edge B ready")
                (load,) = host_b.enter_context(traffic(Traffic(url_b, keys["client"], threads=2, pause=0.01)))
                with edge(a, ea, "--workers", "1"):
                    load.wait_for(lambda x: x.ok and "before" in x.enabled, "'before' on host B")
                    _cli("backup", "--data-dir", str(a), "--out", str(backup))
                    for n in range(5):  # versions the backup does not know about
                        assert create_flags(admin, auth, [f"after-{n}"]).status_code == 201
                    seen = load.wait_for(lambda x: x.ok and "after-4" in x.enabled, "'after-4' on host B")
                    assert seen.version is not None
                    high = seen.version
                admin.close()
            # Host A's control plane is gone (its disk, say); B keeps serving. Restore elsewhere.
            _cli("restore", "--from", str(backup), "--data-dir", str(restored))
            cp2 = free_port()
            assert redis.proc is not None
            if redis_at_start == "unreachable":
                os.kill(redis.proc.pid, signal.SIGSTOP)
            with control_plane(restored, cp2, "--redis-url", redis.url, log="cp-restored.log"):
                url_cp = f"http://127.0.0.1:{cp2}"
                if redis_at_start == "unreachable":
                    os.kill(redis.proc.pid, signal.SIGCONT)

                def above_b() -> bool:
                    status, body = ready(url_cp)
                    return status == 200 and body["publish"]["version"] > high

                wait_until(above_b, "the restored control plane ready above B's version, with no write", timeout=20)
                admin = httpx.Client(base_url=url_cp, timeout=30)
                r = admin.put(f"/v1/projects/shop/environments/prod/keys/{keys['client']}/invalidate", headers=auth)
                assert r.status_code == 200, r.text
                revoked_at = time.monotonic()
                refused = load.wait_for(lambda x: x.status == 403, "the revoked key refused on host B", timeout=10)
                assert refused.started - revoked_at < 5.0
                status, body = ready(url_cp)
                assert status == 200, body
                admin.close()
            answers = load.stop()
    finally:
        if redis.proc is not None:
            os.kill(redis.proc.pid, signal.SIGCONT)
        sync.kill()
        redis.kill()
    assert_versions_never_go_back(answers, "edge B")
    served = [x.version for x in answers if x.version is not None]
    assert served and min(served) <= high < max(served), (min(served), high, max(served))
